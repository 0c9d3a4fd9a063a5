//! `memnotify`: the figures, threshold events and module settings from a shell.

mod args;
mod render;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use memnotify::format::unix_ms_now;
use memnotify::signals::SignalPipe;
use memnotify::sysfs::{self, PARAMETERS_DIR, STATISTICS_DIR};
use memnotify::{open, Backend, BackendKind, Error};
use rustix::event::{PollFd, PollFlags, Timespec};

use args::{Command, USAGE};

fn main() -> ExitCode {
    let invocation = match args::parse(std::env::args_os().skip(1)) {
        Ok(invocation) => invocation,
        Err(message) => {
            eprintln!("memnotify: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(invocation.backend, invocation.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("memnotify: {error}");
            ExitCode::from(1)
        }
    }
}

fn describe(backend: &dyn Backend) -> &'static str {
    backend.kind().name()
}

fn run(kind: BackendKind, command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Help => print!("{USAGE}"),
        Command::Version => println!("memnotify {}", env!("CARGO_PKG_VERSION")),
        Command::Status { json } => {
            let mut backend = open(kind)?;
            let snapshot = backend.sample()?;
            let shift = backend.units().page_shift;
            if json {
                println!(
                    "{}",
                    render::status_json(describe(&*backend), &snapshot, shift)
                );
            } else {
                print!(
                    "{}",
                    render::status_table(describe(&*backend), &snapshot, shift)
                );
            }
        }
        Command::Stats { json } => {
            let stats = sysfs::read_statistics(Path::new(STATISTICS_DIR))?;
            if json {
                let object: serde_json::Map<String, serde_json::Value> = stats
                    .iter()
                    .map(|(name, value)| (name.to_string(), (*value).into()))
                    .collect();
                println!("{}", serde_json::Value::Object(object));
            } else {
                for (name, value) in stats {
                    println!("{name:<13}{value}");
                }
            }
        }
        Command::SetDefault {
            low_pct,
            critical_pct,
            rate_limit_ms,
        } => {
            let dir = Path::new(PARAMETERS_DIR);
            // Lower the critical level before the low one and raise the low one
            // first, so the module never sees critical above low in between.
            let order: [(&str, Option<u64>); 3] = match (low_pct, critical_pct) {
                (Some(low), _) if low < sysfs::read_parameter(dir, "default_low_pct")? => [
                    ("default_critical_pct", critical_pct),
                    ("default_low_pct", low_pct),
                    ("rate_limit_ms", rate_limit_ms),
                ],
                _ => [
                    ("default_low_pct", low_pct),
                    ("default_critical_pct", critical_pct),
                    ("rate_limit_ms", rate_limit_ms),
                ],
            };
            for (name, value) in order {
                if let Some(value) = value {
                    sysfs::write_parameter(dir, name, value)?;
                }
            }
            for name in ["default_low_pct", "default_critical_pct", "rate_limit_ms"] {
                println!("{name} {}", sysfs::read_parameter(dir, name)?);
            }
        }
        Command::Watch {
            thresholds,
            json,
            count,
            timeout,
        } => return watch(kind, &thresholds, json, count, timeout),
        Command::Subscribe {
            socket,
            count,
            timeout,
        } => return subscribe(&socket, count, timeout),
        Command::Query { socket } => {
            let mut stream = connect(&socket, Duration::ZERO)?;
            stream
                .write_all(b"query\n")
                .map_err(|error| Error::io(format!("writing to {}", socket.display()), error))?;
            let mut line = String::new();
            BufReader::new(stream)
                .read_line(&mut line)
                .map_err(|error| Error::io(format!("reading {}", socket.display()), error))?;
            print!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn watch(
    kind: BackendKind,
    text: &str,
    json: bool,
    count: Option<u64>,
    timeout: Option<Duration>,
) -> Result<ExitCode, Error> {
    let signals = SignalPipe::install(&[libc::SIGINT, libc::SIGTERM])?;
    let mut backend = open(kind)?;
    let thresholds = backend.parse_thresholds(text)?;
    backend.set_thresholds(&thresholds)?;
    let shift = backend.units().page_shift;
    eprintln!(
        "memnotify: watching '{}' with the {} backend",
        memnotify::thresholds_write(&thresholds),
        describe(&*backend)
    );
    let deadline = timeout.map(|limit| Instant::now() + limit);
    let mut seen = 0u64;
    loop {
        let now = Instant::now();
        let left = deadline.map(|deadline| deadline.saturating_duration_since(now));
        if left == Some(Duration::ZERO) {
            eprintln!("memnotify: no more events within the timeout");
            return Ok(ExitCode::from(1));
        }
        let wait = match (left, backend.timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timespec = wait.map(|wait| Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: i64::from(wait.subsec_nanos()),
        });
        let mut fds = [
            PollFd::new(&signals, PollFlags::IN),
            PollFd::from_borrowed_fd(backend.as_fd(), backend.poll_flags()),
        ];
        match rustix::event::poll(&mut fds, timespec.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(Error::io("poll", errno.into())),
        }
        let backend_ready = !fds[1].revents().is_empty();
        if signals.take() != 0 {
            return Ok(ExitCode::SUCCESS);
        }
        if !backend_ready && backend.timeout().is_none() {
            continue;
        }
        let Some(event) = backend.check()? else {
            continue;
        };
        let unix_ms = unix_ms_now();
        for crossing in event.crossings() {
            if json {
                println!(
                    "{}",
                    render::crossing_json(unix_ms, &event.snapshot, &crossing)
                );
            } else {
                println!("{}", render::crossing_line(unix_ms, &crossing, shift));
            }
            seen += 1;
            if count.is_some_and(|count| seen >= count) {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

/// Connects to memnotifyd's socket, waiting up to `patience` for it to appear.
fn connect(socket: &Path, patience: Duration) -> Result<UnixStream, Error> {
    let deadline = Instant::now() + patience;
    loop {
        match UnixStream::connect(socket) {
            Ok(stream) => return Ok(stream),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(error) => {
                return Err(Error::io(
                    format!(
                        "connecting to {} (is memnotifyd running?)",
                        socket.display()
                    ),
                    error,
                ))
            }
        }
    }
}

/// Prints memnotifyd's JSON lines as they come.
fn subscribe(
    socket: &Path,
    count: Option<u64>,
    timeout: Option<Duration>,
) -> Result<ExitCode, Error> {
    let signals = SignalPipe::install(&[libc::SIGINT, libc::SIGTERM])?;
    let deadline = timeout.map(|limit| Instant::now() + limit);
    let stream = connect(socket, Duration::from_secs(5))?;
    eprintln!("memnotify: subscribed to {}", socket.display());
    let mut reader = BufReader::new(stream);
    let mut seen = 0u64;
    let mut line = String::new();
    loop {
        let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            eprintln!("memnotify: no more lines within the timeout");
            return Ok(ExitCode::from(1));
        }
        // Lines already buffered need no wait.
        if reader.buffer().is_empty() {
            let timespec = left.map(|wait| Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: i64::from(wait.subsec_nanos()),
            });
            let mut fds = [
                PollFd::new(&signals, PollFlags::IN),
                PollFd::new(reader.get_ref(), PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, timespec.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(errno) => return Err(Error::io("poll", errno.into())),
            }
            let readable = !fds[1].revents().is_empty();
            if signals.take() != 0 {
                return Ok(ExitCode::SUCCESS);
            }
            if !readable {
                continue;
            }
        }
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|error| Error::io(format!("reading {}", socket.display()), error))?;
        if read == 0 {
            eprintln!("memnotify: memnotifyd closed the connection");
            return Ok(ExitCode::from(1));
        }
        print!("{line}");
        let _ = std::io::stdout().flush();
        seen += 1;
        if count.is_some_and(|count| seen >= count) {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

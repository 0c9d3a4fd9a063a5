//! `mn-probe daemon-socket PATH`: memnotifyd's socket against hostile and careless
//! clients. It must refuse other users, answer garbage with an error or a hang-up, drop
//! lines over its request limit, shed connections over its maximum, and keep answering
//! `query` promptly while a client stalls mid-line, vanishes before its answer, or
//! subscribes and never reads. `daemon-socket-per-uid PATH N`: one user cannot take more
//! than N subscriptions, so others still get in.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use crate::{become_user, sys, Error, Result};

/// The longest a well-behaved query may take while the bad clients are connected. A
/// daemon blocked on a bad client never answers; a guest on a starved vCPU of a busy host
/// answers seconds late: the bound is wide enough to tell the two apart.
const PROMPT: Duration = Duration::from_secs(10);

/// For `map_err` on std's socket calls: the errno, with what was being done.
fn os(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    move |error| match Errno::from_io_error(&error) {
        Some(errno) => sys(what)(errno),
        None => format!("{}: {error}", what.into()).into(),
    }
}

fn connect(path: &str) -> Result<UnixStream> {
    let stream = UnixStream::connect(path).map_err(os(format!("connect {path}")))?;
    stream
        .set_read_timeout(Some(PROMPT))
        .map_err(os("SO_RCVTIMEO"))?;
    Ok(stream)
}

/// Sends `query` on `stream` and checks that the answer is the state line.
fn ask(stream: &mut UnixStream) -> Result<String> {
    stream.write_all(b"query\n").map_err(os("send query"))?;
    let answer = read_line(stream).map_err(os("query answer"))?;
    if !answer.starts_with("{\"event\":\"state\"") {
        return Err(format!("query answered {answer:?}").into());
    }
    Ok(answer)
}

/// Sends `query` on a fresh connection and returns the answer and how long it took.
fn query(path: &str) -> Result<(String, Duration)> {
    let start = Instant::now();
    let answer = ask(&mut connect(path)?)?;
    Ok((answer, start.elapsed()))
}

/// Reads one line (up to a read timeout); "" when the daemon hung up.
fn read_line(stream: &mut UnixStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn prompt_query(path: &str, during: &str) -> Result<()> {
    let (_, took) = query(path).map_err(|error| error.during(during))?;
    if took > PROMPT {
        return Err(format!("{during}: query took {took:?}").into());
    }
    println!("query answered in {} ms {during}", took.as_millis());
    Ok(())
}

/// Runs `work` on a thread of its own as `uid` (group `uid`, no supplementary groups):
/// credentials belong to a thread, so the rest of the probe stays root. The thread's
/// result, or why it could not switch user.
fn as_user<T: Send + 'static>(
    uid: u32,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<Result<T>> {
    std::thread::spawn(move || {
        become_user(uid, uid, &[]).map_err(sys(format!("switching to uid {uid}")))?;
        Ok(work())
    })
}

/// Connects as another user; the errno of a refused connection.
fn connect_as(path: &str, uid: u32) -> Result<Result<(), Errno>> {
    let path = path.to_string();
    as_user(uid, move || {
        UnixStream::connect(path)
            .map(drop)
            .map_err(|error| Errno::from_io_error(&error).unwrap_or(Errno::IO))
    })
    .join()
    .map_err(|_| Error::from("the connecting thread panicked"))?
}

pub fn daemon_socket(args: &[String]) -> Result<()> {
    let path = args.first().ok_or("daemon-socket needs the socket path")?;
    let mut failures = Vec::new();
    let mut check = |ok: bool, what: String| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failures.push(what);
        }
    };

    // Least privilege: another user cannot connect (the socket is not writable by others).
    match connect_as(path, 1000)? {
        Err(Errno::ACCESS) => check(true, "uid 1000 cannot connect: EACCES".into()),
        Ok(()) => check(false, "uid 1000 connected".into()),
        Err(errno) => check(false, format!("uid 1000: connect: {errno}")),
    }

    prompt_query(path, "with no other client")?;

    // Garbage: an error line back, the connection stays usable.
    let mut garbage = connect(path)?;
    garbage
        .write_all(b"\x00\xff\xfe garbage \x1b[2J\n")
        .map_err(os("send garbage"))?;
    let answer = read_line(&mut garbage).unwrap_or_default();
    check(
        answer.contains("\"error\""),
        format!("garbage gets an error line: {answer}"),
    );
    garbage.write_all(b"query\n").map_err(os("send query"))?;
    let answer = read_line(&mut garbage).unwrap_or_default();
    check(
        answer.starts_with("{\"event\":\"state\""),
        "the same connection still answers query".into(),
    );

    // A line over the request limit: the daemon hangs up.
    let mut long = connect(path)?;
    let _ = long.write_all(&[b'q'; 4096]);
    let hung_up = match read_line(&mut long) {
        Ok(line) => line.is_empty(),
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    };
    check(hung_up, "a 4 KiB line without newline is hung up on".into());

    // A client stalled mid-line and one that asked and vanished.
    let mut stalled = connect(path)?;
    stalled.write_all(b"que").map_err(os("send half a line"))?;
    for _ in 0..8 {
        let mut vanished = connect(path)?;
        let _ = vanished.write_all(b"query\nquery\nquery\n");
        drop(vanished);
    }
    // A subscriber that never reads.
    let idle = connect(path)?;
    prompt_query(path, "with a stalled, 8 vanished and an idle client")?;
    check(true, "stalled and vanished clients do not block".into());

    // More connections than the daemon's maximum: the extra ones are closed at once,
    // and once they go, a query gets through again.
    let mut flood = Vec::new();
    for _ in 0..64 {
        match UnixStream::connect(path) {
            Ok(stream) => flood.push(stream),
            Err(e) => {
                check(false, format!("connect during the flood: {e}"));
                break;
            }
        }
    }
    drop(flood);
    drop(stalled);
    drop(idle);
    // Until the daemon has seen them go, it may still be full and shed the query too:
    // ask again until it answers.
    let start = Instant::now();
    loop {
        match query(path) {
            Ok(_) => break,
            Err(error) if start.elapsed() > PROMPT => {
                return Err(error.during("after 64 connections came and went"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    println!(
        "query answered in {} ms after 64 connections came and went",
        start.elapsed().as_millis()
    );

    if failures.is_empty() {
        println!("daemon-socket: all checks passed");
        Ok(())
    } else {
        Err(format!("{} socket checks failed", failures.len()).into())
    }
}

/// A thread running as another user that holds subscriptions to the socket.
struct UserClients {
    thread: std::thread::JoinHandle<Result<()>>,
    /// How many of the thread's connections were answered.
    report: mpsc::Receiver<u8>,
    /// Dropped by the caller to let the thread go.
    release: mpsc::Sender<()>,
}

impl UserClients {
    /// Starts a thread that, as `uid`, opens `count` connections to `path`, sends `query`
    /// on each, counts the answers and keeps the connections until released.
    fn start(path: &str, uid: u32, count: u8) -> UserClients {
        let (report, answered) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let path = path.to_string();
        let thread = as_user(uid, move || {
            let mut held = Vec::new();
            let mut count_answered = 0;
            for _ in 0..count {
                if let Ok(mut stream) = connect(&path) {
                    count_answered += u8::from(ask(&mut stream).is_ok());
                    held.push(stream);
                }
            }
            let _ = report.send(count_answered);
            // Returns when the caller drops its end.
            let _ = released.recv();
            drop(held);
        });
        UserClients {
            thread,
            report: answered,
            release,
        }
    }

    /// How many of the thread's connections were answered (`None`: it could not switch
    /// user).
    fn answered(&mut self) -> Option<u8> {
        self.report.recv().ok()
    }

    /// Releases every thread, then waits for them all.
    fn finish_all(clients: Vec<UserClients>) -> Result<()> {
        let threads: Vec<_> = clients
            .into_iter()
            .map(|client| {
                drop(client.release);
                client.thread
            })
            .collect();
        for thread in threads {
            thread
                .join()
                .map_err(|_| Error::from("a client thread panicked"))??;
        }
        Ok(())
    }
}

pub fn daemon_socket_per_uid(args: &[String]) -> Result<()> {
    let [path, per_uid] = args else {
        return Err("daemon-socket-per-uid needs the socket path and the per-user limit".into());
    };
    let per_uid: u8 = per_uid
        .parse()
        .map_err(|_| Error::from(format!("bad per-user limit '{per_uid}'")))?;
    let mut greedy = UserClients::start(path, 1000, per_uid.saturating_add(2));
    let greedy_answered = greedy.answered();
    let mut other = UserClients::start(path, 1001, 1);
    let other_answered = other.answered();
    let root = prompt_query(path, "while uid 1000 holds its share");
    let finished = UserClients::finish_all(vec![greedy, other]);
    println!(
        "uid 1000: {} of {} connections answered",
        greedy_answered.map_or("-".into(), |n| n.to_string()),
        per_uid.saturating_add(2)
    );
    println!(
        "uid 1001: {} of 1 answered",
        other_answered.map_or("-".into(), |n| n.to_string())
    );
    root?;
    finished?;
    if greedy_answered != Some(per_uid) || other_answered != Some(1) {
        return Err("the per-user limit did not hold".into());
    }
    println!("daemon-socket-per-uid: all checks passed");
    Ok(())
}

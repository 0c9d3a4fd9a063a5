//! `mn-probe`: exercises `/dev/memnotify` from inside a test guest.
//!
//! Each subcommand prints what it saw and exits 0 only when the device behaved as the
//! protocol says, so the QEMU scenarios can assert on both the output and the status.

mod fuzz;
mod socket;

use std::ffi::CString;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use memnotify_proto::{parse_line, Figure};

const DEVICE: &str = "/dev/memnotify";

const USAGE: &str = "\
usage: mn-probe <command> [args]
  wait THRESHOLDS [--count N] [--timeout S]   poll() for N events, print each line
  epoll THRESHOLDS [--timeout S]              one event through epoll
  sigio THRESHOLDS [--timeout S]              one event through SIGIO (O_ASYNC)
  wait-default [--timeout S]                  O_RDONLY, no thresholds: one default-level event
  bad-writes THRESHOLDS [--timeout S]         every malformed write must fail with EINVAL and
                                              leave THRESHOLDS in force (then waits for its event)
  read-semantics                              first read, EOF, pread at 0, write, short buffer
  keep-event THRESHOLDS [--timeout S]         once THRESHOLDS fire, a 0-byte read and a read
                                              that fails with EFAULT leave the event pending;
                                              the read that returns its line consumes it
  write-storm UID SECONDS                     as UID (0: stay root), rewrite a `used` threshold
                                              next to the figure in a tight loop; print the
                                              writes and the module's evaluations per second
  open-many N [THRESHOLDS] [--hold S]         open N files (with thresholds), report, keep
                                              them open S seconds (0), close
  cross-many N                                N files cross one `used` threshold up, then down,
                                              while another thread closes, reopens and re-arms
                                              more files: each of the N gets exactly one event
                                              per crossing
  uid-limit UID [--hold S]                    as UID, open until EMFILE or ENFILE; print how many
                                              (and keep them open S seconds)
  open-as UID GID                             as UID with only group GID, open once; print the result
  compare                                     figures against /proc/meminfo
  fuzz [--seconds N] [--seed S]               malformed, extreme and concurrent use; checks every
                                              result, then that the device still works
  race-open SECONDS                           open, write, read, close in a loop for SECONDS,
                                              tolerating a module being removed; print counts
  daemon-socket PATH                          memnotifyd's socket against other users, garbage,
                                              stalled, vanished and too many clients
  daemon-socket-per-uid PATH N                with the socket open to all: uid 1000 gets N
                                              subscriptions, uid 1001 and root still get in
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("wait") => wait(&args[1..]),
        Some("epoll") => epoll(&args[1..]),
        Some("sigio") => sigio(&args[1..]),
        Some("wait-default") => wait_default(&args[1..]),
        Some("bad-writes") => bad_writes(&args[1..]),
        Some("read-semantics") => read_semantics(),
        Some("keep-event") => keep_event(&args[1..]),
        Some("write-storm") => write_storm(&args[1..]),
        Some("open-many") => open_many(&args[1..]),
        Some("cross-many") => cross_many(&args[1..]),
        Some("uid-limit") => uid_limit(&args[1..]),
        Some("open-as") => open_as(&args[1..]),
        Some("compare") => compare(),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("daemon-socket") => socket::daemon_socket(&args[1..]),
        Some("daemon-socket-per-uid") => socket::daemon_socket_per_uid(&args[1..]),
        Some("race-open") => race_open(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            println!("mn-probe: FAIL: {message}");
            ExitCode::FAILURE
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// An anonymous private read-write mapping of `size` bytes; the caller unmaps it.
fn anonymous_map(size: usize) -> Result<*mut libc::c_void, String> {
    // SAFETY: a fresh anonymous mapping aliases nothing.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(os_error("mmap"));
    }
    Ok(map)
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn open(flags: i32) -> Result<i32, String> {
    let path = CString::new(DEVICE).expect("no NUL");
    // SAFETY: `path` is a valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(os_error("open /dev/memnotify"));
    }
    Ok(fd)
}

fn write_raw(fd: i32, bytes: &[u8]) -> isize {
    // SAFETY: `bytes` is a valid buffer of its length.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) }
}

fn set_thresholds(fd: i32, thresholds: &str) -> Result<(), String> {
    let n = write_raw(fd, thresholds.as_bytes());
    if n != thresholds.len() as isize {
        return Err(os_error(&format!("write {thresholds:?}")));
    }
    Ok(())
}

fn read_into(fd: i32, buf: &mut [u8]) -> Result<usize, String> {
    // SAFETY: `buf` is a valid, writable buffer of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(os_error("read"));
    }
    Ok(n as usize)
}

fn pread_into(fd: i32, buf: &mut [u8]) -> Result<usize, String> {
    // SAFETY: `buf` is a valid, writable buffer of its length.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(os_error("pread"));
    }
    Ok(n as usize)
}

fn read_line(fd: i32) -> Result<String, String> {
    let mut buf = [0u8; 256];
    let n = read_into(fd, &mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim_end().to_string())
}

/// Polls `fd` for POLLIN; false on timeout.
fn poll_in(fd: i32, timeout: Duration) -> Result<bool, String> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    if n < 0 {
        return Err(os_error("poll"));
    }
    Ok(n > 0 && pfd.revents & libc::POLLIN != 0)
}

/// `--timeout S` and `--count N` out of `args`; the rest is joined as thresholds.
fn options(args: &[String]) -> Result<(String, Duration, usize), String> {
    let mut timeout = Duration::from_secs(30);
    let mut count = 1;
    let mut words = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--timeout" => {
                let secs: u64 = iter
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--timeout needs seconds")?;
                timeout = Duration::from_secs(secs);
            }
            "--count" => {
                count = iter
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--count needs a number")?
            }
            word => words.push(word.to_string()),
        }
    }
    Ok((words.join(" "), timeout, count))
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn print_event(how: &str, line: &str) {
    let latency = parse_line(line.as_bytes())
        .map(|snapshot| now_ns().saturating_sub(snapshot.time_ns) / 1000)
        .unwrap_or(0);
    println!("{how} event: {line} (latency {latency} us)");
    let _ = std::io::stdout().flush();
}

fn wait(args: &[String]) -> Result<(), String> {
    let (thresholds, timeout, count) = options(args)?;
    let fd = open(libc::O_RDWR)?;
    read_line(fd)?;
    set_thresholds(fd, &thresholds)?;
    println!("armed: {thresholds}");
    let _ = std::io::stdout().flush();
    let deadline = Instant::now() + timeout;
    for _ in 0..count {
        let left = deadline.saturating_duration_since(Instant::now());
        if !poll_in(fd, left)? {
            return Err(format!("no event within {}s", timeout.as_secs()));
        }
        print_event("poll", &read_line(fd)?);
        if poll_in(fd, Duration::ZERO)? {
            return Err("still readable after the read consumed the event".into());
        }
    }
    Ok(())
}

fn epoll(args: &[String]) -> Result<(), String> {
    let (thresholds, timeout, _) = options(args)?;
    let fd = open(libc::O_RDWR)?;
    set_thresholds(fd, &thresholds)?;
    // SAFETY: plain syscalls on valid arguments.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(os_error("epoll_create1"));
    }
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: valid epoll fd, fd and event.
    if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
        return Err(os_error("epoll_ctl"));
    }
    println!("armed: {thresholds}");
    let _ = std::io::stdout().flush();
    let mut ready = [libc::epoll_event { events: 0, u64: 0 }; 1];
    // SAFETY: `ready` has room for one event.
    let n = unsafe { libc::epoll_wait(ep, ready.as_mut_ptr(), 1, timeout.as_millis() as i32) };
    if n < 0 {
        return Err(os_error("epoll_wait"));
    }
    if n == 0 {
        return Err(format!("no epoll event within {}s", timeout.as_secs()));
    }
    print_event("epoll", &read_line(fd)?);
    Ok(())
}

fn sigio(args: &[String]) -> Result<(), String> {
    let (thresholds, timeout, _) = options(args)?;
    let fd = open(libc::O_RDWR)?;
    set_thresholds(fd, &thresholds)?;
    // SAFETY: plain syscalls and signal-set manipulation on local, valid memory.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGIO);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if libc::fcntl(fd, libc::F_SETOWN, libc::getpid()) < 0 {
            return Err(os_error("F_SETOWN"));
        }
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if libc::fcntl(fd, libc::F_SETFL, flags | libc::O_ASYNC) < 0 {
            return Err(os_error("F_SETFL O_ASYNC"));
        }
        println!("armed: {thresholds}");
        let _ = std::io::stdout().flush();
        let wait = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: 0,
        };
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let sig = libc::sigtimedwait(&set, &mut info, &wait);
        if sig != libc::SIGIO {
            return Err(format!("no SIGIO within {}s", timeout.as_secs()));
        }
    }
    print_event("sigio", &read_line(fd)?);
    Ok(())
}

fn wait_default(args: &[String]) -> Result<(), String> {
    let (_, timeout, _) = options(args)?;
    let fd = open(libc::O_RDONLY)?;
    println!("waiting for a default-level event: {}", read_line(fd)?);
    let _ = std::io::stdout().flush();
    if !poll_in(fd, timeout)? {
        return Err(format!(
            "no default-level event within {}s",
            timeout.as_secs()
        ));
    }
    print_event("default", &read_line(fd)?);
    Ok(())
}

fn bad_writes(args: &[String]) -> Result<(), String> {
    let (thresholds, timeout, _) = options(args)?;
    let fd = open(libc::O_RDWR)?;
    set_thresholds(fd, &thresholds)?;
    let long = vec![b'1'; 257];
    let huge = {
        let mut huge = b"used ".to_vec();
        huge.resize(64 * 1024, b'9');
        huge
    };
    let mut random = vec![0u8; 200];
    let mut seed = now_ns() | 1;
    for byte in &mut random {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *byte = seed as u8;
    }
    // Each of these would disable or change `used` if it were applied even in part.
    let cases: Vec<(&str, &[u8])> = vec![
        ("empty", b""),
        ("blank", b"   \n"),
        ("key without value", b"used"),
        ("unknown key", b"bogus 1"),
        ("unknown key after a good pair", b"used 0 bogus 1"),
        ("not a number", b"used x"),
        ("negative", b"used -1"),
        ("overflow", b"used 99999999999999999999999"),
        ("duplicate key", b"used 0 used 1"),
        ("percent over 100", b"used 101%"),
        ("hex without digits", b"used 0x"),
        ("bad suffix", b"used 1Q"),
        ("embedded NUL", b"used 0\0active 1"),
        ("257 bytes", &long),
        ("64 KiB", &huge),
        ("random bytes", &random),
    ];
    let mut failures = Vec::new();
    for (name, bytes) in cases {
        let n = write_raw(fd, bytes);
        let err = errno();
        if n == -1 && err == libc::EINVAL {
            println!("rejected {name}: EINVAL");
        } else {
            failures.push(format!("{name}: returned {n} errno {err}"));
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "writes not rejected with EINVAL: {}",
            failures.join("; ")
        ));
    }
    println!("all bad writes rejected; waiting for the event of {thresholds:?}");
    let _ = std::io::stdout().flush();
    if !poll_in(fd, timeout)? {
        return Err(format!(
            "the original thresholds did not fire within {}s",
            timeout.as_secs()
        ));
    }
    print_event("poll", &read_line(fd)?);
    Ok(())
}

fn read_semantics() -> Result<(), String> {
    let fd = open(libc::O_RDWR)?;
    let first = read_line(fd)?;
    parse_line(first.as_bytes()).map_err(|e| format!("first read {first:?}: {e:?}"))?;
    println!("first read: {first}");
    let mut buf = [0u8; 256];
    let n = read_into(fd, &mut buf)?;
    if n != 0 {
        return Err(format!("second read returned {n} bytes, want EOF"));
    }
    println!("second read: EOF");
    let n = pread_into(fd, &mut buf)?;
    parse_line(&buf[..n]).map_err(|e| format!("pread at 0: {e:?}"))?;
    println!("pread at 0: {n} bytes");
    // SAFETY: plain syscall.
    if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } != 0 {
        return Err(os_error("lseek"));
    }
    let n = read_into(fd, &mut buf)?;
    parse_line(&buf[..n]).map_err(|e| format!("read after lseek 0: {e:?}"))?;
    println!("read after lseek to 0: {n} bytes");
    let n = read_into(fd, &mut buf)?;
    if n != 0 {
        return Err(format!("read after that returned {n} bytes, want EOF"));
    }
    set_thresholds(fd, "used 1G")?;
    let n = read_into(fd, &mut buf)?;
    parse_line(&buf[..n]).map_err(|e| format!("read after write: {e:?}"))?;
    println!("read after a write: {n} bytes");
    let mut short = [0u8; 10];
    let n = pread_into(fd, &mut short)?;
    if n != 10 || &short[..5] != b"used " {
        return Err(format!("short read returned {n} bytes {:?}", &short[..n]));
    }
    println!("10-byte read: {:?}", String::from_utf8_lossy(&short));
    if poll_in(fd, Duration::ZERO)? {
        return Err("readable without an event".into());
    }
    println!("not readable without an event: ok");
    Ok(())
}

fn keep_event(args: &[String]) -> Result<(), String> {
    let (thresholds, timeout, _) = options(args)?;
    let fd = open(libc::O_RDWR)?;
    set_thresholds(fd, &thresholds)?;
    // The write makes one read return the figures; take it, so only the event is left.
    read_line(fd)?;
    println!("armed {thresholds:?}; waiting for its event");
    let _ = std::io::stdout().flush();
    if !poll_in(fd, timeout)? {
        return Err(format!("no event within {}s", timeout.as_secs()));
    }
    let mut empty = [0u8; 0];
    let n = read_into(fd, &mut empty)?;
    if n != 0 {
        return Err(format!("0-byte read returned {n}"));
    }
    if !poll_in(fd, Duration::ZERO)? {
        return Err("a 0-byte read consumed the event".into());
    }
    println!("0-byte read: 0, event still pending");
    // An address no process maps: the kernel's copy to user space fails.
    let bad = 8usize as *mut libc::c_void;
    // SAFETY: the kernel checks the address; nothing is written on our side.
    let n = unsafe { libc::read(fd, bad, 255) };
    let err = errno();
    if n != -1 || err != libc::EFAULT {
        return Err(format!("read into a bad address returned {n} errno {err}"));
    }
    if !poll_in(fd, Duration::ZERO)? {
        return Err("a read that failed with EFAULT consumed the event".into());
    }
    println!("read into a bad address: EFAULT, event still pending");
    let line = read_line(fd)?;
    let parsed = parse_line(line.as_bytes()).map_err(|e| format!("event line {line:?}: {e:?}"))?;
    if parsed.seq == 0 {
        return Err(format!("event line without a sequence number: {line:?}"));
    }
    if poll_in(fd, Duration::ZERO)? {
        return Err("still readable after the event's line was read".into());
    }
    print_event("kept", &line);
    println!("consumed by the read that returned it");
    Ok(())
}

fn open_many(args: &[String]) -> Result<(), String> {
    let count: usize = args
        .first()
        .and_then(|n| n.parse().ok())
        .ok_or("open-many needs a count")?;
    let mut hold = Duration::ZERO;
    let mut words = Vec::new();
    let mut rest = args[1..].iter();
    while let Some(word) = rest.next() {
        if word == "--hold" {
            let secs: u64 = rest
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or("--hold needs seconds")?;
            hold = Duration::from_secs(secs);
        } else {
            words.push(word.as_str());
        }
    }
    let thresholds = words.join(" ");
    // Raise the fd limit as far as the hard limit allows.
    // SAFETY: plain syscalls on local memory.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let mut fds = Vec::with_capacity(count);
    for _ in 0..count {
        let fd = open(libc::O_RDWR)?;
        if !thresholds.is_empty() {
            set_thresholds(fd, &thresholds)?;
        }
        fds.push(fd);
    }
    let clients =
        std::fs::read_to_string("/sys/class/misc/memnotify/statistics/clients").unwrap_or_default();
    println!("opened {count}; clients now {}", clients.trim());
    let _ = std::io::stdout().flush();
    std::thread::sleep(hold);
    for fd in fds {
        // SAFETY: closing fds this function opened.
        unsafe { libc::close(fd) };
    }
    println!("closed {count}");
    Ok(())
}

/// Opens and closes files as fast as it can while `rmmod`/`insmod` run elsewhere: an open
/// either works fully (a line to read, thresholds accepted) or fails because the device
/// is gone (ENOENT, ENODEV, ENXIO); anything else is a failure.
/// Raises the fd limit as far as the hard limit allows.
fn raise_fd_limit() {
    // SAFETY: plain syscalls on local memory.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// A figure of a fresh sample.
fn figure_now(fd: i32, figure: Figure) -> Result<u64, String> {
    let mut buf = [0u8; 256];
    let n = pread_into(fd, &mut buf)?;
    parse_line(&buf[..n])
        .map(|snapshot| snapshot.figures.get(figure))
        .map_err(|error| format!("bad line: {error:?}"))
}

/// The `used` figure of a fresh sample.
fn used_now(fd: i32) -> Result<u64, String> {
    figure_now(fd, Figure::Used)
}

/// The `seq` of the line a read returns now.
fn seq_now(fd: i32) -> Result<u64, String> {
    let mut buf = [0u8; 256];
    let n = read_into(fd, &mut buf)?;
    parse_line(&buf[..n])
        .map(|snapshot| snapshot.seq)
        .map_err(|error| format!("bad line: {error:?}"))
}

/// Waits until every file in `fds` is readable, or `stalled` passes without one more
/// becoming so (a slow delivery, as on a debug kernel under emulation, is not a lost
/// event); returns how many are.
fn readable(fds: &[i32], stalled: Duration) -> Result<usize, String> {
    let mut progress = (0, Instant::now());
    loop {
        let mut ready = 0;
        for &fd in fds {
            if poll_in(fd, Duration::ZERO)? {
                ready += 1;
            }
        }
        if ready > progress.0 {
            progress = (ready, Instant::now());
        }
        if ready == fds.len() || progress.1.elapsed() >= stalled {
            return Ok(ready);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The module's statistics, one `name value` per line, for a failure report.
fn statistics() -> String {
    let dir = "/sys/class/misc/memnotify/statistics";
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|name| {
            let value = std::fs::read_to_string(format!("{dir}/{name}")).unwrap_or_default();
            format!("{name} {}", value.trim())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that every file in `fds` has an event and that its `seq` is `expected`.
fn check_seqs(fds: &[i32], expected: u64, what: &str) -> Result<(), String> {
    let ready = readable(fds, Duration::from_secs(20))?;
    if ready != fds.len() {
        return Err(format!(
            "{what}: only {ready} of {} files readable (statistics: {})",
            fds.len(),
            statistics()
        ));
    }
    for (index, &fd) in fds.iter().enumerate() {
        let seq = seq_now(fd)?;
        if seq != expected {
            return Err(format!(
                "{what}: file {index} has seq {seq}, not {expected}"
            ));
        }
        if poll_in(fd, Duration::ZERO)? {
            return Err(format!(
                "{what}: file {index} still readable after its read"
            ));
        }
    }
    println!("{what}: {} files, each seq {expected}", fds.len());
    Ok(())
}

fn cross_many(args: &[String]) -> Result<(), String> {
    let count: usize = args
        .first()
        .and_then(|n| n.parse().ok())
        .ok_or("cross-many needs a count")?;
    raise_fd_limit();
    let probe = open(libc::O_RDWR)?;
    let page = 4096usize.max(
        // SAFETY: no preconditions.
        unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize,
    );
    // Open every file before `used` is measured: on a debug kernel (slab red zones,
    // kmemleak's records) 4000 opens alone move it by megabytes, and files armed after
    // the figure passed the threshold would start above it.
    let mut fds = Vec::with_capacity(count);
    for _ in 0..count {
        fds.push(open(libc::O_RDWR)?);
    }
    // Far enough above the current figure not to cross by drift: 8 MiB, or an eighth of
    // RAM. On a debug kernel under emulation `used` moves by megabytes on its own
    // (KASAN's quarantine alone may hold a thirty-second of RAM in freed objects), and
    // after the memory is freed again it must stay below the threshold until every
    // file has been read.
    let total = figure_now(probe, Figure::Total)? as usize;
    let margin = ((8usize << 20) / page).max(total / 8);
    let threshold = used_now(probe)? + margin as u64;
    // Without hysteresis, `used` jittering by a page at the moment of the crossing (the
    // racer's closes free memory) would be a fall and a rise more, for every file.
    let hysteresis = margin / 4;
    println!("threshold {threshold} pages, {margin} above used, hysteresis {hysteresis}");
    for (index, &fd) in fds.iter().enumerate() {
        // Every fourth file arms two more figures far away: it has extra trigger nodes.
        let thresholds = if index % 4 == 0 {
            format!("used {threshold} hysteresis {hysteresis} active 0xfffffff free 0xffffffe")
        } else {
            format!("used {threshold} hysteresis {hysteresis}")
        };
        set_thresholds(fd, &thresholds)?;
        read_line(fd)?;
    }

    println!("armed, used {} pages", used_now(probe)?);
    // Files that another thread closes, reopens and re-arms at the same threshold while
    // the deliveries run: the module must neither crash nor disturb the others.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churned = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let racer = {
        let (stop, churned) = (stop.clone(), churned.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let mut spare: Vec<i32> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let fd = open(libc::O_RDWR)?;
                set_thresholds(fd, &format!("used {threshold}"))?;
                spare.push(fd);
                if spare.len() > 64 {
                    let old = spare.remove(0);
                    set_thresholds(old, &format!("used {} hysteresis 16", threshold + 1))?;
                    // SAFETY: closing an fd this thread opened.
                    unsafe { libc::close(old) };
                }
                churned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            for fd in spare {
                // SAFETY: as above.
                unsafe { libc::close(fd) };
            }
            Ok(())
        })
    };

    // Raise `used` past the threshold, then free the memory again.
    let size = 4 * margin * page;
    let memory = anonymous_map(size)?;
    let mut touched = 0;
    while touched < size && used_now(probe)? < threshold + (margin / 2) as u64 {
        for offset in (touched..(touched + (1 << 20)).min(size)).step_by(page) {
            // SAFETY: inside the mapping.
            unsafe { memory.cast::<u8>().add(offset).write_volatile(1) };
        }
        touched = (touched + (1 << 20)).min(size);
        std::thread::sleep(Duration::from_millis(2));
    }
    let figures = |error: String| {
        let used = used_now(probe).unwrap_or(0);
        format!("{error}; used now {used}, threshold {threshold} pages")
    };
    println!(
        "touched {} KiB, used {} pages",
        touched >> 10,
        used_now(probe)?
    );
    let up = check_seqs(&fds, 1, "up").map_err(figures);
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(memory, size) };
    let down = up.and_then(|()| check_seqs(&fds, 2, "down").map_err(figures));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let raced = racer
        .join()
        .map_err(|_| "racer panicked".to_string())
        .and_then(|result| result);
    println!(
        "churned {} files during the deliveries",
        churned.load(std::sync::atomic::Ordering::Relaxed)
    );
    for fd in fds {
        // SAFETY: closing fds this function opened.
        unsafe { libc::close(fd) };
    }
    down?;
    raced
}

fn race_open(args: &[String]) -> Result<(), String> {
    let seconds: u64 = args
        .first()
        .and_then(|n| n.parse().ok())
        .ok_or("race-open needs seconds")?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut opened, mut gone) = (0u64, 0u64);
    let path = CString::new(DEVICE).expect("no NUL");
    while Instant::now() < deadline {
        // SAFETY: `path` is a valid C string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            match errno() {
                libc::ENOENT | libc::ENODEV | libc::ENXIO => {
                    gone += 1;
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                err => return Err(format!("open failed with errno {err}")),
            }
        }
        opened += 1;
        let line = read_line(fd)?;
        parse_line(line.as_bytes()).map_err(|e| format!("{line:?}: {e:?}"))?;
        if opened % 2 == 0 {
            set_thresholds(fd, "used 1G hysteresis 1M")?;
        }
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(fd) };
    }
    println!("race-open: {opened} opens, {gone} while the device was gone");
    Ok(())
}

fn uid_limit(args: &[String]) -> Result<(), String> {
    let uid: u32 = args
        .first()
        .and_then(|n| n.parse().ok())
        .ok_or("uid-limit needs a uid")?;
    let hold = match args.get(1).map(String::as_str) {
        Some("--hold") => Some(
            args.get(2)
                .and_then(|n| n.parse().ok())
                .ok_or("--hold needs seconds")?,
        ),
        Some(other) => return Err(format!("uid-limit: unexpected {other:?}")),
        None => None,
    };
    // SAFETY: plain syscalls.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        if libc::setgroups(0, std::ptr::null()) < 0
            || libc::setgid(uid) < 0
            || libc::setuid(uid) < 0
        {
            return Err(os_error("dropping to the uid"));
        }
    }
    let mut fds = Vec::new();
    loop {
        let path = CString::new(DEVICE).expect("no NUL");
        // SAFETY: valid C string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            let err = errno();
            if err == libc::EMFILE || err == libc::ENFILE {
                let name = if err == libc::EMFILE {
                    "EMFILE"
                } else {
                    "ENFILE"
                };
                println!("uid {uid}: opened {} then {name}", fds.len());
                if let Some(seconds) = hold {
                    let _ = std::io::stdout().flush();
                    std::thread::sleep(Duration::from_secs(seconds));
                }
                return Ok(());
            }
            return Err(format!(
                "uid {uid}: open failed after {} with errno {err}",
                fds.len()
            ));
        }
        fds.push(fd);
        if fds.len() > 100_000 {
            return Err("no limit reached after 100000 opens".into());
        }
    }
}

/// The module's `evaluations` statistic.
fn evaluations() -> Result<u64, String> {
    let path = "/sys/class/misc/memnotify/statistics/evaluations";
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{path}: {text:?}: {e}"))
}

fn write_storm(args: &[String]) -> Result<(), String> {
    let number = |index: usize| -> Result<u32, String> {
        args.get(index)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| "write-storm needs UID SECONDS".to_string())
    };
    let (uid, seconds) = (number(0)?, number(1)?);
    if uid != 0 {
        // SAFETY: plain syscalls; dropping from root to another uid also drops every
        // capability, CAP_SYS_RESOURCE among them.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) < 0
                || libc::setgid(uid) < 0
                || libc::setuid(uid) < 0
            {
                return Err(os_error("dropping to the uid"));
            }
        }
    }
    let fd = open(libc::O_RDWR)?;
    let before = evaluations()?;
    let start = Instant::now();
    let mut writes = 0u64;
    while start.elapsed() < Duration::from_secs(seconds.into()) {
        // A threshold one page above the figure: as near as a threshold gets.
        let used = used_now(fd)?;
        set_thresholds(fd, &format!("used {}", used + 1))?;
        writes += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let evaluated = evaluations()? - before;
    println!(
        "uid {uid}: {writes} writes, {evaluated} evaluations in {elapsed:.1} s: {:.1} per second",
        evaluated as f64 / elapsed
    );
    Ok(())
}

fn open_as(args: &[String]) -> Result<(), String> {
    let number = |index: usize| -> Result<u32, String> {
        args.get(index)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| "open-as needs UID GID".to_string())
    };
    let (uid, gid) = (number(0)?, number(1)?);
    // SAFETY: plain syscalls; the group list is one valid gid.
    unsafe {
        let groups = [gid];
        if libc::setgroups(1, groups.as_ptr()) < 0 || libc::setgid(gid) < 0 || libc::setuid(uid) < 0
        {
            return Err(os_error("dropping privileges"));
        }
    }
    match open(libc::O_RDWR) {
        Ok(fd) => {
            println!("uid {uid} gid {gid}: opened: {}", read_line(fd)?);
            Ok(())
        }
        Err(message) => {
            println!("uid {uid} gid {gid}: {message}");
            Ok(())
        }
    }
}

fn meminfo() -> Result<std::collections::HashMap<String, u64>, String> {
    let text =
        std::fs::read_to_string("/proc/meminfo").map_err(|e| format!("/proc/meminfo: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let kib = rest.split_whitespace().next()?.parse().ok()?;
            Some((key.to_string(), kib))
        })
        .collect())
}

fn compare() -> Result<(), String> {
    let fd = open(libc::O_RDONLY)?;
    let before = meminfo()?;
    let line = read_line(fd)?;
    let after = meminfo()?;
    let snapshot = parse_line(line.as_bytes()).map_err(|e| format!("{line:?}: {e:?}"))?;
    // SAFETY: plain syscall.
    let page_kib = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64 / 1024;
    let kib = |figure| snapshot.figures.get(figure) * page_kib;
    let get = |map: &std::collections::HashMap<String, u64>, key: &str| {
        map.get(key).copied().unwrap_or(0)
    };
    let umm = |m: &std::collections::HashMap<String, u64>| {
        (get(m, "MemTotal") + get(m, "SwapTotal")).saturating_sub(
            get(m, "MemFree")
                + get(m, "Buffers")
                + get(m, "Cached")
                + get(m, "SwapCached")
                + get(m, "SwapFree"),
        )
    };
    let checks = [
        ("used", kib(Figure::Used), umm(&before), umm(&after)),
        (
            "total",
            kib(Figure::Total),
            get(&before, "MemTotal"),
            get(&after, "MemTotal"),
        ),
        (
            "free",
            kib(Figure::Free),
            get(&before, "MemFree"),
            get(&after, "MemFree"),
        ),
        (
            "available",
            kib(Figure::Available),
            get(&before, "MemAvailable"),
            get(&after, "MemAvailable"),
        ),
        (
            "active",
            kib(Figure::Active),
            get(&before, "Active"),
            get(&after, "Active"),
        ),
        (
            "swap_total",
            kib(Figure::SwapTotal),
            get(&before, "SwapTotal"),
            get(&after, "SwapTotal"),
        ),
        (
            "swap_free",
            kib(Figure::SwapFree),
            get(&before, "SwapFree"),
            get(&after, "SwapFree"),
        ),
    ];
    // Figures move between the three reads; a few pages of slack, as the issue allows.
    const SLACK_KIB: u64 = 64 * 4;
    let mut bad = Vec::new();
    for (name, device, low, high) in checks {
        let (low, high) = (low.min(high), low.max(high));
        let ok = device + SLACK_KIB >= low && device <= high + SLACK_KIB;
        println!(
            "{name:<10} device {device:>9} kB  meminfo {low}..{high} kB  {}",
            if ok { "ok" } else { "MISMATCH" }
        );
        if !ok {
            bad.push(name);
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "figures differ from /proc/meminfo: {}",
            bad.join(", ")
        ));
    }
    Ok(())
}

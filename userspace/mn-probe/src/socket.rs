//! `mn-probe daemon-socket PATH`: memnotifyd's socket against hostile and careless
//! clients. It must refuse other users, answer garbage with an error or a hang-up, drop
//! lines over its request limit, shed connections over its maximum, and keep answering
//! `query` promptly while a client stalls mid-line, vanishes before its answer, or
//! subscribes and never reads. `daemon-socket-per-uid PATH N`: one user cannot take more
//! than N subscriptions, so others still get in.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The longest a well-behaved query may take while the bad clients are connected.
const PROMPT: Duration = Duration::from_secs(2);

fn connect(path: &str) -> Result<UnixStream, String> {
    let stream = UnixStream::connect(path).map_err(|e| format!("connect {path}: {e}"))?;
    stream
        .set_read_timeout(Some(PROMPT))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Sends `query` on a fresh connection and returns the answer and how long it took.
fn query(path: &str) -> Result<(String, Duration), String> {
    let start = Instant::now();
    let mut stream = connect(path)?;
    stream
        .write_all(b"query\n")
        .map_err(|e| format!("send query: {e}"))?;
    let answer = read_line(&mut stream).map_err(|e| format!("query answer: {e}"))?;
    if !answer.starts_with("{\"event\":\"state\"") {
        return Err(format!("query answered {answer:?}"));
    }
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

fn prompt_query(path: &str, during: &str) -> Result<(), String> {
    let (_, took) = query(path).map_err(|e| format!("{during}: {e}"))?;
    if took > PROMPT {
        return Err(format!("{during}: query took {took:?}"));
    }
    println!("query answered in {} ms {during}", took.as_millis());
    Ok(())
}

/// Connects as another user in a child process; returns the errno (0: connected).
fn connect_as(path: &str, uid: u32) -> Result<i32, String> {
    let c_path = std::ffi::CString::new(path).map_err(|e| e.to_string())?;
    // SAFETY: the child only makes async-signal-safe calls (setgroups, setgid, setuid,
    // socket, connect, _exit) on memory prepared before the fork.
    unsafe {
        let mut address: libc::sockaddr_un = std::mem::zeroed();
        address.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = c_path.as_bytes_with_nul();
        if bytes.len() > address.sun_path.len() {
            return Err("socket path too long".into());
        }
        for (slot, &byte) in address.sun_path.iter_mut().zip(bytes) {
            *slot = byte as libc::c_char;
        }
        let pid = libc::fork();
        if pid < 0 {
            return Err(crate::os_error("fork"));
        }
        if pid == 0 {
            if libc::setgroups(0, std::ptr::null()) < 0
                || libc::setgid(uid) < 0
                || libc::setuid(uid) < 0
            {
                libc::_exit(100);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let rc = libc::connect(
                fd,
                std::ptr::addr_of!(address).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            );
            let code = if rc == 0 {
                0
            } else {
                *libc::__errno_location()
            };
            libc::_exit(code.min(99));
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        match libc::WEXITSTATUS(status) {
            100 => Err("could not drop privileges".into()),
            code => Ok(code),
        }
    }
}

pub fn daemon_socket(args: &[String]) -> Result<(), String> {
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
        libc::EACCES => check(true, "uid 1000 cannot connect: EACCES".into()),
        0 => check(false, "uid 1000 connected".into()),
        errno => check(false, format!("uid 1000: connect errno {errno}")),
    }

    prompt_query(path, "with no other client")?;

    // Garbage: an error line back, the connection stays usable.
    let mut garbage = connect(path)?;
    garbage
        .write_all(b"\x00\xff\xfe garbage \x1b[2J\n")
        .map_err(|e| e.to_string())?;
    let answer = read_line(&mut garbage).unwrap_or_default();
    check(
        answer.contains("\"error\""),
        format!("garbage gets an error line: {answer}"),
    );
    garbage.write_all(b"query\n").map_err(|e| e.to_string())?;
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
    stalled.write_all(b"que").map_err(|e| e.to_string())?;
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
    std::thread::sleep(Duration::from_millis(300));
    prompt_query(path, "after 64 connections came and went")?;

    if failures.is_empty() {
        println!("daemon-socket: all checks passed");
        Ok(())
    } else {
        Err(format!("{} socket checks failed", failures.len()))
    }
}

/// A child process running as another user that holds subscriptions to the socket.
struct UserClients {
    pid: libc::pid_t,
    /// Where the child reports how many of its connections were answered.
    report: std::fs::File,
    /// Closed by the parent to let the child go.
    release: std::fs::File,
}

impl UserClients {
    /// Forks a child that, as `uid`, opens `count` connections to `path`, sends `query`
    /// on each, counts the answers and keeps the connections until released.
    fn start(path: &str, uid: u32, count: u8) -> Result<UserClients, String> {
        use std::os::fd::FromRawFd;
        let c_path = std::ffi::CString::new(path).map_err(|e| e.to_string())?;
        let mut report = [0; 2];
        let mut release = [0; 2];
        // SAFETY: pipe() fills the two descriptors of each array.
        if unsafe { libc::pipe(report.as_mut_ptr()) } < 0
            || unsafe { libc::pipe(release.as_mut_ptr()) } < 0
        {
            return Err(crate::os_error("pipe"));
        }
        // SAFETY: the child only makes async-signal-safe calls (setgroups, setgid, setuid,
        // socket, connect, write, poll, read, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(crate::os_error("fork"));
        }
        if pid == 0 {
            // SAFETY: as above; the child never returns from this block.
            unsafe {
                // Its own copy of the release pipe's write end would keep it from ever
                // seeing EOF there.
                libc::close(release[1]);
                libc::close(report[0]);
                let mut answered: u8 = 0;
                if libc::setgroups(0, std::ptr::null()) == 0
                    && libc::setgid(uid) == 0
                    && libc::setuid(uid) == 0
                {
                    for _ in 0..count {
                        if query_raw(&c_path) {
                            answered += 1;
                        }
                    }
                } else {
                    answered = u8::MAX;
                }
                libc::write(report[1], std::ptr::addr_of!(answered).cast(), 1);
                let mut byte = 0u8;
                // Returns at EOF, when the parent closes its end.
                libc::read(release[0], std::ptr::addr_of_mut!(byte).cast(), 1);
                libc::_exit(0);
            }
        }
        // SAFETY: the parent's ends are open descriptors it alone owns from here on.
        unsafe {
            libc::close(report[1]);
            libc::close(release[0]);
            Ok(UserClients {
                pid,
                report: std::fs::File::from_raw_fd(report[0]),
                release: std::fs::File::from_raw_fd(release[1]),
            })
        }
    }

    /// How many of the child's connections were answered (`None`: it could not switch user).
    fn answered(&mut self) -> Result<Option<u8>, String> {
        let mut byte = [0u8; 1];
        self.report
            .read_exact(&mut byte)
            .map_err(|e| format!("child report: {e}"))?;
        Ok((byte[0] != u8::MAX).then_some(byte[0]))
    }

    /// Releases every child, then waits for them all: a child forked later holds copies
    /// of the earlier children's release pipes, so waiting for one at a time would hang.
    fn finish_all(children: Vec<UserClients>) {
        let mut pids = Vec::new();
        for child in children {
            drop(child.release);
            pids.push(child.pid);
        }
        for pid in pids {
            let mut status = 0;
            // SAFETY: pid is our child; waitpid only writes the status.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
    }
}

/// In a forked child: connects, sends `query` and waits up to PROMPT for the state line.
/// Connections stay open (the child holds them until it exits).
///
/// # Safety
/// Only async-signal-safe calls; `path` was prepared before the fork.
unsafe fn query_raw(path: &std::ffi::CStr) -> bool {
    let mut address: libc::sockaddr_un = std::mem::zeroed();
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.to_bytes_with_nul();
    if bytes.len() > address.sun_path.len() {
        return false;
    }
    for (slot, &byte) in address.sun_path.iter_mut().zip(bytes) {
        *slot = byte as libc::c_char;
    }
    let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
    if fd < 0
        || libc::connect(
            fd,
            std::ptr::addr_of!(address).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        ) < 0
    {
        return false;
    }
    let request = b"query\n";
    if libc::write(fd, request.as_ptr().cast(), request.len()) != request.len() as isize {
        return false;
    }
    const EXPECTED: &[u8; 16] = b"{\"event\":\"state\"";
    let mut answer = [0u8; EXPECTED.len()];
    let mut got = 0;
    while got < answer.len() {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&mut poll, 1, PROMPT.as_millis() as i32) <= 0 {
            return false;
        }
        let read = libc::read(fd, answer[got..].as_mut_ptr().cast(), answer.len() - got);
        if read <= 0 {
            return false;
        }
        got += read as usize;
    }
    answer == *EXPECTED
}

pub fn daemon_socket_per_uid(args: &[String]) -> Result<(), String> {
    let [path, per_uid] = args else {
        return Err("daemon-socket-per-uid needs the socket path and the per-user limit".into());
    };
    let per_uid: u8 = per_uid
        .parse()
        .map_err(|_| format!("bad per-user limit '{per_uid}'"))?;
    let mut greedy = UserClients::start(path, 1000, per_uid.saturating_add(2))?;
    let greedy_answered = greedy.answered()?;
    let mut other = UserClients::start(path, 1001, 1)?;
    let other_answered = other.answered()?;
    let root = prompt_query(path, "while uid 1000 holds its share");
    UserClients::finish_all(vec![greedy, other]);
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
    if greedy_answered != Some(per_uid) || other_answered != Some(1) {
        return Err("the per-user limit did not hold".into());
    }
    println!("daemon-socket-per-uid: all checks passed");
    Ok(())
}

//! `mn-probe daemon-socket PATH`: memnotifyd's socket against hostile and careless
//! clients. It must refuse other users, answer garbage with an error or a hang-up, drop
//! lines over its request limit, shed connections over its maximum, and keep answering
//! `query` promptly while a client stalls mid-line, vanishes before its answer, or
//! subscribes and never reads.

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

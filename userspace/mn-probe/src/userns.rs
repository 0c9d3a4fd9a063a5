//! `mn-probe userns-limit OWNER N`: the per-user limit against a user that owns a user
//! namespace. As OWNER, the probe unshares a user namespace, has 65,536 uids mapped into
//! it (root writes the map, as `newuidmap` maps a user's subordinate uids), and opens the
//! device as each of the uids 1..=N inside it until refused, holding every file until all
//! are done. Then OWNER itself, outside, tries once more. The module charges all of them
//! to OWNER, so together they get `max_per_uid` files, not N times as many.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::thread::UnshareFlags;

use crate::{become_user, open_device, raise_fd_limit, sys, Error, Result};

/// Where the namespace's uids and gids start outside it, as in a default `/etc/subuid`.
const SUBORDINATE_BASE: u32 = 100_000;

/// For `map_err` on std's I/O calls.
fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |error| format!("{what}: {error}").into()
}

/// Forks; the child runs `child` and exits with 0 when it returns `Ok`, else prints the
/// error and exits with 1. Returns the child's pid in the parent.
fn fork(child: impl FnOnce() -> Result<()>) -> Result<libc::pid_t> {
    // SAFETY: the probe is single-threaded when it forks, so the child may run any code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()).into());
    }
    if pid == 0 {
        let code = match child() {
            Ok(()) => 0,
            Err(error) => {
                eprintln!("mn-probe: userns-limit: {error}");
                1
            }
        };
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    Ok(pid)
}

/// Waits for `pid` and fails unless it exited with 0.
fn reap(pid: libc::pid_t, what: &str) -> Result<()> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(format!("waiting for {what} failed").into());
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!("{what} failed (wait status {status:#x})").into())
    }
}

/// Opens the device until it refuses; returns the files and the refusal's name.
fn open_until_refused() -> Result<(Vec<OwnedFd>, &'static str)> {
    let mut files = Vec::new();
    loop {
        match open_device(OFlags::RDWR) {
            Ok(fd) => files.push(fd),
            Err(Errno::MFILE) => return Ok((files, "EMFILE")),
            Err(Errno::NFILE) => return Ok((files, "ENFILE")),
            Err(errno) => return Err(sys(format!("open after {}", files.len()))(errno)),
        }
        if files.len() > 100_000 {
            return Err("no limit reached after 100000 opens".into());
        }
    }
}

/// As `uid`: opens until refused and reports "COUNT ERROR" on `link`; returns the files.
fn open_and_report(uid: u32, link: &mut UnixStream) -> Result<Vec<OwnedFd>> {
    become_user(uid, uid, &[]).map_err(sys(format!("becoming uid {uid}")))?;
    let (files, refusal) = open_until_refused()?;
    writeln!(link, "{} {refusal}", files.len()).map_err(io("reporting"))?;
    Ok(files)
}

/// Reads the "COUNT ERROR" line of `open_and_report` from `stream`.
fn read_report(stream: &mut UnixStream, who: &str) -> Result<(String, String)> {
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(io("reading a count"))?;
    let (count, refusal) = line
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("{who} reported nothing"))?;
    Ok((count.to_string(), refusal.to_string()))
}

/// In the namespace, as `uid`: opens until refused, reports, and holds the files until a
/// byte comes on `link`.
fn opener(uid: u32, mut link: UnixStream) -> Result<()> {
    let files = open_and_report(uid, &mut link)?;
    let _ = link.read(&mut [0u8; 1]);
    drop(files);
    Ok(())
}

/// As `owner` in a new user namespace: one opener per inner uid, one after the other, all
/// holding their files; reports the counts on `link`, then waits for the word to let go.
fn namespace_owner(owner: u32, uids: u32, mut link: UnixStream) -> Result<()> {
    become_user(owner, owner, &[]).map_err(sys(format!("becoming uid {owner}")))?;
    // SAFETY: a new user namespace shares nothing that Rust code relies on being unshared
    // (no file table, no filesystem information).
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER) }
        .map_err(sys("unshare(CLONE_NEWUSER)"))?;
    link.write_all(b"u").map_err(io("telling the parent"))?;
    let mut byte = [0u8; 1];
    link.read_exact(&mut byte)
        .map_err(io("waiting for the uid map"))?;

    let mut holders = Vec::new();
    let mut counts = Vec::new();
    let mut refusals = Vec::new();
    for uid in 1..=uids {
        let (mut ours, theirs) = UnixStream::pair().map_err(io("socketpair"))?;
        let pid = fork(move || opener(uid, theirs))?;
        let (count, refusal) = read_report(&mut ours, &format!("uid {uid} in the namespace"))?;
        counts.push(count);
        if !refusals.contains(&refusal) {
            refusals.push(refusal);
        }
        holders.push((pid, ours));
    }
    writeln!(
        link,
        "userns of uid {owner}: uids 1-{uids} inside opened {} files, then {}",
        counts.join(", "),
        refusals.join("/")
    )
    .map_err(io("reporting"))?;
    let _ = link.read(&mut byte);
    // A byte, not an end of file, lets each go: every opener also holds copies of the
    // links forked before and with it.
    for (pid, mut stream) in holders {
        stream.write_all(b"d").map_err(io("letting an opener go"))?;
        reap(pid, "an opener in the namespace")?;
    }
    Ok(())
}

pub fn userns_limit(args: &[String]) -> Result<()> {
    let number = |index: usize| -> Result<u32> {
        args.get(index)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| "userns-limit needs OWNER N (1-64 uids)".into())
    };
    let (owner, uids) = (number(0)?, number(1)?);
    if !(1..=64).contains(&uids) {
        return Err("userns-limit: N must be 1-64".into());
    }
    raise_fd_limit();
    let (mut ours, theirs) = UnixStream::pair().map_err(io("socketpair"))?;
    let pid = fork(move || namespace_owner(owner, uids, theirs))?;
    let mut byte = [0u8; 1];
    ours.read_exact(&mut byte)
        .map_err(io("waiting for the namespace"))?;
    // Root maps the range, as newuidmap does from /etc/subuid.
    let map = format!("0 {SUBORDINATE_BASE} 65536\n");
    for file in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{file}"), &map)
            .map_err(|e| format!("writing /proc/{pid}/{file}: {e}"))?;
    }
    ours.write_all(b"m")
        .map_err(io("releasing the namespace"))?;
    let mut report = String::new();
    BufReader::new(&mut ours)
        .read_line(&mut report)
        .map_err(io("reading the report"))?;
    if report.is_empty() {
        reap(pid, "the namespace's owner")?;
        return Err("the namespace's owner reported nothing".into());
    }
    print!("{report}");

    // While the namespace holds its files: the owner itself, outside it.
    let (mut outside, theirs) = UnixStream::pair().map_err(io("socketpair"))?;
    let outsider = fork(move || {
        let mut link = theirs;
        open_and_report(owner, &mut link).map(drop)
    })?;
    let (count, refusal) = read_report(&mut outside, "the owner outside")?;
    reap(outsider, "the owner outside")?;
    println!("uid {owner} outside: opened {count} more, then {refusal}");

    ours.write_all(b"d").map_err(io("letting go"))?;
    reap(pid, "the namespace's owner")
}

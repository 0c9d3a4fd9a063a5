//! `mn-probe`: exercises `/dev/memnotify` from inside a test guest.
//!
//! Each subcommand prints what it saw and exits 0 only when the device behaved as the
//! protocol says, so the QEMU scenarios can assert on both the output and the status.

mod fuzz;
mod socket;
mod userns;

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use memnotify::sysfs::STATISTICS_DIR;
use memnotify::{monotonic_ns, DEVICE_PATH};
use memnotify_proto::{parse_line, Figure};
use rustix::event::epoll;
use rustix::event::{PollFlags, Timespec};
use rustix::fs::{Mode, OFlags, SeekFrom};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use rustix::process::{Gid, Resource, Rlimit, Uid};

const USAGE: &str = "\
usage: mn-probe <command> [args]
  wait THRESHOLDS [--count N] [--timeout S]   poll() for N events, print each line
  epoll THRESHOLDS [--timeout S]              one event through epoll
  sigio THRESHOLDS [--timeout S]              one event through SIGIO (O_ASYNC)
  wait-default [--timeout S]                  O_RDONLY, no thresholds: one default-level event
  mce USED [--count N] [--timeout S]          as Sailfish mce's memnotify backend: O_RDWR, write
                                              `used USED active 0 total 0`, then per POLLIN one
                                              255-byte read, never a seek; N lines (2)
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
  userns-limit OWNER N                        as OWNER, in a user namespace with 65,536 uids
                                              mapped, open as each of the uids 1..N inside until
                                              refused, then once more as OWNER outside; print
                                              the counts (all are charged to OWNER)
  open-as UID GID                             as UID with only group GID, open once; print the result
  compare                                     figures against /proc/meminfo
  fuzz [--seconds N] [--seed S]               malformed, extreme and concurrent use; checks every
                                              result, then that the device still works
  race-open SECONDS [--ready FILE]            open, write, read, close in a loop for SECONDS,
                                              tolerating a module being removed; print counts
  daemon-socket PATH                          memnotifyd's socket against other users, garbage,
                                              stalled, vanished and too many clients
  daemon-socket-per-uid PATH N                with the socket open to all: uid 1000 gets N
                                              subscriptions, uid 1001 and root still get in

The waiting commands (wait, epoll, sigio, wait-default, mce, bad-writes, keep-event) take
--ready FILE: they create FILE once armed (race-open: once its first open succeeded), for a
script to wait on (the scenarios' `wait_for`).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("wait") => wait(&args[1..]),
        Some("epoll") => epoll(&args[1..]),
        Some("sigio") => sigio(&args[1..]),
        Some("wait-default") => wait_default(&args[1..]),
        Some("mce") => mce(&args[1..]),
        Some("bad-writes") => bad_writes(&args[1..]),
        Some("read-semantics") => read_semantics(),
        Some("keep-event") => keep_event(&args[1..]),
        Some("write-storm") => write_storm(&args[1..]),
        Some("open-many") => open_many(&args[1..]),
        Some("cross-many") => cross_many(&args[1..]),
        Some("uid-limit") => uid_limit(&args[1..]),
        Some("userns-limit") => userns::userns_limit(&args[1..]),
        Some("open-as") => open_as(&args[1..]),
        Some("compare") => compare(),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("daemon-socket") => socket::daemon_socket(&args[1..]),
        Some("daemon-socket-per-uid") => socket::daemon_socket_per_uid(&args[1..]),
        Some("race-open") => race_open(&args[1..]),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            println!("mn-probe: FAIL: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum Error {
    /// A system call failed: what was being done, and the kernel's answer.
    Sys { what: String, errno: Errno },
    /// The device (or the daemon) did not behave as the protocol says, or bad arguments.
    Check(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // `Errno` shows as `std::io::Error` does: "Permission denied (os error 13)".
            Error::Sys { what, errno } => write!(f, "{what}: {errno}"),
            Error::Check(message) => f.write_str(message),
        }
    }
}

impl Error {
    /// The same error with `during` in front of what failed.
    pub fn during(self, during: &str) -> Error {
        match self {
            Error::Sys { what, errno } => Error::Sys {
                what: format!("{during}: {what}"),
                errno,
            },
            Error::Check(message) => Error::Check(format!("{during}: {message}")),
        }
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::Check(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::Check(message.to_string())
    }
}

/// For `map_err`: a failed system call with what was being done.
pub fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> Error {
    move |errno| Error::Sys {
        what: what.into(),
        errno,
    }
}

/// An anonymous private read-write mapping, unmapped when dropped.
pub struct Mapping {
    base: *mut u8,
    len: usize,
}

impl Mapping {
    pub fn new(len: usize) -> Result<Mapping> {
        // SAFETY: a fresh anonymous mapping aliases nothing.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(sys(format!("mmap {} KiB", len >> 10)))?;
        Ok(Mapping {
            base: base.cast(),
            len,
        })
    }

    /// Where the mapping starts.
    pub fn address(&self) -> usize {
        self.base as usize
    }

    /// Writes a byte every `step` bytes of `range`, which makes those pages resident.
    pub fn touch(&self, range: std::ops::Range<usize>, step: usize) {
        for offset in (range.start..range.end.min(self.len)).step_by(step) {
            // SAFETY: `offset` is inside the mapping, which is readable and writable.
            unsafe { self.base.add(offset).write_volatile(1) };
        }
    }

    /// Writes every byte: all of the mapping becomes resident.
    pub fn fill(&self) {
        // SAFETY: the whole mapping is writable and only this value refers to it.
        unsafe { self.base.write_bytes(1, self.len) };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers to it any more.
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
    }
}

/// Opens the device with `flags` (and `O_CLOEXEC`); the bare errno, for callers that
/// expect some.
fn open_device(flags: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::open(DEVICE_PATH, flags | OFlags::CLOEXEC, Mode::empty())
}

fn open(flags: OFlags) -> Result<OwnedFd> {
    open_device(flags).map_err(sys(format!("open {DEVICE_PATH}")))
}

fn set_thresholds(fd: impl AsFd, thresholds: &str) -> Result<()> {
    let what = || format!("write {thresholds:?}");
    match rustix::io::write(fd, thresholds.as_bytes()) {
        Ok(n) if n == thresholds.len() => Ok(()),
        Ok(n) => Err(format!("{}: {n} of {} bytes written", what(), thresholds.len()).into()),
        Err(errno) => Err(sys(what())(errno)),
    }
}

fn read_into(fd: impl AsFd, buf: &mut [u8]) -> Result<usize> {
    rustix::io::read(fd, buf).map_err(sys("read"))
}

fn pread_into(fd: impl AsFd, buf: &mut [u8]) -> Result<usize> {
    rustix::io::pread(fd, buf, 0).map_err(sys("pread"))
}

fn read_line(fd: impl AsFd) -> Result<String> {
    let mut buf = [0u8; 256];
    let n = read_into(fd, &mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim_end().to_string())
}

/// Polls `fd` for POLLIN; false on timeout.
fn poll_in(fd: impl AsFd, timeout: Duration) -> Result<bool> {
    memnotify::poll_ready(fd.as_fd(), PollFlags::IN, Some(timeout)).map_err(sys("poll"))
}

/// `read` (`offset` None) or `pread` of `count` bytes into `address`, which may be invalid
/// on purpose: rustix only reads into buffers Rust can form, and a slice at NULL or at an
/// unmapped address is undefined behaviour even to form, so this goes through libc.
fn read_to_address(
    fd: BorrowedFd<'_>,
    address: usize,
    count: usize,
    offset: Option<i64>,
) -> Result<usize, Errno> {
    let buf = address as *mut libc::c_void;
    let n = match offset {
        // SAFETY: the kernel checks the address and fails with EFAULT; Rust never
        // dereferences it.
        None => unsafe { libc::read(fd.as_raw_fd(), buf, count) },
        // SAFETY: as above; `pread64`, so the offset is a full `loff_t` on 32-bit ARM too.
        Some(offset) => unsafe { libc::pread64(fd.as_raw_fd(), buf, count, offset) },
    };
    usize::try_from(n).map_err(|_| last_errno())
}

/// `write` of `count` bytes from `address`, which may be invalid on purpose (see
/// [`read_to_address`]).
fn write_from_address(fd: BorrowedFd<'_>, address: usize, count: usize) -> Result<usize, Errno> {
    // SAFETY: the kernel checks the address and fails with EFAULT; Rust never reads it.
    let n = unsafe { libc::write(fd.as_raw_fd(), address as *const libc::c_void, count) };
    usize::try_from(n).map_err(|_| last_errno())
}

/// The errno of the libc call that just failed.
fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

/// Takes on `uid`, `gid` and the supplementary `groups`. rustix makes the raw system
/// calls, which change the calling thread's credentials only: the commands that drop
/// privileges for good do so while the process has one thread, and the socket checks
/// run their other users on threads of their own.
pub fn become_user(uid: u32, gid: u32, groups: &[u32]) -> Result<(), Errno> {
    let groups: Vec<Gid> = groups.iter().map(|&gid| Gid::from_raw(gid)).collect();
    rustix::thread::set_thread_groups(&groups)?;
    rustix::thread::set_thread_gid(Gid::from_raw(gid))?;
    rustix::thread::set_thread_uid(Uid::from_raw(uid))
}

/// A waiting command's options: its thresholds, `--timeout S`, `--count N` and
/// `--ready FILE`.
struct Options {
    /// The words that are not options, joined: the thresholds.
    thresholds: String,
    timeout: Duration,
    count: usize,
    /// Created once the probe is armed, so a scenario waits for that, not for a fixed time.
    ready: Option<std::path::PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options {
            thresholds: String::new(),
            timeout: Duration::from_secs(30),
            count: 1,
            ready: None,
        };
        let mut words = Vec::new();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            match arg.as_str() {
                "--timeout" => {
                    let secs: u64 = iter
                        .next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--timeout needs seconds")?;
                    options.timeout = Duration::from_secs(secs);
                }
                "--count" => {
                    options.count = iter
                        .next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--count needs a number")?
                }
                "--ready" => {
                    options.ready = Some(iter.next().ok_or("--ready needs a file")?.into())
                }
                word => words.push(word.to_string()),
            }
        }
        options.thresholds = words.join(" ");
        Ok(options)
    }

    /// Says the probe is armed: `line` on stdout, then the `--ready` file.
    fn armed(&self, line: &str) -> Result<()> {
        println!("{line}");
        let _ = std::io::stdout().flush();
        self.ready()
    }

    /// Creates the `--ready` file, if one was asked for.
    fn ready(&self) -> Result<()> {
        if let Some(ready) = &self.ready {
            std::fs::write(ready, b"")
                .map_err(|error| format!("--ready {}: {error}", ready.display()))?;
        }
        Ok(())
    }
}

fn print_event(how: &str, line: &str) {
    let latency = parse_line(line.as_bytes())
        .map(|snapshot| monotonic_ns().saturating_sub(snapshot.time_ns) / 1000)
        .unwrap_or(0);
    println!("{how} event: {line} (latency {latency} us)");
    let _ = std::io::stdout().flush();
}

/// Polls `fd` until it is readable or `deadline` passes (`timeout` is how long that was,
/// for the message).
fn await_event(fd: impl AsFd, deadline: Instant, timeout: Duration) -> Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if !poll_in(fd, left)? {
        return Err(format!("no event within {}s", timeout.as_secs()).into());
    }
    Ok(())
}

fn wait(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let (timeout, count) = (options.timeout, options.count);
    let fd = open(OFlags::RDWR)?;
    read_line(&fd)?;
    set_thresholds(&fd, &options.thresholds)?;
    options.armed(&format!("armed: {}", options.thresholds))?;
    let deadline = Instant::now() + timeout;
    let mut seq = 0;
    for _ in 0..count {
        await_event(&fd, deadline, timeout)?;
        seq = read_event(&fd, seq)?;
    }
    // Readable again at once is right only for a newer event (the figures crossed back
    // meanwhile, as they do next to the OOM killer): the consumed one must not come again.
    while poll_in(&fd, Duration::ZERO)? {
        seq = read_event(&fd, seq)?;
    }
    Ok(())
}

/// Reads and prints the event that made `fd` readable, and returns its `seq`, which must be
/// above `last`, the one read before: a read consumes its event.
fn read_event(fd: impl AsFd, last: u64) -> Result<u64> {
    let line = read_line(fd)?;
    print_event("poll", &line);
    let seq = parse_line(line.as_bytes())
        .map_err(|error| format!("unreadable line {line:?}: {error:?}"))?
        .seq;
    if seq <= last {
        return Err(
            format!("readable again with seq {seq}: the read did not consume the event").into(),
        );
    }
    Ok(seq)
}

/// A client the way mce's memnotify backend is one: the thresholds in mce's format (all
/// three figures, 0 for the unwatched ones), and on each POLLIN exactly one read of mce's
/// 255-byte buffer at whatever offset the file is at: it never seeks, so the module must
/// hand it a line after every event although the file position has moved on.
fn mce(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let timeout = options.timeout;
    let count = if args.iter().any(|arg| arg == "--count") {
        options.count
    } else {
        2
    };
    let used: u64 = options
        .thresholds
        .parse()
        .map_err(|_| "mce needs USED in pages")?;
    let fd = open(OFlags::RDWR)?;
    let thresholds = format!("used {used} active 0 total 0");
    set_thresholds(&fd, &thresholds)?;
    options.armed(&format!("mce armed: {thresholds}"))?;
    let deadline = Instant::now() + timeout;
    for _ in 0..count {
        await_event(&fd, deadline, timeout)?;
        let mut buf = [0u8; 255];
        let n = read_into(&fd, &mut buf)?;
        let line = String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
        let figures = parse_line(line.as_bytes()).map_err(|_| format!("not a line: {line:?}"))?;
        let side = if figures.figures.get(Figure::Used) >= used {
            "above"
        } else {
            "below"
        };
        println!("mce line ({n} bytes, used {side} {used}): {line}");
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

fn epoll(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let (thresholds, timeout) = (&options.thresholds, options.timeout);
    let fd = open(OFlags::RDWR)?;
    set_thresholds(&fd, thresholds)?;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(sys("epoll_create1"))?;
    epoll::add(
        &ep,
        &fd,
        epoll::EventData::new_u64(0),
        epoll::EventFlags::IN,
    )
    .map_err(sys("epoll_ctl"))?;
    options.armed(&format!("armed: {thresholds}"))?;
    let mut ready = Vec::with_capacity(1);
    let limit = Timespec::try_from(timeout).map_err(|_| "--timeout out of range")?;
    let n = epoll::wait(
        &ep,
        rustix::buffer::spare_capacity(&mut ready),
        Some(&limit),
    )
    .map_err(sys("epoll_wait"))?;
    if n == 0 {
        return Err(format!("no epoll event within {}s", timeout.as_secs()).into());
    }
    print_event("epoll", &read_line(&fd)?);
    Ok(())
}

fn sigio(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let (thresholds, timeout) = (&options.thresholds, options.timeout);
    let fd = open(OFlags::RDWR)?;
    set_thresholds(&fd, thresholds)?;
    // rustix has neither signal masks nor F_SETOWN: those stay libc calls.
    // SAFETY: a zeroed sigset_t is valid; sigemptyset and sigaddset only write to it.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGIO);
        set
    };
    // SAFETY: blocks SIGIO, so it stays pending for sigtimedwait; `set` is valid.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    set_owner(fd.as_fd())?;
    let flags = rustix::fs::fcntl_getfl(&fd).map_err(sys("F_GETFL"))?;
    rustix::fs::fcntl_setfl(&fd, flags | OFlags::ASYNC).map_err(sys("F_SETFL O_ASYNC"))?;
    options.armed(&format!("armed: {thresholds}"))?;
    let wait = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: 0,
    };
    // SAFETY: a zeroed siginfo_t is valid; sigtimedwait writes it and reads `set`, `wait`.
    let sig = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::sigtimedwait(&set, &mut info, &wait)
    };
    if sig != libc::SIGIO {
        return Err(format!("no SIGIO within {}s", timeout.as_secs()).into());
    }
    print_event("sigio", &read_line(&fd)?);
    Ok(())
}

/// `F_SETOWN` to this process, which rustix does not offer: SIGIO for `fd` comes here.
pub fn set_owner(fd: BorrowedFd<'_>) -> Result<()> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    // SAFETY: fcntl on a descriptor we hold; F_SETOWN takes an integer.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETOWN, pid) } < 0 {
        return Err(sys("F_SETOWN")(last_errno()));
    }
    Ok(())
}

fn wait_default(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let timeout = options.timeout;
    let fd = open(OFlags::RDONLY)?;
    options.armed(&format!(
        "waiting for a default-level event: {}",
        read_line(&fd)?
    ))?;
    if !poll_in(&fd, timeout)? {
        return Err(format!("no default-level event within {}s", timeout.as_secs()).into());
    }
    print_event("default", &read_line(&fd)?);
    Ok(())
}

fn bad_writes(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let (thresholds, timeout) = (&options.thresholds, options.timeout);
    let fd = open(OFlags::RDWR)?;
    set_thresholds(&fd, thresholds)?;
    let long = vec![b'1'; 257];
    let huge = {
        let mut huge = b"used ".to_vec();
        huge.resize(64 * 1024, b'9');
        huge
    };
    let mut random = vec![0u8; 200];
    let mut seed = monotonic_ns() | 1;
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
        match rustix::io::write(&fd, bytes) {
            Err(Errno::INVAL) => println!("rejected {name}: EINVAL"),
            Err(errno) => failures.push(format!("{name}: {errno}")),
            Ok(n) => failures.push(format!("{name}: wrote {n} bytes")),
        }
    }
    if !failures.is_empty() {
        return Err(format!("writes not rejected with EINVAL: {}", failures.join("; ")).into());
    }
    options.armed(&format!(
        "all bad writes rejected; waiting for the event of {thresholds:?}"
    ))?;
    if !poll_in(&fd, timeout)? {
        return Err(format!(
            "the original thresholds did not fire within {}s",
            timeout.as_secs()
        )
        .into());
    }
    print_event("poll", &read_line(&fd)?);
    Ok(())
}

fn read_semantics() -> Result<()> {
    let fd = open(OFlags::RDWR)?;
    let first = read_line(&fd)?;
    parse_line(first.as_bytes()).map_err(|e| format!("first read {first:?}: {e:?}"))?;
    println!("first read: {first}");
    let mut buf = [0u8; 256];
    let n = read_into(&fd, &mut buf)?;
    if n != 0 {
        return Err(format!("second read returned {n} bytes, want EOF").into());
    }
    println!("second read: EOF");
    let n = pread_into(&fd, &mut buf)?;
    parse_line(&buf[..n]).map_err(|e| format!("pread at 0: {e:?}"))?;
    println!("pread at 0: {n} bytes");
    let position = rustix::fs::seek(&fd, SeekFrom::Start(0)).map_err(sys("lseek"))?;
    if position != 0 {
        return Err(format!("lseek to 0 returned {position}").into());
    }
    let n = read_into(&fd, &mut buf)?;
    parse_line(&buf[..n]).map_err(|e| format!("read after lseek 0: {e:?}"))?;
    println!("read after lseek to 0: {n} bytes");
    let n = read_into(&fd, &mut buf)?;
    if n != 0 {
        return Err(format!("read after that returned {n} bytes, want EOF").into());
    }
    set_thresholds(&fd, "used 1G")?;
    let n = read_into(&fd, &mut buf)?;
    parse_line(&buf[..n]).map_err(|e| format!("read after write: {e:?}"))?;
    println!("read after a write: {n} bytes");
    let mut short = [0u8; 10];
    let n = pread_into(&fd, &mut short)?;
    if n != 10 || &short[..5] != b"used " {
        return Err(format!("short read returned {n} bytes {:?}", &short[..n]).into());
    }
    println!("10-byte read: {:?}", String::from_utf8_lossy(&short));
    if poll_in(&fd, Duration::ZERO)? {
        return Err("readable without an event".into());
    }
    println!("not readable without an event: ok");
    Ok(())
}

fn keep_event(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let (thresholds, timeout) = (&options.thresholds, options.timeout);
    let fd = open(OFlags::RDWR)?;
    set_thresholds(&fd, thresholds)?;
    // The write makes one read return the figures; take it, so only the event is left.
    read_line(&fd)?;
    options.armed(&format!("armed {thresholds:?}; waiting for its event"))?;
    if !poll_in(&fd, timeout)? {
        return Err(format!("no event within {}s", timeout.as_secs()).into());
    }
    let mut empty = [0u8; 0];
    let n = read_into(&fd, &mut empty)?;
    if n != 0 {
        return Err(format!("0-byte read returned {n}").into());
    }
    if !poll_in(&fd, Duration::ZERO)? {
        return Err("a 0-byte read consumed the event".into());
    }
    println!("0-byte read: 0, event still pending");
    // An address no process maps: the kernel's copy to user space fails.
    match read_to_address(fd.as_fd(), 8, 255, None) {
        Err(Errno::FAULT) => {}
        other => return Err(format!("read into a bad address returned {other:?}").into()),
    }
    if !poll_in(&fd, Duration::ZERO)? {
        return Err("a read that failed with EFAULT consumed the event".into());
    }
    println!("read into a bad address: EFAULT, event still pending");
    let line = read_line(&fd)?;
    let parsed = parse_line(line.as_bytes()).map_err(|e| format!("event line {line:?}: {e:?}"))?;
    if parsed.seq == 0 {
        return Err(format!("event line without a sequence number: {line:?}").into());
    }
    if poll_in(&fd, Duration::ZERO)? {
        return Err("still readable after the event's line was read".into());
    }
    print_event("kept", &line);
    println!("consumed by the read that returned it");
    Ok(())
}

fn open_many(args: &[String]) -> Result<()> {
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
    raise_fd_limit();
    let mut fds = Vec::with_capacity(count);
    for _ in 0..count {
        let fd = open(OFlags::RDWR)?;
        if !thresholds.is_empty() {
            set_thresholds(&fd, &thresholds)?;
        }
        fds.push(fd);
    }
    let clients = std::fs::read_to_string(format!("{STATISTICS_DIR}/clients")).unwrap_or_default();
    println!("opened {count}; clients now {}", clients.trim());
    let _ = std::io::stdout().flush();
    std::thread::sleep(hold);
    drop(fds);
    println!("closed {count}");
    Ok(())
}

/// Raises the fd limit as far as the hard limit allows.
fn raise_fd_limit() {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let _ = rustix::process::setrlimit(Resource::Nofile, raised);
}

/// A figure of a fresh sample.
fn figure_now(fd: impl AsFd, figure: Figure) -> Result<u64> {
    let mut buf = [0u8; 256];
    let n = pread_into(fd, &mut buf)?;
    parse_line(&buf[..n])
        .map(|snapshot| snapshot.figures.get(figure))
        .map_err(|error| format!("bad line: {error:?}").into())
}

/// The `used` figure of a fresh sample.
fn used_now(fd: impl AsFd) -> Result<u64> {
    figure_now(fd, Figure::Used)
}

/// The `seq` of the line a read returns now.
fn seq_now(fd: impl AsFd) -> Result<u64> {
    let mut buf = [0u8; 256];
    let n = read_into(fd, &mut buf)?;
    parse_line(&buf[..n])
        .map(|snapshot| snapshot.seq)
        .map_err(|error| format!("bad line: {error:?}").into())
}

/// Waits until every file in `fds` is readable, or `stalled` passes without one more
/// becoming so (a slow delivery, as on a debug kernel under emulation, is not a lost
/// event); returns how many are.
fn readable(fds: &[OwnedFd], stalled: Duration) -> Result<usize> {
    let mut progress = (0, Instant::now());
    loop {
        let mut ready = 0;
        for fd in fds {
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

/// The module's statistics, `name value` each, for a failure report.
fn statistics() -> String {
    match memnotify::sysfs::read_statistics(std::path::Path::new(STATISTICS_DIR)) {
        Ok(statistics) => statistics
            .iter()
            .map(|(name, value)| format!("{name} {value}"))
            .collect::<Vec<_>>()
            .join(", "),
        Err(error) => error.to_string(),
    }
}

/// Checks that every file in `fds` has an event and that its `seq` is `expected`.
fn check_seqs(fds: &[OwnedFd], expected: u64, what: &str) -> Result<()> {
    let ready = readable(fds, Duration::from_secs(20))?;
    if ready != fds.len() {
        return Err(format!(
            "{what}: only {ready} of {} files readable (statistics: {})",
            fds.len(),
            statistics()
        )
        .into());
    }
    for (index, fd) in fds.iter().enumerate() {
        let seq = seq_now(fd)?;
        if seq != expected {
            return Err(format!("{what}: file {index} has seq {seq}, not {expected}").into());
        }
        if poll_in(fd, Duration::ZERO)? {
            return Err(format!("{what}: file {index} still readable after its read").into());
        }
    }
    println!("{what}: {} files, each seq {expected}", fds.len());
    Ok(())
}

fn cross_many(args: &[String]) -> Result<()> {
    let count: usize = args
        .first()
        .and_then(|n| n.parse().ok())
        .ok_or("cross-many needs a count")?;
    raise_fd_limit();
    let probe = open(OFlags::RDWR)?;
    let page = 4096usize.max(rustix::param::page_size());
    // Open every file before `used` is measured: on a debug kernel (slab red zones,
    // kmemleak's records) 4000 opens alone move it by megabytes, and files armed after
    // the figure passed the threshold would start above it.
    let mut fds = Vec::with_capacity(count);
    for _ in 0..count {
        fds.push(open(OFlags::RDWR)?);
    }
    // Far enough above the current figure not to cross by drift: 8 MiB, or an eighth of
    // RAM. On a debug kernel under emulation `used` moves by megabytes on its own
    // (KASAN's quarantine alone may hold a thirty-second of RAM in freed objects), and
    // after the memory is freed again it must stay below the threshold until every
    // file has been read.
    let total = figure_now(&probe, Figure::Total)? as usize;
    let margin = ((8usize << 20) / page).max(total / 8);
    let threshold = used_now(&probe)? + margin as u64;
    // Without hysteresis, `used` jittering by a page at the moment of the crossing (the
    // racer's closes free memory) would be a fall and a rise more, for every file.
    let hysteresis = margin / 4;
    println!("threshold {threshold} pages, {margin} above used, hysteresis {hysteresis}");
    for (index, fd) in fds.iter().enumerate() {
        // Every fourth file arms two more figures far away: it has extra trigger nodes.
        let thresholds = if index % 4 == 0 {
            format!("used {threshold} hysteresis {hysteresis} active 0xfffffff free 0xffffffe")
        } else {
            format!("used {threshold} hysteresis {hysteresis}")
        };
        set_thresholds(fd, &thresholds)?;
        read_line(fd)?;
    }

    println!("armed, used {} pages", used_now(&probe)?);
    // Files that another thread closes, reopens and re-arms at the same threshold while
    // the deliveries run: the module must neither crash nor disturb the others.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churned = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let racer = {
        let (stop, churned) = (stop.clone(), churned.clone());
        std::thread::spawn(move || -> Result<()> {
            let mut spare = std::collections::VecDeque::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let fd = open(OFlags::RDWR)?;
                set_thresholds(&fd, &format!("used {threshold}"))?;
                spare.push_back(fd);
                if spare.len() > 64 {
                    if let Some(old) = spare.pop_front() {
                        set_thresholds(&old, &format!("used {} hysteresis 16", threshold + 1))?;
                    }
                }
                churned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
    };

    // Raise `used` past the threshold, then free the memory again.
    let size = 4 * margin * page;
    let memory = Mapping::new(size)?;
    let mut touched = 0;
    while touched < size && used_now(&probe)? < threshold + (margin / 2) as u64 {
        memory.touch(touched..touched + (1 << 20), page);
        touched = (touched + (1 << 20)).min(size);
        std::thread::sleep(Duration::from_millis(2));
    }
    let figures = |error: Error| -> Error {
        let used = used_now(&probe).unwrap_or(0);
        format!("{error}; used now {used}, threshold {threshold} pages").into()
    };
    println!(
        "touched {} KiB, used {} pages",
        touched >> 10,
        used_now(&probe)?
    );
    let up = check_seqs(&fds, 1, "up").map_err(figures);
    drop(memory);
    let down = up.and_then(|()| check_seqs(&fds, 2, "down").map_err(figures));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let raced = racer
        .join()
        .map_err(|_| Error::from("racer panicked"))
        .and_then(|result| result);
    println!(
        "churned {} files during the deliveries",
        churned.load(std::sync::atomic::Ordering::Relaxed)
    );
    drop(fds);
    down?;
    raced
}

/// Opens and closes files as fast as it can while `rmmod`/`insmod` run elsewhere: an open
/// either works fully (a line to read, thresholds accepted) or fails because the device
/// is gone (ENOENT, ENODEV, ENXIO); anything else is a failure.
fn race_open(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let seconds: u64 = options
        .thresholds
        .parse()
        .map_err(|_| "race-open needs seconds")?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut opened, mut gone) = (0u64, 0u64);
    while Instant::now() < deadline {
        let fd = match open_device(OFlags::RDWR) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NODEV | Errno::NXIO) => {
                gone += 1;
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(errno) => return Err(sys("open failed")(errno)),
        };
        opened += 1;
        if opened == 1 {
            // The file only: a line would land among the counts scenarios add up.
            options.ready()?;
        }
        let line = read_line(&fd)?;
        parse_line(line.as_bytes()).map_err(|e| format!("{line:?}: {e:?}"))?;
        if opened % 2 == 0 {
            set_thresholds(&fd, "used 1G hysteresis 1M")?;
        }
    }
    println!("race-open: {opened} opens, {gone} while the device was gone");
    Ok(())
}

fn uid_limit(args: &[String]) -> Result<()> {
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
        Some(other) => return Err(format!("uid-limit: unexpected {other:?}").into()),
        None => None,
    };
    raise_fd_limit();
    become_user(uid, uid, &[]).map_err(sys("dropping to the uid"))?;
    let mut fds = Vec::new();
    loop {
        match open_device(OFlags::RDWR) {
            Ok(fd) => fds.push(fd),
            Err(errno @ (Errno::MFILE | Errno::NFILE)) => {
                let name = if errno == Errno::MFILE {
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
            Err(errno) => {
                return Err(sys(format!("uid {uid}: open failed after {}", fds.len()))(
                    errno,
                ))
            }
        }
        if fds.len() > 100_000 {
            return Err("no limit reached after 100000 opens".into());
        }
    }
}

/// The module's `evaluations` statistic.
fn evaluations() -> Result<u64> {
    let path = format!("{STATISTICS_DIR}/evaluations");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{path}: {text:?}: {e}").into())
}

fn write_storm(args: &[String]) -> Result<()> {
    let number = |index: usize| -> Result<u32> {
        args.get(index)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| "write-storm needs UID SECONDS".into())
    };
    let (uid, seconds) = (number(0)?, number(1)?);
    if uid != 0 {
        // Dropping from root to another uid also drops every capability,
        // CAP_SYS_RESOURCE among them.
        become_user(uid, uid, &[]).map_err(sys("dropping to the uid"))?;
    }
    let fd = open(OFlags::RDWR)?;
    let before = evaluations()?;
    let start = Instant::now();
    let mut writes = 0u64;
    while start.elapsed() < Duration::from_secs(seconds.into()) {
        // A threshold one page above the figure: as near as a threshold gets.
        let used = used_now(&fd)?;
        set_thresholds(&fd, &format!("used {}", used + 1))?;
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

fn open_as(args: &[String]) -> Result<()> {
    let number = |index: usize| -> Result<u32> {
        args.get(index)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| "open-as needs UID GID".into())
    };
    let (uid, gid) = (number(0)?, number(1)?);
    become_user(uid, gid, &[gid]).map_err(sys("dropping privileges"))?;
    match open(OFlags::RDWR) {
        Ok(fd) => println!("uid {uid} gid {gid}: opened: {}", read_line(&fd)?),
        Err(error) => println!("uid {uid} gid {gid}: {error}"),
    }
    Ok(())
}

fn meminfo() -> Result<std::collections::HashMap<String, u64>> {
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

fn compare() -> Result<()> {
    let fd = open(OFlags::RDONLY)?;
    let before = meminfo()?;
    let line = read_line(&fd)?;
    let after = meminfo()?;
    let snapshot = parse_line(line.as_bytes()).map_err(|e| format!("{line:?}: {e:?}"))?;
    let page_kib = (1u64 << memnotify::page_shift()) / 1024;
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
        return Err(format!("figures differ from /proc/meminfo: {}", bad.join(", ")).into());
    }
    Ok(())
}

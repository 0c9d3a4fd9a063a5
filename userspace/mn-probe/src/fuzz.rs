//! `mn-probe fuzz`: throws malformed, extreme and concurrent use at `/dev/memnotify`.
//!
//! Every write's result is checked against the protocol crate's own parser (the module
//! compiles the same code, so a write is accepted exactly when `parse_thresholds`
//! accepts it); every read must return a prefix of a valid line, every `pread` at 0 with
//! room a whole valid line. Then several threads share one file (writers moving
//! thresholds around the current `used`, readers, pollers, an epoll waiter, SIGIO being
//! switched on and off, a thread allocating memory so thresholds really cross), while
//! others open and close files and close them under a poller. Afterwards the device must
//! still answer: a fresh file reads a valid line and a threshold still fires.
//!
//! The run is reproducible up to thread scheduling: `--seed` fixes every random choice.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memnotify_proto::{parse_line, parse_thresholds, Figure, Units, LINE_MAX, WRITE_MAX};
use rustix::event::{epoll, PollFd, PollFlags, Timespec};
use rustix::fs::{OFlags, SeekFrom};
use rustix::io::Errno;
use rustix::mm::MprotectFlags;

use crate::{open, open_device, poll_in, pread_into, read_into, Mapping, Result};

/// A small, seedable generator (xorshift64*): no dependency, same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that nearby seeds give unrelated sequences.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Counters printed at the end (and shared by the threads).
#[derive(Default)]
struct Counts {
    writes: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    faults: AtomicU64,
    reads: AtomicU64,
    preads: AtomicU64,
    polls: AtomicU64,
    events: AtomicU64,
    sigio: AtomicU64,
    fasync_toggles: AtomicU64,
    opens: AtomicU64,
    closes_under_poll: AtomicU64,
    hog_cycles: AtomicU64,
}

impl Counts {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the whole run shares: the units for the oracle, the counters, the failures.
struct Context {
    units: Units,
    counts: Counts,
    failures: std::sync::Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Context {
    fn fail(&self, message: String) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() < 20 {
            println!("mn-probe fuzz: MISMATCH: {message}");
            failures.push(message);
        }
    }

    /// Writes `bytes` and checks the result against the parser.
    fn write_checked(&self, fd: BorrowedFd<'_>, bytes: &[u8], what: &str) {
        let past_end = ends_past_loff_max(fd, bytes.len());
        let result = rustix::io::write(fd, bytes);
        Counts::add(&self.counts.writes);
        if past_end {
            // The VFS refuses it before the module sees it.
            if result != Err(Errno::INVAL) {
                self.fail(format!(
                    "{what}: write past the largest offset returned {result:?}"
                ));
            }
            return;
        }
        let valid = bytes.len() <= WRITE_MAX && parse_thresholds(bytes, self.units).is_ok();
        let verdict = if valid { "valid" } else { "invalid" };
        match result {
            Ok(n) => {
                Counts::add(&self.counts.accepted);
                if !valid || n != bytes.len() {
                    self.fail(format!(
                        "{what}: write of {} bytes {:?} returned {n}, the parser says {verdict}",
                        bytes.len(),
                        shorten(bytes),
                    ));
                }
            }
            Err(errno) => {
                Counts::add(&self.counts.rejected);
                // ENOMEM is allowed: the module reserves tree nodes and a guest may be short.
                if valid && errno != Errno::NOMEM || !valid && errno != Errno::INVAL {
                    self.fail(format!(
                        "{what}: write of {} bytes {:?} failed with {errno}, the parser says {verdict}",
                        bytes.len(),
                        shorten(bytes),
                    ));
                }
            }
        }
    }

    /// Reads with a buffer of `size` (at `offset` with pread) and checks what came back.
    /// The offset is a full 64-bit `loff_t` on every target (rustix passes its bits to
    /// `pread64`): on 32-bit ARM `off_t` is 32 bits, which would hide the kernel's
    /// large-offset edges. A negative offset goes as its two's complement.
    fn read_checked(&self, fd: BorrowedFd<'_>, size: usize, offset: Option<i64>, what: &str) {
        let mut buf = vec![0u8; size];
        let past_end = offset.is_none() && ends_past_loff_max(fd, size);
        let result = match offset {
            None => rustix::io::read(fd, &mut buf[..]),
            Some(offset) => rustix::io::pread(fd, &mut buf[..], offset as u64),
        };
        Counts::add(match offset {
            None => &self.counts.reads,
            Some(_) => &self.counts.preads,
        });
        let n = match result {
            Ok(n) => n,
            Err(errno) => {
                // The VFS refuses a negative offset, or one whose end does not fit a loff_t.
                let bad_offset = offset
                    .is_some_and(|offset| offset < 0 || offset.checked_add(size as i64).is_none());
                if !((bad_offset || past_end) && errno == Errno::INVAL) {
                    self.fail(format!(
                        "{what}: read of {size} at {offset:?} failed with {errno}"
                    ));
                }
                return;
            }
        };
        let got = &buf[..n];
        if let Err(problem) = check_line_prefix(got, size) {
            self.fail(format!("{what}: read of {size} at {offset:?}: {problem}"));
        }
        if offset == Some(0) && size > LINE_MAX && got.is_empty() {
            self.fail(format!("{what}: pread at 0 returned nothing"));
        }
    }
}

/// Whether `count` bytes from the file's position would end past the largest `loff_t`
/// (after an `lseek` far out), which the VFS refuses with EINVAL.
fn ends_past_loff_max(fd: BorrowedFd<'_>, count: usize) -> bool {
    rustix::fs::seek(fd, SeekFrom::Current(0))
        .is_ok_and(|position| (position as i64).checked_add(count as i64).is_none())
}

/// A read returns the start of one line: `used ...`, printable, at most `LINE_MAX` bytes,
/// and a whole parseable line when the buffer had room for it.
fn check_line_prefix(got: &[u8], size: usize) -> Result<(), String> {
    if got.is_empty() {
        return Ok(());
    }
    if got.len() > LINE_MAX || got.len() > size {
        return Err(format!("{} bytes", got.len()));
    }
    let expected = b"used ";
    let head = got.len().min(expected.len());
    if got[..head] != expected[..head] {
        return Err(format!("does not start like a line: {:?}", shorten(got)));
    }
    let body = got.strip_suffix(b"\n").unwrap_or(got);
    if !body
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b' ' || b == b'_')
    {
        return Err(format!("unexpected bytes: {:?}", shorten(got)));
    }
    if size > LINE_MAX {
        if got.last() != Some(&b'\n') {
            return Err(format!("a whole line was expected: {:?}", shorten(got)));
        }
        parse_line(got).map_err(|e| format!("{e:?}: {:?}", shorten(got)))?;
    }
    Ok(())
}

fn shorten(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
    if bytes.len() > 60 {
        format!("{text}…")
    } else {
        text
    }
}

const KEYS: &[&str] = &[
    "used",
    "active",
    "total",
    "free",
    "available",
    "swap_total",
    "swap_free",
    "hysteresis",
];

/// A value token: plain, hex, suffixed, percent, huge, negative, malformed.
fn value(rng: &mut Rng, near: u64) -> String {
    match rng.below(16) {
        0 => "0".into(),
        1 => format!("{}", rng.below(1 << 20)),
        2 => format!("0x{:x}", rng.next() >> rng.below(64)),
        3 => format!(
            "{}{}",
            rng.below(4096),
            rng.pick(&["K", "k", "M", "m", "G", "g"])
        ),
        4 => format!("{}%", rng.below(110)),
        5 => format!("{}", u64::MAX - rng.below(3)),
        6 => "18446744073709551616".into(),
        7 => "99999999999999999999999999999".into(),
        8 => format!("-{}", rng.below(1000)),
        9 => format!("{}G", u64::MAX >> rng.below(40)),
        10 => rng
            .pick(&["", "0x", "x", "1Q", "%", "K", "1.5", "1e3", "+1", "0X1g"])
            .to_string(),
        11 => "0".repeat(1 + rng.below(40) as usize),
        // Around the current figure: real crossings.
        _ => format!(
            "{}",
            near.saturating_add(rng.below(16384)).saturating_sub(8192)
        ),
    }
}

/// A write in the threshold grammar, mostly well formed, sometimes not.
fn grammar_write(rng: &mut Rng, used: u64) -> Vec<u8> {
    let mut text = String::new();
    let pairs = rng.below(10);
    for _ in 0..pairs {
        let key = if rng.chance(12) {
            rng.pick(&["bogus", "USED", "used:", "seq", "level", "time"])
                .to_string()
        } else {
            rng.pick(KEYS).to_string()
        };
        let separator = *rng.pick(&[" ", " ", " ", "\t", "  ", "\n", "\r\n"]);
        text.push_str(&key);
        text.push_str(separator);
        if !rng.chance(20) {
            text.push_str(&value(rng, used));
        }
        let gap: &&str = rng.pick(&[" ", " ", "\n", "\t"]);
        text.push_str(gap);
    }
    let mut bytes = text.into_bytes();
    match rng.below(12) {
        0 => bytes.push(0),
        1 => {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            bytes.insert(at, 0);
        }
        2 => {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            bytes.insert(at, rng.next() as u8);
        }
        _ => {}
    }
    bytes
}

/// Random bytes of a random length, now and then very long.
fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => 64 * 1024,
        1 => WRITE_MAX - 1 + rng.below(3) as usize,
        _ => rng.below(300) as usize,
    };
    (0..len).map(|_| rng.next() as u8).collect()
}

/// The fixed cases of the issue: sizes around the limit, extremes, every key, repeats, NULs.
fn structured_cases(used: u64) -> Vec<(String, Vec<u8>)> {
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("one space".into(), b" ".to_vec()),
        ("one NUL".into(), vec![0]),
        ("one digit".into(), b"1".to_vec()),
        ("one letter".into(), b"u".to_vec()),
        ("newline".into(), b"\n".to_vec()),
        ("64 KiB".into(), {
            let mut v = b"used ".to_vec();
            v.resize(64 * 1024, b'9');
            v
        }),
        ("u64 max".into(), format!("used {}", u64::MAX).into_bytes()),
        ("u64 max + 1".into(), b"used 18446744073709551616".to_vec()),
        ("hex max".into(), b"used 0xffffffffffffffff".to_vec()),
        ("hex max + 1".into(), b"used 0x10000000000000000".to_vec()),
        ("G overflow".into(), b"used 17179869184G".to_vec()),
        ("G at the edge".into(), b"used 17179869183G".to_vec()),
        ("negative".into(), b"used -1".to_vec()),
        ("negative hex".into(), b"used -0x1".to_vec()),
        ("percent 100".into(), b"available 100%".to_vec()),
        ("percent 101".into(), b"available 101%".to_vec()),
        ("hysteresis alone".into(), b"hysteresis 4M".to_vec()),
        (
            "all zero".into(),
            b"used 0 active 0 total 0 free 0 available 0 swap_total 0 swap_free 0 hysteresis 0"
                .to_vec(),
        ),
        ("repeated key".into(), b"used 1 used 1".to_vec()),
        (
            "repeated hysteresis".into(),
            b"hysteresis 1 used 5 hysteresis 1".to_vec(),
        ),
        (
            "trailing NUL".into(),
            format!("used {}\0", used + 4096).into_bytes(),
        ),
        (
            "trailing NULs".into(),
            format!("used {}\0\0\0\n", used + 4096).into_bytes(),
        ),
        ("embedded NUL".into(), b"used 1\0active 2".to_vec()),
        ("NUL key".into(), b"\0used 1".to_vec()),
        ("high bytes".into(), b"used \xff\xfe".to_vec()),
        ("key without value".into(), b"used".to_vec()),
        ("value without key".into(), b"12345".to_vec()),
    ];
    for key in KEYS {
        cases.push((
            format!("{key} pages"),
            format!("{key} {}", used + 1).into_bytes(),
        ));
        cases.push((format!("{key} 10%"), format!("{key} 10%").into_bytes()));
        cases.push((format!("{key} 1M"), format!("{key} 1M").into_bytes()));
    }
    let every = "used 1 active 2 total 3 free 4 available 5 swap_total 6 swap_free 7 hysteresis 8";
    cases.push(("every key".into(), every.as_bytes().to_vec()));
    // 255, 256 and 257 bytes: valid text padded with spaces, then the same with a digit.
    for len in [WRITE_MAX - 1, WRITE_MAX, WRITE_MAX + 1] {
        let mut padded = b"used 5000".to_vec();
        padded.resize(len, b' ');
        cases.push((format!("{len} bytes of spaces"), padded));
        let mut digits = b"used ".to_vec();
        digits.resize(len, b'0');
        cases.push((format!("{len} bytes of zeros"), digits));
        let mut pairs = Vec::new();
        while pairs.len() + 7 <= len {
            pairs.extend_from_slice(b"used 1 ");
        }
        pairs.resize(len, b' ');
        cases.push((format!("{len} bytes of repeated keys"), pairs));
    }
    cases
}

/// Reads with invalid buffers: the kernel must answer EFAULT, not oops.
fn bad_buffers(ctx: &Context, fd: BorrowedFd<'_>) {
    let page = rustix::param::page_size();
    let Ok(map) = Mapping::new(2 * page) else {
        ctx.fail("mmap for the bad-buffer cases failed".into());
        return;
    };
    let guard = map.address() + page;
    // SAFETY: the second page of our own mapping becomes a guard page; nothing in Rust
    // refers to it.
    if unsafe { rustix::mm::mprotect(guard as *mut _, page, MprotectFlags::empty()) }.is_err() {
        ctx.fail("mprotect for the bad-buffer cases failed".into());
        return;
    }
    let cases: [(&str, usize, usize); 5] = [
        ("NULL", 0, 256),
        ("guard page", guard, 256),
        ("line across the guard page", guard - 20, 256),
        ("kernel address", usize::MAX - 4095, 256),
        ("huge count", map.address(), isize::MAX as usize),
    ];
    for (name, address, count) in cases {
        let result = crate::read_to_address(fd, address, count, Some(0));
        Counts::add(&ctx.counts.preads);
        Counts::add(&ctx.counts.faults);
        let ok = if name == "huge count" {
            matches!(result, Ok(1..) | Err(Errno::FAULT))
        } else {
            result == Err(Errno::FAULT)
        };
        if !ok {
            ctx.fail(format!("read into {name}: returned {result:?}"));
        }
        let result = crate::write_from_address(fd, address, count.min(200));
        Counts::add(&ctx.counts.writes);
        Counts::add(&ctx.counts.faults);
        // The huge-count write reads 200 zero bytes: NULs only, an empty write.
        let expected = if name == "huge count" {
            Errno::INVAL
        } else {
            Errno::FAULT
        };
        if result != Err(expected) {
            ctx.fail(format!("write from {name}: returned {result:?}"));
        }
    }
    // A count over WRITE_MAX is refused before the buffer is touched.
    let result = crate::write_from_address(fd, map.address(), usize::MAX >> 1);
    Counts::add(&ctx.counts.writes);
    if !matches!(result, Err(Errno::INVAL | Errno::FAULT)) {
        ctx.fail(format!("write of count isize::MAX: returned {result:?}"));
    }
}

/// One thread's share of the single-file phase.
fn single_file(ctx: &Context, rng: &mut Rng, used: u64, deadline: Instant) -> Result<()> {
    let file = open(OFlags::RDWR)?;
    let fd = file.as_fd();
    for (name, bytes) in structured_cases(used) {
        ctx.write_checked(fd, &bytes, &name);
        ctx.read_checked(fd, 256, Some(0), &name);
    }
    bad_buffers(ctx, fd);
    let sizes = [
        0usize,
        1,
        2,
        4,
        5,
        16,
        100,
        254,
        255,
        256,
        257,
        4096,
        1 << 20,
    ];
    let offsets: [i64; 11] = [0, 1, 2, 7, 254, 255, 256, 4096, i64::MAX, -1, i64::MIN];
    for &size in &sizes {
        for &offset in &offsets {
            ctx.read_checked(fd, size, Some(offset), "sizes and offsets");
        }
        ctx.read_checked(fd, size, None, "sizes");
    }
    while Instant::now() < deadline {
        let bytes = if rng.chance(4) {
            random_bytes(rng)
        } else {
            grammar_write(rng, used)
        };
        ctx.write_checked(fd, &bytes, "random");
        let size = *rng.pick(&sizes);
        match rng.below(4) {
            0 => ctx.read_checked(fd, size, None, "random read"),
            1 => ctx.read_checked(fd, size, Some(0), "random pread 0"),
            2 => ctx.read_checked(fd, size, Some(*rng.pick(&offsets)), "random pread"),
            _ => {
                let which = rng.below(4);
                seek_anyhow(fd, *rng.pick(&offsets), which);
            }
        }
    }
    Ok(())
}

/// `lseek` with any offset and one of SEEK_SET, SEEK_CUR, SEEK_END or the invalid
/// whence 7 (`which` 0 to 3); any result is acceptable. rustix cannot express a bad
/// whence, so that one case is a libc call.
fn seek_anyhow(fd: BorrowedFd<'_>, offset: i64, which: u64) {
    let _ = match which {
        0 => rustix::fs::seek(fd, SeekFrom::Start(offset as u64)),
        1 => rustix::fs::seek(fd, SeekFrom::Current(offset)),
        2 => rustix::fs::seek(fd, SeekFrom::End(offset)),
        _ => {
            // SAFETY: lseek on a descriptor we hold, with a whence the kernel refuses.
            unsafe { libc::lseek64(fd.as_raw_fd(), offset, 7) };
            return;
        }
    };
}

extern "C" fn count_sigio(_: libc::c_int) {
    SIGIO_SEEN.fetch_add(1, Ordering::Relaxed);
}

static SIGIO_SEEN: AtomicU64 = AtomicU64::new(0);

fn current_used(fd: BorrowedFd<'_>) -> u64 {
    let mut buf = [0u8; 256];
    pread_into(fd, &mut buf)
        .ok()
        .and_then(|n| parse_line(&buf[..n]).ok())
        .map_or(0, |snapshot| snapshot.figures.get(Figure::Used))
}

/// Switches SIGIO for `fd` on or off (`O_ASYNC`).
fn set_async(fd: BorrowedFd<'_>, on: bool) {
    if let Ok(flags) = rustix::fs::fcntl_getfl(fd) {
        let flags = if on {
            flags | OFlags::ASYNC
        } else {
            flags - OFlags::ASYNC
        };
        let _ = rustix::fs::fcntl_setfl(fd, flags);
    }
}

/// A poll or epoll wait of up to 50 ms.
fn short_wait(rng: &mut Rng) -> Timespec {
    Timespec {
        tv_sec: 0,
        tv_nsec: rng.below(50) as i64 * 1_000_000,
    }
}

/// The shared-file phase: every kind of user of one file at once.
fn shared_file(ctx: &Context, seed: u64, deadline: Instant) -> Result<()> {
    let file = open(OFlags::RDWR)?;
    let fd = file.as_fd();
    // rustix has no signal handlers and no F_SETOWN: libc's.
    // SAFETY: installing a handler that only bumps an atomic counter.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = count_sigio as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGIO, &action, std::ptr::null_mut());
    }
    crate::set_owner(fd)?;
    std::thread::scope(|scope| {
        let spawn = |index: u64, work: fn(&Context, BorrowedFd<'_>, &mut Rng)| {
            scope.spawn(move || {
                let mut rng = Rng::new(seed ^ (index << 32));
                while !ctx.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    work(ctx, fd, &mut rng);
                }
            });
        };
        // Writers: thresholds around the current `used`, so the hog makes them cross.
        for index in 0..2 {
            spawn(index, |ctx, fd, rng| {
                let used = current_used(fd);
                let bytes = if rng.chance(3) {
                    grammar_write(rng, used)
                } else {
                    format!(
                        "used {} hysteresis {}",
                        used + rng.below(4096),
                        rng.below(512)
                    )
                    .into_bytes()
                };
                ctx.write_checked(fd, &bytes, "concurrent write");
                // Give the thresholds time to cross before the next write re-arms them.
                std::thread::sleep(Duration::from_millis(rng.below(40)));
            });
        }
        // Readers.
        spawn(2, |ctx, fd, rng| {
            let size = *rng.pick(&[1usize, 10, 255, 256, 4096]);
            let offset = if rng.chance(2) { None } else { Some(0) };
            ctx.read_checked(fd, size, offset, "concurrent read");
        });
        // Pollers: poll, then epoll.
        spawn(3, |ctx, fd, rng| {
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            let n = rustix::event::poll(&mut fds, Some(&short_wait(rng))).unwrap_or(0);
            Counts::add(&ctx.counts.polls);
            if n > 0 {
                let revents = fds[0].revents();
                if revents.intersects(PollFlags::ERR | PollFlags::NVAL) {
                    ctx.fail(format!("poll on an open file: revents {revents:?}"));
                }
                if revents.contains(PollFlags::IN) {
                    Counts::add(&ctx.counts.events);
                    ctx.read_checked(fd, 256, None, "read after POLLIN");
                }
            }
        });
        spawn(4, |ctx, fd, rng| {
            // A fresh epoll instance watching our descriptor, closed when dropped.
            let Ok(ep) = epoll::create(epoll::CreateFlags::CLOEXEC) else {
                return;
            };
            let flags = epoll::EventFlags::IN | epoll::EventFlags::ET;
            let _ = epoll::add(&ep, fd, epoll::EventData::new_u64(0), flags);
            let mut ready = Vec::with_capacity(1);
            let spare = rustix::buffer::spare_capacity(&mut ready);
            let n = epoll::wait(&ep, spare, Some(&short_wait(rng))).unwrap_or(0);
            Counts::add(&ctx.counts.polls);
            if n > 0 {
                Counts::add(&ctx.counts.events);
            }
        });
        // SIGIO on and off.
        spawn(5, |ctx, fd, rng| {
            set_async(fd, rng.chance(2));
            Counts::add(&ctx.counts.fasync_toggles);
            std::thread::sleep(Duration::from_millis(rng.below(20)));
        });
        // Open/close churn and closing a file under a poller.
        spawn(6, |ctx, _, rng| {
            let writable = rng.chance(2);
            let other = match open_device(if writable {
                OFlags::RDWR
            } else {
                OFlags::RDONLY
            }) {
                Ok(other) => other,
                Err(errno) => {
                    ctx.fail(format!("open during the run: {errno}"));
                    return;
                }
            };
            Counts::add(&ctx.counts.opens);
            if writable {
                let used = current_used(other.as_fd());
                ctx.write_checked(
                    other.as_fd(),
                    format!("used {}", used + 1).as_bytes(),
                    "churn",
                );
            }
            if rng.chance(2) {
                let raw = other.as_raw_fd();
                let poller = std::thread::spawn(move || {
                    let mut pfd = libc::pollfd {
                        fd: raw,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // rustix's poll borrows the descriptor, and this poll is meant to
                    // outlive it, so it is libc's on the bare number.
                    // SAFETY: one pollfd; the descriptor may be closed meanwhile (POLLNVAL).
                    unsafe { libc::poll(&mut pfd, 1, 30) };
                });
                std::thread::sleep(Duration::from_millis(rng.below(10)));
                drop(other);
                Counts::add(&ctx.counts.closes_under_poll);
                let _ = poller.join();
            }
        });
        // The hog: allocate and free so `used` moves across the writers' thresholds.
        spawn(7, |ctx, _, rng| {
            let size = (8 + rng.below(24) as usize) << 20;
            if let Ok(map) = Mapping::new(size) {
                map.fill();
                std::thread::sleep(Duration::from_millis(rng.below(100)));
            }
            Counts::add(&ctx.counts.hog_cycles);
        });
    });
    // SIGIO off before the close.
    set_async(fd, false);
    drop(file);
    ctx.counts
        .sigio
        .store(SIGIO_SEEN.load(Ordering::Relaxed), Ordering::Relaxed);
    Ok(())
}

/// The device still works: a fresh file reads a valid first line, then EOF, and a
/// threshold just above `used` fires when this process allocates past it.
fn still_works() -> Result<()> {
    let fd = open(OFlags::RDWR)?;
    let mut buf = [0u8; 256];
    let n = read_into(&fd, &mut buf)?;
    let first = parse_line(&buf[..n]).map_err(|e| format!("fresh first read: {e:?}"))?;
    if first.seq != 0 {
        return Err(format!("a fresh file has seq {}", first.seq).into());
    }
    if read_into(&fd, &mut buf)? != 0 {
        return Err("a fresh file's second read is not EOF".into());
    }
    let used = first.figures.get(Figure::Used);
    crate::set_thresholds(&fd, &format!("used {}", used + 4096))?;
    let map = Mapping::new(48 << 20).map_err(|error| error.during("the final check"))?;
    map.fill();
    let fired = poll_in(&fd, Duration::from_secs(20));
    // Read before the memory goes: freeing it crosses back down, a second event.
    let n = read_into(&fd, &mut buf);
    drop(map);
    if !fired? {
        return Err(format!(
            "no event for 'used {}' within 20 s after allocating 48 MiB",
            used + 4096
        )
        .into());
    }
    let n = n?;
    let line = String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
    let snapshot = parse_line(line.as_bytes()).map_err(|e| format!("{line:?}: {e:?}"))?;
    if snapshot.seq != 1 {
        return Err(format!("the event's line has seq {}", snapshot.seq).into());
    }
    println!("after the run: threshold fired: {line}");
    Ok(())
}

/// `mn-probe fuzz [--seconds N] [--seed S]`.
pub fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds = 20u64;
    let mut seed = memnotify::monotonic_ns();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut number = |what: &str| -> Result<u64> {
            iter.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{what} needs a number").into())
        };
        match arg.as_str() {
            "--seconds" => seconds = number("--seconds")?,
            "--seed" => seed = number("--seed")?,
            other => return Err(format!("fuzz: unknown argument {other:?}").into()),
        }
    }
    println!("fuzz: seed {seed}, {seconds} s");
    let probe = open(OFlags::RDONLY)?;
    let mut buf = [0u8; 256];
    let n = read_into(&probe, &mut buf)?;
    let first = parse_line(&buf[..n]).map_err(|e| format!("first line: {e:?}"))?;
    drop(probe);
    let units = Units {
        page_shift: memnotify::page_shift(),
        total_pages: first.figures.get(Figure::Total),
    };
    let ctx = Context {
        units,
        counts: Counts::default(),
        failures: std::sync::Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    };
    let start = Instant::now();
    let mut rng = Rng::new(seed);
    let used = first.figures.get(Figure::Used);
    // A third of the time on one file, the rest with everything at once.
    let single_deadline = start + Duration::from_secs(seconds) / 3;
    single_file(&ctx, &mut rng, used, single_deadline)?;
    let shared_deadline = start + Duration::from_secs(seconds);
    shared_file(&ctx, seed, shared_deadline)?;
    let c = &ctx.counts;
    let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    println!(
        "fuzz: {} writes ({} accepted, {} rejected), {} reads, {} preads, {} faulting buffers, \
         {} polls, {} events, {} SIGIO, {} SIGIO toggles, {} opens, {} closes under poll, \
         {} hog cycles in {:.1} s",
        get(&c.writes),
        get(&c.accepted),
        get(&c.rejected),
        get(&c.reads),
        get(&c.preads),
        get(&c.faults),
        get(&c.polls),
        get(&c.events),
        get(&c.sigio),
        get(&c.fasync_toggles),
        get(&c.opens),
        get(&c.closes_under_poll),
        get(&c.hog_cycles),
        start.elapsed().as_secs_f64()
    );
    let failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).len();
    if failures > 0 {
        return Err(format!("{failures} mismatches (listed above)").into());
    }
    still_works()?;
    println!("fuzz: 0 mismatches; the device still answers");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_seeded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let first: Vec<u64> = (0..4).map(|_| a.next()).collect();
        assert_eq!(first, (0..4).map(|_| b.next()).collect::<Vec<_>>());
        assert_ne!(first, (0..4).map(|_| c.next()).collect::<Vec<_>>());
        assert!((0..1000).all(|_| a.below(10) < 10));
    }

    #[test]
    fn line_prefixes() {
        let line = b"used 1 active 2 total 3 free 4 available 5 swap_total 0 swap_free 0 seq 0 time 9 level 0\n";
        assert!(check_line_prefix(line, 256).is_ok());
        assert!(check_line_prefix(&line[..10], 10).is_ok());
        assert!(check_line_prefix(b"use", 3).is_ok());
        assert!(check_line_prefix(b"", 0).is_ok());
        assert!(
            check_line_prefix(&line[..10], 256).is_err(),
            "room for a whole line"
        );
        assert!(check_line_prefix(b"xsed 1", 6).is_err());
        assert!(
            check_line_prefix(&line[..20], 10).is_err(),
            "more than the buffer"
        );
    }

    #[test]
    fn the_structured_cases_cover_the_limits() {
        let cases = structured_cases(1000);
        let units = Units {
            page_shift: 12,
            total_pages: 65536,
        };
        let lengths: Vec<usize> = cases.iter().map(|(_, bytes)| bytes.len()).collect();
        for len in [0, 1, 255, 256, 257, 65536] {
            assert!(lengths.contains(&len), "{len}");
        }
        let valid = |name: &str| {
            let (_, bytes) = cases.iter().find(|(n, _)| n == name).unwrap();
            parse_thresholds(bytes, units).is_ok()
        };
        assert!(valid("256 bytes of spaces"));
        assert!(!valid("257 bytes of spaces"));
        assert!(valid("trailing NULs"));
        assert!(!valid("embedded NUL"));
        assert!(!valid("repeated key"));
        assert!(valid("every key"));
        assert!(!valid("u64 max + 1"));
    }

    #[test]
    fn grammar_writes_are_mostly_valid_and_sometimes_not() {
        let units = Units {
            page_shift: 12,
            total_pages: 65536,
        };
        let mut rng = Rng::new(1);
        let results: Vec<bool> = (0..2000)
            .map(|_| parse_thresholds(&grammar_write(&mut rng, 5000), units).is_ok())
            .collect();
        let valid = results.iter().filter(|&&ok| ok).count();
        assert!(valid > 100 && valid < 1900, "{valid} of 2000 valid");
    }
}

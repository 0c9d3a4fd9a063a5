//! `memhog`: allocate and touch memory at a given rate up to a limit, hold it,
//! release it; or fill the page cache through a file.

mod plan;

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use plan::{due, mib, pace_chunk, report_due, Content, Hold, Mode, Plan, USAGE};

/// The signal that asked us to stop (0: none).
static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    STOP.store(signal, Ordering::SeqCst);
}

fn stopping() -> bool {
    STOP.load(Ordering::SeqCst) != 0
}

fn install_handlers() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Prints a progress line right away (stdout may be a pipe read by a test).
fn say(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "memhog: {text}");
    let _ = out.flush();
}

/// Sleeps until `deadline`, waking early when a signal asks us to stop.
fn sleep_until(deadline: Instant) {
    while !stopping() {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

fn hold(hold: Hold, bytes: u64, what: &str) {
    match hold {
        Hold::For(duration) if duration.is_zero() => {}
        Hold::For(duration) => {
            say(format_args!(
                "holding {} MiB{what} for {} ms",
                mib(bytes),
                duration.as_millis()
            ));
            sleep_until(Instant::now() + duration);
        }
        Hold::Forever => {
            say(format_args!(
                "holding {} MiB{what} until SIGINT or SIGTERM",
                mib(bytes)
            ));
            while !stopping() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Anonymous memory reserved up front and made resident page by page.
struct Region {
    base: *mut u8,
    len: usize,
    page: usize,
    content: Content,
}

impl Region {
    fn reserve(len: u64, content: Content) -> Result<Region, String> {
        let page = rustix::param::page_size();
        let len = usize::try_from(len).map_err(|_| "--limit is too large".to_string())?;
        let len = len.div_ceil(page) * page;
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
            )
        }
        .map_err(|errno| format!("cannot reserve {} MiB: {errno}", len >> 20))?;
        Ok(Region {
            base: base.cast(),
            len,
            page,
            content,
        })
    }

    /// Writes every page of `[from, to)`, which makes it resident: one byte, or with
    /// `Content::Mixed` its first half with pseudo-random bytes.
    fn touch(&mut self, from: u64, to: u64) {
        let to = (to as usize).min(self.len);
        let mut offset = from as usize;
        while offset < to {
            match self.content {
                // SAFETY: offset is inside the mapping, which is readable and writable.
                Content::Sparse => unsafe {
                    self.base
                        .add(offset)
                        .write_volatile((offset / self.page) as u8 | 1)
                },
                Content::Mixed => {
                    // SAFETY: the page at offset is inside the mapping, which is readable
                    // and writable, and nothing else refers to it.
                    let page =
                        unsafe { std::slice::from_raw_parts_mut(self.base.add(offset), self.page) };
                    // xorshift64, seeded per page: incompressible, and cheap.
                    let mut state = (offset as u64 / self.page as u64) | 1 << 63;
                    for word in page[..self.page / 2].chunks_exact_mut(8) {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        word.copy_from_slice(&state.to_ne_bytes());
                    }
                }
            }
            offset += self.page;
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers to it any more.
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
    }
}

/// Touches `[done, limit)` at `rate`, timed from `start` with `base` bytes already done.
fn grow(region: &mut Region, mut done: u64, limit: u64, rate: Option<u64>) -> u64 {
    let start = Instant::now();
    let first = done;
    let chunk = pace_chunk(rate, region.page as u64);
    while done < limit && !stopping() {
        let next = (done + chunk).min(limit);
        region.touch(done, next);
        if report_due(done, next, limit) {
            say(format_args!("allocated {} MiB", mib(next)));
        }
        done = next;
        sleep_until(start + due(done - first, rate));
    }
    done
}

/// Reads one line from stdin without buffering; `None` at end of input or on a signal.
fn wait_for_line() -> Option<String> {
    let stdin = std::io::stdin();
    let mut line = Vec::new();
    loop {
        let mut fds = [rustix::event::PollFd::new(
            &stdin,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        if stopping() {
            return None;
        }
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(_) => return None,
        }
        let mut byte = [0u8];
        match stdin.lock().read(&mut byte) {
            Ok(0) => return None,
            Ok(_) if byte[0] == b'\n' => return Some(String::from_utf8_lossy(&line).into_owned()),
            Ok(_) => line.push(byte[0]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

fn anonymous(
    limit: u64,
    content: Content,
    rate: Option<u64>,
    hold_for: Hold,
) -> Result<(), String> {
    let mut region = Region::reserve(limit, content)?;
    let done = grow(&mut region, 0, limit, rate);
    if !stopping() {
        hold(hold_for, done, "");
    }
    drop(region);
    say(format_args!("released {} MiB", mib(done)));
    Ok(())
}

fn step(limit: u64, chunk: u64, content: Content, rate: Option<u64>) -> Result<(), String> {
    let mut region = Region::reserve(limit, content)?;
    let mut done = 0;
    say(format_args!(
        "ready: each line on stdin allocates {} MiB, up to {} MiB",
        mib(chunk),
        mib(limit)
    ));
    while done < limit {
        if wait_for_line().is_none() {
            break;
        }
        let next = (done + chunk).min(limit);
        done = grow(&mut region, done, next, rate);
        say(format_args!("step: {} MiB in use", mib(done)));
    }
    if done >= limit {
        say(format_args!("at the limit: the next line releases"));
        let _ = wait_for_line();
    }
    drop(region);
    say(format_args!("released {} MiB", mib(done)));
    Ok(())
}

fn page_cache(
    path: &Path,
    size: u64,
    keep: bool,
    rate: Option<u64>,
    hold_for: Hold,
) -> Result<(), String> {
    let shown = path.display();
    let mut file = File::create(path).map_err(|error| format!("cannot create {shown}: {error}"))?;
    let block: Vec<u8> = (0..1 << 20)
        .map(|index: u32| (index % 251) as u8 + 1)
        .collect();
    let start = Instant::now();
    let mut done = 0u64;
    while done < size && !stopping() {
        let len = (size - done).min(block.len() as u64) as usize;
        file.write_all(&block[..len])
            .map_err(|error| format!("cannot write {shown}: {error}"))?;
        if report_due(done, done + len as u64, size) {
            say(format_args!("written {} MiB", mib(done + len as u64)));
        }
        done += len as u64;
        sleep_until(start + due(done, rate));
    }
    // Clean pages are what reclaim can drop: write them back first.
    file.sync_data()
        .map_err(|error| format!("cannot sync {shown}: {error}"))?;
    drop(file);
    let mut file = File::open(path).map_err(|error| format!("cannot open {shown}: {error}"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    while !stopping() {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(len) => read += len as u64,
            Err(error) => return Err(format!("cannot read {shown}: {error}")),
        }
    }
    say(format_args!("cached {} MiB in {shown}", mib(read)));
    if !stopping() {
        hold(hold_for, read, " of page cache");
    }
    if !keep {
        std::fs::remove_file(path).map_err(|error| format!("cannot remove {shown}: {error}"))?;
        say(format_args!("removed {shown}"));
    }
    Ok(())
}

fn run(plan: Plan) -> Result<(), String> {
    match plan.mode {
        Mode::Anonymous { limit } => anonymous(limit, plan.content, plan.rate, plan.hold),
        Mode::Step { limit, chunk } => step(limit, chunk, plan.content, plan.rate),
        Mode::PageCache { path, size, keep } => page_cache(&path, size, keep, plan.rate, plan.hold),
    }
}

fn main() -> ExitCode {
    let plan = match plan::parse(std::env::args_os().skip(1)) {
        Ok(Some(plan)) => plan,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("memhog: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    install_handlers();
    match run(plan) {
        // Stopped by a signal: released cleanly, but say so like the shell would.
        Ok(()) if stopping() => {
            let signal = STOP.load(Ordering::SeqCst);
            say(format_args!("stopped by signal {signal}"));
            ExitCode::from(128 + signal as u8)
        }
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("memhog: {message}");
            ExitCode::from(1)
        }
    }
}

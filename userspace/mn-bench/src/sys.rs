//! What the benchmarks need of the system beyond a single rustix call: the clock in
//! nanoseconds, a poll that retries on EINTR, the open-file limit, and a lazily backed
//! anonymous region. Every system call is rustix's (as in the client library); errors
//! are `rustix::io::Errno`, turned into `io::Error` with what failed where a caller
//! reports them.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use rustix::process::{Resource, Rlimit};
use rustix::time::ClockId;

/// CLOCK_MONOTONIC in nanoseconds: the clock of the module's `time` and statistics.
pub fn now_ns() -> u64 {
    let ts = rustix::time::clock_gettime(ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `error` with what failed in front, as an `io::Error` for the report.
pub fn context(what: impl std::fmt::Display, error: Errno) -> io::Error {
    let error = io::Error::from(error);
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// A relative timeout for rustix's `poll` and `epoll::wait`.
pub fn timespec(timeout: Duration) -> Timespec {
    Timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    }
}

/// Waits up to `timeout` for any of `events` on `fd`; true when one arrived.
pub fn poll(fd: impl AsFd, events: PollFlags, timeout: Duration) -> io::Result<bool> {
    let timeout = timespec(timeout);
    loop {
        let mut fds = [PollFd::new(&fd, events)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(context("poll", errno)),
            Ok(n) => {
                let revents = fds[0].revents();
                if revents.intersects(PollFlags::ERR | PollFlags::NVAL) {
                    return Err(io::Error::other(format!("poll revents {revents:?}")));
                }
                return Ok(n > 0 && revents.intersects(events));
            }
        }
    }
}

/// Raises the open-file limit (soft and hard) to at least `wanted`.
pub fn raise_nofile(wanted: u64) -> io::Result<()> {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|current| current >= wanted) {
        return Ok(());
    }
    let raised = Rlimit {
        current: Some(wanted),
        maximum: limit.maximum.map(|maximum| maximum.max(wanted)),
    };
    rustix::process::setrlimit(Resource::Nofile, raised)
        .map_err(|errno| context(format_args!("setrlimit RLIMIT_NOFILE {wanted}"), errno))
}

/// Anonymous memory, reserved without being backed and made resident by [`Region::touch`].
pub struct Region {
    base: *mut u8,
    len: usize,
    page: usize,
}

// SAFETY: the mapping is plain memory owned by the region; touching it from another
// thread is as safe as from this one.
unsafe impl Send for Region {}

impl Region {
    pub fn reserve(len: usize) -> io::Result<Region> {
        let page = rustix::param::page_size();
        let len = len.div_ceil(page) * page;
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|errno| context(format_args!("mmap {} KiB", len >> 10), errno))?;
        Ok(Region {
            base: base.cast(),
            len,
            page,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Writes one byte in every page of `[from, to)`, which makes those pages resident.
    pub fn touch(&mut self, from: usize, to: usize) {
        let to = to.min(self.len);
        let mut offset = from;
        while offset < to {
            // SAFETY: `offset` is inside the mapping, which is readable and writable.
            unsafe { self.base.add(offset).write_volatile(1) };
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

/// Sets the calling process's `oom_score_adj`.
pub fn set_oom_score_adj(value: i32) -> io::Result<()> {
    std::fs::write("/proc/self/oom_score_adj", format!("{value}\n"))
        .map_err(|error| io::Error::new(error.kind(), format!("oom_score_adj: {error}")))
}

/// The running kernel's release and machine, as `uname -rm` prints them.
pub fn uname() -> String {
    let name = rustix::system::uname();
    format!(
        "{} {}",
        name.release().to_string_lossy(),
        name.machine().to_string_lossy()
    )
}

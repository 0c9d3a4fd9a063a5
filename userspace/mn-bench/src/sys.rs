//! Thin wrappers over the system calls the benchmarks time: nothing here allocates on the
//! measured paths, and every failure comes back as an `io::Error` with what failed.

use std::ffi::CString;
use std::io;
use std::time::Duration;

/// CLOCK_MONOTONIC in nanoseconds: the clock of the module's `time` and statistics.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn context(what: &str) -> io::Error {
    let error = io::Error::last_os_error();
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// An owned file descriptor, closed on drop.
pub struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

pub fn open(path: &str, flags: i32) -> io::Result<Fd> {
    let c_path = CString::new(path).map_err(|_| io::Error::other("path with a NUL"))?;
    // SAFETY: `c_path` is a valid C string.
    let fd = unsafe { libc::open(c_path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(context(&format!("open {path}")));
    }
    Ok(Fd(fd))
}

/// One `write` that must take all of `bytes` (device and procfs writes are all or nothing).
pub fn write(fd: &Fd, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: `bytes` is a valid buffer of its length.
    let n = unsafe { libc::write(fd.0, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        return Err(context(&format!(
            "write {:?}",
            String::from_utf8_lossy(bytes)
        )));
    }
    if n as usize != bytes.len() {
        return Err(io::Error::other(format!(
            "short write: {n} of {}",
            bytes.len()
        )));
    }
    Ok(())
}

pub fn read(fd: &Fd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, writable buffer of its length.
    let n = unsafe { libc::read(fd.0, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(context("read"));
    }
    Ok(n as usize)
}

/// `pread` at offset 0: a fresh sample from the device, a fresh `/proc` file.
pub fn pread0(fd: &Fd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, writable buffer of its length.
    let n = unsafe { libc::pread(fd.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(context("pread"));
    }
    Ok(n as usize)
}

/// Waits up to `timeout` for any of `events` on `fd`; true when one arrived.
pub fn poll(fd: &Fd, events: i16, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.0,
        events,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(context("poll"));
        }
        if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(io::Error::other(format!("poll revents {:#x}", pfd.revents)));
        }
        return Ok(n > 0 && pfd.revents & events != 0);
    }
}

/// Raises the open-file limit (soft and hard) to at least `wanted`.
pub fn raise_nofile(wanted: u64) -> io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is valid and writable.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(context("getrlimit"));
    }
    if limit.rlim_cur >= wanted as libc::rlim_t {
        return Ok(());
    }
    limit.rlim_cur = wanted as libc::rlim_t;
    limit.rlim_max = limit.rlim_max.max(wanted as libc::rlim_t);
    // SAFETY: `limit` is valid.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(context(&format!("setrlimit RLIMIT_NOFILE {wanted}")));
    }
    Ok(())
}

/// An epoll set.
pub struct Epoll(Fd);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(context("epoll_create1"));
        }
        Ok(Epoll(Fd(fd)))
    }

    pub fn add(&self, fd: &Fd, events: u32, data: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: data };
        // SAFETY: valid epoll fd, fd and event.
        if unsafe { libc::epoll_ctl(self.0 .0, libc::EPOLL_CTL_ADD, fd.0, &mut event) } < 0 {
            return Err(context("epoll_ctl ADD"));
        }
        Ok(())
    }

    /// Fills `events` with ready entries; returns how many (0 on timeout).
    pub fn wait(&self, events: &mut [libc::epoll_event], timeout: Duration) -> io::Result<usize> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        loop {
            // SAFETY: `events` is a valid buffer of its length.
            let n = unsafe {
                libc::epoll_wait(self.0 .0, events.as_mut_ptr(), events.len() as i32, ms)
            };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(context("epoll_wait"));
            }
            return Ok(n as usize);
        }
    }
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
        let page = page_size();
        let len = len.div_ceil(page) * page;
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(context(&format!("mmap {} KiB", len >> 10)));
        }
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
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

pub fn page_size() -> usize {
    // SAFETY: no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as usize
    } else {
        4096
    }
}

/// One sysinfo(2) call (the kernel samples memory as the module does).
pub fn sysinfo() -> io::Result<()> {
    // SAFETY: all-zero is a valid sysinfo to fill.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is valid and writable.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return Err(context("sysinfo"));
    }
    Ok(())
}

/// Sends `signal` to `pid`.
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
        return Err(context(&format!("kill {pid}")));
    }
    Ok(())
}

/// Sets the calling process's `oom_score_adj`.
pub fn set_oom_score_adj(value: i32) -> io::Result<()> {
    std::fs::write("/proc/self/oom_score_adj", format!("{value}\n"))
        .map_err(|error| io::Error::new(error.kind(), format!("oom_score_adj: {error}")))
}

/// The running kernel's release and machine, as `uname -rm` prints them.
pub fn uname() -> String {
    // SAFETY: all-zero is a valid utsname to fill.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is valid and writable.
    if unsafe { libc::uname(&mut name) } != 0 {
        return "unknown".to_string();
    }
    let field = |chars: &[libc::c_char]| {
        // c_char is i8 on x86_64 and u8 on ARM: reinterpret the byte without a cast,
        // which would be a no-op (and a clippy finding) on one of them.
        let bytes: Vec<u8> = chars
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| u8::from_ne_bytes(c.to_ne_bytes()))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {}", field(&name.release), field(&name.machine))
}

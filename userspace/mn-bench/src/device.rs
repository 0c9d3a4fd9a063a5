//! `/dev/memnotify`, its statistics and its parameters, from inside the guest.

use std::io;

use memnotify_proto::{parse_line, Snapshot, LINE_BUF};

use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};

use crate::sys::context;

pub const DEVICE: &str = "/dev/memnotify";
const STATISTICS: &str = "/sys/class/misc/memnotify/statistics";
const PARAMETERS: &str = "/sys/module/memnotify/parameters";

pub fn open() -> io::Result<OwnedFd> {
    rustix::fs::open(DEVICE, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|errno| context(format_args!("open {DEVICE}"), errno))
}

/// Writes thresholds (`used 5000`, `available 12345K`, ...).
/// One `write` that must take all of it: the device's writes are all or nothing.
pub fn arm(fd: &OwnedFd, thresholds: &str) -> io::Result<()> {
    write_all_at_once(fd, thresholds.as_bytes())
}

/// One `write` of all of `bytes` (device and procfs writes are all or nothing).
pub fn write_all_at_once(fd: &OwnedFd, bytes: &[u8]) -> io::Result<()> {
    let n = rustix::io::write(fd, bytes).map_err(|errno| {
        context(
            format_args!("write {:?}", String::from_utf8_lossy(bytes)),
            errno,
        )
    })?;
    if n != bytes.len() {
        return Err(io::Error::other(format!(
            "short write: {n} of {}",
            bytes.len()
        )));
    }
    Ok(())
}

fn parse(buf: &[u8]) -> io::Result<Snapshot> {
    parse_line(buf).map_err(|error| {
        io::Error::other(format!(
            "bad line {:?}: {error:?}",
            String::from_utf8_lossy(buf)
        ))
    })
}

/// A fresh sample (`pread` at offset 0).
pub fn sample(fd: &OwnedFd) -> io::Result<Snapshot> {
    let mut buf = [0u8; LINE_BUF];
    let n = rustix::io::pread(fd, &mut buf, 0).map_err(|errno| context("pread", errno))?;
    parse(&buf[..n])
}

/// Reads the pending line (the event's, after poll said readable); `None` at EOF.
pub fn read_line(fd: &OwnedFd) -> io::Result<Option<Snapshot>> {
    let mut buf = [0u8; LINE_BUF];
    let n = rustix::io::read(fd, &mut buf).map_err(|errno| context("read", errno))?;
    if n == 0 {
        return Ok(None);
    }
    parse(&buf[..n]).map(Some)
}

fn read_number(path: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| io::Error::new(error.kind(), format!("{path}: {error}")))?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("{path}: not a number: {text:?}")))
}

/// One statistic (`evaluations`, `last_eval_ns`, ...).
pub fn stat(name: &str) -> io::Result<u64> {
    read_number(&format!("{STATISTICS}/{name}"))
}

pub fn param(name: &str) -> io::Result<u64> {
    read_number(&format!("{PARAMETERS}/{name}"))
}

pub fn set_param(name: &str, value: u64) -> io::Result<()> {
    let path = format!("{PARAMETERS}/{name}");
    std::fs::write(&path, format!("{value}\n"))
        .map_err(|error| io::Error::new(error.kind(), format!("{path}: {error}")))
}

/// Sets a module parameter for the lifetime of the guard, restoring the old value after.
pub struct ParamGuard {
    name: &'static str,
    old: u64,
}

impl ParamGuard {
    pub fn set(name: &'static str, value: u64) -> io::Result<ParamGuard> {
        let old = param(name)?;
        set_param(name, value)?;
        Ok(ParamGuard { name, old })
    }
}

impl Drop for ParamGuard {
    fn drop(&mut self) {
        let _ = set_param(self.name, self.old);
    }
}

/// Opens `count` files, each armed with `thresholds(i)` (none if it returns `None`).
pub fn open_many(
    count: usize,
    thresholds: impl Fn(usize) -> Option<String>,
) -> io::Result<Vec<OwnedFd>> {
    let mut files = Vec::with_capacity(count);
    for index in 0..count {
        let fd = open().map_err(|error| {
            io::Error::new(error.kind(), format!("file {}: {error}", index + 1))
        })?;
        if let Some(text) = thresholds(index) {
            arm(&fd, &text)?;
        }
        files.push(fd);
    }
    Ok(files)
}

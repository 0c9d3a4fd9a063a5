//! `/dev/memnotify`, its statistics and its parameters, from inside the guest.

use std::io;

use memnotify_proto::{parse_line, Snapshot, LINE_BUF};

use crate::sys::{self, Fd};

pub const DEVICE: &str = "/dev/memnotify";
const STATISTICS: &str = "/sys/class/misc/memnotify/statistics";
const PARAMETERS: &str = "/sys/module/memnotify/parameters";

pub fn open() -> io::Result<Fd> {
    sys::open(DEVICE, libc::O_RDWR)
}

/// Writes thresholds (`used 5000`, `available 12345K`, ...).
pub fn arm(fd: &Fd, thresholds: &str) -> io::Result<()> {
    sys::write(fd, thresholds.as_bytes())
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
pub fn sample(fd: &Fd) -> io::Result<Snapshot> {
    let mut buf = [0u8; LINE_BUF];
    let n = sys::pread0(fd, &mut buf)?;
    parse(&buf[..n])
}

/// Reads the pending line (the event's, after poll said readable); `None` at EOF.
pub fn read_line(fd: &Fd) -> io::Result<Option<Snapshot>> {
    let mut buf = [0u8; LINE_BUF];
    let n = sys::read(fd, &mut buf)?;
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
) -> io::Result<Vec<Fd>> {
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

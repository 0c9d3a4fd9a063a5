//! Memory: kernel memory per open file, and the resident size of memnotifyd and earlyoom.

use std::io;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cost::far_used;
use crate::device;
use crate::earlyoom::{self, Earlyoom};
use crate::meminfo::field_kib;
use crate::report::Figure;
use crate::stats::median;
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, Signal};

use crate::sys::{self, context};
use crate::MANY;

fn meminfo() -> io::Result<Vec<u8>> {
    std::fs::read("/proc/meminfo")
}

fn sunreclaim_kib() -> io::Result<u64> {
    field_kib(&meminfo()?, "SUnreclaim")
        .ok_or_else(|| io::Error::other("no SUnreclaim in /proc/meminfo"))
}

pub fn mem_available_kib() -> io::Result<u64> {
    field_kib(&meminfo()?, "MemAvailable")
        .ok_or_else(|| io::Error::other("no MemAvailable in /proc/meminfo"))
}

/// Unreclaimable slab growth, in bytes, while the files `open` returns are open.
fn slab_delta(open: impl Fn() -> io::Result<Vec<OwnedFd>>) -> io::Result<i64> {
    std::thread::sleep(Duration::from_millis(300));
    let before = sunreclaim_kib()?;
    let files = open()?;
    std::thread::sleep(Duration::from_millis(300));
    let after = sunreclaim_kib()?;
    drop(files);
    // Clients are freed after an RCU grace period.
    std::thread::sleep(Duration::from_millis(300));
    Ok((after as i64 - before as i64) * 1024)
}

fn open_null(count: usize) -> io::Result<Vec<OwnedFd>> {
    (0..count)
        .map(|_| {
            rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                .map_err(|errno| context("open /dev/null", errno))
        })
        .collect()
}

/// `bytes_per_client`: slab growth over 10,000 opens of /dev/memnotify, each armed with one
/// threshold, minus the growth over 10,000 opens of /dev/null (the `struct file` and
/// what every open costs), per file.
pub fn bytes_per_client(trials: usize) -> Vec<Figure> {
    let measured = (|| -> io::Result<(Vec<f64>, Vec<f64>)> {
        sys::raise_nofile(MANY as u64 + 1024)?;
        let total = {
            let fd = device::open()?;
            device::sample(&fd)?
                .figures
                .get(memnotify_proto::Figure::Total)
        };
        // Grow the descriptor table once, outside the measurement.
        drop(open_null(MANY)?);
        let mut own = Vec::with_capacity(trials);
        let mut whole = Vec::with_capacity(trials);
        for _ in 0..trials {
            let null = slab_delta(|| open_null(MANY))?;
            let memnotify =
                slab_delta(|| device::open_many(MANY, |index| Some(far_used(total, index))))?;
            own.push((memnotify - null) as f64 / MANY as f64);
            whole.push(memnotify as f64 / MANY as f64);
        }
        Ok((own, whole))
    })();
    match measured {
        Ok((own, whole)) => vec![
            Figure::new(
                "bytes_per_client",
                median(&own),
                "bytes",
                own.len(),
                format!("SUnreclaim growth over {MANY} opens of /dev/memnotify each armed with one threshold, minus that of {MANY} opens of /dev/null, per file; median of {trials} trials"),
            ),
            Figure::new(
                "bytes_per_open_file",
                median(&whole),
                "bytes",
                whole.len(),
                "the same without subtracting /dev/null: struct file included".to_string(),
            ),
        ],
        Err(error) => vec![
            Figure::missing("bytes_per_client", "bytes", format!("failed: {error}")),
            Figure::missing("bytes_per_open_file", "bytes", format!("failed: {error}")),
        ],
    }
}

/// VmRSS and VmLck (locked memory) of a process `settle` after starting it, in KiB;
/// then stops it.
fn rss_after_start(mut command: Command, settle: Duration) -> io::Result<(u64, u64)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(settle);
    let status = std::fs::read(format!("/proc/{}/status", child.id()));
    let rss = status.ok().and_then(|status| {
        let rss = field_kib(&status, "VmRSS")?;
        Some((rss, field_kib(&status, "VmLck").unwrap_or(0)))
    });
    let exited = child.try_wait()?;
    if let Some(pid) = Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, Signal::TERM);
    }
    let output = child.wait_with_output()?;
    let said = String::from_utf8_lossy(&output.stderr);
    let said = said.trim();
    match (exited, rss) {
        (Some(exit), _) => Err(io::Error::other(format!(
            "exited during start-up ({exit}): {said:?}"
        ))),
        (None, None) => Err(io::Error::other(format!(
            "no VmRSS in its status: {said:?}"
        ))),
        (None, Some(sizes)) => Ok(sizes),
    }
}

fn rss_figure(
    key: &str,
    trials: usize,
    note: String,
    command: impl Fn() -> io::Result<Command>,
) -> Figure {
    let mut values = Vec::with_capacity(trials);
    let mut locked = Vec::with_capacity(trials);
    for _ in 0..trials {
        match command().and_then(|command| rss_after_start(command, Duration::from_secs(2))) {
            Ok((rss, lck)) => {
                values.push(rss as f64);
                locked.push(lck as f64);
            }
            Err(error) => return Figure::missing(key, "KiB", format!("failed: {error}")),
        }
    }
    let locked = median(&locked).unwrap_or(0.0);
    Figure::new(
        key,
        median(&values),
        "KiB",
        values.len(),
        format!("{note}; of it locked (VmLck): {locked:.0} KiB"),
    )
}

pub fn daemon_rss(trials: usize) -> Figure {
    rss_figure(
        "daemon_rss_kib",
        trials,
        format!("VmRSS of memnotifyd with its default configuration (/etc/memnotify/memnotifyd.yaml, device backend) 2 s after start; static binary, mlockall; median of {trials} starts"),
        || Ok(Command::new("memnotifyd")),
    )
}

pub fn earlyoom_rss(trials: usize, earlyoom: Option<&Earlyoom>, missing: &str) -> Figure {
    let Some(earlyoom) = earlyoom else {
        return Figure::missing("earlyoom_rss_kib", "KiB", missing);
    };
    let threshold = |available: u64| available.saturating_sub(64 << 10);
    rss_figure(
        "earlyoom_rss_kib",
        trials,
        format!(
            "VmRSS of Debian's earlyoom 1.7 (dynamic, glibc; `earlyoom {}`) 2 s after start; shared library pages count as resident; median of {trials} starts",
            earlyoom::options(0).join(" ").replace("-M 0", "-M <MemAvailable-64MiB>")
        ),
        || Ok(earlyoom.command(threshold(mem_available_kib()?))),
    )
}

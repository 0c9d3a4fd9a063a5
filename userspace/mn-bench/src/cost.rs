//! What one check costs: a module evaluation (from its own statistics) with 1 and with
//! 10,000 idle files, against one read of `/proc/meminfo`.

use std::io;
use std::time::{Duration, Instant};

use memnotify_proto::Figure as Fig;

use crate::device::{self, ParamGuard};
use crate::report::Figure;
use crate::stats::{floats, median};
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags};

use crate::sys::{self, context};
use crate::MANY;

/// The slow period while evaluation costs are sampled, so that far-away thresholds
/// are evaluated often enough to collect many samples quickly. The cost of one
/// evaluation does not depend on the period.
pub const SAMPLING_SLOW_MS: u64 = 50;

/// How many blocks of samples with 1 file, alternating with as many with 10,000.
const BLOCKS: usize = 5;

const MEMINFO: &str = "/proc/meminfo";

/// One read of `/proc/meminfo` as a polling daemon does it: one check now and then
/// (`samples` reads, one every [`SAMPLING_SLOW_MS`], like the evaluations they are
/// compared with), plus the same read in a tight loop and open + read + close.
pub fn meminfo_read(samples: usize, hot_trials: usize, hot_reads: usize) -> Vec<Figure> {
    let measured = (|| -> io::Result<[Vec<f64>; 4]> {
        let open = || {
            rustix::fs::open(MEMINFO, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|errno| context(format_args!("open {MEMINFO}"), errno))
        };
        let pread = |fd: &OwnedFd, buf: &mut [u8]| {
            rustix::io::pread(fd, buf, 0).map_err(|errno| context("pread", errno))
        };
        let fd = open()?;
        let mut buf = vec![0u8; 16384];
        let mut spaced = Vec::with_capacity(samples);
        let mut reopen = Vec::with_capacity(samples);
        for _ in 0..samples {
            std::thread::sleep(Duration::from_millis(SAMPLING_SLOW_MS));
            let start = sys::now_ns();
            pread(&fd, &mut buf)?;
            spaced.push((sys::now_ns() - start) as f64);
            std::thread::sleep(Duration::from_millis(SAMPLING_SLOW_MS));
            let start = sys::now_ns();
            let once = open()?;
            rustix::io::read(&once, &mut buf).map_err(|errno| context("read", errno))?;
            drop(once);
            reopen.push((sys::now_ns() - start) as f64);
        }
        let mut syscall = Vec::with_capacity(samples);
        for _ in 0..samples {
            std::thread::sleep(Duration::from_millis(SAMPLING_SLOW_MS));
            let start = sys::now_ns();
            std::hint::black_box(rustix::system::sysinfo());
            syscall.push((sys::now_ns() - start) as f64);
        }
        let mut hot = Vec::with_capacity(hot_trials);
        for _ in 0..hot_trials {
            let start = sys::now_ns();
            for _ in 0..hot_reads {
                pread(&fd, &mut buf)?;
            }
            hot.push((sys::now_ns() - start) as f64 / hot_reads as f64);
        }
        Ok([spaced, reopen, hot, syscall])
    })();
    match measured {
        Ok([spaced, reopen, hot, syscall]) => vec![
            Figure::new(
                "meminfo_read_ns",
                median(&spaced),
                "ns",
                spaced.len(),
                format!("one pread() of /proc/meminfo at offset 0 on an open file, one every {SAMPLING_SLOW_MS} ms as a poller does (like the evaluations); median"),
            )
            .with_samples(&spaced),
            Figure::new(
                "meminfo_open_read_close_ns",
                median(&reopen),
                "ns",
                reopen.len(),
                "open + read + close of /proc/meminfo, spaced the same way; median".to_string(),
            ),
            Figure::new(
                "meminfo_read_hot_ns",
                median(&hot),
                "ns",
                hot.len(),
                format!("pread() in a tight loop: median of {hot_trials} trials of {hot_reads} reads (caches and emulator TLB warm)"),
            ),
            Figure::new(
                "sysinfo_syscall_ns",
                median(&syscall),
                "ns",
                syscall.len(),
                "sysinfo(2), which samples with the same si_meminfo()/si_swapinfo() as an evaluation, spaced the same way; median".to_string(),
            ),
        ],
        Err(error) => [
            "meminfo_read_ns",
            "meminfo_open_read_close_ns",
            "meminfo_read_hot_ns",
            "sysinfo_syscall_ns",
        ]
            .iter()
            .map(|key| Figure::missing(key, "ns", format!("failed: {error}")))
            .collect(),
    }
}

/// `last_eval_ns` of `samples` distinct evaluations (told apart by `last_eval_time_ns`).
fn eval_samples(samples: usize) -> io::Result<Vec<u64>> {
    let mut costs = Vec::with_capacity(samples);
    let mut seen = device::stat("last_eval_time_ns")?;
    let deadline =
        Instant::now() + Duration::from_millis(SAMPLING_SLOW_MS * 4 * samples as u64 + 5_000);
    while costs.len() < samples {
        std::thread::sleep(Duration::from_millis(SAMPLING_SLOW_MS + 10));
        let time = device::stat("last_eval_time_ns")?;
        let cost = device::stat("last_eval_ns")?;
        // Skip a sample torn by an evaluation finishing between the two reads.
        if time != seen && device::stat("last_eval_time_ns")? == time {
            costs.push(cost);
            seen = time;
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "only {} distinct evaluations in {} s (interval_ms {})",
                costs.len(),
                (SAMPLING_SLOW_MS * 4 * samples as u64 + 5_000) / 1000,
                device::stat("interval_ms").unwrap_or(0)
            )));
        }
    }
    Ok(costs)
}

/// A threshold on `used` that the idle guest never reaches: 90% of RAM (plus `index`
/// pages, so that each file has its own tree key).
pub fn far_used(total_pages: u64, index: usize) -> String {
    format!("used {}", total_pages / 10 * 9 + index as u64)
}

fn total_pages() -> io::Result<u64> {
    let fd = device::open()?;
    Ok(device::sample(&fd)?.figures.get(Fig::Total))
}

/// `eval_ns_1` and `eval_ns_10000`; returns the 10,000 armed files for reuse.
pub fn evaluation(samples: usize) -> (Vec<Figure>, Vec<OwnedFd>) {
    let many = MANY;
    let mut figures = Vec::new();
    let guard = match ParamGuard::set("slow_ms", SAMPLING_SLOW_MS) {
        Ok(guard) => guard,
        Err(error) => {
            let reason = format!("cannot set slow_ms: {error}");
            return (
                vec![
                    Figure::missing("eval_ns_1", "ns", reason.clone()),
                    Figure::missing("eval_ns_10000", "ns", reason),
                ],
                Vec::new(),
            );
        }
    };
    let note = |count: usize| {
        format!(
            "median of {samples} evaluations' last_eval_ns (sampling included), {count} file(s) armed with a far `used` threshold (90% of RAM); slow_ms={SAMPLING_SLOW_MS} while sampling; 1 and {many} files in {BLOCKS} alternating blocks each"
        )
    };
    let mut kept = Vec::new();
    // Alternating blocks (1 file, then 10,000, five times each) rather than all of one
    // then all of the other: under TCG, single evaluations fall into slow and fast phases
    // lasting seconds, whatever the number of files (the emulator's and the host's doing),
    // which would otherwise land on one side of the comparison.
    let per_block = samples.div_ceil(BLOCKS).max(1);
    let measured = (|| -> io::Result<(Vec<u64>, Vec<u64>, Vec<OwnedFd>)> {
        sys::raise_nofile(many as u64 + 1024)?;
        let total = total_pages()?;
        let first = device::open_many(1, |index| Some(far_used(total, index)))?;
        let (mut one, mut with_many) = (Vec::new(), Vec::new());
        let mut files = Vec::new();
        for _ in 0..BLOCKS {
            // Closes the previous block's files.
            files.clear();
            std::thread::sleep(Duration::from_millis(1000));
            one.extend(eval_samples(per_block)?);
            files = device::open_many(many - 1, |index| Some(far_used(total, index + 1)))?;
            std::thread::sleep(Duration::from_millis(1000));
            with_many.extend(eval_samples(per_block)?);
        }
        one.truncate(samples);
        with_many.truncate(samples);
        let mut all = first;
        all.append(&mut files);
        Ok((one, with_many, all))
    })();
    match measured {
        Ok((one, with_many, files)) => {
            kept = files;
            figures.push(
                Figure::new("eval_ns_1", median(&floats(&one)), "ns", one.len(), note(1))
                    .with_samples(&floats(&one)),
            );
            figures.push(
                Figure::new(
                    "eval_ns_10000",
                    median(&floats(&with_many)),
                    "ns",
                    with_many.len(),
                    note(many),
                )
                .with_samples(&floats(&with_many)),
            );
        }
        Err(error) => {
            for key in ["eval_ns_1", "eval_ns_10000"] {
                figures.push(Figure::missing(key, "ns", format!("failed: {error}")));
            }
        }
    }
    drop(guard);
    (figures, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_thresholds_are_distinct_and_at_90_percent() {
        assert_eq!(far_used(1000, 0), "used 900");
        assert_eq!(far_used(1000, 7), "used 907");
    }
}

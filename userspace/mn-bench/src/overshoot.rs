//! Overshoot: a child allocates at a fixed rate; each notifier watches MemAvailable fall
//! past the same threshold; how much the child had allocated beyond the threshold when
//! the notifier noticed.
//!
//! memnotify, a 100 ms /proc/meminfo poller and a PSI trigger watch the same trials side
//! by side (threads of this process, each taking the time when its wait returns); earlyoom
//! gets trials of its own, because it ends them: it noticed when its SIGTERM reached the
//! child.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::device;
use crate::earlyoom::{self, Earlyoom};
use crate::hoglog::{self, HogLog};
use crate::meminfo::field_kib;
use crate::memory::mem_available_kib;
use crate::report::Figure;
use crate::stats::median;
use std::os::fd::OwnedFd;

use rustix::event::PollFlags;
use rustix::fs::{Mode, OFlags};
use rustix::process::{Pid, Signal};

use crate::sys::{self, context};

const MIB: u64 = 1 << 20;

/// The load and the threshold of every trial.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Allocation rate, bytes per second.
    pub rate: u64,
    /// Bytes touched at a time.
    pub chunk: u64,
    /// The threshold lies this many bytes of MemAvailable below its value at the start.
    pub distance: u64,
    /// The child stops this far beyond the threshold if nothing stopped it.
    pub beyond: u64,
}

pub const PLAN: Plan = Plan {
    rate: 64 * MIB,
    // 64 KiB every millisecond: close to a steady stream, so that what was allocated
    // at a moment does not jump by whole megabytes.
    chunk: 64 << 10,
    distance: 64 * MIB,
    beyond: 128 * MIB,
};

/// The poller's period.
const POLL_PERIOD: Duration = Duration::from_millis(100);
/// The period of the reference reader that dates the crossing itself.
const ORACLE_PERIOD: Duration = Duration::from_millis(2);
/// PSI's trigger: 10 ms of "some" stall within the smallest window the kernel allows.
const PSI_TRIGGER: &str = "some 10000 500000";
const PSI: &str = "/proc/pressure/memory";

/// The load generator, started and waiting for `go`.
struct Hog {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Hog {
    fn spawn(plan: &Plan) -> std::io::Result<Hog> {
        let mut child = Command::new("/proc/self/exe")
            .arg("hog")
            .args(["--rate", &plan.rate.to_string()])
            .args(["--chunk", &plan.chunk.to_string()])
            .args(["--limit", &(plan.distance + plan.beyond).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut ready = String::new();
        stdout.read_line(&mut ready)?;
        if ready.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(format!(
                "hog said {ready:?} instead of ready"
            )));
        }
        Ok(Hog {
            child,
            stdin,
            stdout,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn go(&mut self) -> std::io::Result<()> {
        self.stdin.write_all(b"go\n")?;
        self.stdin.flush()
    }

    fn finish(mut self) -> Result<HogLog, String> {
        let mut text = String::new();
        self.stdout
            .read_to_string(&mut text)
            .map_err(|error| format!("reading the hog's log: {error}"))?;
        let status = self.child.wait().map_err(|error| error.to_string())?;
        if !status.success() {
            return Err(format!("hog failed: {status}"));
        }
        hoglog::parse(&text)
    }
}

/// A notifier thread's result: when it noticed (if it did), and the lowest MemAvailable
/// it saw (the poller only).
type Watcher = JoinHandle<std::io::Result<(Option<u64>, Option<u64>)>>;

/// Waits on memnotify: `available` below the threshold.
fn watch_memnotify(threshold_kib: u64, stop: Arc<AtomicBool>) -> std::io::Result<Watcher> {
    let fd = device::open()?;
    device::arm(&fd, &format!("available {threshold_kib}K"))?;
    device::read_line(&fd)?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if sys::poll(&fd, PollFlags::IN, Duration::from_millis(50))? {
                return Ok((Some(sys::now_ns()), None));
            }
        }
        Ok((None, None))
    }))
}

/// Reads /proc/meminfo, sleeping `period` after each read as a polling daemon does (a
/// stalled poller does not catch up with a burst of reads), until MemAvailable is below
/// the threshold; keeps reading afterwards to report the lowest value seen.
fn watch_poller(
    threshold_kib: u64,
    period: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Watcher> {
    let fd = rustix::fs::open(
        "/proc/meminfo",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| context("open /proc/meminfo", errno))?;
    Ok(std::thread::spawn(move || {
        let mut buf = vec![0u8; 16384];
        let mut noticed = None;
        let mut lowest = u64::MAX;
        while !stop.load(Ordering::SeqCst) {
            let n = rustix::io::pread(&fd, &mut buf, 0).map_err(|errno| context("pread", errno))?;
            let available = field_kib(&buf[..n], "MemAvailable")
                .ok_or_else(|| std::io::Error::other("no MemAvailable"))?;
            lowest = lowest.min(available);
            if noticed.is_none() && available < threshold_kib {
                noticed = Some(sys::now_ns());
            }
            let next = sys::now_ns() + period.as_nanos() as u64;
            loop {
                let now = sys::now_ns();
                if now >= next || stop.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_nanos((next - now).min(50_000_000)));
            }
        }
        Ok((noticed, Some(lowest)))
    }))
}

/// Creates the PSI trigger (before the trial starts) and waits on it.
fn watch_psi(stop: Arc<AtomicBool>) -> std::io::Result<Watcher> {
    let fd: OwnedFd = rustix::fs::open(
        PSI,
        OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| context(format_args!("open {PSI}"), errno))?;
    // The kernel replaces the last byte written with a NUL: send it one.
    crate::device::write_all_at_once(&fd, format!("{PSI_TRIGGER}\0").as_bytes())?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if sys::poll(&fd, PollFlags::PRI, Duration::from_millis(50))? {
                return Ok((Some(sys::now_ns()), None));
            }
        }
        Ok((None, None))
    }))
}

/// What one notifier saw over the trials.
#[derive(Default)]
struct Tally {
    overshoot_kib: Vec<f64>,
    lag_ms: Vec<f64>,
    errors: Vec<String>,
}

impl Tally {
    /// One trial: the threshold was crossed at `crossed` (the oracle's time).
    fn record(&mut self, log: &HogLog, crossed: u64, noticed: Option<u64>) {
        let Some(at) = noticed else {
            return;
        };
        self.overshoot_kib
            .push(log.overshoot_kib(log.allocated_at(crossed), at));
        self.lag_ms.push((at as f64 - crossed as f64) / 1e6);
    }

    fn figure(&self, key: &str, trials: usize, what: &str, setting: &str) -> Figure {
        if self.overshoot_kib.is_empty() {
            let mut reason = format!("{what} never noticed in {trials} trials");
            if !self.errors.is_empty() {
                reason = format!("{reason}: {}", self.errors.join("; "));
            }
            return Figure::missing(key, "KiB", format!("{reason}; {setting}"));
        }
        let min = self
            .overshoot_kib
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let max = self
            .overshoot_kib
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let mut note = format!(
            "{what}; median (range {min:.0}..{max:.0} KiB), noticed {} ms after the threshold; {} of {trials} trials noticed",
            median(&self.lag_ms).map_or("?".to_string(), |ms| format!("{ms:.1}")),
            self.overshoot_kib.len(),
        );
        if !self.errors.is_empty() {
            note = format!("{note} (failed trials: {})", self.errors.join("; "));
        }
        Figure::new(
            key,
            median(&self.overshoot_kib),
            "KiB",
            self.overshoot_kib.len(),
            format!("{note}; {setting}"),
        )
        .with_samples(&self.overshoot_kib)
    }
}

impl Tally {
    /// How long after the crossing the notifier noticed, as its own figure: unlike
    /// kilobytes it does not depend on the load's pace.
    fn notice(&self, key: &str, what: &str) -> Figure {
        if self.lag_ms.is_empty() {
            return Figure::missing(key, "ms", format!("{what} never noticed"));
        }
        Figure::new(
            key,
            median(&self.lag_ms),
            "ms",
            self.lag_ms.len(),
            format!("{what}: time from the crossing to noticing; median of the same trials"),
        )
        .with_samples(&self.lag_ms)
    }
}

/// A watcher's result; its failure goes into `tally`.
fn join(watcher: Option<Watcher>, tally: &mut Tally) -> (Option<u64>, Option<u64>) {
    let Some(watcher) = watcher else {
        return (None, None);
    };
    match watcher.join() {
        Ok(Ok(result)) => result,
        Ok(Err(error)) => {
            tally.errors.push(error.to_string());
            (None, None)
        }
        Err(_) => {
            tally.errors.push("watcher panicked".to_string());
            (None, None)
        }
    }
}

/// How long the notifiers run before the load starts in trial `trial` of `trials`: 300 ms
/// to settle, plus a share of the pollers' 100 ms period spread evenly over the trials,
/// so that the crossing falls at every phase of their cycle rather than at the same one.
fn settle(trial: usize, trials: usize) -> Duration {
    let phase = POLL_PERIOD.as_micros() as u64 * trial as u64 / trials.max(1) as u64;
    Duration::from_millis(300) + Duration::from_micros(phase)
}

/// When the oracle saw MemAvailable below the threshold.
fn crossing(oracle: Watcher) -> Result<u64, String> {
    match oracle.join() {
        Ok(Ok((Some(crossed), _))) => Ok(crossed),
        Ok(Ok((None, lowest))) => Err(format!(
            "MemAvailable never went below the threshold (lowest {} KiB)",
            lowest.unwrap_or(0)
        )),
        Ok(Err(error)) => Err(format!("oracle: {error}")),
        Err(_) => Err("oracle panicked".to_string()),
    }
}

/// The trials of memnotify, the poller and PSI together.
fn notifier_trials(plan: &Plan, trials: usize) -> (Tally, Tally, Tally, Vec<f64>, Option<u64>) {
    let (mut memnotify, mut poller, mut psi) =
        (Tally::default(), Tally::default(), Tally::default());
    let mut rates = Vec::new();
    let mut lowest_available: Option<u64> = None;
    for trial in 0..trials {
        std::thread::sleep(Duration::from_millis(500));
        let trial = (|| -> Result<(), String> {
            let mut hog = Hog::spawn(plan).map_err(|error| format!("hog: {error}"))?;
            let available = mem_available_kib().map_err(|error| error.to_string())?;
            let threshold_kib = available - plan.distance / 1024;
            let stop = Arc::new(AtomicBool::new(false));
            let watchers = [
                watch_memnotify(threshold_kib, stop.clone())
                    .map_err(|error| memnotify.errors.push(error.to_string()))
                    .ok(),
                watch_poller(threshold_kib, POLL_PERIOD, stop.clone())
                    .map_err(|error| poller.errors.push(error.to_string()))
                    .ok(),
                watch_psi(stop.clone())
                    .map_err(|error| psi.errors.push(error.to_string()))
                    .ok(),
            ];
            let oracle = watch_poller(threshold_kib, ORACLE_PERIOD, stop.clone())
                .map_err(|error| format!("oracle: {error}"))?;
            std::thread::sleep(settle(trial, trials));
            hog.go().map_err(|error| format!("hog: {error}"))?;
            let log = hog.finish();
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::SeqCst);
            let [w_memnotify, w_poller, w_psi] = watchers;
            let (n_memnotify, _) = join(w_memnotify, &mut memnotify);
            let (n_poller, lowest) = join(w_poller, &mut poller);
            let (n_psi, _) = join(w_psi, &mut psi);
            let crossed = crossing(oracle)?;
            let log = log?;
            if let Some(lowest) = lowest {
                lowest_available = Some(lowest_available.map_or(lowest, |l| l.min(lowest)));
            }
            if let Some(rate) = log.rate() {
                rates.push(rate);
            }
            memnotify.record(&log, crossed, n_memnotify);
            poller.record(&log, crossed, n_poller);
            psi.record(&log, crossed, n_psi);
            Ok(())
        })();
        if let Err(error) = trial {
            for tally in [&mut memnotify, &mut poller, &mut psi] {
                tally.errors.push(error.clone());
            }
        }
    }
    (memnotify, poller, psi, rates, lowest_available)
}

/// Collects a child's stdout and stderr lines into one channel.
fn collect_output(child: &mut Child) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        let sender = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
    }
    receiver
}

fn earlyoom_trial(
    plan: &Plan,
    earlyoom: &Earlyoom,
    (trial, trials): (usize, usize),
    tally: &mut Tally,
    rates: &mut Vec<f64>,
) -> Result<(), String> {
    let mut hog = Hog::spawn(plan).map_err(|error| format!("hog: {error}"))?;
    let available = mem_available_kib().map_err(|error| error.to_string())?;
    let threshold_kib = available - plan.distance / 1024;
    let mut daemon = earlyoom
        .command(threshold_kib)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("starting {}: {error}", earlyoom.binary))?;
    let output = collect_output(&mut daemon);
    let mut seen = Vec::new();
    let started = loop {
        match output.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => {
                let banner = line.contains("sending SIGTERM when");
                seen.push(line);
                if banner {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let result = (|| {
        if !started {
            return Err(format!("earlyoom did not start: {:?}", seen.join(" | ")));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let oracle = watch_poller(threshold_kib, ORACLE_PERIOD, stop.clone())
            .map_err(|error| format!("oracle: {error}"))?;
        std::thread::sleep(settle(trial, trials));
        let pid = hog.pid();
        hog.go().map_err(|error| format!("hog: {error}"))?;
        let log = hog.finish();
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::SeqCst);
        let crossed = crossing(oracle)?;
        let log = log?;
        seen.extend(output.try_iter());
        if log.term_ns.is_some() && !earlyoom::killed(&seen.join("\n"), pid) {
            return Err(format!(
                "SIGTERM from elsewhere: earlyoom said {:?}",
                seen.join(" | ")
            ));
        }
        if let Some(rate) = log.rate() {
            rates.push(rate);
        }
        tally.record(&log, crossed, log.term_ns);
        Ok(())
    })();
    if let Some(pid) = Pid::from_raw(daemon.id() as i32) {
        let _ = rustix::process::kill_process(pid, Signal::TERM);
    }
    let _ = daemon.wait();
    result
}

fn mib_per_s(rates: &[f64]) -> String {
    median(rates).map_or("?".to_string(), |rate| format!("{:.1}", rate / MIB as f64))
}

pub fn overshoot(
    plan: &Plan,
    trials: usize,
    earlyoom_trials: usize,
    earlyoom: Option<&Earlyoom>,
    earlyoom_missing: &str,
) -> Vec<Figure> {
    let load = format!(
        "load: {} MiB/s in {} KiB touched chunks (achieved {{rate}} MiB/s), started at phases spread over 100 ms; threshold: MemAvailable {} MiB below its start value; crossing dated by a {} ms /proc/meminfo reader",
        plan.rate / MIB,
        plan.chunk / 1024,
        plan.distance / MIB,
        ORACLE_PERIOD.as_millis()
    );
    let (memnotify, poller, psi, rates, lowest) = notifier_trials(plan, trials);
    let load_notifiers = load.replace("{rate}", &mib_per_s(&rates));
    let mut figures = vec![
        memnotify.figure(
            "overshoot_kib_memnotify",
            trials,
            "memnotify: poll() on a file armed with `available <threshold>K`",
            &load_notifiers,
        ),
        poller.figure(
            "overshoot_kib_poll_100ms",
            trials,
            "a thread reading /proc/meminfo and sleeping 100 ms after each read",
            &load_notifiers,
        ),
    ];
    let mut psi_figure = psi.figure(
        "overshoot_kib_psi",
        trials,
        &format!(
            "PSI trigger `{PSI_TRIGGER}` on /proc/pressure/memory (500 ms is the smallest window)"
        ),
        &load_notifiers,
    );
    if psi_figure.value.is_none() && psi.errors.is_empty() {
        psi_figure.note = format!(
            "PSI trigger `{PSI_TRIGGER}` never fired in {trials} trials: allocating up to {} MiB beyond the threshold caused no memory stall (lowest MemAvailable seen {} MiB); PSI reports stalls, not low memory",
            plan.beyond / MIB,
            lowest.map_or("?".to_string(), |kib| (kib / 1024).to_string())
        );
    }
    figures.push(psi_figure);

    figures.push(memnotify.notice("notice_ms_memnotify", "memnotify"));
    figures.push(poller.notice("notice_ms_poll_100ms", "the 100 ms poller"));
    figures.push(psi.notice("notice_ms_psi", "PSI"));

    let key = "overshoot_kib_earlyoom";
    match earlyoom {
        None => figures.push(Figure::missing(key, "KiB", earlyoom_missing)),
        Some(earlyoom) => {
            let mut tally = Tally::default();
            let mut rates = Vec::new();
            for trial in 0..earlyoom_trials {
                std::thread::sleep(Duration::from_millis(500));
                let at = (trial, earlyoom_trials);
                if let Err(error) = earlyoom_trial(plan, earlyoom, at, &mut tally, &mut rates) {
                    tally.errors.push(error);
                }
            }
            figures.push(tally.figure(
                key,
                earlyoom_trials,
                &format!(
                    "earlyoom 1.7 `{}`: SIGTERM reaching the load generator",
                    earlyoom::options(0)
                        .join(" ")
                        .replace("-M 0", "-M <threshold KiB>")
                ),
                &load.replace("{rate}", &mib_per_s(&rates)),
            ));
            figures.push(tally.notice("notice_ms_earlyoom", "earlyoom"));
        }
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_spreads_the_start_over_one_poll_period() {
        assert_eq!(settle(0, 10), Duration::from_millis(300));
        assert_eq!(settle(5, 10), Duration::from_millis(350));
        assert_eq!(settle(9, 10), Duration::from_millis(390));
        assert_eq!(settle(0, 0), Duration::from_millis(300));
    }
}

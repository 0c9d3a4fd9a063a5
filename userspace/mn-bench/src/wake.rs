//! Wake-up latency: from the evaluation that detected a crossing (the event line's
//! `time`) to a client's return from poll, for one client and for 10,000 at once.

use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use memnotify_proto::Figure as Fig;

use crate::device;
use crate::report::Figure;
use crate::stats::{median, percentile};
use std::os::fd::OwnedFd;

use rustix::event::epoll::{self, Event, EventData, EventFlags};
use rustix::event::PollFlags;

use crate::sys::{self, context, Region};

/// How far above the current `used` a trial arms its threshold, in pages: beyond the
/// figure's idle jitter, well inside the fast-sampling band (1/64 of RAM).
const MARGIN_PAGES: u64 = 64;

/// Pages the allocator touches per step, and the pause between steps: 64 MiB/s.
const STEP_PAGES: usize = 16;
const STEP_PAUSE: Duration = Duration::from_millis(1);
/// The allocator never goes beyond this.
const ALLOCATOR_CAP: usize = 64 << 20;

/// A thread that, after a short pause (so the waiter is already asleep in poll), makes
/// pages resident step by step until told to stop, then frees them. It keeps going
/// rather than allocating a fixed amount because an allocation served from the per-CPU
/// free lists does not lower MemFree, so a fixed small amount may never cross.
fn allocate_until_released() -> (mpsc::Sender<()>, JoinHandle<io::Result<()>>) {
    let (release, released) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || -> io::Result<()> {
        std::thread::sleep(Duration::from_millis(20));
        let mut region = Region::reserve(ALLOCATOR_CAP)?;
        let step = STEP_PAGES * rustix::param::page_size();
        let mut done = 0;
        loop {
            if done < region.len() {
                region.touch(done, done + step);
                done += step;
            }
            match released.recv_timeout(STEP_PAUSE) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => break,
            }
        }
        drop(region);
        Ok(())
    });
    (release, thread)
}

fn join(release: mpsc::Sender<()>, thread: JoinHandle<io::Result<()>>) -> io::Result<()> {
    let _ = release.send(());
    thread
        .join()
        .map_err(|_| io::Error::other("allocator thread panicked"))?
}

enum Outcome {
    Latency(f64),
    /// The threshold crossed before the allocation (the figure jittered): not a wake-up.
    Early,
    /// No event within the timeout.
    Missed,
    /// The line's time is after poll returned: a later evaluation's (see the report).
    LaterEvaluation,
}

fn latency_trial() -> io::Result<Outcome> {
    let fd = device::open()?;
    let used = device::sample(&fd)?.figures.get(Fig::Used);
    device::arm(&fd, &format!("used {}", used + MARGIN_PAGES))?;
    device::read_line(&fd)?;
    std::thread::sleep(Duration::from_millis(30));
    if sys::poll(&fd, PollFlags::IN, Duration::ZERO)? {
        return Ok(Outcome::Early);
    }
    let (release, thread) = allocate_until_released();
    let woke = sys::poll(&fd, PollFlags::IN, Duration::from_secs(2))?;
    let returned = sys::now_ns();
    let line = if woke { device::read_line(&fd)? } else { None };
    join(release, thread)?;
    drop(fd);
    std::thread::sleep(Duration::from_millis(20));
    Ok(match line {
        None => Outcome::Missed,
        Some(line) if line.time_ns > returned => Outcome::LaterEvaluation,
        Some(line) => Outcome::Latency((returned - line.time_ns) as f64 / 1000.0),
    })
}

pub fn latency(trials: usize) -> Vec<Figure> {
    let mut latencies = Vec::with_capacity(trials);
    let (mut early, mut missed, mut later) = (0, 0, 0);
    for _ in 0..trials {
        match latency_trial() {
            Ok(Outcome::Latency(us)) => latencies.push(us),
            Ok(Outcome::Early) => early += 1,
            Ok(Outcome::Missed) => missed += 1,
            Ok(Outcome::LaterEvaluation) => later += 1,
            Err(error) => {
                let reason = format!("failed after {} trials: {error}", latencies.len());
                return vec![
                    Figure::missing("wake_latency_us_p50", "us", reason.clone()),
                    Figure::missing("wake_latency_us_p99", "us", reason),
                ];
            }
        }
    }
    let note = format!(
        "poll() on one file armed {MARGIN_PAGES} pages above `used`, crossed by another thread touching {STEP_PAGES} pages every {} ms; now − event time at poll return; {} of {trials} trials counted ({early} crossed before the allocation, {missed} without event, {later} read a later evaluation's time)",
        STEP_PAUSE.as_millis(),
        latencies.len()
    );
    vec![
        Figure::new(
            "wake_latency_us_p50",
            median(&latencies),
            "us",
            latencies.len(),
            note.clone(),
        ),
        Figure::new(
            "wake_latency_us_p99",
            percentile(&latencies, 99.0),
            "us",
            latencies.len(),
            "nearest-rank 99th percentile of the same trials".to_string(),
        ),
    ]
}

/// Fills `events` with ready entries, retrying on EINTR; returns how many (0 on timeout).
fn wait(epoll: &OwnedFd, events: &mut [Event], timeout: Duration) -> io::Result<usize> {
    let timeout = sys::timespec(timeout);
    loop {
        match epoll::wait(epoll, &mut *events, Some(&timeout)) {
            Err(rustix::io::Errno::INTR) => continue,
            result => return result.map_err(|errno| context("epoll_wait", errno)),
        }
    }
}

/// Reads every pending line, so that no file is readable.
fn drain(files: &[OwnedFd], epoll: &OwnedFd, events: &mut [Event]) -> io::Result<()> {
    for fd in files {
        device::read_line(fd)?;
    }
    loop {
        let n = wait(epoll, events, Duration::ZERO)?;
        if n == 0 {
            return Ok(());
        }
        for event in &events[..n] {
            device::read_line(&files[event.data.u64() as usize])?;
        }
    }
}

/// `last_eval_ns` of the evaluation that started at `time`, once its statistics are
/// stored (just after it releases the lock a reader waits on); `None` if a later
/// evaluation has already replaced them.
fn delivering_cost(time: u64) -> io::Result<Option<u64>> {
    let pause = Duration::from_micros(50);
    for _ in 0..2000 {
        let stored = device::stat("last_eval_time_ns")?;
        if stored > time {
            return Ok(None);
        }
        if stored == time {
            // The cost is stored right after the time.
            std::thread::sleep(pause);
            let cost = device::stat("last_eval_ns")?;
            return Ok((device::stat("last_eval_time_ns")? == time).then_some(cost));
        }
        std::thread::sleep(pause);
    }
    Ok(None)
}

/// What one wake-all trial measured.
struct WakeAll {
    /// From the event's time to the last file seen readable.
    last_us: f64,
    /// From the event's time to the first.
    first_us: f64,
    /// The cost of the evaluation that delivered the events, if it was still the last.
    eval_ns: Option<u64>,
}

/// One trial: arm every file just above `used`, cross, and time until the last one is
/// seen readable; `None` if the line read at the first wake-up carried a later
/// evaluation's time.
fn wake_all_trial(
    files: &[OwnedFd],
    epoll: &OwnedFd,
    events: &mut [Event],
) -> io::Result<Option<WakeAll>> {
    let used = device::sample(&files[0])?.figures.get(Fig::Used);
    let thresholds = format!("used {}", used + MARGIN_PAGES);
    for fd in files {
        device::arm(fd, &thresholds)?;
    }
    drain(files, epoll, events)?;
    std::thread::sleep(Duration::from_millis(50));
    let mut seen = vec![false; files.len()];
    let mut count = 0;
    let mut first: Option<(u64, u64, Option<u64>)> = None;
    let mut last = 0;
    let (release, thread) = allocate_until_released();
    let deadline = sys::now_ns() + 10_000_000_000;
    while count < files.len() {
        let left = deadline.saturating_sub(sys::now_ns());
        let n = wait(epoll, events, Duration::from_nanos(left))?;
        let now = sys::now_ns();
        if n == 0 {
            break;
        }
        for event in &events[..n] {
            let index = event.data.u64() as usize;
            if !seen[index] {
                seen[index] = true;
                count += 1;
                last = now;
            }
        }
        if first.is_none() {
            let index = events[0].data.u64() as usize;
            let line = device::read_line(&files[index])?
                .ok_or_else(|| io::Error::other("readable file read EOF"))?;
            first = Some((now, line.time_ns, delivering_cost(line.time_ns)?));
        }
    }
    join(release, thread)?;
    // Let the figure fall back (another crossing) and clear it before the next trial.
    std::thread::sleep(Duration::from_millis(200));
    drain(files, epoll, events)?;
    if count < files.len() {
        return Err(io::Error::other(format!(
            "only {count} of {} files woken within 10 s",
            files.len()
        )));
    }
    let (first_seen, time, cost) = first.expect("set with the first event");
    if time > first_seen {
        return Ok(None);
    }
    Ok(Some(WakeAll {
        last_us: (last - time) as f64 / 1000.0,
        first_us: (first_seen - time) as f64 / 1000.0,
        eval_ns: cost,
    }))
}

/// The wake-all trials' results.
#[derive(Default)]
struct WakeAllTally {
    last_us: Vec<f64>,
    first_us: Vec<f64>,
    eval_ns: Vec<f64>,
    /// Trials whose first line carried a later evaluation's time.
    later: usize,
}

/// `wake_all_10000_us` over `files` (already open), in one edge-triggered epoll set.
pub fn wake_all(files: &[OwnedFd], trials: usize) -> Vec<Figure> {
    let key = "wake_all_10000_us";
    if files.len() != crate::MANY {
        return vec![Figure::missing(
            key,
            "us",
            format!("{} files open instead of {}", files.len(), crate::MANY),
        )];
    }
    let measured = (|| -> io::Result<WakeAllTally> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)
            .map_err(|errno| context("epoll_create1", errno))?;
        for (index, fd) in files.iter().enumerate() {
            epoll::add(
                &epoll,
                fd,
                EventData::new_u64(index as u64),
                EventFlags::IN | EventFlags::ET,
            )
            .map_err(|errno| context("epoll_ctl ADD", errno))?;
        }
        let empty = Event {
            flags: EventFlags::empty(),
            data: EventData::new_u64(0),
        };
        let mut events = vec![empty; files.len()];
        let mut tally = WakeAllTally::default();
        for _ in 0..trials {
            match wake_all_trial(files, &epoll, &mut events)? {
                Some(trial) => {
                    tally.last_us.push(trial.last_us);
                    tally.first_us.push(trial.first_us);
                    tally.eval_ns.extend(trial.eval_ns.map(|ns| ns as f64));
                }
                None => tally.later += 1,
            }
        }
        Ok(tally)
    })();
    match measured {
        Ok(tally) => vec![
            Figure::new(
                key,
                median(&tally.last_us),
                "us",
                tally.last_us.len(),
                format!(
                    "{} files armed at the same `used` threshold in one epoll set (EPOLLET); event time to the last file seen readable; median of {} trials ({} discarded: later evaluation's time)",
                    files.len(),
                    tally.last_us.len(),
                    tally.later
                ),
            )
            .with_samples(&tally.last_us),
            Figure::new(
                "wake_first_of_10000_us",
                median(&tally.first_us),
                "us",
                tally.first_us.len(),
                "the same trials: event time to the first file seen readable".to_string(),
            ),
            Figure::new(
                "eval_ns_deliver_10000",
                median(&tally.eval_ns),
                "ns",
                tally.eval_ns.len(),
                "the same trials: last_eval_ns of the evaluation that delivered the 10,000 events".to_string(),
            ),
        ],
        Err(error) => vec![Figure::missing(key, "us", format!("failed: {error}"))],
    }
}

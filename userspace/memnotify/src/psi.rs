//! The PSI fallback: a trigger on `/proc/pressure/memory` wakes us when tasks
//! stall on memory, and `/proc/meminfo` gives the figures. Thresholds are
//! evaluated here with the module's own state machine; between PSI events the
//! figures are sampled with the module's adaptive period, so a threshold is
//! also seen when memory fills up without stalls.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use memnotify_proto::{
    speed_pages_per_s, Figure, Figures, Level, Levels, Observation, Sampling, Snapshot, Thresholds,
    Units, Watch, DEFAULT_CRITICAL_PCT, DEFAULT_LOW_PCT,
};
use rustix::event::PollFlags;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::backend::{Backend, BackendKind, Options};
use crate::error::Error;
use crate::event::Event;
use crate::meminfo;

/// The system-wide memory pressure file.
pub const PSI_MEMORY_PATH: &str = "/proc/pressure/memory";
/// The meminfo file.
pub const MEMINFO_PATH: &str = "/proc/meminfo";

/// The sampling bounds between PSI events (the module's defaults are 10/1000 ms;
/// reading `/proc/meminfo` costs more than the module's counters, hence 100).
const SAMPLING: Sampling = Sampling {
    fast_ms: 100,
    slow_ms: 1000,
    // A process watching for itself has no other users' files to bound.
    limited_ms: 100,
};

/// A PSI trigger: wake when tasks stalled `stall_us` within `window_us`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PsiTrigger {
    /// Stall time in microseconds (at most the window).
    pub stall_us: u32,
    /// Window in microseconds (the kernel takes 500 ms to 10 s).
    pub window_us: u32,
}

impl Default for PsiTrigger {
    /// 150 ms of stall in 2 s: a 2 s window is also allowed for unprivileged users.
    fn default() -> Self {
        PsiTrigger {
            stall_us: 150_000,
            window_us: 2_000_000,
        }
    }
}

/// The kernel's window bounds for PSI triggers.
const WINDOW_MIN_US: u32 = 500_000;
const WINDOW_MAX_US: u32 = 10_000_000;

/// The bytes to write to `/proc/pressure/memory` for `trigger`, NUL included.
///
/// The kernel copies the write into a buffer and parses it with `sscanf`; the
/// terminating NUL is part of the documented usage (`strlen(trig) + 1`).
pub fn psi_trigger(trigger: PsiTrigger) -> Result<Vec<u8>, Error> {
    if !(WINDOW_MIN_US..=WINDOW_MAX_US).contains(&trigger.window_us) {
        return Err(Error::PsiParameters(
            "the window must be between 500000 and 10000000 us",
        ));
    }
    if trigger.stall_us == 0 || trigger.stall_us > trigger.window_us {
        return Err(Error::PsiParameters(
            "the stall must be more than 0 and at most the window",
        ));
    }
    let mut bytes = format!("some {} {}", trigger.stall_us, trigger.window_us).into_bytes();
    bytes.push(0);
    Ok(bytes)
}

/// A PSI trigger plus `/proc/meminfo`.
pub struct Psi {
    trigger_fd: OwnedFd,
    meminfo_path: PathBuf,
    units: Units,
    watch: Watch,
    levels: Levels,
    level: Level,
    seq: u64,
    last: Option<(u64, Figures)>,
    speed: u64,
    buf: Box<[u8; 16384]>,
}

impl Psi {
    /// Opens the default paths.
    pub fn open() -> Result<Psi, Error> {
        Psi::open_with(&Options::default())
    }

    /// Creates the trigger described by `options` and takes a first sample.
    pub fn open_with(options: &Options) -> Result<Psi, Error> {
        let trigger = psi_trigger(options.psi_trigger)?;
        let trigger_fd = open_trigger(&options.psi_path, &trigger)?;
        let mut psi = Psi {
            trigger_fd,
            meminfo_path: options.meminfo_path.clone(),
            units: Units {
                page_shift: crate::page_shift(),
                total_pages: 0,
            },
            watch: Watch::default(),
            levels: Levels {
                low: 0,
                critical: 0,
                hysteresis: 0,
            },
            level: Level::Normal,
            seq: 0,
            last: None,
            speed: 0,
            buf: Box::new([0; 16384]),
        };
        let first = psi.sample()?;
        let total = first.figures.get(Figure::Total);
        psi.units.total_pages = total;
        // The module's default levels, computed the way the module does.
        psi.levels = Levels::from_percent(total, DEFAULT_LOW_PCT, DEFAULT_CRITICAL_PCT);
        Ok(psi)
    }

    fn read_figures(&mut self) -> Result<Figures, Error> {
        let text = read_small(&self.meminfo_path, &mut self.buf[..])?;
        meminfo::figures(text, self.units.page_shift)
    }
}

fn open_trigger(path: &Path, trigger: &[u8]) -> Result<OwnedFd, Error> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| match errno {
        Errno::NOENT => Error::PsiMissing,
        Errno::OPNOTSUPP => Error::PsiDisabled,
        other => Error::io(format!("opening {}", path.display()), other.into()),
    })?;
    let shown = String::from_utf8_lossy(&trigger[..trigger.len() - 1]).into_owned();
    match rustix::io::write(&fd, trigger) {
        Ok(_) => Ok(fd),
        Err(Errno::OPNOTSUPP) => Err(Error::PsiDisabled),
        Err(errno) => Err(Error::PsiRejected {
            trigger: shown,
            source: errno.into(),
        }),
    }
}

/// Reads a small procfs file whole into `buf` without allocating.
fn read_small<'a>(path: &Path, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
    let context = || format!("reading {}", path.display());
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|errno| Error::io(context(), errno.into()))?;
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(read) => len += read,
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(Error::io(context(), errno.into())),
        }
    }
    Ok(&buf[..len])
}

impl AsFd for Psi {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.trigger_fd.as_fd()
    }
}

impl Backend for Psi {
    fn kind(&self) -> BackendKind {
        BackendKind::Psi
    }

    fn units(&self) -> Units {
        self.units
    }

    fn sample(&mut self) -> Result<Snapshot, Error> {
        let figures = self.read_figures()?;
        let now = crate::monotonic_ns();
        if let Some((then, previous)) = self.last {
            self.speed = speed_pages_per_s(&previous, &figures, now.saturating_sub(then));
        }
        self.last = Some((now, figures));
        self.level = self
            .levels
            .level(figures.get(Figure::Available), self.level);
        Ok(Snapshot {
            figures,
            seq: self.seq,
            time_ns: now,
            level: self.level.as_u8(),
        })
    }

    fn set_thresholds(&mut self, thresholds: &Thresholds) -> Result<(), Error> {
        let now = self.sample()?;
        self.watch = Watch::new(*thresholds, &now.figures);
        Ok(())
    }

    fn thresholds(&self) -> Thresholds {
        self.watch.thresholds()
    }

    fn poll_flags(&self) -> PollFlags {
        PollFlags::PRI
    }

    fn timeout(&self) -> Option<Duration> {
        let figures = self.last.map(|(_, figures)| figures).unwrap_or_default();
        let ms = SAMPLING.plan(&Observation {
            figures: &figures,
            speed_pages_per_s: self.speed,
            nearest_trigger: self.last.and(self.watch.nearest(&figures)),
            nearest_limited: None,
            default_levels: None,
            kicked: false,
        });
        Some(Duration::from_millis(ms))
    }

    fn check(&mut self) -> Result<Option<Event>, Error> {
        let snapshot = self.sample()?;
        let Some(mut event) = Event::from_watch(&mut self.watch, snapshot) else {
            return Ok(None);
        };
        self.seq += 1;
        event.snapshot.seq = self.seq;
        Ok(Some(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trigger_text_ends_in_nul() {
        let bytes = psi_trigger(PsiTrigger {
            stall_us: 150_000,
            window_us: 1_000_000,
        })
        .unwrap();
        assert_eq!(bytes, b"some 150000 1000000\0");
    }

    #[test]
    fn trigger_bounds_are_the_kernels() {
        let bad = |stall_us, window_us| {
            psi_trigger(PsiTrigger {
                stall_us,
                window_us,
            })
            .is_err()
        };
        assert!(bad(100_000, 499_999));
        assert!(bad(100_000, 10_000_001));
        assert!(bad(0, 1_000_000));
        assert!(bad(1_000_001, 1_000_000));
        assert!(!bad(500_000, 500_000));
        assert!(!bad(1, 10_000_000));
    }

    proptest! {
        #[test]
        fn valid_triggers_format_as_the_kernel_parses(
            window_us in WINDOW_MIN_US..=WINDOW_MAX_US,
            share in 1u32..=1000,
        ) {
            let stall_us = (u64::from(window_us) * u64::from(share) / 1000).max(1) as u32;
            let bytes = psi_trigger(PsiTrigger { stall_us, window_us }).unwrap();
            prop_assert_eq!(bytes.last(), Some(&0));
            prop_assert_eq!(bytes.iter().filter(|&&byte| byte == 0).count(), 1);
            let text = std::str::from_utf8(&bytes[..bytes.len() - 1]).unwrap();
            let words: Vec<&str> = text.split(' ').collect();
            prop_assert_eq!(words.len(), 3);
            prop_assert_eq!(words[0], "some");
            prop_assert_eq!(words[1].parse::<u32>().unwrap(), stall_us);
            prop_assert_eq!(words[2].parse::<u32>().unwrap(), window_us);
        }
    }

    fn fake_proc(name: &str, meminfo: &str) -> (PathBuf, Options) {
        let dir = std::env::temp_dir().join(format!("memnotify-psi-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("meminfo"), meminfo).unwrap();
        std::fs::write(dir.join("memory"), "").unwrap();
        let options = Options {
            psi_path: dir.join("memory"),
            meminfo_path: dir.join("meminfo"),
            ..Options::default()
        };
        (dir, options)
    }

    fn meminfo(available_kib: u64) -> String {
        format!(
            "MemTotal: 400000 kB\nMemFree: 100000 kB\nMemAvailable: {available_kib} kB\nCached: 0 kB\n"
        )
    }

    #[test]
    fn thresholds_are_evaluated_on_meminfo() {
        let (dir, options) = fake_proc("eval", &meminfo(200_000));
        let mut psi = Psi::open_with(&options).unwrap();
        let shift = psi.units().page_shift;
        let thresholds = psi.parse_thresholds("available 25%").unwrap();
        psi.set_thresholds(&thresholds).unwrap();
        assert!(psi.check().unwrap().is_none());
        assert!(psi.timeout().is_some());
        std::fs::write(&options.meminfo_path, meminfo(15_000)).unwrap();
        let event = psi.check().unwrap().expect("available went below 25%");
        let crossing = event.crossings().next().unwrap();
        assert_eq!(crossing.figure, Figure::Available);
        assert_eq!(crossing.direction, crate::Direction::Down);
        assert_eq!(crossing.value, 15_000 >> (shift - 10));
        assert_eq!(event.snapshot.seq, 1);
        // The default level follows available too.
        assert_eq!(event.snapshot.level, Level::Critical.as_u8());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_psi_says_config_psi() {
        let (dir, mut options) = fake_proc("missing", &meminfo(1));
        options.psi_path = dir.join("nonexistent");
        let error = Psi::open_with(&options).err().unwrap();
        assert!(matches!(error, Error::PsiMissing));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The memory source: two device files (one armed with the thresholds above
//! the figures, one with those below) or the PSI fallback.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use memnotify::{Backend, BackendKind, Device, Error, Options, Psi, Snapshot, Thresholds};

/// Where the figures come from.
pub enum Monitor {
    /// `/dev/memnotify`: the module wakes us at the thresholds.
    Device {
        /// Armed with thresholds above the figures.
        upper: Box<Device>,
        /// Armed with thresholds at or below the figures.
        lower: Box<Device>,
        /// What is armed, to write only on change.
        armed: Option<(Thresholds, Thresholds)>,
    },
    /// PSI plus `/proc/meminfo`: woken by stalls, and sampled at the interval.
    Psi(Box<Psi>),
}

impl Monitor {
    /// Opens the backend `kind` (`auto`: the device if it exists, else PSI).
    pub fn open(kind: BackendKind, options: &Options) -> Result<Monitor, Error> {
        let device = || -> Result<Monitor, Error> {
            Ok(Monitor::Device {
                upper: Box::new(Device::open_path(&options.device_path)?),
                lower: Box::new(Device::open_path(&options.device_path)?),
                armed: None,
            })
        };
        let psi =
            || -> Result<Monitor, Error> { Ok(Monitor::Psi(Box::new(Psi::open_with(options)?))) };
        match kind {
            BackendKind::Device => device(),
            BackendKind::Psi => psi(),
            BackendKind::Auto => match device() {
                Err(missing @ Error::DeviceMissing { .. }) => {
                    psi().map_err(|psi| Error::NoBackend {
                        device: Box::new(missing),
                        psi: Box::new(psi),
                    })
                }
                other => other,
            },
        }
    }

    /// `device` or `psi`.
    pub fn kind(&self) -> BackendKind {
        match self {
            Monitor::Device { .. } => BackendKind::Device,
            Monitor::Psi(_) => BackendKind::Psi,
        }
    }

    /// How often to sample when nothing wakes us: the device wakes us at every
    /// threshold, so this is only a safety net; PSI is blind to figures that
    /// move without stalls.
    pub fn default_interval(&self) -> Duration {
        match self {
            Monitor::Device { .. } => Duration::from_secs(2),
            Monitor::Psi(_) => Duration::from_millis(500),
        }
    }

    /// A fresh sample (no allocation).
    pub fn sample(&mut self) -> Result<Snapshot, Error> {
        match self {
            Monitor::Device { upper, .. } => upper.sample(),
            Monitor::Psi(psi) => psi.sample(),
        }
    }

    /// Arms the wake thresholds; returns whether anything was written.
    pub fn arm(&mut self, wanted: (Thresholds, Thresholds)) -> Result<bool, Error> {
        let Monitor::Device {
            upper,
            lower,
            armed,
        } = self
        else {
            return Ok(false);
        };
        if *armed == Some(wanted) {
            return Ok(false);
        }
        upper.set_thresholds(&wanted.0)?;
        lower.set_thresholds(&wanted.1)?;
        *armed = Some(wanted);
        Ok(true)
    }

    /// The descriptors to poll and for what (`libc::POLLIN`/`POLLPRI`).
    pub fn fds(&self) -> [(RawFd, i16); 2] {
        match self {
            Monitor::Device { upper, lower, .. } => [
                (upper.as_fd().as_raw_fd(), libc::POLLIN),
                (lower.as_fd().as_raw_fd(), libc::POLLIN),
            ],
            Monitor::Psi(psi) => [(psi.as_fd().as_raw_fd(), libc::POLLPRI), (-1, 0)],
        }
    }

    /// Consumes pending notifications (the figures are sampled afresh anyway).
    pub fn drain(&mut self) -> Result<(), Error> {
        if let Monitor::Device { upper, lower, .. } = self {
            // Bounded: a read returns one line per event, then nothing.
            for device in [upper, lower] {
                for _ in 0..4 {
                    if device.read_line()?.is_none() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

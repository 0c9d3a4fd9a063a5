//! The interface both backends implement, and how one is chosen.

use std::fmt;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use memnotify_proto::{parse_thresholds, Snapshot, Thresholds, Units};
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::device::{Device, DEVICE_PATH};
use crate::error::Error;
use crate::event::Event;
use crate::psi::{Psi, PsiTrigger, MEMINFO_PATH, PSI_MEMORY_PATH};

/// Which backend to use.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum BackendKind {
    /// `/dev/memnotify`.
    Device,
    /// PSI triggers on `/proc/pressure/memory` plus `/proc/meminfo`.
    Psi,
    /// The device if it exists, PSI otherwise.
    #[default]
    Auto,
}

impl BackendKind {
    /// `device`, `psi` or `auto`.
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::Device => "device",
            BackendKind::Psi => "psi",
            BackendKind::Auto => "auto",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "device" => Ok(BackendKind::Device),
            "psi" => Ok(BackendKind::Psi),
            "auto" => Ok(BackendKind::Auto),
            _ => Err(format!(
                "unknown backend '{text}': expected device, psi or auto"
            )),
        }
    }
}

/// Where the backends find their files, and how PSI is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// The memnotify device.
    pub device_path: PathBuf,
    /// The PSI memory file.
    pub psi_path: PathBuf,
    /// The meminfo file.
    pub meminfo_path: PathBuf,
    /// The PSI trigger.
    pub psi_trigger: PsiTrigger,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            device_path: PathBuf::from(DEVICE_PATH),
            psi_path: PathBuf::from(PSI_MEMORY_PATH),
            meminfo_path: PathBuf::from(MEMINFO_PATH),
            psi_trigger: PsiTrigger::default(),
        }
    }
}

/// A source of memory figures and threshold events.
///
/// The file descriptor from [`AsFd`] becomes ready (for [`Backend::poll_flags`])
/// when an event may be waiting; [`Backend::check`] then says whether one is.
/// Some backends also need [`Backend::check`] to be called after
/// [`Backend::timeout`] even when the descriptor stays quiet.
pub trait Backend: AsFd + Send {
    /// [`BackendKind::Device`] or [`BackendKind::Psi`].
    fn kind(&self) -> BackendKind;

    /// What `K/M/G` and `%` values are relative to.
    fn units(&self) -> Units;

    /// A fresh sample of the figures.
    fn sample(&mut self) -> Result<Snapshot, Error>;

    /// Replaces the thresholds (all zero: none). Setting them is not an event.
    fn set_thresholds(&mut self, thresholds: &Thresholds) -> Result<(), Error>;

    /// The thresholds in force.
    fn thresholds(&self) -> Thresholds;

    /// The readiness to wait for on the descriptor.
    fn poll_flags(&self) -> PollFlags;

    /// The longest wait before [`Backend::check`] must be called anyway (`None`: no limit).
    fn timeout(&self) -> Option<Duration>;

    /// Consumes a readiness notification (or a timeout) and returns the event, if any.
    fn check(&mut self) -> Result<Option<Event>, Error>;

    /// Parses threshold text (`used 60% available 20M`) with this backend's units.
    fn parse_thresholds(&self, text: &str) -> Result<Thresholds, Error> {
        Ok(parse_thresholds(text.as_bytes(), self.units())?)
    }

    /// Waits at most `timeout` (`None`: forever) for an event.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<Option<Event>, Error> {
        let limit = match (timeout, self.timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let ready = wait_ready(self.as_fd(), self.poll_flags(), limit)?;
        if ready || self.timeout().is_some() {
            return self.check();
        }
        Ok(None)
    }
}

/// Waits until `fd` has `flags` or `timeout` passes; true when it is ready.
pub(crate) fn wait_ready(
    fd: std::os::fd::BorrowedFd<'_>,
    flags: PollFlags,
    timeout: Option<Duration>,
) -> Result<bool, Error> {
    poll_ready(fd, flags, timeout).map_err(|error| Error::io("poll", error.into()))
}

/// `poll` on one descriptor: true when `fd` has `flags` (or an error or hang-up) within
/// `timeout` (`None`: no limit), false on timeout or when a signal cut the wait short
/// (the caller decides whether to wait again).
pub fn poll_ready(
    fd: std::os::fd::BorrowedFd<'_>,
    flags: PollFlags,
    timeout: Option<Duration>,
) -> Result<bool, rustix::io::Errno> {
    let mut fds = [PollFd::from_borrowed_fd(fd, flags)];
    let timespec = timeout.map(|limit| Timespec {
        tv_sec: limit.as_secs() as i64,
        tv_nsec: i64::from(limit.subsec_nanos()),
    });
    match rustix::event::poll(&mut fds, timespec.as_ref()) {
        Ok(count) => Ok(count > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Opens the backend `kind` with the default paths.
pub fn open(kind: BackendKind) -> Result<Box<dyn Backend>, Error> {
    open_with(kind, &Options::default())
}

/// Opens the backend `kind`; `Auto` falls back to PSI only when the device does not exist.
pub fn open_with(kind: BackendKind, options: &Options) -> Result<Box<dyn Backend>, Error> {
    match kind {
        BackendKind::Device => Ok(Box::new(Device::open_path(&options.device_path)?)),
        BackendKind::Psi => Ok(Box::new(Psi::open_with(options)?)),
        BackendKind::Auto => match Device::open_path(&options.device_path) {
            Ok(device) => Ok(Box::new(device)),
            Err(device @ Error::DeviceMissing { .. }) => match Psi::open_with(options) {
                Ok(psi) => Ok(Box::new(psi)),
                Err(psi) => Err(Error::NoBackend {
                    device: Box::new(device),
                    psi: Box::new(psi),
                }),
            },
            Err(other) => Err(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip() {
        for kind in [BackendKind::Device, BackendKind::Psi, BackendKind::Auto] {
            assert_eq!(kind.name().parse::<BackendKind>().unwrap(), kind);
        }
        assert!("dev".parse::<BackendKind>().is_err());
    }

    #[test]
    fn auto_reports_both_failures() {
        let options = Options {
            device_path: "/nonexistent/memnotify".into(),
            psi_path: "/nonexistent/pressure".into(),
            ..Options::default()
        };
        let error = open_with(BackendKind::Auto, &options)
            .err()
            .expect("nothing to open");
        let text = error.to_string();
        assert!(text.contains("load the module"), "{text}");
        assert!(text.contains("CONFIG_PSI"), "{text}");
    }
}

//! The `/dev/memnotify` backend.

use std::fmt::Write as _;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use memnotify_proto::{parse_line, Amount, Figure, Snapshot, Thresholds, Units, Watch, LINE_BUF};
use rustix::event::PollFlags;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::backend::{Backend, BackendKind};
use crate::error::Error;
use crate::event::Event;

/// Where the module's misc device lives.
pub const DEVICE_PATH: &str = "/dev/memnotify";

/// An open `/dev/memnotify` file: one set of thresholds, one event queue.
pub struct Device {
    fd: OwnedFd,
    path: String,
    units: Units,
    watch: Watch,
    buf: [u8; LINE_BUF],
}

/// The text written to the device for `thresholds`: every value an
/// [`Amount::Pages`], so no unit is resolved twice. With nothing armed it is
/// `used 0`, which still switches the file from default-level events to thresholds.
pub fn thresholds_write(thresholds: &Thresholds) -> String {
    let mut text = String::new();
    for figure in Figure::ALL {
        if let Some(value) = thresholds.get(figure) {
            let _ = write!(
                text,
                "{}{} {}",
                sep(&text),
                figure.name(),
                Amount::Pages(value)
            );
        }
    }
    if text.is_empty() {
        let _ = write!(text, "{} {}", Figure::Used.name(), Amount::Pages(0));
    }
    if thresholds.hysteresis != 0 {
        let _ = write!(text, " hysteresis {}", Amount::Pages(thresholds.hysteresis));
    }
    text
}

fn sep(text: &str) -> &'static str {
    if text.is_empty() {
        ""
    } else {
        " "
    }
}

impl Device {
    /// Opens [`DEVICE_PATH`].
    pub fn open() -> Result<Device, Error> {
        Device::open_path(Path::new(DEVICE_PATH))
    }

    /// Opens the device at `path` and reads its first line.
    pub fn open_path(path: &Path) -> Result<Device, Error> {
        let shown = path.display().to_string();
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            Errno::NOENT | Errno::NODEV | Errno::NXIO => Error::DeviceMissing {
                path: shown.clone(),
            },
            Errno::ACCESS | Errno::PERM => Error::DevicePermission {
                path: shown.clone(),
            },
            other => Error::io(format!("opening {shown}"), other.into()),
        })?;
        let mut device = Device {
            fd,
            path: shown,
            units: Units {
                page_shift: crate::page_shift(),
                total_pages: 0,
            },
            watch: Watch::default(),
            buf: [0; LINE_BUF],
        };
        // The first read on a file returns a line; take it so that later reads
        // only return events.
        let first = match device.read_line()? {
            Some(snapshot) => snapshot,
            None => device.sample()?,
        };
        device.units.total_pages = first.figures.get(Figure::Total);
        Ok(device)
    }

    /// The device's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `read()`: the line of a pending event (or of the first read after a
    /// write), `None` when nothing is pending.
    pub fn read_line(&mut self) -> Result<Option<Snapshot>, Error> {
        match rustix::io::read(&self.fd, &mut self.buf) {
            Ok(0) | Err(Errno::AGAIN) => Ok(None),
            Ok(len) => Ok(Some(parse_line(&self.buf[..len])?)),
            Err(errno) => Err(Error::io(format!("reading {}", self.path), errno.into())),
        }
    }

    /// Writes raw threshold text; the module checks it (`EINVAL` on error).
    pub fn write_raw(&mut self, text: &[u8]) -> Result<(), Error> {
        match rustix::io::write(&self.fd, text) {
            Ok(_) => Ok(()),
            Err(Errno::INVAL) => Err(Error::ThresholdsRejected {
                text: String::from_utf8_lossy(text).into_owned(),
            }),
            Err(errno) => Err(Error::io(
                format!("writing thresholds to {}", self.path),
                errno.into(),
            )),
        }
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Backend for Device {
    fn kind(&self) -> BackendKind {
        BackendKind::Device
    }

    fn units(&self) -> Units {
        self.units
    }

    /// `pread` at offset 0 always returns a fresh line without touching the event state.
    fn sample(&mut self) -> Result<Snapshot, Error> {
        let len = rustix::io::pread(&self.fd, &mut self.buf, 0)
            .map_err(|errno| Error::io(format!("reading {}", self.path), errno.into()))?;
        Ok(parse_line(&self.buf[..len])?)
    }

    fn set_thresholds(&mut self, thresholds: &Thresholds) -> Result<(), Error> {
        self.write_raw(thresholds_write(thresholds).as_bytes())?;
        // A read after a write returns a fresh line: it is the baseline the
        // local copy of the crossing state machine starts from.
        let now = match self.read_line()? {
            Some(snapshot) => snapshot,
            None => self.sample()?,
        };
        self.watch = Watch::new(*thresholds, &now.figures);
        Ok(())
    }

    fn thresholds(&self) -> Thresholds {
        self.watch.thresholds()
    }

    fn poll_flags(&self) -> PollFlags {
        PollFlags::IN
    }

    fn timeout(&self) -> Option<Duration> {
        None
    }

    fn check(&mut self) -> Result<Option<Event>, Error> {
        let Some(snapshot) = self.read_line()? else {
            return Ok(None);
        };
        // The module evaluates the same state machine; running it here too tells
        // which figure crossed and which way.
        Ok(Event::from_watch(&mut self.watch, snapshot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memnotify_proto::parse_thresholds;

    const UNITS: Units = Units {
        page_shift: 12,
        total_pages: 65536,
    };

    #[test]
    fn writes_resolve_to_pages_and_parse_back() {
        let thresholds = parse_thresholds(b"used 60% available 20M hysteresis 1M", UNITS).unwrap();
        let text = thresholds_write(&thresholds);
        assert_eq!(text, "used 39321 available 5120 hysteresis 256");
        assert_eq!(
            parse_thresholds(text.as_bytes(), UNITS).unwrap(),
            thresholds
        );
    }

    #[test]
    fn nothing_armed_still_writes_something() {
        assert_eq!(thresholds_write(&Thresholds::default()), "used 0");
    }

    #[test]
    fn missing_device_says_load_the_module() {
        let error = Device::open_path(Path::new("/nonexistent/memnotify"))
            .err()
            .unwrap();
        assert!(matches!(error, Error::DeviceMissing { .. }));
        assert!(error.to_string().contains("insmod memnotify.ko"));
    }

    #[test]
    fn reads_lines_from_a_file_standing_in_for_the_device() {
        let dir = std::env::temp_dir().join(format!("memnotify-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("memnotify");
        std::fs::write(
            &path,
            "used 100 active 50 total 1000 free 300 available 600 swap_total 0 swap_free 0 seq 0 time 5 level 0\n",
        )
        .unwrap();
        let mut device = Device::open_path(&path).unwrap();
        assert_eq!(device.units().total_pages, 1000);
        let snapshot = device.sample().unwrap();
        assert_eq!(snapshot.figures.get(Figure::Available), 600);
        assert_eq!(snapshot.time_ns, 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! A typed client of `/dev/memnotify`, with a PSI fallback for stock kernels.
//!
//! Both backends implement [`Backend`]: set [`Thresholds`] (parsed with the same
//! code the module uses, so `20M` or `10%` mean the same on both sides), take a
//! [`Snapshot`] of the figures, and wait for [`Event`]s on a file descriptor that
//! works with `poll`, `epoll` or any async runtime's fd readiness API.
//!
//! ```no_run
//! use memnotify::{open, BackendKind, Backend};
//! let mut backend = open(BackendKind::Auto)?;
//! let thresholds = backend.parse_thresholds("used 60% available 20M")?;
//! backend.set_thresholds(&thresholds)?;
//! loop {
//!     if let Some(event) = backend.wait(None)? {
//!         for crossing in event.crossings() {
//!             println!("{} {} {}", crossing.figure.name(), crossing.direction, crossing.value);
//!         }
//!     }
//! }
//! # Ok::<(), memnotify::Error>(())
//! ```

#![warn(missing_docs)]

mod backend;
mod device;
mod error;
mod event;
pub mod format;
pub mod meminfo;
mod psi;
pub mod signals;
pub mod sysfs;

pub use backend::{open, open_with, poll_ready, Backend, BackendKind, Options};
pub use device::{thresholds_write, Device, DEVICE_PATH};
pub use error::Error;
pub use event::{Crossing, Direction, Event};
pub use psi::{psi_trigger, Psi, PsiTrigger, MEMINFO_PATH, PSI_MEMORY_PATH};

pub use memnotify_proto::{
    parse_line, parse_thresholds, Amount, Figure, Figures, Level, Levels, ParseError, Snapshot,
    Thresholds, Units, FIGURE_COUNT,
};

/// `log2` of the system page size.
pub fn page_shift() -> u32 {
    rustix::param::page_size().trailing_zeros()
}

/// The monotonic clock in nanoseconds (the clock of [`Snapshot::time_ns`]).
pub fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

//! How a kick (an open, a write, reclaim starting) reaches the sampler without being lost
//! to the sampler re-arming itself.
//!
//! The sampler is one delayed work item. A kick marks [`KickFlag`] and makes the work run at
//! once; an evaluation clears the flag before it samples, and when it is done it re-arms the
//! work for the period it planned. That re-arm replaces whatever delay is pending, so a kick
//! that lands after the plan read the flag and before the re-arm would have its immediate run
//! pushed back by a whole period. [`KickFlag::rearm`] looks at the flag again after re-arming
//! and runs at once when such a kick came.

use core::sync::atomic::{AtomicBool, Ordering};

/// The sampler's delayed work as far as kicks go.
pub trait Timer {
    /// Makes the work run `delay_ms` from now, replacing the delay of a pending run (the
    /// kernel's `mod_delayed_work`; a work that is running is queued to run again).
    fn schedule(&self, delay_ms: u64);
}

/// Whether a kick came since the running evaluation started.
#[derive(Debug, Default)]
pub struct KickFlag(AtomicBool);

impl KickFlag {
    /// A flag with no kick.
    pub const fn new() -> KickFlag {
        KickFlag(AtomicBool::new(false))
    }

    /// Asks for an evaluation at once.
    pub fn kick(&self, timer: &impl Timer) {
        self.0.store(true, Ordering::Relaxed);
        timer.schedule(0);
    }

    /// An evaluation starts: it will sample after this, so every kick so far is served by it.
    pub fn begin(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    /// Whether a kick came since [`begin`](Self::begin): the plan then asks for an evaluation
    /// at once (`Observation::kicked`).
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Re-arms the work for the planned `interval_ms`, then runs at once after all when a kick
    /// came after the plan read the flag. (A kick whose own `schedule(0)` comes after ours
    /// stands anyway: the work's lock orders its store before that call.)
    pub fn rearm(&self, timer: &impl Timer, interval_ms: u64) {
        timer.schedule(interval_ms);
        if interval_ms != 0 && self.is_set() {
            timer.schedule(0);
        }
    }
}

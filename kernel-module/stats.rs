// SPDX-License-Identifier: GPL-2.0

//! Operator statistics: counters the module keeps and shows in sysfs, one value per file
//! under `/sys/class/misc/memnotify/statistics/`.

use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::bindings;
use kernel::c_str;
use kernel::ffi::c_char;
use kernel::prelude::*;

use crate::{REGISTRATION, SHARED};

/// Operator statistics, one sysfs file each under
/// `/sys/class/misc/memnotify/statistics/`.
pub(crate) struct Stat {
    pub(crate) name: &'static kernel::str::CStr,
    pub(crate) value: AtomicU64,
}

impl Stat {
    pub(crate) const fn new(name: &'static kernel::str::CStr) -> Self {
        Stat {
            name,
            value: AtomicU64::new(0),
        }
    }
    pub(crate) fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn set(&self, n: u64) {
        self.value.store(n, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

pub(crate) const STAT_COUNT: usize = 10;
pub(crate) static STATS: [Stat; STAT_COUNT] = [
    Stat::new(c_str!("clients")),
    Stat::new(c_str!("evaluations")),
    Stat::new(c_str!("events")),
    Stat::new(c_str!("wakeups")),
    Stat::new(c_str!("last_eval_ns")),
    Stat::new(c_str!("max_eval_ns")),
    Stat::new(c_str!("last_eval_time_ns")),
    Stat::new(c_str!("interval_ms")),
    Stat::new(c_str!("reclaim_kicks")),
    Stat::new(c_str!("rejected_opens")),
];
pub(crate) const CLIENTS: &Stat = &STATS[0];
pub(crate) const EVALUATIONS: &Stat = &STATS[1];
pub(crate) const EVENTS: &Stat = &STATS[2];
pub(crate) const WAKEUPS: &Stat = &STATS[3];
pub(crate) const LAST_EVAL_NS: &Stat = &STATS[4];
pub(crate) const MAX_EVAL_NS: &Stat = &STATS[5];
pub(crate) const LAST_EVAL_TIME_NS: &Stat = &STATS[6];
pub(crate) const INTERVAL_MS: &Stat = &STATS[7];
pub(crate) const RECLAIM_KICKS: &Stat = &STATS[8];
pub(crate) const REJECTED_OPENS: &Stat = &STATS[9];

/// # Safety
///
/// Called by C with the arguments its callback type promises.
pub(crate) unsafe extern "C" fn show_stat(
    _device: *mut bindings::device,
    attribute: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    let shared = SHARED.load(Ordering::Acquire);
    if shared.is_null() {
        return ENODEV.to_errno() as isize;
    }
    let registration = REGISTRATION.load(Ordering::Acquire);
    if registration.is_null() {
        return ENODEV.to_errno() as isize;
    }
    // Only the address of the attributes is needed: no reference is made to the
    // registration, whose misc device C changes under its own lock.
    // SAFETY: the attributes live in `Registration`, which outlives the sysfs files.
    let base = unsafe { ptr::addr_of!((*registration).attributes) } as usize;
    let index = (attribute as usize)
        .checked_sub(base)
        .map(|offset| offset / core::mem::size_of::<bindings::device_attribute>());
    let Some(stat) = index.and_then(|index| STATS.get(index)) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: sysfs hands `show` its PAGE_SIZE buffer; the format takes one `u64`.
    unsafe { bindings::sysfs_emit(buf, c_str!("%llu\n").as_char_ptr(), stat.get()) as isize }
}

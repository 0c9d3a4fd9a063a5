// SPDX-License-Identifier: GPL-2.0

//! Operator statistics: counters the module keeps and shows in sysfs, one value per file
//! under `/sys/class/misc/memnotify/statistics/`.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use kernel::bindings;
use kernel::c_str;
use kernel::ffi::c_char;
use kernel::prelude::*;

use crate::ffi::{CShared, HandedToC};
use crate::{glue, SHARED};

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

/// The sysfs attribute group of the statistics, handed to the misc device. Pinned: C
/// keeps pointers into it.
pub(crate) struct StatsGroup {
    attributes: [bindings::device_attribute; STAT_COUNT],
    attribute_ptrs: [*mut bindings::attribute; STAT_COUNT + 1],
    group: bindings::attribute_group,
    groups: [*const bindings::attribute_group; 2],
}

// SAFETY: `StatsGroup::new` fills the group through a raw pointer before the misc device
// gets it; from then on C reads it, and Rust only takes the address of its attributes
// (`show_stat`).
unsafe impl HandedToC for StatsGroup {}

/// Set while the statistics group exists: `show_stat` finds an attribute's index by its
/// address in the group.
static STATS_GROUP: AtomicPtr<StatsGroup> = AtomicPtr::new(ptr::null_mut());

/// The statistics group, owned by the module; dropping it unpublishes it.
pub(crate) struct Stats(Pin<KBox<CShared<StatsGroup>>>);

impl Stats {
    /// Builds the group of one read-only attribute per statistic.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: all-zero is a valid `device_attribute` (no callbacks).
        let mut attributes: [bindings::device_attribute; STAT_COUNT] =
            unsafe { core::mem::zeroed() };
        for (attribute, stat) in attributes.iter_mut().zip(STATS.iter()) {
            attribute.attr.name = glue::c_str_ptr(stat.name);
            attribute.attr.mode = 0o444;
            glue::set_show(attribute, show_stat);
            // `sysfs_attr_init`: these attributes live in the heap, so lockdep needs them
            // to point at a key in static storage; without it kernfs falls back to the
            // `skey` inside the attribute, which lockdep rejects ("BUG: key … has not
            // been registered!") and then turns itself off.
            #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
            {
                attribute.attr.key = crate::ffi::lock_class!();
            }
        }
        let group = KBox::pin(
            CShared::new(StatsGroup {
                attributes,
                attribute_ptrs: [ptr::null_mut(); STAT_COUNT + 1],
                // SAFETY: all-zero is an empty `attribute_group`.
                group: unsafe { core::mem::zeroed() },
                groups: [ptr::null(); 2],
            }),
            GFP_KERNEL,
        )?;
        let raw = group.get();
        // SAFETY: `raw` points to the pinned group, not yet shared with C; the pointers
        // set here point into the same allocation.
        unsafe {
            for i in 0..STAT_COUNT {
                (*raw).attribute_ptrs[i] = ptr::addr_of_mut!((*raw).attributes[i].attr);
            }
            (*raw).group.name = glue::c_str_ptr(c_str!("statistics"));
            glue::set_attrs(&mut (*raw).group, (*raw).attribute_ptrs.as_mut_ptr());
            (*raw).groups[0] = ptr::addr_of!((*raw).group);
        }
        STATS_GROUP.store(raw, Ordering::Release);
        Ok(Stats(group))
    }

    /// The null-terminated array of groups for the misc device.
    pub(crate) fn groups(&self) -> *mut *const bindings::attribute_group {
        // SAFETY: the group is pinned; only the address is taken.
        unsafe { ptr::addr_of_mut!((*self.0.get()).groups).cast() }
    }
}

impl Drop for Stats {
    fn drop(&mut self) {
        STATS_GROUP.store(ptr::null_mut(), Ordering::Release);
    }
}

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
    let group = STATS_GROUP.load(Ordering::Acquire);
    if group.is_null() {
        return ENODEV.to_errno() as isize;
    }
    // Only the address of the attributes is needed: no reference is made to the group,
    // which C reads.
    // SAFETY: the attributes live in the `StatsGroup`, which outlives the sysfs files.
    let base = unsafe { ptr::addr_of!((*group).attributes) } as usize;
    let index = (attribute as usize)
        .checked_sub(base)
        .map(|offset| offset / core::mem::size_of::<bindings::device_attribute>());
    let Some(stat) = index.and_then(|index| STATS.get(index)) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: sysfs hands `show` its PAGE_SIZE buffer; the format takes one `u64`.
    unsafe { bindings::sysfs_emit(buf, c_str!("%llu\n").as_char_ptr(), stat.get()) as isize }
}

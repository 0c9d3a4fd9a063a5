// SPDX-License-Identifier: GPL-2.0

//! The sampler: one delayed work item that samples the figures, delivers crossings and
//! default levels in batches, and plans its next run with `Sampling::plan`; the shrinker
//! whose count callback only kicks it when reclaim starts.

use core::sync::atomic::Ordering;
use kernel::bindings;
use kernel::ffi::{c_int, c_ulong, c_void};
use kernel::prelude::*;

use crate::{
    client::{Client, ClientState, Node},
    ffi,
    proto::{
        speed_pages_per_s, Counters, DefaultClient, Figure, Figures, Levels, Observation, Sampling,
        Snapshot, Timer, Units,
    },
    registry::{Registry, PRIVILEGED, UNPRIVILEGED},
    shared,
    stats::{
        CLIENTS, EVALUATIONS, EVENTS, INTERVAL_MS, LAST_EVAL_NS, LAST_EVAL_TIME_NS, MAX_EVAL_NS,
        RECLAIM_KICKS, WAKEUPS,
    },
    Shared, DEFAULT_CRITICAL_PCT, DEFAULT_LOW_PCT, FAST_MS, RATE_LIMIT_MS, SHARED, SLOW_MS,
    UNPRIVILEGED_MS,
};

pub(crate) fn now_ns() -> u64 {
    // SAFETY: `ktime_get` has no preconditions in process or softirq context.
    let ns = unsafe { bindings::ktime_get() };
    ns.max(0) as u64
}

/// Reads the memory counters. Process context only: `si_meminfo` and `si_swapinfo` take
/// locks that are not safe from timer (softirq) context.
pub(crate) fn sample() -> Figures {
    let mut info = bindings::sysinfo::default();
    // SAFETY: `info` is a valid, writable `struct sysinfo`.
    unsafe { bindings::si_meminfo(&mut info) };
    let unit = u64::from(info.mem_unit.max(1));
    let pages = |value: u64| (value * unit) >> bindings::PAGE_SHIFT;
    #[cfg_attr(not(CONFIG_SWAP), allow(unused_mut))]
    let mut counters = Counters {
        total_ram: pages(info.totalram as u64),
        free_ram: pages(info.freeram as u64),
        file_pages: ffi::node_page_state(bindings::node_stat_item_NR_FILE_PAGES),
        active_anon: ffi::node_page_state(bindings::node_stat_item_NR_ACTIVE_ANON),
        active_file: ffi::node_page_state(bindings::node_stat_item_NR_ACTIVE_FILE),
        // SAFETY: no preconditions.
        available: unsafe { bindings::si_mem_available() } as u64,
        swap_total: 0,
        swap_free: 0,
    };
    #[cfg(CONFIG_SWAP)]
    {
        let mut swap = bindings::sysinfo::default();
        // SAFETY: `swap` is a valid, writable `struct sysinfo`.
        unsafe { ffi::si_swapinfo(&mut swap) };
        counters.swap_total = pages(swap.totalswap as u64);
        counters.swap_free = pages(swap.freeswap as u64);
    }
    Figures::from_counters(&counters)
}

pub(crate) fn units(total_pages: u64) -> Units {
    Units {
        page_shift: bindings::PAGE_SHIFT,
        total_pages,
    }
}

pub(crate) fn default_levels(total_pages: u64) -> Levels {
    Levels::from_percent(
        total_pages,
        u64::from(DEFAULT_LOW_PCT.load(Ordering::Relaxed)),
        u64::from(DEFAULT_CRITICAL_PCT.load(Ordering::Relaxed)),
    )
}

/// Marks an event on `client`'s file, delivered by the evaluation that started at
/// `time_ns`, and wakes its pollers and SIGIO owners.
pub(crate) fn deliver(client: &Client, state: &mut ClientState, time_ns: u64) {
    state.seq += 1;
    state.last_event_ns = time_ns.max(1);
    client.update_flags(|flags| flags.with_read_ready(true));
    client.node.event_pending.store(true, Ordering::Release);
    EVENTS.add(1);
    // SAFETY: the wait queue was initialised at open and lives as long as `client`.
    unsafe {
        bindings::__wake_up(
            client.wait.get(),
            bindings::TASK_NORMAL,
            1,
            (ffi::EPOLLIN | ffi::EPOLLRDNORM) as usize as *mut c_void,
        )
    };
    if let Some(aux) = state.aux.as_ref() {
        // SAFETY: `fasync` is the list `fasync_helper` maintains for this file.
        unsafe {
            bindings::kill_fasync(
                aux.fasync.get(),
                bindings::SIGIO as c_int,
                bindings::POLL_IN as c_int,
            )
        };
    }
    WAKEUPS.add(1);
}

/// How many files one batch of a delivery handles before the registry lock is released
/// and the worker offers the CPU (`cond_resched`), so that woken clients can read their
/// events, and other files open, write and close, during a long delivery.
pub(crate) const BATCH: usize = 64;

/// Lets other tasks run between two batches of a delivery, with the lock released.
pub(crate) fn pause_between_batches<'a>(
    shared: &'a Shared,
    registry: kernel::sync::lock::Guard<'a, Registry, kernel::sync::lock::mutex::MutexBackend>,
) -> kernel::sync::lock::Guard<'a, Registry, kernel::sync::lock::mutex::MutexBackend> {
    drop(registry);
    ffi::cond_resched();
    shared.registry.lock()
}

/// One evaluation: sample, deliver crossings and default levels, plan the next run.
pub(crate) fn evaluate(shared: &Shared) {
    let start = now_ns();
    shared.last_eval_start_ns.store(start, Ordering::Relaxed);
    shared.kick_pending.store(false, Ordering::Relaxed);
    shared.kicked.begin();
    let figures = sample();
    let mut registry = shared.registry.lock();
    if registry.clients == 0 {
        registry.sampling = false;
        return;
    }
    let previous = registry.last;
    registry.last = Snapshot {
        figures,
        seq: 0,
        time_ns: start,
        level: registry.level.as_u8(),
    };

    // Threshold crossings, from the trees' cached extremes: with nothing crossed this is
    // 14 comparisons. Each crossed file is moved to its new triggers and marked at
    // once, under the lock, so a file that closes or writes between batches is either
    // done (its event stands) or not yet reached (a close unlinks it; a write re-arms
    // it against these same figures, so it does not cross): no event is lost or sent
    // twice, and no batch keeps a pointer across the unlocked pause.
    registry.delivering = true;
    'crossings: loop {
        for _ in 0..BATCH {
            let Some(node) = registry.crossed(&figures) else {
                break 'crossings;
            };
            // SAFETY: linked nodes belong to open clients, which `release` unlinks
            // under the lock before they are freed.
            let client = unsafe { &*Node::client(node) };
            // SAFETY: the lock is held; the state is not otherwise borrowed here.
            unsafe { registry.unindex(client) };
            // SAFETY: as above.
            let state = unsafe { &mut *client.state() };
            let mut watch = client.watch(state);
            let crossings = watch.evaluate(&figures);
            // An evaluation changes sides only: the watch arms as many figures as
            // before, so it fits where it was.
            client.set_watch(state, watch);
            // SAFETY: the client's nodes were just unlinked; `state` is not used again
            // until after this call.
            unsafe { registry.index(client) };
            if !crossings.any() {
                // The trees and the watch disagree: never reached, but an evaluation
                // must not spin on it.
                pr_err!("trigger index out of step with a watch\n");
                break 'crossings;
            }
            // SAFETY: as above; `index` no longer borrows the state.
            deliver(client, unsafe { &mut *client.state() }, start);
        }
        registry = pause_between_batches(shared, registry);
    }
    registry.delivering = false;

    // Default levels, for files without thresholds, in batches by open number.
    let levels = default_levels(figures.get(Figure::Total));
    let level = levels.level(figures.get(Figure::Available), registry.level);
    if level != registry.level || registry.lagging > 0 {
        registry.level = level;
        let min_interval_ns = u64::from(RATE_LIMIT_MS.load(Ordering::Relaxed)) * 1_000_000;
        let mut lagging = 0;
        let mut node = registry.defaults.first;
        loop {
            for _ in 0..BATCH {
                if node.is_null() {
                    break;
                }
                // SAFETY: as above, for the nodes in `defaults`.
                let client = unsafe { &*Node::client(node) };
                // SAFETY: the lock is held; the state is not otherwise borrowed here.
                let state = unsafe { &mut *client.state() };
                let mut default = DefaultClient {
                    delivered: client.node.flags.get().delivered(),
                    last_event_ns: state.last_event_ns,
                };
                let offered = default.offer(level, start, min_interval_ns);
                client.update_flags(|flags| flags.with_delivered(default.delivered));
                if offered {
                    deliver(client, state, start);
                } else if default.lagging(level) {
                    lagging += 1;
                }
                // SAFETY: `node` is linked in `defaults`.
                node = unsafe { bindings::rb_next((*node).link.get()) }.cast::<Node>();
            }
            if node.is_null() {
                break;
            }
            // Resume by key: the node may be gone after the pause.
            // SAFETY: `node` is still linked: the lock has been held since it was found.
            let next_key = unsafe { (*node).key.get() };
            registry = pause_between_batches(shared, registry);
            node = registry.defaults.first_after(next_key.saturating_sub(1));
        }
        registry.lagging = lagging;
    }

    // Plan the next evaluation from what this one observed.
    let elapsed_ns = start.saturating_sub(previous.time_ns);
    let speed_pages_per_s = if previous.time_ns == 0 {
        0
    } else {
        speed_pages_per_s(&previous.figures, &figures, elapsed_ns)
    };
    let nearest_trigger = registry.nearest(PRIVILEGED, &figures);
    let nearest_limited = registry.nearest(UNPRIVILEGED, &figures);
    let default_levels = (!registry.defaults.is_empty()).then_some(levels);
    registry.sampling = true;
    drop(registry);
    let sampling = Sampling {
        fast_ms: u64::from(FAST_MS.load(Ordering::Relaxed)),
        slow_ms: u64::from(SLOW_MS.load(Ordering::Relaxed)),
        limited_ms: u64::from(UNPRIVILEGED_MS.load(Ordering::Relaxed)),
    };
    let interval = sampling.plan(&Observation {
        figures: &figures,
        speed_pages_per_s,
        nearest_trigger,
        nearest_limited,
        default_levels,
        kicked: shared.kicked.is_set(),
    });

    INTERVAL_MS.set(interval);
    EVALUATIONS.add(1);
    LAST_EVAL_TIME_NS.set(start);
    let cost = now_ns().saturating_sub(start);
    LAST_EVAL_NS.set(cost);
    if cost > MAX_EVAL_NS.get() {
        MAX_EVAL_NS.set(cost);
    }
    shared.kicked.rearm(shared, interval);
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
pub(crate) unsafe extern "C" fn sampler_run(_work: *mut bindings::work_struct) {
    evaluate(shared());
}

/// Starts the sampler now (a file opened or wrote thresholds).
pub(crate) fn kick(shared: &Shared) {
    shared.kicked.kick(shared);
}

/// The sampler's delayed work, for [`KickFlag`](crate::proto::KickFlag).
impl Timer for Shared {
    fn schedule(&self, delay_ms: u64) {
        // SAFETY: the sampler was initialised before registration and is cancelled at exit.
        unsafe {
            ffi::mod_delayed_work(self.sampler.get(), delay_ms.min(u64::from(u32::MAX)) as u32)
        };
    }
}

/// Starts the sampler for a file: now for a privileged one; for an unprivileged one at
/// once at most every `unprivileged_ms`, otherwise no later than that from now (which
/// never delays a run already due sooner), so that no loop of opens or writes by any
/// user can make the module sample flat out.
pub(crate) fn kick_for(shared: &Shared, limited: bool) {
    if !limited {
        return kick(shared);
    }
    let floor_ms = UNPRIVILEGED_MS.load(Ordering::Relaxed);
    let now = now_ns();
    let last = shared.last_limited_kick_ns.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= u64::from(floor_ms) * 1_000_000
        && shared
            .last_limited_kick_ns
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        kick(shared);
    } else {
        // SAFETY: the sampler was initialised before registration and is cancelled at exit.
        unsafe { ffi::queue_delayed_work(shared.sampler.get(), floor_ms) };
    }
}

/// The shrinker's count callback: reclaim has started, so sample now instead of at the
/// next period. It frees nothing, so it reports nothing to scan.
/// # Safety
///
/// Called by C with the arguments its callback type promises.
pub(crate) unsafe extern "C" fn reclaim_count(
    _shrinker: *mut bindings::shrinker,
    _control: *mut bindings::shrink_control,
) -> c_ulong {
    let shared = SHARED.load(Ordering::Acquire);
    if shared.is_null() {
        return 0;
    }
    // SAFETY: `SHARED` is cleared only after the shrinker is freed.
    let shared = unsafe { &*shared };
    if CLIENTS.get() == 0 {
        return 0;
    }
    let since = now_ns().saturating_sub(shared.last_eval_start_ns.load(Ordering::Relaxed));
    if since >= u64::from(FAST_MS.load(Ordering::Relaxed)) * 1_000_000
        && !shared.kick_pending.swap(true, Ordering::Relaxed)
    {
        RECLAIM_KICKS.add(1);
        kick(shared);
    }
    0
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
pub(crate) unsafe extern "C" fn reclaim_scan(
    _shrinker: *mut bindings::shrinker,
    _control: *mut bindings::shrink_control,
) -> c_ulong {
    0
}

// SPDX-License-Identifier: GPL-2.0

//! memnotify: low-memory notification through `/dev/memnotify`.
//!
//! Each open file is a client. A client writes thresholds (`used 5000`,
//! `available 10% hysteresis 4M`, ...) and polls; when a figure crosses one of its
//! thresholds, in either direction, the file becomes readable and a read returns
//! one line of figures. A client that never writes thresholds gets the module's
//! default levels on `available`, rate limited. See `userspace/memnotify-proto`
//! for the protocol itself, which this module compiles in unchanged.
//!
//! Sampling happens in process context on the system workqueue, only while files
//! are open, at a period that adapts to how close the nearest threshold is and how
//! fast the figures move, and at once when reclaim starts (a shrinker whose count
//! callback only kicks the sampler). Per figure, the armed triggers are kept in two
//! red-black trees (waiting to go up, waiting to go down), so an evaluation touches
//! only the files whose thresholds crossed.

mod ffi;

#[path = "../userspace/memnotify-proto/src/proto/mod.rs"]
pub mod proto;

use core::pin::Pin;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_ulong, c_void};
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNodeReservation};
use kernel::sync::{Arc, Mutex};
use kernel::types::Opaque;
use kernel::uaccess::UserSlice;
use kernel::{c_str, new_mutex};

use ffi::{lock_class, module_param_uint, CShared, MiscDevice, PollTable};
use proto::{
    format_line, next_interval_ms, parse_thresholds, Counters, DefaultClient, Figure, Figures,
    Level, Levels, Sampling, Snapshot, Thresholds, Trigger, Units, Watch, FIGURE_COUNT, LINE_BUF,
    WRITE_MAX,
};

module! {
    type: Memnotify,
    name: "memnotify",
    author: "memnotify developers",
    description: "Low-memory notification through /dev/memnotify",
    license: "GPL",
}

module_param_uint!(
    FAST_MS,
    PARAM_FAST_MS,
    "fast_ms",
    10,
    0o644,
    "Shortest sampling period in ms, used close to a threshold (default 10)"
);
module_param_uint!(
    SLOW_MS,
    PARAM_SLOW_MS,
    "slow_ms",
    1000,
    0o644,
    "Longest sampling period in ms, used far from every threshold (default 1000)"
);
module_param_uint!(
    DEFAULT_LOW_PCT,
    PARAM_DEFAULT_LOW_PCT,
    "default_low_pct",
    proto::DEFAULT_LOW_PCT as u32,
    0o644,
    "Default low level: available below this % of RAM (0 disables; default 10)"
);
module_param_uint!(
    DEFAULT_CRITICAL_PCT,
    PARAM_DEFAULT_CRITICAL_PCT,
    "default_critical_pct",
    proto::DEFAULT_CRITICAL_PCT as u32,
    0o644,
    "Default critical level: available below this % of RAM (0 disables; default 5)"
);
module_param_uint!(
    RATE_LIMIT_MS,
    PARAM_RATE_LIMIT_MS,
    "rate_limit_ms",
    200,
    0o644,
    "Minimum ms between two default-level events on one file (default 200)"
);
module_param_uint!(
    MAX_CLIENTS,
    PARAM_MAX_CLIENTS,
    "max_clients",
    16384,
    0o644,
    "Most open files in all (default 16384)"
);
module_param_uint!(
    MAX_PER_UID,
    PARAM_MAX_PER_UID,
    "max_per_uid",
    256,
    0o644,
    "Most open files per user without CAP_SYS_RESOURCE (default 256)"
);
module_param_uint!(
    DEV_MODE,
    PARAM_DEV_MODE,
    "dev_mode",
    0o666,
    0o444,
    "Permissions of /dev/memnotify (default 0666)"
);
module_param_uint!(
    DEV_GID,
    PARAM_DEV_GID,
    "dev_gid",
    0,
    0o444,
    "If non-zero, only this group (and CAP_DAC_OVERRIDE) may open the device"
);

/// Operator statistics, one sysfs file each under
/// `/sys/class/misc/memnotify/statistics/`.
struct Stat {
    name: &'static kernel::str::CStr,
    value: AtomicU64,
}

impl Stat {
    const fn new(name: &'static kernel::str::CStr) -> Self {
        Stat {
            name,
            value: AtomicU64::new(0),
        }
    }
    fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }
    fn set(&self, n: u64) {
        self.value.store(n, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

const STAT_COUNT: usize = 10;
static STATS: [Stat; STAT_COUNT] = [
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
const CLIENTS: &Stat = &STATS[0];
const EVALUATIONS: &Stat = &STATS[1];
const EVENTS: &Stat = &STATS[2];
const WAKEUPS: &Stat = &STATS[3];
const LAST_EVAL_NS: &Stat = &STATS[4];
const MAX_EVAL_NS: &Stat = &STATS[5];
const LAST_EVAL_TIME_NS: &Stat = &STATS[6];
const INTERVAL_MS: &Stat = &STATS[7];
const RECLAIM_KICKS: &Stat = &STATS[8];
const REJECTED_OPENS: &Stat = &STATS[9];

/// The device-wide state, pinned for the module's lifetime; reached from the C callbacks
/// through [`SHARED`].
#[pin_data]
struct Shared {
    #[pin]
    registry: Mutex<Registry>,
    /// The sampler (`struct delayed_work`).
    #[pin]
    sampler: Opaque<bindings::delayed_work>,
    /// Set while a sampler run is queued on behalf of reclaim, to kick it only once.
    kick_pending: AtomicBool,
    /// Monotonic time of the last evaluation's start.
    last_eval_start_ns: AtomicU64,
}

/// Set between registration and unregistration of the device.
static SHARED: AtomicPtr<Shared> = AtomicPtr::new(ptr::null_mut());

fn shared() -> &'static Shared {
    let shared = SHARED.load(Ordering::Acquire);
    // SAFETY: every caller is a file operation, the sampler or the shrinker, which can
    // only run while the module is loaded and `SHARED` is set: open files hold a module
    // reference, and exit unregisters all three before freeing `Shared`.
    unsafe { &*shared }
}

/// What an open file shares with the sampler outside the registry lock.
struct Client {
    id: u64,
    uid: u32,
    /// Counted against the per-uid limit.
    limited: bool,
    /// The file's wait queue: only this file's pollers sleep on it, so a wake-up wakes
    /// exactly the clients whose thresholds crossed.
    wait: Opaque<bindings::wait_queue_head>,
    /// An unread event: the file polls readable.
    event_pending: AtomicBool,
    /// The `fasync_struct` list for SIGIO, managed by `fasync_helper`.
    fasync: Opaque<*mut bindings::fasync_struct>,
    /// For freeing after an RCU grace period (see `release`).
    rcu: Opaque<bindings::callback_head>,
}

// SAFETY: the `Opaque` fields are only touched through the kernel's own synchronised
// primitives (wait queue lock, fasync lock, RCU); the rest is immutable or atomic.
unsafe impl Send for Client {}
// SAFETY: as above.
unsafe impl Sync for Client {}

/// A client's protocol state, guarded by the registry lock.
struct ClientState {
    client: Arc<Client>,
    watch: Watch,
    /// Thresholds were written: the file no longer gets default-level events.
    configured: bool,
    default: DefaultClient,
    /// Events sent to this file.
    seq: u64,
    /// A write or an event happened since the last read: the next read returns a line.
    read_ready: bool,
}

/// Trigger trees are keyed by (trigger value, client id): unique, ordered by value.
type TriggerTree = RBTree<(u64, u64), Arc<Client>>;

struct Registry {
    clients: RBTree<u64, ClientState>,
    /// Files that never wrote thresholds.
    defaults: RBTree<u64, Arc<Client>>,
    /// Per figure: files waiting for the figure to rise to their trigger.
    up: [TriggerTree; FIGURE_COUNT],
    /// Per figure: files waiting for the figure to fall below their trigger.
    down: [TriggerTree; FIGURE_COUNT],
    /// Open files per uid, for the per-uid limit.
    per_uid: RBTree<u32, u32>,
    next_id: u64,
    level: Level,
    /// Default clients whose level change is held back by the rate limit.
    lagging: u32,
    /// The last evaluation's sample, returned by reads that consume an event.
    last: Snapshot,
    /// Whether the sampler is armed (files are open).
    sampling: bool,
}

impl Registry {
    fn new() -> Self {
        Registry {
            clients: RBTree::new(),
            defaults: RBTree::new(),
            up: core::array::from_fn(|_| RBTree::new()),
            down: core::array::from_fn(|_| RBTree::new()),
            per_uid: RBTree::new(),
            next_id: 1,
            level: Level::Normal,
            lagging: 0,
            last: Snapshot::default(),
            sampling: false,
        }
    }

    fn tree(&mut self, figure: Figure, trigger: Trigger) -> &mut TriggerTree {
        match trigger {
            Trigger::UpAt(_) => &mut self.up[figure.index()],
            Trigger::DownBelow(_) => &mut self.down[figure.index()],
        }
    }

    /// Removes a client's trigger nodes, keeping their allocations for reuse.
    fn unindex(&mut self, id: u64, watch: &Watch, spare: &mut Spare) {
        for figure in Figure::ALL {
            if let Some(trigger) = watch.trigger(figure) {
                let value = trigger_value(trigger);
                if let Some(node) = self.tree(figure, trigger).remove_node(&(value, id)) {
                    spare.put(node.into_reservation());
                }
            }
        }
    }

    /// Inserts a client's trigger nodes from `spare`, which holds enough reservations.
    fn index(&mut self, client: &Arc<Client>, watch: &Watch, spare: &mut Spare) {
        for figure in Figure::ALL {
            if let Some(trigger) = watch.trigger(figure) {
                let Some(reservation) = spare.take() else {
                    // Callers reserve one node per armed figure first; never reached.
                    pr_err!("memnotify: trigger node reservation missing\n");
                    return;
                };
                let node =
                    reservation.into_node((trigger_value(trigger), client.id), client.clone());
                self.tree(figure, trigger).insert(node);
            }
        }
    }

    /// The distance of the nearest armed trigger from `now`, in pages.
    fn nearest(&mut self, now: &Figures) -> Option<u64> {
        let mut nearest: Option<u64> = None;
        for figure in Figure::ALL {
            let value = now.get(figure);
            if let Some(cursor) = self.up[figure.index()].cursor_front() {
                let (&(at, _), _) = cursor.current();
                let distance = Trigger::UpAt(at).distance(value);
                nearest = Some(nearest.map_or(distance, |n| n.min(distance)));
            }
            if let Some(cursor) = self.down[figure.index()].cursor_back() {
                let (&(below, _), _) = cursor.current();
                let distance = Trigger::DownBelow(below).distance(value);
                nearest = Some(nearest.map_or(distance, |n| n.min(distance)));
            }
        }
        nearest
    }
}

fn trigger_value(trigger: Trigger) -> u64 {
    match trigger {
        Trigger::UpAt(value) | Trigger::DownBelow(value) => value,
    }
}

/// Node allocations moved between trees without going back to the allocator.
struct Spare {
    nodes: [Option<TriggerReservation>; FIGURE_COUNT],
}

type TriggerReservation = RBTreeNodeReservation<(u64, u64), Arc<Client>>;

impl Spare {
    fn new() -> Self {
        Spare {
            nodes: [const { None }; FIGURE_COUNT],
        }
    }

    fn count(&self) -> usize {
        self.nodes.iter().filter(|node| node.is_some()).count()
    }

    fn put(&mut self, reservation: TriggerReservation) {
        if let Some(slot) = self.nodes.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some(reservation);
        }
    }

    fn take(&mut self) -> Option<TriggerReservation> {
        self.nodes.iter_mut().find_map(Option::take)
    }

    /// Allocates reservations until it holds `wanted`; fails without side effects.
    fn fill(&mut self, wanted: usize) -> Result {
        while self.count() < wanted {
            self.put(RBTreeNodeReservation::new(GFP_KERNEL)?);
        }
        Ok(())
    }
}

fn armed(watch: &Watch) -> usize {
    Figure::ALL
        .iter()
        .filter(|&&figure| watch.trigger(figure).is_some())
        .count()
}

fn now_ns() -> u64 {
    // SAFETY: `ktime_get` has no preconditions in process or softirq context.
    let ns = unsafe { bindings::ktime_get() };
    ns.max(0) as u64
}

/// Reads the memory counters. Process context only: `si_meminfo` and `si_swapinfo` take
/// locks that are not safe from timer (softirq) context.
fn sample() -> Figures {
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

fn units(total_pages: u64) -> Units {
    Units {
        page_shift: bindings::PAGE_SHIFT,
        total_pages,
    }
}

fn default_levels(total_pages: u64) -> Levels {
    Levels::from_percent(
        total_pages,
        u64::from(DEFAULT_LOW_PCT.load(Ordering::Relaxed)),
        u64::from(DEFAULT_CRITICAL_PCT.load(Ordering::Relaxed)),
    )
}

/// Marks an event on `state`'s file and wakes its pollers and SIGIO owners.
fn deliver(state: &mut ClientState) {
    state.seq += 1;
    state.read_ready = true;
    let client = &state.client;
    client.event_pending.store(true, Ordering::Release);
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
    // SAFETY: `fasync` is the list `fasync_helper` maintains for this file.
    unsafe {
        bindings::kill_fasync(
            client.fasync.get(),
            bindings::SIGIO as c_int,
            bindings::POLL_IN as c_int,
        )
    };
    WAKEUPS.add(1);
}

/// How many crossed clients one pass handles; passes repeat until none is left, so an
/// evaluation needs no allocation whatever the number of crossings.
const BATCH: usize = 32;

/// The distinct ids of crossed clients found in one pass.
struct Batch {
    ids: [u64; BATCH],
    len: usize,
}

impl Batch {
    fn new() -> Self {
        Batch {
            ids: [0; BATCH],
            len: 0,
        }
    }

    /// Adds `id` once; returns whether the batch is full.
    fn add(&mut self, id: u64) -> bool {
        if !self.ids().contains(&id) {
            self.ids[self.len] = id;
            self.len += 1;
        }
        self.len == BATCH
    }

    fn ids(&self) -> &[u64] {
        &self.ids[..self.len]
    }
}

/// One evaluation: sample, deliver crossings and default levels, plan the next run.
fn evaluate(shared: &Shared) {
    let start = now_ns();
    shared.last_eval_start_ns.store(start, Ordering::Relaxed);
    shared.kick_pending.store(false, Ordering::Relaxed);
    let figures = sample();
    let mut registry = shared.registry.lock();
    if registry.clients.iter().next().is_none() {
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

    // Threshold crossings, found from the trigger trees only.
    loop {
        let mut batch = Batch::new();
        'figures: for figure in Figure::ALL {
            let value = figures.get(figure);
            let mut cursor = registry.up[figure.index()].cursor_front();
            while let Some(current) = cursor {
                let (&(at, id), _) = current.current();
                if at > value {
                    break;
                }
                if batch.add(id) {
                    break 'figures;
                }
                cursor = current.move_next();
            }
            let mut cursor = registry.down[figure.index()].cursor_back();
            while let Some(current) = cursor {
                let (&(below, id), _) = current.current();
                if below <= value {
                    break;
                }
                if batch.add(id) {
                    break 'figures;
                }
                cursor = current.move_prev();
            }
        }
        if batch.ids().is_empty() {
            break;
        }
        let mut progressed = false;
        for &id in batch.ids() {
            let Some(state) = registry.clients.get(&id) else {
                continue;
            };
            progressed = true;
            let client = state.client.clone();
            let mut watch = state.watch;
            let mut spare = Spare::new();
            registry.unindex(id, &watch, &mut spare);
            let crossings = watch.evaluate(&figures);
            registry.index(&client, &watch, &mut spare);
            if let Some(state) = registry.clients.get_mut(&id) {
                state.watch = watch;
                if crossings.any() {
                    deliver(state);
                }
            }
        }
        if !progressed {
            // Triggers of a file that is gone: never left behind by `release`, but an
            // evaluation must not spin on them.
            pr_err!("memnotify: stale triggers in the index\n");
            break;
        }
    }

    // Default levels, for files without thresholds.
    let levels = default_levels(figures.get(Figure::Total));
    let level = levels.level(figures.get(Figure::Available), registry.level);
    if level != registry.level || registry.lagging > 0 {
        registry.level = level;
        let min_interval_ns = u64::from(RATE_LIMIT_MS.load(Ordering::Relaxed)) * 1_000_000;
        let mut lagging = 0;
        let Registry {
            defaults, clients, ..
        } = &mut *registry;
        for (id, _) in defaults.iter() {
            if let Some(state) = clients.get_mut(id) {
                if state.default.offer(level, start, min_interval_ns) {
                    deliver(state);
                } else if state.default.lagging(level) {
                    lagging += 1;
                }
            }
        }
        registry.lagging = lagging;
    }

    // Plan the next evaluation.
    let sampling = Sampling {
        fast_ms: u64::from(FAST_MS.load(Ordering::Relaxed)),
        slow_ms: u64::from(SLOW_MS.load(Ordering::Relaxed)),
    };
    let elapsed_ns = start.saturating_sub(previous.time_ns);
    let speed = if previous.time_ns == 0 || elapsed_ns == 0 {
        0
    } else {
        let moved = Figure::ALL
            .iter()
            .map(|&figure| figures.get(figure).abs_diff(previous.figures.get(figure)))
            .max()
            .unwrap_or(0);
        proto::number::mul_div(moved, 1_000_000_000, elapsed_ns)
    };
    let mut nearest = registry.nearest(&figures);
    if registry.defaults.iter().next().is_some() {
        let available = figures.get(Figure::Available);
        for bound in [levels.low, levels.critical] {
            if bound != 0 {
                let distance = available.abs_diff(bound);
                nearest = Some(nearest.map_or(distance, |n| n.min(distance)));
            }
        }
    }
    let interval = next_interval_ms(sampling, nearest, figures.get(Figure::Total), speed);
    registry.sampling = true;
    drop(registry);

    INTERVAL_MS.set(interval);
    EVALUATIONS.add(1);
    LAST_EVAL_TIME_NS.set(start);
    let cost = now_ns().saturating_sub(start);
    LAST_EVAL_NS.set(cost);
    if cost > MAX_EVAL_NS.get() {
        MAX_EVAL_NS.set(cost);
    }
    // SAFETY: the sampler was initialised before registration and is cancelled at exit.
    unsafe {
        ffi::mod_delayed_work(
            shared.sampler.get(),
            interval.min(u64::from(u32::MAX)) as u32,
        )
    };
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn sampler_run(_work: *mut bindings::work_struct) {
    evaluate(shared());
}

/// Starts the sampler now (a file opened or wrote thresholds).
fn kick(shared: &Shared) {
    // SAFETY: the sampler was initialised before registration and is cancelled at exit.
    unsafe { ffi::mod_delayed_work(shared.sampler.get(), 0) };
}

/// The shrinker's count callback: reclaim has started, so sample now instead of at the
/// next period. It frees nothing, so it reports nothing to scan.
/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn reclaim_count(
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
unsafe extern "C" fn reclaim_scan(
    _shrinker: *mut bindings::shrinker,
    _control: *mut bindings::shrink_control,
) -> c_ulong {
    0
}

// ---- file operations ----

/// The client behind a file opened by [`open`].
///
/// # Safety
///
/// `file` is a memnotify file between `open` and `release`.
unsafe fn client_of<'a>(file: *mut bindings::file) -> &'a Client {
    // SAFETY: `open` stored an `Arc<Client>` reference in `private_data`, released only
    // by `release`.
    unsafe { &*((*file).private_data as *const Client) }
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn open(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: the VFS calls `open` with a valid file.
    match unsafe { open_client(file) } {
        Ok(()) => 0,
        Err(error) => {
            REJECTED_OPENS.add(1);
            error.to_errno()
        }
    }
}

/// # Safety
///
/// `file` is a file being opened on the device.
unsafe fn open_client(file: *mut bindings::file) -> Result {
    let shared = shared();
    // SAFETY: `f_cred` is the opener's credentials, valid for the file's lifetime.
    let uid = unsafe { (*(*file).f_cred).uid.val };
    let gid = DEV_GID.load(Ordering::Relaxed);
    // SAFETY: `in_group_p` and `capable` check the current task, which is the opener.
    if gid != 0
        // SAFETY: as above.
        && unsafe { bindings::in_group_p(bindings::kgid_t { val: gid }) } == 0
        // SAFETY: as above.
        && unsafe { !bindings::capable(bindings::CAP_DAC_OVERRIDE as c_int) }
    {
        return Err(EACCES);
    }
    // SAFETY: as above.
    let limited = unsafe { !bindings::capable(bindings::CAP_SYS_RESOURCE as c_int) };

    // Allocate everything before taking the lock, so a failure changes nothing.
    let state_node = RBTreeNodeReservation::<u64, ClientState>::new(GFP_KERNEL)?;
    let default_node = RBTreeNodeReservation::<u64, Arc<Client>>::new(GFP_KERNEL)?;
    let uid_node = RBTreeNodeReservation::<u32, u32>::new(GFP_KERNEL)?;

    let mut registry = shared.registry.lock();
    if CLIENTS.get() >= u64::from(MAX_CLIENTS.load(Ordering::Relaxed)) {
        return Err(EMFILE);
    }
    let per_uid = registry.per_uid.get(&uid).copied().unwrap_or(0);
    if limited && per_uid >= MAX_PER_UID.load(Ordering::Relaxed) {
        return Err(EMFILE);
    }
    let id = registry.next_id;
    let client = Arc::new(
        Client {
            id,
            uid,
            limited,
            wait: Opaque::uninit(),
            event_pending: AtomicBool::new(false),
            fasync: Opaque::new(ptr::null_mut()),
            rcu: Opaque::uninit(),
        },
        GFP_KERNEL,
    )?;
    // SAFETY: `wait` is uninitialised memory inside the new `Arc`, which never moves.
    unsafe {
        bindings::__init_waitqueue_head(
            client.wait.get(),
            c_str!("memnotify_client").as_char_ptr(),
            lock_class!(),
        )
    };
    registry.next_id += 1;
    let state = ClientState {
        client: client.clone(),
        watch: Watch::default(),
        configured: false,
        default: DefaultClient::new(registry.level),
        seq: 0,
        read_ready: true,
    };
    registry.clients.insert(state_node.into_node(id, state));
    registry
        .defaults
        .insert(default_node.into_node(id, client.clone()));
    if limited {
        registry
            .per_uid
            .insert(uid_node.into_node(uid, per_uid + 1));
    }
    CLIENTS.add(1);
    let start_sampler = !registry.sampling;
    registry.sampling = true;
    drop(registry);

    // SAFETY: `file` is valid; the reference is given back in `release`.
    unsafe { (*file).private_data = Arc::into_raw(client) as *mut c_void };
    if start_sampler {
        kick(shared);
    }
    Ok(())
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    let shared = shared();
    // SAFETY: `open` stored the file's `Arc<Client>` reference here.
    let client = unsafe { Arc::from_raw((*file).private_data as *const Client) };
    {
        let mut registry = shared.registry.lock();
        if let Some(state) = registry.clients.remove(&client.id) {
            let mut spare = Spare::new();
            registry.unindex(client.id, &state.watch, &mut spare);
        }
        registry.defaults.remove(&client.id);
        if client.limited {
            match registry.per_uid.get(&client.uid).copied() {
                Some(count) if count > 1 => {
                    if let Some(count_ref) = registry.per_uid.get_mut(&client.uid) {
                        *count_ref = count - 1;
                    }
                }
                _ => {
                    registry.per_uid.remove(&client.uid);
                }
            }
        }
        CLIENTS.set(CLIENTS.get().saturating_sub(1));
    }
    // No poller can still be queued (poll and epoll hold a file reference, and epoll
    // unhooks before `release`), but the wait queue goes away with the client: tell any
    // waiter, as upstream's poll abstraction does, and free only after an RCU grace
    // period, which `__wake_up_pollfree` requires.
    // SAFETY: the wait queue is initialised and still allocated.
    unsafe { bindings::__wake_up_pollfree(client.wait.get()) };
    let raw = Arc::into_raw(client);
    // SAFETY: `rcu` belongs to the client kept alive by `raw` until the callback runs.
    unsafe { bindings::call_rcu((*raw).rcu.get(), Some(free_client)) };
    0
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn free_client(head: *mut bindings::callback_head) {
    let offset = core::mem::offset_of!(Client, rcu);
    // SAFETY: `head` is the `rcu` field of a `Client` whose reference `release` leaked.
    let client = unsafe { Arc::from_raw((head as *const u8).sub(offset) as *const Client) };
    drop(client);
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn read(
    file: *mut bindings::file,
    buf: *mut c_char,
    count: usize,
    offset: *mut bindings::loff_t,
) -> isize {
    // SAFETY: the VFS passes valid arguments; the file is open.
    match unsafe { read_line(file, buf, count, offset) } {
        Ok(n) => n as isize,
        Err(error) => error.to_errno() as isize,
    }
}

/// # Safety
///
/// As for a `->read` file operation on an open memnotify file.
unsafe fn read_line(
    file: *mut bindings::file,
    buf: *mut c_char,
    count: usize,
    offset: *mut bindings::loff_t,
) -> Result<usize> {
    // SAFETY: the file is open.
    let client = unsafe { client_of(file) };
    // SAFETY: `offset` is valid for the duration of the call.
    let position = unsafe { *offset };
    let event = client.event_pending.load(Ordering::Acquire);
    let mut registry = shared().registry.lock();
    let last = registry.last;
    let level = registry.level;
    let Some(state) = registry.clients.get_mut(&client.id) else {
        return Err(EBADF);
    };
    // EOF unless this is a sample request (offset 0), or something happened since the
    // previous read: `cat` ends, event-driven readers that never seek keep working.
    if position != 0 && !state.read_ready && !event {
        return Ok(0);
    }
    state.read_ready = false;
    client.event_pending.store(false, Ordering::Release);
    let seq = state.seq;
    drop(registry);

    let mut snapshot = if event && last.time_ns != 0 {
        last
    } else {
        Snapshot {
            figures: sample(),
            seq: 0,
            time_ns: now_ns(),
            level: level.as_u8(),
        }
    };
    snapshot.seq = seq;
    snapshot.level = level.as_u8();
    let mut line = [0u8; LINE_BUF];
    let len = format_line(&snapshot, &mut line);
    // A short buffer gets the start of the line, as from a datagram.
    let n = len.min(count);
    let mut writer = UserSlice::new(buf as usize, count).writer();
    writer.write_slice(&line[..n])?;
    // SAFETY: `offset` is valid for the duration of the call.
    unsafe { *offset = position.saturating_add(n as bindings::loff_t) };
    Ok(n)
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn write(
    file: *mut bindings::file,
    buf: *const c_char,
    count: usize,
    _offset: *mut bindings::loff_t,
) -> isize {
    // SAFETY: the VFS passes valid arguments; the file is open.
    match unsafe { write_thresholds(file, buf, count) } {
        Ok(()) => count as isize,
        Err(error) => error.to_errno() as isize,
    }
}

/// # Safety
///
/// As for a `->write` file operation on an open memnotify file.
unsafe fn write_thresholds(file: *mut bindings::file, buf: *const c_char, count: usize) -> Result {
    if count > WRITE_MAX {
        return Err(EINVAL);
    }
    // SAFETY: the file is open.
    let client = unsafe { client_of(file) };
    let mut text = [0u8; WRITE_MAX];
    UserSlice::new(buf as usize, count)
        .reader()
        .read_slice(&mut text[..count])?;
    let figures = sample();
    let thresholds: Thresholds =
        parse_thresholds(&text[..count], units(figures.get(Figure::Total))).map_err(|_| EINVAL)?;
    let watch = Watch::new(thresholds, &figures);

    let shared = shared();
    let mut registry = shared.registry.lock();
    let Some(state) = registry.clients.get(&client.id) else {
        return Err(EBADF);
    };
    let old = state.watch;
    let was_default = !state.configured;
    // Reserve the nodes the new thresholds need beyond the ones the old release, so an
    // allocation failure leaves the old thresholds in force.
    let mut spare = Spare::new();
    spare.fill(armed(&watch).saturating_sub(armed(&old)))?;
    registry.unindex(client.id, &old, &mut spare);
    let owner = state_client(&registry, client.id)?;
    registry.index(&owner, &watch, &mut spare);
    if was_default {
        registry.defaults.remove(&client.id);
    }
    if let Some(state) = registry.clients.get_mut(&client.id) {
        state.watch = watch;
        state.configured = true;
        state.read_ready = true;
    }
    drop(registry);
    kick(shared);
    Ok(())
}

fn state_client(registry: &Registry, id: u64) -> Result<Arc<Client>> {
    registry
        .clients
        .get(&id)
        .map(|state| state.client.clone())
        .ok_or(EBADF)
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn poll(
    file: *mut bindings::file,
    table: *mut bindings::poll_table_struct,
) -> bindings::__poll_t {
    // SAFETY: the file is open.
    let client = unsafe { client_of(file) };
    // SAFETY: the wait queue lives until an RCU grace period after `release`, which cannot
    // run while `poll` holds the file.
    unsafe { ffi::poll_wait(file, client.wait.get(), table.cast::<PollTable>()) };
    let mut mask = ffi::EPOLLOUT | ffi::EPOLLWRNORM;
    if client.event_pending.load(Ordering::Acquire) {
        mask |= ffi::EPOLLIN | ffi::EPOLLRDNORM;
    }
    mask
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn fasync(fd: c_int, file: *mut bindings::file, on: c_int) -> c_int {
    // SAFETY: the file is open (the VFS also calls this with on=0 before `release`).
    let client = unsafe { client_of(file) };
    // SAFETY: `fasync` is this file's list; `fasync_helper` does its own locking.
    unsafe { bindings::fasync_helper(fd, file, on, client.fasync.get()) }
}

// ---- statistics in sysfs ----

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn show_stat(
    _device: *mut bindings::device,
    attribute: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    let shared = SHARED.load(Ordering::Acquire);
    if shared.is_null() {
        return ENODEV.to_errno() as isize;
    }
    // SAFETY: the attributes live in `Registration`, which outlives the sysfs files.
    let registration = unsafe { &*REGISTRATION.load(Ordering::Acquire) };
    let base = registration.attributes.as_ptr() as usize;
    let index = (attribute as usize)
        .checked_sub(base)
        .map(|offset| offset / core::mem::size_of::<bindings::device_attribute>());
    let Some(stat) = index.and_then(|index| STATS.get(index)) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: sysfs hands `show` a PAGE_SIZE buffer.
    let page = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), 64) };
    let mut writer = proto::LineWriter::new(page);
    writer.push_u64(stat.get());
    writer.push_str("\n");
    writer.len() as isize
}

/// The C structures of the registration: the misc device, its file operations and the
/// statistics attribute group. Pinned: C keeps pointers into it.
struct Registration {
    misc: MiscDevice,
    fops: bindings::file_operations,
    attributes: [bindings::device_attribute; STAT_COUNT],
    attribute_ptrs: [*mut bindings::attribute; STAT_COUNT + 1],
    group: bindings::attribute_group,
    groups: [*const bindings::attribute_group; 2],
}

static REGISTRATION: AtomicPtr<Registration> = AtomicPtr::new(ptr::null_mut());

struct Memnotify {
    shared: Pin<KBox<Shared>>,
    registration: Pin<KBox<CShared<Registration>>>,
    shrinker: *mut bindings::shrinker,
}

// SAFETY: the raw pointers are only used at init and exit, which the module loader
// serialises.
unsafe impl Send for Memnotify {}
// SAFETY: as above.
unsafe impl Sync for Memnotify {}

impl kernel::Module for Memnotify {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let shared = KBox::pin_init(
            pin_init!(Shared {
                registry <- new_mutex!(Registry::new(), "memnotify_registry"),
                sampler <- Opaque::ffi_init(|work: *mut bindings::delayed_work| {
                    // SAFETY: `work` is the pinned field being initialised.
                    unsafe {
                        ffi::init_delayed_work(
                            work,
                            sampler_run,
                            c_str!("memnotify_sampler"),
                            lock_class!(),
                            lock_class!(),
                        )
                    }
                }),
                kick_pending: AtomicBool::new(false),
                last_eval_start_ns: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )?;
        SHARED.store(ptr::from_ref(&*shared).cast_mut(), Ordering::Release);

        // SAFETY: all-zero is a valid `file_operations` (every callback absent).
        let mut fops: bindings::file_operations = unsafe { core::mem::zeroed() };
        fops.owner = module.as_ptr();
        fops.open = Some(open);
        fops.release = Some(release);
        fops.read = Some(read);
        fops.write = Some(write);
        fops.poll = Some(poll);
        fops.fasync = Some(fasync);
        fops.llseek = Some(bindings::default_llseek);

        // SAFETY: all-zero is a valid `device_attribute` (no callbacks).
        let mut attributes: [bindings::device_attribute; STAT_COUNT] =
            unsafe { core::mem::zeroed() };
        for (attribute, stat) in attributes.iter_mut().zip(STATS.iter()) {
            attribute.attr.name = stat.name.as_char_ptr();
            attribute.attr.mode = 0o444;
            attribute.show = Some(show_stat as ffi::ShowFn);
            // `sysfs_attr_init`: these attributes live in the heap (`Registration`), so
            // lockdep needs them to point at a key in static storage; without it kernfs
            // falls back to the `skey` inside the attribute, which lockdep rejects
            // ("BUG: key … has not been registered!") and then turns itself off.
            #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
            {
                attribute.attr.key = lock_class!();
            }
        }
        let registration = KBox::pin(
            CShared::new(Registration {
                misc: MiscDevice {
                    minor: ffi::MISC_DYNAMIC_MINOR,
                    name: c_str!("memnotify").as_char_ptr(),
                    fops: ptr::null(),
                    // SAFETY: all-zero is an unlinked `list_head`, as in C's static initialisers.
                    list: unsafe { core::mem::zeroed() },
                    parent: ptr::null_mut(),
                    this_device: ptr::null_mut(),
                    groups: ptr::null(),
                    nodename: ptr::null(),
                    mode: 0,
                },
                fops,
                attributes,
                attribute_ptrs: [ptr::null_mut(); STAT_COUNT + 1],
                // SAFETY: all-zero is an empty `attribute_group`.
                group: unsafe { core::mem::zeroed() },
                groups: [ptr::null(); 2],
            }),
            GFP_KERNEL,
        )?;
        let raw = registration.get();
        // SAFETY: `raw` points to the pinned registration, not yet shared with C; the
        // pointers set here point into the same allocation.
        unsafe {
            for i in 0..STAT_COUNT {
                (*raw).attribute_ptrs[i] = ptr::addr_of_mut!((*raw).attributes[i].attr);
            }
            (*raw).group.name = c_str!("statistics").as_char_ptr();
            (*raw).group.attrs = (*raw).attribute_ptrs.as_mut_ptr();
            (*raw).groups[0] = ptr::addr_of!((*raw).group);
            (*raw).misc.fops = ptr::addr_of!((*raw).fops);
            (*raw).misc.groups = (*raw).groups.as_ptr();
            let mut mode = DEV_MODE.load(Ordering::Relaxed) & 0o777;
            if DEV_GID.load(Ordering::Relaxed) != 0 {
                // The group check is done in `open`: misc devices have no node group.
                mode |= 0o066;
            }
            (*raw).misc.mode = mode as bindings::umode_t;
        }
        REGISTRATION.store(raw, Ordering::Release);

        // SAFETY: `shrinker_alloc` takes a printf format; the name has no conversions.
        let shrinker = unsafe { bindings::shrinker_alloc(0, c_str!("memnotify").as_char_ptr()) };
        if shrinker.is_null() {
            SHARED.store(ptr::null_mut(), Ordering::Release);
            return Err(ENOMEM);
        }
        // SAFETY: `shrinker` was just allocated and is not registered yet.
        unsafe {
            (*shrinker).count_objects = Some(reclaim_count);
            (*shrinker).scan_objects = Some(reclaim_scan);
            (*shrinker).seeks = bindings::DEFAULT_SEEKS as c_int;
            bindings::shrinker_register(shrinker);
        }

        // SAFETY: the registration is pinned and lives until `drop` deregisters it.
        let ret = unsafe { ffi::misc_register(ptr::addr_of_mut!((*raw).misc)) };
        if ret != 0 {
            // SAFETY: registered above, not yet visible to anything else.
            unsafe { bindings::shrinker_free(shrinker) };
            SHARED.store(ptr::null_mut(), Ordering::Release);
            REGISTRATION.store(ptr::null_mut(), Ordering::Release);
            return Err(Error::from_errno(ret));
        }
        pr_info!(
            "memnotify: /dev/memnotify ready (fast {} ms, slow {} ms)\n",
            FAST_MS.load(Ordering::Relaxed),
            SLOW_MS.load(Ordering::Relaxed)
        );
        Ok(Memnotify {
            shared,
            registration,
            shrinker,
        })
    }
}

impl Drop for Memnotify {
    fn drop(&mut self) {
        // No file can be open (each holds a module reference), so no new work can be
        // queued by a file; stop the other sources in order.
        // SAFETY: registered in `init`.
        unsafe { ffi::misc_deregister(ptr::addr_of_mut!((*self.registration.get()).misc)) };
        // SAFETY: registered in `init`; `shrinker_free` waits for running callbacks.
        unsafe { bindings::shrinker_free(self.shrinker) };
        // SAFETY: initialised in `init`; this also stops a self-rearming work item.
        unsafe { bindings::cancel_delayed_work_sync(self.shared.sampler.get()) };
        // Clients are freed by RCU callbacks in this module's text: wait for them.
        // SAFETY: no preconditions in process context.
        unsafe { bindings::rcu_barrier() };
        SHARED.store(ptr::null_mut(), Ordering::Release);
        REGISTRATION.store(ptr::null_mut(), Ordering::Release);
        pr_info!("memnotify: unloaded\n");
    }
}

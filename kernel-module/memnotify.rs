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
//! Sampling happens in process context on the system high-priority workqueue, only while files
//! are open, at a period that adapts to how close the nearest threshold is and how
//! fast the figures move, and at once when reclaim starts (a shrinker whose count
//! callback only kicks the sampler). Per figure, the armed triggers are kept in two
//! red-black trees (waiting to go up, waiting to go down) whose extreme keys the
//! registry caches, so an evaluation with nothing crossed costs the same whatever the
//! number of files, and one that finds crossings touches only the files that crossed,
//! in batches with the lock released in between. Each file is one 88-byte object of a
//! slab cache of its own, holding its wait queue, its first tree node and a watch of one
//! figure; a file that arms several figures or asks for SIGIO gets a second object.

mod ffi;

#[path = "../userspace/memnotify-proto/src/proto/mod.rs"]
pub mod proto;

use core::cell::{Cell, UnsafeCell};
use core::pin::Pin;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_ulong, c_void};
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNodeReservation};
use kernel::sync::Mutex;
use kernel::types::{Opaque, ScopeGuard};
use kernel::uaccess::UserSlice;
use kernel::{c_str, new_mutex};

use ffi::{lock_class, module_param_uint, CShared, MiscDevice, PollTable};
use proto::{
    format_line, parse_thresholds, speed_pages_per_s, Counters, DefaultClient, Figure, Figures,
    FileFlags, Level, Levels, Observation, Sampling, SingleWatch, Snapshot, Thresholds, Trigger,
    Units, Watch, FIGURE_COUNT, LINE_BUF, WRITE_MAX,
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
    1..=60_000,
    0o644,
    "Shortest sampling period in ms, used close to a threshold (1-60000, default 10)"
);
module_param_uint!(
    SLOW_MS,
    PARAM_SLOW_MS,
    "slow_ms",
    1000,
    1..=3_600_000,
    0o644,
    "Longest sampling period in ms, used far from every threshold (1-3600000, default 1000)"
);
module_param_uint!(
    UNPRIVILEGED_MS,
    PARAM_UNPRIVILEGED_MS,
    "unprivileged_ms",
    1000,
    1..=60_000,
    0o644,
    "Shortest sampling period the thresholds and writes of files opened without CAP_SYS_RESOURCE can cause, in ms (1-60000, default 1000)"
);
module_param_uint!(
    DEFAULT_LOW_PCT,
    PARAM_DEFAULT_LOW_PCT,
    "default_low_pct",
    proto::DEFAULT_LOW_PCT as u32,
    0..=100,
    0o644,
    "Default low level: available below this % of RAM (0 disables; default 10)"
);
module_param_uint!(
    DEFAULT_CRITICAL_PCT,
    PARAM_DEFAULT_CRITICAL_PCT,
    "default_critical_pct",
    proto::DEFAULT_CRITICAL_PCT as u32,
    0..=100,
    0o644,
    "Default critical level: available below this % of RAM (0 disables; default 5)"
);
module_param_uint!(
    RATE_LIMIT_MS,
    PARAM_RATE_LIMIT_MS,
    "rate_limit_ms",
    200,
    0..=3_600_000,
    0o644,
    "Minimum ms between two default-level events on one file (0-3600000, default 200)"
);
module_param_uint!(
    MAX_CLIENTS,
    PARAM_MAX_CLIENTS,
    "max_clients",
    16384,
    1..=1_048_576,
    0o644,
    "Most open files in all (1-1048576, default 16384)"
);
module_param_uint!(
    MAX_PER_UID,
    PARAM_MAX_PER_UID,
    "max_per_uid",
    256,
    1..=1_048_576,
    0o644,
    "Most open files per user without CAP_SYS_RESOURCE (1-1048576, default 256)"
);
module_param_uint!(
    DEV_MODE,
    PARAM_DEV_MODE,
    "dev_mode",
    0o666,
    0..=0o777,
    0o444,
    "Permissions of /dev/memnotify (0-0777, default 0666)"
);
module_param_uint!(
    DEV_GID,
    PARAM_DEV_GID,
    "dev_gid",
    0,
    0..=u32::MAX,
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
    /// A file opened or wrote thresholds since the running evaluation started: it plans
    /// the next one at once instead of moving the kick's run back to its own period.
    kicked: AtomicBool,
    /// Monotonic time of the last evaluation's start.
    last_eval_start_ns: AtomicU64,
    /// Monotonic time of the last kick an unprivileged file was allowed ([`kick_for`]).
    last_limited_kick_ns: AtomicU64,
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

/// A node of one of the registry's red-black trees, embedded in a [`Client`] (or in its
/// [`Aux`]). The tree code is C's `lib/rbtree.c`; the registry lock guards every tree
/// and every node.
#[repr(C)]
struct Node {
    /// First, so that a `*mut rb_node` of this tree is a `*mut Node`.
    link: Opaque<bindings::rb_node>,
    /// The tree's key: the trigger's value in pages in a trigger tree (a [`Watch`] keeps
    /// thresholds in 32 bits), the file's open number in `defaults`. Equal keys are
    /// allowed.
    key: Cell<u32>,
    /// 0 for the node inside the [`Client`], `n` for the `n`-th node of its [`Aux`]:
    /// how [`Node::client`] finds the client without a pointer in every node.
    rank: u8,
    // The file's own small fields, in the node inside the `Client`: the `rb_node` and
    // the key make a node 32 bytes on 64-bit kernels whatever, and these three bytes
    // would be its padding. An `Aux`'s nodes leave them unused.
    /// The inline watch's figure and side, and the file's other flags. Guarded by the
    /// registry lock.
    flags: Cell<FileFlags>,
    /// An unread event: the file polls readable. Read without the lock.
    event_pending: AtomicBool,
    /// The file counts against the per-uid limit.
    limited: bool,
}

impl Node {
    const fn new(rank: u8, limited: bool) -> Self {
        Node {
            link: Opaque::uninit(),
            key: Cell::new(0),
            rank,
            flags: Cell::new(FileFlags::new(Level::Normal)),
            event_pending: AtomicBool::new(false),
            limited,
        }
    }

    /// The client `node` belongs to.
    ///
    /// # Safety
    ///
    /// `node` is the node of a live client or of its [`Aux`], and the registry lock is
    /// held (or the client is not yet shared).
    unsafe fn client(node: *const Node) -> *const Client {
        // SAFETY: by contract, a rank-0 node is the `node` field of a `Client`, and a
        // rank-`n` node is element `n - 1` of the `nodes` array of an `Aux`, whose
        // `client` field points to its client.
        unsafe {
            match (*node).rank {
                0 => node
                    .byte_sub(core::mem::offset_of!(Client, node))
                    .cast::<Client>(),
                rank => {
                    let nodes = node.sub(usize::from(rank) - 1);
                    let aux = nodes
                        .byte_sub(core::mem::offset_of!(Aux, nodes))
                        .cast::<Aux>();
                    (*aux).client
                }
            }
        }
    }
}

/// What a file keeps out of line: allocated only once it arms more than one figure or
/// asks for SIGIO, and kept until `release` (`fasync_helper` holds on to `fasync`).
struct Aux {
    /// The client this belongs to.
    client: *const Client,
    /// The file's whole watch (the client's inline fields hold at most one figure).
    /// Guarded by the registry lock.
    watch: Cell<Watch>,
    /// The `fasync_struct` list for SIGIO, managed by `fasync_helper`.
    fasync: Opaque<*mut bindings::fasync_struct>,
    /// Nodes for the second to seventh armed figure.
    nodes: [Node; FIGURE_COUNT - 1],
}

impl Aux {
    fn new(client: *const Client) -> Self {
        Aux {
            client,
            watch: Cell::new(Watch::default()),
            fasync: Opaque::new(ptr::null_mut()),
            nodes: core::array::from_fn(|index| Node::new(index as u8 + 1, false)),
        }
    }
}

/// An open file: one object from the `memnotify_client` cache, 88 bytes on 64-bit
/// kernels without lock debugging: its wait queue, its first tree node (which also
/// carries its flags) and a watch of one figure inline, everything rarer in an [`Aux`].
struct Client {
    /// The file's wait queue: only this file's pollers sleep on it, so a wake-up wakes
    /// exactly the clients whose thresholds crossed.
    wait: Opaque<bindings::wait_queue_head>,
    /// The node of the first armed figure's trigger, or, while the file has written no
    /// thresholds, its node in `defaults`. After `release` its memory is the
    /// `callback_head` that frees the client after an RCU grace period.
    node: Node,
    /// Guarded by the registry lock.
    state: UnsafeCell<ClientState>,
}

// SAFETY: `wait` and the `Aux`'s `fasync` are only touched through the kernel's own
// synchronised primitives (wait queue lock, fasync lock, RCU); `node` (but for its
// atomic `event_pending` and immutable `limited`) and `state` only with the registry
// lock held.
unsafe impl Send for Client {}
// SAFETY: as above.
unsafe impl Sync for Client {}

/// A client's protocol state, guarded by the registry lock.
struct ClientState {
    /// The out-of-line part, once needed.
    aux: Option<KBox<Aux>>,
    /// When the evaluation that delivered the file's latest event started (0: none);
    /// a read that consumes the event reports it, and default levels rate-limit by it.
    last_event_ns: u64,
    /// Events sent to this file.
    seq: u64,
    /// The inline watch's threshold in pages.
    value: u32,
    /// The inline watch's hysteresis in pages.
    hysteresis: u32,
}

// The `callback_head` of the RCU-deferred free lives in the first node's `rb_node`.
const _: () = {
    use core::mem::{align_of, size_of};
    assert!(size_of::<bindings::rb_node>() >= size_of::<bindings::callback_head>());
    assert!(align_of::<bindings::rb_node>() >= align_of::<bindings::callback_head>());
};

// What a client costs: checked where the wait queue's spinlock has its production size.
#[cfg(all(
    target_pointer_width = "64",
    not(CONFIG_DEBUG_SPINLOCK),
    not(CONFIG_DEBUG_LOCK_ALLOC)
))]
const _: () = assert!(core::mem::size_of::<Client>() == 88);

impl Client {
    /// The client's protocol state. Dereferencing the pointer needs the registry lock
    /// held for as long as the reference lives, and no other reference to the state.
    fn state(&self) -> *mut ClientState {
        self.state.get()
    }

    /// Changes the file's flags. The registry lock is held.
    fn update_flags(&self, change: impl FnOnce(FileFlags) -> FileFlags) {
        self.node.flags.set(change(self.node.flags.get()));
    }

    /// Makes `spare` the file's [`Aux`] unless it has one already (then `spare` stays),
    /// holding the file's watch from now on (see [`Client::watch`]). The registry lock is
    /// held (`state` is borrowed under it).
    fn install_aux(&self, state: &mut ClientState, spare: &mut Option<KBox<Aux>>) {
        if state.aux.is_some() {
            return;
        }
        if let Some(aux) = spare.as_ref() {
            aux.watch.set(self.watch(state));
        }
        state.aux = spare.take();
    }

    /// The file's thresholds and sides. The registry lock is held (`state` is borrowed
    /// under it).
    fn watch(&self, state: &ClientState) -> Watch {
        match state.aux.as_ref() {
            Some(aux) => aux.watch.get(),
            None => {
                let flags = self.node.flags.get();
                Watch::from_single(SingleWatch {
                    figure: flags.figure(),
                    value: state.value,
                    hysteresis: state.hysteresis,
                    above: flags.above(),
                })
            }
        }
    }

    /// Stores `watch` as [`Client::watch`] returns it; false (and nothing changed) if it
    /// arms several figures and the client has no [`Aux`] to hold it.
    fn set_watch(&self, state: &mut ClientState, watch: Watch) -> bool {
        let single = match (watch.single(), state.aux.as_ref()) {
            (Some(single), _) => single,
            (None, Some(_)) => SingleWatch::default(),
            (None, None) => return false,
        };
        if let Some(aux) = state.aux.as_ref() {
            aux.watch.set(watch);
        }
        state.value = single.value;
        state.hysteresis = single.hysteresis;
        self.update_flags(|flags| flags.with_figure(single.figure, single.above));
        true
    }

    /// The node that holds a trigger of the `rank`-th armed figure (in figure order):
    /// the inline node for rank 0, the [`Aux`]'s nodes after it.
    fn node_at(&self, state: &ClientState, rank: usize) -> Option<*mut Node> {
        if rank == 0 {
            return Some(ptr::from_ref(&self.node).cast_mut());
        }
        let aux = state.aux.as_ref()?;
        aux.nodes
            .get(rank - 1)
            .map(|node| ptr::from_ref(node).cast_mut())
    }

    /// Each armed figure's trigger and the node that holds it (`None`: missing).
    fn trigger_nodes<'a>(
        &'a self,
        state: &'a ClientState,
    ) -> impl Iterator<Item = (Figure, Trigger, Option<*mut Node>)> + 'a {
        let watch = self.watch(state);
        Figure::ALL
            .into_iter()
            .filter_map(move |figure| Some((figure, watch.trigger(figure)?)))
            .enumerate()
            .map(|(rank, (figure, trigger))| (figure, trigger, self.node_at(state, rank)))
    }
}

/// One red-black tree of nodes ordered by key, with its first and last node and their
/// keys kept up to date on every insertion and removal, so that an evaluation with
/// nothing crossed reads only these words, whatever the number of files.
struct Tree {
    root: bindings::rb_root,
    /// The node with the smallest key (the leftmost of equal keys), or null.
    first: *mut Node,
    /// The node with the largest key (the rightmost of equal keys), or null.
    last: *mut Node,
    /// `first`'s key (meaningless while the tree is empty).
    min: u32,
    /// `last`'s key (meaningless while the tree is empty).
    max: u32,
}

impl Tree {
    const fn new() -> Self {
        Tree {
            root: bindings::rb_root {
                rb_node: ptr::null_mut(),
            },
            first: ptr::null_mut(),
            last: ptr::null_mut(),
            min: 0,
            max: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.first.is_null()
    }

    /// Links `node` with `key`, after the nodes of equal key.
    ///
    /// # Safety
    ///
    /// `node` is valid, in no tree, and stays valid and unmoved until [`Tree::remove`].
    unsafe fn insert(&mut self, node: *mut Node, key: u32) {
        let (mut leftmost, mut rightmost) = (true, true);
        // SAFETY: `node` is valid by contract and in no tree; every node reached from
        // `root` is linked in this tree, hence valid (the registry lock guards them all).
        unsafe {
            (*node).key.set(key);
            let mut link: *mut *mut bindings::rb_node = &mut self.root.rb_node;
            let mut parent: *mut bindings::rb_node = ptr::null_mut();
            // Past either end, the new node is the last node's right child (or the first
            // node's left child): no walk down the tree. A delivery moves every crossed
            // file to the far end of another tree, and opens append to `defaults`, so
            // this is the common case.
            if !self.last.is_null() && key >= self.max {
                parent = (*self.last).link.get();
                link = &mut (*parent).rb_right;
                leftmost = false;
            } else if !self.first.is_null() && key < self.min {
                parent = (*self.first).link.get();
                link = &mut (*parent).rb_left;
                rightmost = false;
            }
            while !(*link).is_null() {
                parent = *link;
                if key < (*parent.cast::<Node>()).key.get() {
                    link = &mut (*parent).rb_left;
                    rightmost = false;
                } else {
                    link = &mut (*parent).rb_right;
                    leftmost = false;
                }
            }
            // `rb_link_node()`, an inline in C.
            let rb = (*node).link.get();
            (*rb).__rb_parent_color = parent as c_ulong;
            (*rb).rb_left = ptr::null_mut();
            (*rb).rb_right = ptr::null_mut();
            *link = rb;
            bindings::rb_insert_color(rb, &mut self.root);
        }
        if leftmost {
            self.first = node;
            self.min = key;
        }
        if rightmost {
            self.last = node;
            self.max = key;
        }
    }

    /// Unlinks `node`.
    ///
    /// # Safety
    ///
    /// `node` is linked in this tree.
    unsafe fn remove(&mut self, node: *mut Node) {
        // SAFETY: `node` and its neighbours are linked in this tree, hence valid.
        unsafe {
            let rb = (*node).link.get();
            if node == self.first {
                self.first = bindings::rb_next(rb).cast::<Node>();
                if !self.first.is_null() {
                    self.min = (*self.first).key.get();
                }
            }
            if node == self.last {
                self.last = bindings::rb_prev(rb).cast::<Node>();
                if !self.last.is_null() {
                    self.max = (*self.last).key.get();
                }
            }
            bindings::rb_erase(rb, &mut self.root);
        }
    }

    /// The first node whose key is greater than `key`, or null.
    fn first_after(&self, key: u32) -> *mut Node {
        let mut found = ptr::null_mut();
        let mut rb = self.root.rb_node;
        while !rb.is_null() {
            // SAFETY: `rb` is linked in this tree, hence valid.
            unsafe {
                if (*rb.cast::<Node>()).key.get() > key {
                    found = rb.cast::<Node>();
                    rb = (*rb).rb_left;
                } else {
                    rb = (*rb).rb_right;
                }
            }
        }
        found
    }
}

/// The two classes of files, each with trees of its own: the thresholds of unprivileged
/// files (opened without `CAP_SYS_RESOURCE`) cannot make the sampler run more often
/// than every `unprivileged_ms`.
const PRIVILEGED: usize = 0;
const UNPRIVILEGED: usize = 1;

/// The class of a file's triggers.
fn class(client: &Client) -> usize {
    if client.node.limited {
        UNPRIVILEGED
    } else {
        PRIVILEGED
    }
}

struct Registry {
    /// Per class and figure: files waiting for the figure to rise to their trigger.
    up: [[Tree; FIGURE_COUNT]; 2],
    /// Per class and figure: files waiting for the figure to fall below their trigger.
    down: [[Tree; FIGURE_COUNT]; 2],
    /// Files that never wrote thresholds, by open number.
    defaults: Tree,
    /// Open files.
    clients: u32,
    /// Open files per uid, for the per-uid limit.
    per_uid: RBTree<u32, u32>,
    /// The next open number, never 0 (it wraps; equal keys are allowed in `defaults`).
    next_id: u32,
    level: Level,
    /// Default clients whose level change is held back by the rate limit.
    lagging: u32,
    /// The last evaluation's sample, returned by reads that consume an event.
    last: Snapshot,
    /// Whether the sampler is armed (files are open).
    sampling: bool,
    /// An evaluation is delivering crossings with the lock released between batches:
    /// writes take their sides from its figures (`last`), so that the rest of its
    /// delivery never sees a trigger the write armed as crossed.
    delivering: bool,
}

// SAFETY: the raw pointers are to nodes in `Client`s that stay allocated while linked;
// they are only followed with the registry lock held.
unsafe impl Send for Registry {}

impl Registry {
    fn new() -> Self {
        Registry {
            up: [const { [const { Tree::new() }; FIGURE_COUNT] }; 2],
            down: [const { [const { Tree::new() }; FIGURE_COUNT] }; 2],
            defaults: Tree::new(),
            clients: 0,
            per_uid: RBTree::new(),
            next_id: 1,
            level: Level::Normal,
            lagging: 0,
            last: Snapshot::default(),
            sampling: false,
            delivering: false,
        }
    }

    fn tree(&mut self, class: usize, figure: Figure, trigger: Trigger) -> &mut Tree {
        match trigger {
            Trigger::UpAt(_) => &mut self.up[class][figure.index()],
            Trigger::DownBelow(_) => &mut self.down[class][figure.index()],
        }
    }

    /// Links `client`'s nodes: one per armed trigger, or its node in `defaults` if it
    /// has written no thresholds.
    ///
    /// # Safety
    ///
    /// The client is open and none of its nodes is linked; its state is not borrowed.
    unsafe fn index(&mut self, client: &Client) {
        // SAFETY: the lock is held (`self` is the guarded data) and nothing else borrows
        // the state.
        let state = unsafe { &*client.state() };
        if !client.node.flags.get().configured() {
            let node = ptr::from_ref(&client.node).cast_mut();
            let id = client.node.key.get();
            // SAFETY: the node is in no tree and lives until `release` unlinks it.
            unsafe { self.defaults.insert(node, id) };
            return;
        }
        for (figure, trigger, node) in client.trigger_nodes(state) {
            let Some(node) = node else {
                // `write` allocates the `Aux` before arming more than one figure.
                pr_err!("trigger node missing\n");
                return;
            };
            // SAFETY: the node is in no tree and lives until it is unlinked.
            unsafe {
                self.tree(class(client), figure, trigger)
                    .insert(node, trigger_key(trigger))
            };
        }
    }

    /// Unlinks what [`Registry::index`] linked.
    ///
    /// # Safety
    ///
    /// The client's nodes are linked as its state says; its state is not borrowed.
    unsafe fn unindex(&mut self, client: &Client) {
        // SAFETY: as in `index`.
        let state = unsafe { &*client.state() };
        if !client.node.flags.get().configured() {
            // SAFETY: an unconfigured open client's node is linked in `defaults`.
            unsafe { self.defaults.remove(ptr::from_ref(&client.node).cast_mut()) };
            return;
        }
        for (figure, trigger, node) in client.trigger_nodes(state) {
            if let Some(node) = node {
                // SAFETY: `index` linked this node in this tree for this trigger.
                unsafe { self.tree(class(client), figure, trigger).remove(node) };
            }
        }
    }

    /// A node whose trigger `figures` cross, if any: O(1) in the number of files.
    fn crossed(&self, figures: &Figures) -> Option<*mut Node> {
        for class in [PRIVILEGED, UNPRIVILEGED] {
            for figure in Figure::ALL {
                let value = figures.get(figure);
                let up = &self.up[class][figure.index()];
                if !up.is_empty() && Trigger::UpAt(up.min.into()).crossed_by(value) {
                    return Some(up.first);
                }
                let down = &self.down[class][figure.index()];
                if !down.is_empty() && Trigger::DownBelow(down.max.into()).crossed_by(value) {
                    return Some(down.last);
                }
            }
        }
        None
    }

    /// The distance of the nearest armed trigger of a class from `now`, in pages.
    fn nearest(&self, class: usize, now: &Figures) -> Option<u64> {
        let mut nearest: Option<u64> = None;
        for figure in Figure::ALL {
            let value = now.get(figure);
            let up = &self.up[class][figure.index()];
            let down = &self.down[class][figure.index()];
            let distances = [
                (!up.is_empty()).then(|| Trigger::UpAt(up.min.into()).distance(value)),
                (!down.is_empty()).then(|| Trigger::DownBelow(down.max.into()).distance(value)),
            ];
            for distance in distances.into_iter().flatten() {
                nearest = Some(nearest.map_or(distance, |n| n.min(distance)));
            }
        }
        nearest
    }
}

/// A trigger's key in its tree: its value, which fits in 32 bits because a [`Watch`]
/// keeps thresholds in 32 bits.
fn trigger_key(trigger: Trigger) -> u32 {
    match trigger {
        Trigger::UpAt(value) | Trigger::DownBelow(value) => {
            u32::try_from(value).unwrap_or(u32::MAX)
        }
    }
}

/// The `memnotify_client` slab cache, set between `init` and the end of `drop`.
static CLIENT_CACHE: AtomicPtr<bindings::kmem_cache> = AtomicPtr::new(ptr::null_mut());

/// Destroys the client cache once no client is left (every file closed and every RCU
/// callback run).
fn destroy_client_cache() {
    let cache = CLIENT_CACHE.swap(ptr::null_mut(), Ordering::AcqRel);
    if !cache.is_null() {
        // SAFETY: created in `init`; the callers guarantee no object is left.
        unsafe { bindings::kmem_cache_destroy(cache) };
    }
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

/// Marks an event on `client`'s file, delivered by the evaluation that started at
/// `time_ns`, and wakes its pollers and SIGIO owners.
fn deliver(client: &Client, state: &mut ClientState, time_ns: u64) {
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
const BATCH: usize = 64;

/// Lets other tasks run between two batches of a delivery, with the lock released.
fn pause_between_batches<'a>(
    shared: &'a Shared,
    registry: kernel::sync::lock::Guard<'a, Registry, kernel::sync::lock::mutex::MutexBackend>,
) -> kernel::sync::lock::Guard<'a, Registry, kernel::sync::lock::mutex::MutexBackend> {
    drop(registry);
    ffi::cond_resched();
    shared.registry.lock()
}

/// One evaluation: sample, deliver crossings and default levels, plan the next run.
fn evaluate(shared: &Shared) {
    let start = now_ns();
    shared.last_eval_start_ns.store(start, Ordering::Relaxed);
    shared.kick_pending.store(false, Ordering::Relaxed);
    shared.kicked.store(false, Ordering::Relaxed);
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
        kicked: shared.kicked.load(Ordering::Relaxed),
    });

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
    // A kick that came after the plan read `kicked` but before the line above had its
    // immediate run pushed back by `interval`: run at once after all. (If its own
    // `mod_delayed_work` came after ours instead, the workqueue's lock orders its store
    // before that call, and it stands.)
    if interval != 0 && shared.kicked.load(Ordering::Relaxed) {
        // SAFETY: as above.
        unsafe { ffi::mod_delayed_work(shared.sampler.get(), 0) };
    }
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn sampler_run(_work: *mut bindings::work_struct) {
    evaluate(shared());
}

/// Starts the sampler now (a file opened or wrote thresholds).
fn kick(shared: &Shared) {
    shared.kicked.store(true, Ordering::Relaxed);
    // SAFETY: the sampler was initialised before registration and is cancelled at exit.
    unsafe { ffi::mod_delayed_work(shared.sampler.get(), 0) };
}

/// Starts the sampler for a file: now for a privileged one; for an unprivileged one at
/// once at most every `unprivileged_ms`, otherwise no later than that from now (which
/// never delays a run already due sooner), so that no loop of opens or writes by any
/// user can make the module sample flat out.
fn kick_for(shared: &Shared, limited: bool) {
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
    // SAFETY: `open` stored a pointer to the file's `Client` in `private_data`; the
    // client is freed only after `release`.
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

/// A client allocated from the cache and initialised, not yet registered.
fn new_client(limited: bool) -> Result<*mut Client> {
    let cache = CLIENT_CACHE.load(Ordering::Acquire);
    // SAFETY: the cache exists while the device is registered, which it is during `open`.
    let raw =
        unsafe { bindings::kmem_cache_alloc_noprof(cache, bindings::GFP_KERNEL) }.cast::<Client>();
    if raw.is_null() {
        return Err(ENOMEM);
    }
    // SAFETY: `raw` is a fresh object of the cache, sized and aligned for a `Client`
    // (see `init`); it never moves until it is freed.
    unsafe {
        raw.write(Client {
            wait: Opaque::uninit(),
            node: Node::new(0, limited),
            state: UnsafeCell::new(ClientState {
                aux: None,
                last_event_ns: 0,
                seq: 0,
                value: 0,
                hysteresis: 0,
            }),
        });
        bindings::__init_waitqueue_head(
            (*raw).wait.get(),
            c_str!("memnotify_client").as_char_ptr(),
            lock_class!(),
        );
    }
    Ok(raw)
}

/// Returns a client that was never registered, or whose RCU grace period has passed,
/// to the cache.
///
/// # Safety
///
/// `raw` came from [`new_client`], is in no tree and is referenced by nothing else.
unsafe fn free_client_now(raw: *mut Client) {
    // SAFETY: by contract; dropping frees the `Aux` if any.
    unsafe {
        ptr::drop_in_place(raw);
        bindings::kmem_cache_free(CLIENT_CACHE.load(Ordering::Acquire), raw.cast::<c_void>());
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
    // CAP_SYS_RESOURCE picks the file's class (exempt from the per-uid limit, no floor
    // on how often it can make the module sample); it refuses nothing by itself, so it is
    // asked without an audit record, which `capable()` would write for every ordinary
    // user's open.
    // SAFETY: as above; `init_user_ns` is static.
    let limited = unsafe {
        !bindings::ns_capable_noaudit(
            ptr::addr_of_mut!(bindings::init_user_ns),
            bindings::CAP_SYS_RESOURCE as c_int,
        )
    };

    // Allocate everything before taking the lock, so a failure changes nothing.
    let uid_node = RBTreeNodeReservation::<u32, u32>::new(GFP_KERNEL)?;
    let raw = new_client(limited)?;

    let mut registry = shared.registry.lock();
    let per_uid = registry.per_uid.get(&uid).copied().unwrap_or(0);
    if u64::from(registry.clients) >= u64::from(MAX_CLIENTS.load(Ordering::Relaxed))
        || (limited && per_uid >= MAX_PER_UID.load(Ordering::Relaxed))
    {
        drop(registry);
        // SAFETY: never registered.
        unsafe { free_client_now(raw) };
        return Err(EMFILE);
    }
    let id = registry.next_id;
    // Open numbers wrap, skipping 0: a batch of the default-level delivery resumes at
    // the first key above its next key minus one.
    registry.next_id = id.checked_add(1).unwrap_or(1);
    // SAFETY: `raw` is initialised; the lock is held.
    let client = unsafe { &*raw };
    client.node.flags.set(FileFlags::new(registry.level));
    client.node.key.set(id);
    // SAFETY: the client is unconfigured and in no tree.
    unsafe { registry.index(client) };
    if limited {
        registry
            .per_uid
            .insert(uid_node.into_node(uid, per_uid + 1));
    }
    registry.clients += 1;
    CLIENTS.set(u64::from(registry.clients));
    let start_sampler = !registry.sampling;
    registry.sampling = true;
    drop(registry);

    // SAFETY: `file` is valid; `release` takes the client back.
    unsafe { (*file).private_data = raw.cast::<c_void>() };
    if start_sampler {
        kick_for(shared, limited);
    }
    Ok(())
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    let shared = shared();
    // SAFETY: `open` stored the file's client here.
    let raw = unsafe { (*file).private_data.cast::<Client>() };
    // SAFETY: the client stays allocated until the RCU callback below.
    let client = unsafe { &*raw };
    let aux = {
        let mut registry = shared.registry.lock();
        // SAFETY: the client is open, its nodes linked as its state says.
        unsafe { registry.unindex(client) };
        if client.node.limited {
            // SAFETY: `f_cred` is the opener's credentials, as in `open`.
            let uid = unsafe { (*(*file).f_cred).uid.val };
            match registry.per_uid.get(&uid).copied() {
                Some(count) if count > 1 => {
                    if let Some(count_ref) = registry.per_uid.get_mut(&uid) {
                        *count_ref = count - 1;
                    }
                }
                _ => {
                    registry.per_uid.remove(&uid);
                }
            }
        }
        registry.clients = registry.clients.saturating_sub(1);
        CLIENTS.set(u64::from(registry.clients));
        // SAFETY: the lock is held; the nodes are unlinked, so nothing reaches them, and
        // the VFS has already called `fasync` to leave the SIGIO list.
        unsafe { (*client.state()).aux.take() }
    };
    drop(aux);
    // No poller can still be queued (poll and epoll hold a file reference, and epoll
    // unhooks before `release`), but the wait queue goes away with the client: tell any
    // waiter, as upstream's poll abstraction does, and free only after an RCU grace
    // period, which `__wake_up_pollfree` requires. No evaluation can reach the client
    // any more: it was unlinked under the lock, and deliveries wake only under the lock.
    // SAFETY: the wait queue is initialised and still allocated.
    unsafe { bindings::__wake_up_pollfree(client.wait.get()) };
    // The first node is unlinked: its `rb_node` becomes the `callback_head` (see the
    // assertion by `ClientState`).
    let head = client.node.link.get().cast::<bindings::callback_head>();
    // SAFETY: `head` is inside the client, which stays allocated until the callback.
    unsafe { bindings::call_rcu(head, Some(free_client)) };
    0
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
unsafe extern "C" fn free_client(head: *mut bindings::callback_head) {
    let offset = core::mem::offset_of!(Client, node) + core::mem::offset_of!(Node, link);
    // SAFETY: `head` is the first node's link of a client that `release` retired; the
    // grace period has passed, so nothing references it.
    unsafe { free_client_now(head.cast::<u8>().sub(offset).cast::<Client>()) };
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
    let shared = shared();
    // What to report is decided under the lock, so that a delivery cannot land between
    // seeing the event and reading its figures.
    let registry = shared.registry.lock();
    let event = client.node.event_pending.load(Ordering::Acquire);
    let last = registry.last;
    let level = registry.level;
    // SAFETY: the lock is held; nothing else borrows the state.
    let state = unsafe { &*client.state() };
    // EOF unless this is a sample request (offset 0), or something happened since the
    // previous read: `cat` ends, event-driven readers that never seek keep working.
    if position != 0 && !client.node.flags.get().read_ready() && !event {
        return Ok(0);
    }
    let seq = state.seq;
    let event_ns = state.last_event_ns;
    drop(registry);

    let mut snapshot = if event && last.time_ns != 0 {
        // The latest evaluation's figures, with the time of the evaluation that
        // delivered this file's event (the same one unless another ran since).
        Snapshot {
            time_ns: if event_ns != 0 {
                event_ns
            } else {
                last.time_ns
            },
            ..last
        }
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
    // A short buffer gets the start of the line, as from a datagram; an empty one gets
    // nothing, and nothing is consumed.
    let n = len.min(count);
    if n == 0 {
        return Ok(0);
    }
    // A failed copy (EFAULT) consumes nothing either.
    UserSlice::new(buf as usize, count)
        .writer()
        .write_slice(&line[..n])?;

    // The line reached the reader: the event it reported is consumed, unless another
    // delivery came since (then that one stays pending, with its own figures).
    let _registry = shared.registry.lock();
    // SAFETY: the lock is held; nothing else borrows the state.
    if unsafe { &*client.state() }.seq == seq {
        client.update_flags(|flags| flags.with_read_ready(false));
        client.node.event_pending.store(false, Ordering::Release);
    }
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
    let sampled_ns = now_ns();
    let sampled = sample();
    let thresholds: Thresholds =
        parse_thresholds(&text[..count], units(sampled.get(Figure::Total))).map_err(|_| EINVAL)?;
    // Allocate the `Aux` for a watch of several figures before taking the lock, so that
    // a failure leaves the old thresholds in force (how many figures a watch arms does
    // not depend on the figures it is armed against).
    let mut spare = if Watch::new(thresholds, &sampled).armed() > 1 {
        Some(KBox::new(Aux::new(ptr::from_ref(client)), GFP_KERNEL)?)
    } else {
        None
    };

    let shared = shared();
    let mut registry = shared.registry.lock();
    // While an evaluation delivers in batches, arm against its figures: the rest of its
    // delivery then cannot find these triggers crossed; the next evaluation compares
    // them with a new sample as usual. Otherwise arm against the newer of this write's
    // sample and the last evaluation's: an older one could put the watch on the wrong
    // side of a threshold the figures have already crossed, for a spurious crossing at
    // the next evaluation and its reverse after.
    let figures = if registry.delivering || registry.last.time_ns >= sampled_ns {
        registry.last.figures
    } else {
        sampled
    };
    let watch = Watch::new(thresholds, &figures);
    // SAFETY: the client is open, its nodes linked as its state says.
    unsafe { registry.unindex(client) };
    let stored = {
        // SAFETY: the lock is held; the client's nodes are unlinked.
        let state = unsafe { &mut *client.state() };
        client.install_aux(state, &mut spare);
        client.set_watch(state, watch)
    };
    if stored {
        client.update_flags(|flags| flags.with_configured(true).with_read_ready(true));
    }
    // SAFETY: the nodes are unlinked and the state no longer borrowed.
    unsafe { registry.index(client) };
    drop(registry);
    drop(spare);
    if !stored {
        // Never reached: the `Aux` was allocated above for a watch of several figures.
        return Err(ENOMEM);
    }
    kick_for(shared, client.node.limited);
    Ok(())
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
    if client.node.event_pending.load(Ordering::Acquire) {
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
    match sigio_list(client, on != 0) {
        // SAFETY: `list` is this file's list, in its `Aux`, which stays until `release`;
        // `fasync_helper` does its own locking.
        Ok(Some(list)) => unsafe { bindings::fasync_helper(fd, file, on, list) },
        // Turning SIGIO off on a file that never turned it on.
        Ok(None) => 0,
        Err(error) => error.to_errno(),
    }
}

/// The file's SIGIO list, which lives in its [`Aux`]; with `create`, the `Aux` is
/// allocated first if the file has none yet.
fn sigio_list(client: &Client, create: bool) -> Result<Option<*mut *mut bindings::fasync_struct>> {
    let shared = shared();
    let find = |state: &ClientState| state.aux.as_ref().map(|aux| aux.fasync.get());
    {
        let _registry = shared.registry.lock();
        // SAFETY: the lock is held; nothing else borrows the state.
        let state = unsafe { &*client.state() };
        if let Some(list) = find(state) {
            return Ok(Some(list));
        }
        if !create {
            return Ok(None);
        }
    }
    // Allocate without the lock; another `fasync` or a `write` may install one first.
    let mut spare = Some(KBox::new(Aux::new(ptr::from_ref(client)), GFP_KERNEL)?);
    let registry = shared.registry.lock();
    // SAFETY: the lock is held; nothing else borrows the state.
    let state = unsafe { &mut *client.state() };
    client.install_aux(state, &mut spare);
    let list = find(state);
    drop(registry);
    drop(spare);
    Ok(list)
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

// SAFETY: `init` fills the registration through a raw pointer before it registers the
// misc device; from then on C reads it under the misc layer's lock, and Rust only takes
// the address of its attributes (`show_stat`).
unsafe impl ffi::HandedToC for Registration {}

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
                kicked: AtomicBool::new(false),
                last_limited_kick_ns: AtomicU64::new(0),
                last_eval_start_ns: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )?;
        // Each step that succeeds pushes its undo; a failure returns, and the undos run
        // in reverse order as the guards go out of scope. Success dismisses them all.
        SHARED.store(ptr::from_ref(&*shared).cast_mut(), Ordering::Release);
        let unpublish_shared = ScopeGuard::new(|| SHARED.store(ptr::null_mut(), Ordering::Release));

        // One cache for the clients: a `Client` is one object of exactly its size instead
        // of the next kmalloc size. No constructor: `open` initialises every field.
        // SAFETY: all-zero is valid `kmem_cache_args` (no constructor, no usercopy).
        let mut cache_args: bindings::kmem_cache_args = unsafe { core::mem::zeroed() };
        cache_args.align = core::mem::align_of::<Client>() as u32;
        // SAFETY: the name is a static C string; `cache_args` outlives the call.
        let cache = unsafe {
            bindings::__kmem_cache_create_args(
                c_str!("memnotify_client").as_char_ptr(),
                core::mem::size_of::<Client>() as u32,
                &mut cache_args,
                0,
            )
        };
        if cache.is_null() {
            return Err(ENOMEM);
        }
        CLIENT_CACHE.store(cache, Ordering::Release);
        let destroy_cache = ScopeGuard::new(destroy_client_cache);

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
        let unpublish_registration =
            ScopeGuard::new(|| REGISTRATION.store(ptr::null_mut(), Ordering::Release));

        // SAFETY: `shrinker_alloc` takes a printf format; the name has no conversions.
        let shrinker = unsafe { bindings::shrinker_alloc(0, c_str!("memnotify").as_char_ptr()) };
        if shrinker.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `shrinker` was just allocated and is not registered yet.
        unsafe {
            (*shrinker).count_objects = Some(reclaim_count);
            (*shrinker).scan_objects = Some(reclaim_scan);
            (*shrinker).seeks = bindings::DEFAULT_SEEKS as c_int;
            bindings::shrinker_register(shrinker);
        }
        // SAFETY: registered above; `shrinker_free` waits for running callbacks.
        let free_shrinker = ScopeGuard::new(|| unsafe { bindings::shrinker_free(shrinker) });

        // SAFETY: the registration is pinned and lives until `drop` deregisters it.
        let ret = unsafe { ffi::misc_register(ptr::addr_of_mut!((*raw).misc)) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        free_shrinker.dismiss();
        unpublish_registration.dismiss();
        destroy_cache.dismiss();
        unpublish_shared.dismiss();
        pr_info!(
            "/dev/memnotify ready (fast {} ms, slow {} ms, {} bytes per file)\n",
            FAST_MS.load(Ordering::Relaxed),
            SLOW_MS.load(Ordering::Relaxed),
            core::mem::size_of::<Client>()
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
        destroy_client_cache();
        SHARED.store(ptr::null_mut(), Ordering::Release);
        REGISTRATION.store(ptr::null_mut(), Ordering::Release);
        pr_info!("unloaded\n");
    }
}

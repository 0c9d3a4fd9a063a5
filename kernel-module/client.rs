// SPDX-License-Identifier: GPL-2.0

//! The per-file client: one object of a slab cache of its own (wait queue, first tree node,
//! a watch of one figure), and an out-of-line [`Aux`] for files that arm several figures or
//! ask for SIGIO.

use core::cell::{Cell, UnsafeCell};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use kernel::bindings;
use kernel::c_str;
use kernel::ffi::c_void;
use kernel::prelude::*;
use kernel::types::Opaque;

use crate::{
    ffi::lock_class,
    proto::{Figure, FileFlags, Level, SingleWatch, Trigger, Watch, FIGURE_COUNT},
};

/// A node of one of the registry's red-black trees, embedded in a [`Client`] (or in its
/// [`Aux`]). The tree code is C's `lib/rbtree.c`; the registry lock guards every tree
/// and every node.
#[repr(C)]
pub(crate) struct Node {
    /// First, so that a `*mut rb_node` of this tree is a `*mut Node`.
    pub(crate) link: Opaque<bindings::rb_node>,
    /// The tree's key: the trigger's value in pages in a trigger tree (a [`Watch`] keeps
    /// thresholds in 32 bits), the file's open number in `defaults`. Equal keys are
    /// allowed.
    pub(crate) key: Cell<u32>,
    /// 0 for the node inside the [`Client`], `n` for the `n`-th node of its [`Aux`]:
    /// how [`Node::client`] finds the client without a pointer in every node.
    pub(crate) rank: u8,
    // The file's own small fields, in the node inside the `Client`: the `rb_node` and
    // the key make a node 32 bytes on 64-bit kernels whatever, and these three bytes
    // would be its padding. An `Aux`'s nodes leave them unused.
    /// The inline watch's figure and side, and the file's other flags. Guarded by the
    /// registry lock.
    pub(crate) flags: Cell<FileFlags>,
    /// An unread event: the file polls readable. Read without the lock.
    pub(crate) event_pending: AtomicBool,
    /// The file counts against the per-uid limit.
    pub(crate) limited: bool,
}

impl Node {
    pub(crate) const fn new(rank: u8, limited: bool) -> Self {
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
    pub(crate) unsafe fn client(node: *const Node) -> *const Client {
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
pub(crate) struct Aux {
    /// The client this belongs to.
    pub(crate) client: *const Client,
    /// The file's whole watch (the client's inline fields hold at most one figure).
    /// Guarded by the registry lock.
    pub(crate) watch: Cell<Watch>,
    /// The `fasync_struct` list for SIGIO, managed by `fasync_helper`.
    pub(crate) fasync: Opaque<*mut bindings::fasync_struct>,
    /// Nodes for the second to seventh armed figure.
    pub(crate) nodes: [Node; FIGURE_COUNT - 1],
}

impl Aux {
    pub(crate) fn new(client: *const Client) -> Self {
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
pub(crate) struct Client {
    /// The file's wait queue: only this file's pollers sleep on it, so a wake-up wakes
    /// exactly the clients whose thresholds crossed.
    pub(crate) wait: Opaque<bindings::wait_queue_head>,
    /// The node of the first armed figure's trigger, or, while the file has written no
    /// thresholds, its node in `defaults`. After `release` its memory is the
    /// `callback_head` that frees the client after an RCU grace period.
    pub(crate) node: Node,
    /// Guarded by the registry lock.
    pub(crate) state: UnsafeCell<ClientState>,
}

// SAFETY: `wait` and the `Aux`'s `fasync` are only touched through the kernel's own
// synchronised primitives (wait queue lock, fasync lock, RCU); `node` (but for its
// atomic `event_pending` and immutable `limited`) and `state` only with the registry
// lock held.
unsafe impl Send for Client {}
// SAFETY: as above.
unsafe impl Sync for Client {}

/// A client's protocol state, guarded by the registry lock.
pub(crate) struct ClientState {
    /// The out-of-line part, once needed.
    pub(crate) aux: Option<KBox<Aux>>,
    /// When the evaluation that delivered the file's latest event started (0: none);
    /// a read that consumes the event reports it, and default levels rate-limit by it.
    pub(crate) last_event_ns: u64,
    /// Events sent to this file.
    pub(crate) seq: u64,
    /// The inline watch's threshold in pages.
    pub(crate) value: u32,
    /// The inline watch's hysteresis in pages.
    pub(crate) hysteresis: u32,
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
    pub(crate) fn state(&self) -> *mut ClientState {
        self.state.get()
    }

    /// Changes the file's flags. The registry lock is held.
    pub(crate) fn update_flags(&self, change: impl FnOnce(FileFlags) -> FileFlags) {
        self.node.flags.set(change(self.node.flags.get()));
    }

    /// Makes `spare` the file's [`Aux`] unless it has one already (then `spare` stays),
    /// holding the file's watch from now on (see [`Client::watch`]). The registry lock is
    /// held (`state` is borrowed under it).
    pub(crate) fn install_aux(&self, state: &mut ClientState, spare: &mut Option<KBox<Aux>>) {
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
    pub(crate) fn watch(&self, state: &ClientState) -> Watch {
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
    pub(crate) fn set_watch(&self, state: &mut ClientState, watch: Watch) -> bool {
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
    pub(crate) fn node_at(&self, state: &ClientState, rank: usize) -> Option<*mut Node> {
        if rank == 0 {
            return Some(ptr::from_ref(&self.node).cast_mut());
        }
        let aux = state.aux.as_ref()?;
        aux.nodes
            .get(rank - 1)
            .map(|node| ptr::from_ref(node).cast_mut())
    }

    /// Each armed figure's trigger and the node that holds it (`None`: missing).
    pub(crate) fn trigger_nodes<'a>(
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

/// The `memnotify_client` slab cache, set between `init` and the end of `drop`.
pub(crate) static CLIENT_CACHE: AtomicPtr<bindings::kmem_cache> = AtomicPtr::new(ptr::null_mut());

/// Destroys the client cache once no client is left (every file closed and every RCU
/// callback run).
pub(crate) fn destroy_client_cache() {
    let cache = CLIENT_CACHE.swap(ptr::null_mut(), Ordering::AcqRel);
    if !cache.is_null() {
        // SAFETY: created in `init`; the callers guarantee no object is left.
        unsafe { bindings::kmem_cache_destroy(cache) };
    }
}

/// A client allocated from the cache and initialised, not yet registered.
pub(crate) fn new_client(limited: bool) -> Result<*mut Client> {
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
pub(crate) unsafe fn free_client_now(raw: *mut Client) {
    // SAFETY: by contract; dropping frees the `Aux` if any.
    unsafe {
        ptr::drop_in_place(raw);
        bindings::kmem_cache_free(CLIENT_CACHE.load(Ordering::Acquire), raw.cast::<c_void>());
    }
}

/// # Safety
///
/// Called by C with the arguments its callback type promises.
pub(crate) unsafe extern "C" fn free_client(head: *mut bindings::callback_head) {
    let offset = core::mem::offset_of!(Client, node) + core::mem::offset_of!(Node, link);
    // SAFETY: `head` is the first node's link of a client that `release` retired; the
    // grace period has passed, so nothing references it.
    unsafe { free_client_now(head.cast::<u8>().sub(offset).cast::<Client>()) };
}

// SPDX-License-Identifier: GPL-2.0

//! The registry and its trigger index: per class of file and figure, red-black trees of
//! armed triggers whose extreme keys are cached, so an evaluation with nothing crossed costs
//! the same whatever the number of files.

use core::ptr;
use kernel::bindings;
use kernel::ffi::c_ulong;
use kernel::prelude::*;
use kernel::rbtree::RBTree;

use crate::{
    client::{Client, Node},
    proto::{Figure, Figures, Level, Snapshot, Trigger, FIGURE_COUNT},
};

/// One red-black tree of nodes ordered by key, with its first and last node and their
/// keys kept up to date on every insertion and removal, so that an evaluation with
/// nothing crossed reads only these words, whatever the number of files.
pub(crate) struct Tree {
    pub(crate) root: bindings::rb_root,
    /// The node with the smallest key (the leftmost of equal keys), or null.
    pub(crate) first: *mut Node,
    /// The node with the largest key (the rightmost of equal keys), or null.
    pub(crate) last: *mut Node,
    /// `first`'s key (meaningless while the tree is empty).
    pub(crate) min: u32,
    /// `last`'s key (meaningless while the tree is empty).
    pub(crate) max: u32,
}

impl Tree {
    pub(crate) const fn new() -> Self {
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

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_null()
    }

    /// Links `node` with `key`, after the nodes of equal key.
    ///
    /// # Safety
    ///
    /// `node` is valid, in no tree, and stays valid and unmoved until [`Tree::remove`].
    pub(crate) unsafe fn insert(&mut self, node: *mut Node, key: u32) {
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
    pub(crate) unsafe fn remove(&mut self, node: *mut Node) {
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
    pub(crate) fn first_after(&self, key: u32) -> *mut Node {
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
pub(crate) const PRIVILEGED: usize = 0;
pub(crate) const UNPRIVILEGED: usize = 1;

/// The class of a file's triggers.
pub(crate) fn class(client: &Client) -> usize {
    if client.node.limited {
        UNPRIVILEGED
    } else {
        PRIVILEGED
    }
}

pub(crate) struct Registry {
    /// Per class and figure: files waiting for the figure to rise to their trigger.
    pub(crate) up: [[Tree; FIGURE_COUNT]; 2],
    /// Per class and figure: files waiting for the figure to fall below their trigger.
    pub(crate) down: [[Tree; FIGURE_COUNT]; 2],
    /// Files that never wrote thresholds, by open number.
    pub(crate) defaults: Tree,
    /// Open files.
    pub(crate) clients: u32,
    /// Open files per user (see `File::user`), for the per-user limit.
    pub(crate) per_uid: RBTree<u32, u32>,
    /// The next open number, never 0 (it wraps; equal keys are allowed in `defaults`).
    pub(crate) next_id: u32,
    pub(crate) level: Level,
    /// Default clients whose level change is held back by the rate limit.
    pub(crate) lagging: u32,
    /// The last evaluation's sample, returned by reads that consume an event.
    pub(crate) last: Snapshot,
    /// Whether the sampler is armed (files are open).
    pub(crate) sampling: bool,
    /// An evaluation is delivering crossings with the lock released between batches:
    /// writes take their sides from its figures (`last`), so that the rest of its
    /// delivery never sees a trigger the write armed as crossed.
    pub(crate) delivering: bool,
}

// SAFETY: the raw pointers are to nodes in `Client`s that stay allocated while linked;
// they are only followed with the registry lock held.
unsafe impl Send for Registry {}

impl Registry {
    pub(crate) fn new() -> Self {
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

    pub(crate) fn tree(&mut self, class: usize, figure: Figure, trigger: Trigger) -> &mut Tree {
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
    pub(crate) unsafe fn index(&mut self, client: &Client) {
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
    pub(crate) unsafe fn unindex(&mut self, client: &Client) {
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
    pub(crate) fn crossed(&self, figures: &Figures) -> Option<*mut Node> {
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
    pub(crate) fn nearest(&self, class: usize, now: &Figures) -> Option<u64> {
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
pub(crate) fn trigger_key(trigger: Trigger) -> u32 {
    match trigger {
        Trigger::UpAt(value) | Trigger::DownBelow(value) => {
            u32::try_from(value).unwrap_or(u32::MAX)
        }
    }
}

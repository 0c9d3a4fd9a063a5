// SPDX-License-Identifier: GPL-2.0

//! The file operations of `/dev/memnotify`: open (admission and limits), release, read,
//! write (thresholds), poll and fasync, on typed per-file data (a [`Client`]) through the
//! device shell's [`MiscFile`] trait.

use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;
use kernel::bindings;
use kernel::ffi::c_int;
use kernel::prelude::*;
use kernel::rbtree::RBTreeNodeReservation;
use kernel::uaccess::{UserSliceReader, UserSliceWriter};

use crate::{
    client::{free_client, free_client_now, new_client, Aux, Client, ClientState},
    device::{File, MiscFile, PollTable},
    ffi,
    proto::{
        arming_figures, format_line, parse_thresholds, Figure, FileFlags, Snapshot, Thresholds,
        Watch, LINE_BUF, WRITE_MAX,
    },
    sampler::{kick_for, now_ns, sample, units},
    shared,
    stats::{CLIENTS, REJECTED_OPENS},
    warn_on_once, DEV_GID, MAX_CLIENTS, MAX_PER_UID,
};

/// The device's file type: each open file is a [`Client`].
pub(crate) struct MemnotifyFile;

impl MiscFile for MemnotifyFile {
    type Data = Client;

    fn open(file: File) -> Result<NonNull<Client>> {
        open_client(file).inspect_err(|_| REJECTED_OPENS.add(1))
    }

    fn release(data: NonNull<Client>, file: File) {
        release_client(data, file);
    }

    fn read(client: &Client, out: UserSliceWriter, pos: &mut i64) -> Result<usize> {
        read_line(client, out, pos)
    }

    fn write(client: &Client, input: UserSliceReader) -> Result<usize> {
        let len = input.len();
        write_thresholds(client, input)?;
        Ok(len)
    }

    fn poll(client: &Client, table: &PollTable) -> bindings::__poll_t {
        // SAFETY: the wait queue lives until an RCU grace period after `release`, which
        // cannot run while `poll` holds the file.
        unsafe { table.wait(client.wait.get()) };
        let mut mask = ffi::EPOLLOUT | ffi::EPOLLWRNORM;
        if client.node.event_pending.load(Ordering::Acquire) {
            mask |= ffi::EPOLLIN | ffi::EPOLLRDNORM;
        }
        mask
    }

    fn fasync(client: &Client, fd: c_int, file: File, on: bool) -> Result<c_int> {
        match sigio_list(client, on)? {
            Some(list) => {
                // SAFETY: `list` is this file's list, in its `Aux`, which stays until
                // `release`; `fasync_helper` does its own locking.
                let ret =
                    unsafe { bindings::fasync_helper(fd, file.as_ptr(), c_int::from(on), list) };
                Ok(ret)
            }
            // Turning SIGIO off on a file that never turned it on.
            None => Ok(0),
        }
    }
}

/// Whether one more file may open, given the files open in all and the opener's own, and
/// the error if not. The errors follow inotify's instance limits: EMFILE for the
/// per-user limit (`max_per_uid`), ENFILE for the system-wide one (`max_clients`). The
/// last eighth of `max_clients` is kept for openers with CAP_SYS_RESOURCE, so that ordinary
/// users together cannot lock a restarting daemon out.
fn admission(clients: u32, per_uid: u32, limited: bool) -> Option<Error> {
    let max_clients = MAX_CLIENTS.load(Ordering::Relaxed);
    let reserve = if limited { max_clients / 8 } else { 0 };
    if clients >= max_clients - reserve {
        return Some(ENFILE);
    }
    if limited && per_uid >= MAX_PER_UID.load(Ordering::Relaxed) {
        return Some(EMFILE);
    }
    None
}

/// Admits and registers a new client for `file`.
fn open_client(file: File) -> Result<NonNull<Client>> {
    let shared = shared();
    let uid = file.user();
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
    let uid_node = RBTreeNodeReservation::<u32, u32>::new(GFP_KERNEL_ACCOUNT)?;
    let raw = new_client(limited)?;

    let mut registry = shared.registry.lock();
    let per_uid = registry.per_uid.get(&uid).copied().unwrap_or(0);
    let refusal = admission(registry.clients, per_uid, limited);
    if let Some(error) = refusal {
        drop(registry);
        // SAFETY: never registered.
        unsafe { free_client_now(raw) };
        return Err(error);
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

    if start_sampler {
        kick_for(shared, limited);
    }
    // SAFETY: `new_client` returned a valid allocation.
    Ok(unsafe { NonNull::new_unchecked(raw) })
}

/// Unregisters the file's client and frees it after an RCU grace period.
fn release_client(raw: NonNull<Client>, file: File) {
    let shared = shared();
    // SAFETY: the client stays allocated until the RCU callback below.
    let client = unsafe { raw.as_ref() };
    let aux = {
        let mut registry = shared.registry.lock();
        // SAFETY: the client is open, its nodes linked as its state says.
        unsafe { registry.unindex(client) };
        if client.node.limited {
            let uid = file.user();
            match registry.per_uid.get_mut(&uid) {
                Some(count) if *count > 1 => *count -= 1,
                Some(_) => {
                    registry.per_uid.remove(&uid);
                }
                // `open` counted the file under the same user: the credentials cannot
                // change.
                None => {
                    warn_on_once!(true);
                }
            }
        }
        warn_on_once!(registry.clients == 0);
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
}

/// Reads one line of figures into `out` (see the module's documentation for which).
fn read_line(client: &Client, out: UserSliceWriter, pos: &mut i64) -> Result<usize> {
    let position = *pos;
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
    let n = len.min(out.len());
    if n == 0 {
        return Ok(0);
    }
    // A failed copy (EFAULT) consumes nothing either.
    let mut out = out;
    out.write_slice(&line[..n])?;

    // The line reached the reader: the event it reported is consumed, unless another
    // delivery came since (then that one stays pending, with its own figures).
    let _registry = shared.registry.lock();
    // SAFETY: the lock is held; nothing else borrows the state.
    if unsafe { &*client.state() }.seq == seq {
        client.update_flags(|flags| flags.with_read_ready(false));
        client.node.event_pending.store(false, Ordering::Release);
    }
    *pos = position.saturating_add(n as i64);
    Ok(n)
}

/// Arms the thresholds written in `input` (the whole write is one request).
fn write_thresholds(client: &Client, input: UserSliceReader) -> Result {
    let count = input.len();
    if count > WRITE_MAX {
        return Err(EINVAL);
    }
    let mut text = [0u8; WRITE_MAX];
    let mut input = input;
    input.read_slice(&mut text[..count])?;
    let sampled_ns = now_ns();
    let sampled = sample();
    let thresholds: Thresholds =
        parse_thresholds(&text[..count], units(sampled.get(Figure::Total))).map_err(|_| EINVAL)?;
    // Allocate the `Aux` for a watch of several figures before taking the lock, so that
    // a failure leaves the old thresholds in force (how many figures a watch arms does
    // not depend on the figures it is armed against).
    let mut spare = if Watch::new(thresholds, &sampled).armed() > 1 {
        Some(KBox::new(
            Aux::new(ptr::from_ref(client)),
            GFP_KERNEL_ACCOUNT,
        )?)
    } else {
        None
    };

    let shared = shared();
    let mut registry = shared.registry.lock();
    // Not against a sample older than the last evaluation's (see `arming_figures`).
    let figures = arming_figures(&sampled, sampled_ns, &registry.last, registry.delivering);
    let watch = Watch::new(thresholds, figures);
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

/// The file's SIGIO list, which lives in its [`Aux`]; with `create`, the `Aux` is
/// allocated first if the file has none yet.
pub(crate) fn sigio_list(
    client: &Client,
    create: bool,
) -> Result<Option<*mut *mut bindings::fasync_struct>> {
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
    let mut spare = Some(KBox::new(
        Aux::new(ptr::from_ref(client)),
        GFP_KERNEL_ACCOUNT,
    )?);
    let registry = shared.registry.lock();
    // SAFETY: the lock is held; nothing else borrows the state.
    let state = unsafe { &mut *client.state() };
    client.install_aux(state, &mut spare);
    let list = find(state);
    drop(registry);
    drop(spare);
    Ok(list)
}

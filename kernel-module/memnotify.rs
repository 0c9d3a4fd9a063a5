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
//!
//! The rooms: [`device`] (the misc device shell: a vtable-like trait with typed per-file
//! data, in the shape of upstream's `kernel::miscdevice`), [`fops`] (this device's file
//! operations, admission and limits), [`client`] (the per-file object), [`registry`] (the
//! trigger index), [`sampler`] (evaluations, deliveries, the reclaim kick), [`stats`]
//! (sysfs statistics), [`ffi`] (what the kernel crate does not wrap: module parameters,
//! the workqueue, poll bits) and `glue` (what differs between kernel series: `glue_6.rs`
//! or `glue_7.rs`). This file holds the module's parameters, its device-wide state and
//! `init`/`drop`.

mod client;
mod device;
mod ffi;
mod fops;
// The one room that differs between kernel series; `Kbuild` sets the cfg from the version.
#[cfg_attr(memnotify_kernel_7, path = "glue_7.rs")]
#[cfg_attr(not(memnotify_kernel_7), path = "glue_6.rs")]
mod glue;

/// `WARN_ON_ONCE(cond)` from `include/asm-generic/bug.h`: the kernel's warning (the glue
/// room's `warn_here!`) the first time `cond` holds at this call site. Returns `cond`.
macro_rules! warn_on_once {
    ($cond:expr) => {{
        let cond: bool = $cond;
        if cond {
            static WARNED: core::sync::atomic::AtomicBool =
                core::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, core::sync::atomic::Ordering::Relaxed) {
                $crate::glue::warn_here!();
            }
        }
        cond
    }};
}
pub(crate) use warn_on_once;
mod registry;
mod sampler;
mod stats;

#[path = "../userspace/memnotify-proto/src/proto/mod.rs"]
pub mod proto;

use core::pin::Pin;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use kernel::bindings;
use kernel::ffi::c_int;
use kernel::prelude::*;
use kernel::sync::Mutex;
use kernel::types::{Opaque, ScopeGuard};
use kernel::{c_str, new_mutex};

use client::{destroy_client_cache, Client, CLIENT_CACHE};
use device::Device;
use ffi::{lock_class, module_param_uint};
use fops::MemnotifyFile;
use registry::Registry;
use sampler::{reclaim_count, reclaim_scan, sampler_run};
use stats::Stats;

// 6.12's `module!` knows `author`, 7.x's `authors`: the rest is the same.
#[cfg(not(memnotify_kernel_7))]
module! {
    type: Memnotify,
    name: "memnotify",
    author: "memnotify developers",
    description: "Low-memory notification through /dev/memnotify",
    license: "GPL",
}
#[cfg(memnotify_kernel_7)]
module! {
    type: Memnotify,
    name: "memnotify",
    authors: ["memnotify developers"],
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
    "Most open files per user without CAP_SYS_RESOURCE, a user's namespaces included (1-1048576, default 256)"
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
    kicked: proto::KickFlag,
    /// Monotonic time of the last evaluation's start.
    last_eval_start_ns: AtomicU64,
    /// Monotonic time of the last kick an unprivileged file was allowed ([`kick_for`]).
    last_limited_kick_ns: AtomicU64,
}

/// `SLAB_ACCOUNT` from `include/linux/slab.h` (a macro there), which is 0 without memory
/// cgroups.
#[cfg(CONFIG_MEMCG)]
const SLAB_ACCOUNT: bindings::slab_flags_t = 1 << bindings::_slab_flag_bits__SLAB_ACCOUNT;
#[cfg(not(CONFIG_MEMCG))]
const SLAB_ACCOUNT: bindings::slab_flags_t = 0;

/// Set between registration and unregistration of the device.
static SHARED: AtomicPtr<Shared> = AtomicPtr::new(ptr::null_mut());

fn shared() -> &'static Shared {
    let shared = SHARED.load(Ordering::Acquire);
    // SAFETY: every caller is a file operation, the sampler or the shrinker, which can
    // only run while the module is loaded and `SHARED` is set: open files hold a module
    // reference, and exit unregisters all three before freeing `Shared`.
    unsafe { &*shared }
}

struct Memnotify {
    shared: Pin<KBox<Shared>>,
    /// `None` only while `drop` runs, which deregisters the device first.
    device: Option<Device<MemnotifyFile>>,
    /// The statistics group the device's sysfs directory shows; outlives the device.
    _stats: Stats,
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
                kicked: proto::KickFlag::new(),
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
        // of the next kmalloc size, charged to the opener's memory cgroup (SLAB_ACCOUNT),
        // so files opened to eat kernel memory count against their opener's own limit.
        // No constructor: `open` initialises every field.
        // SAFETY: all-zero is valid `kmem_cache_args` (no constructor, no usercopy).
        let mut cache_args: bindings::kmem_cache_args = unsafe { core::mem::zeroed() };
        cache_args.align = core::mem::align_of::<Client>() as u32;
        // SAFETY: the name is a static C string; `cache_args` outlives the call.
        let cache = unsafe {
            bindings::__kmem_cache_create_args(
                c_str!("memnotify_client").as_char_ptr(),
                core::mem::size_of::<Client>() as u32,
                &mut cache_args,
                SLAB_ACCOUNT,
            )
        };
        if cache.is_null() {
            return Err(ENOMEM);
        }
        CLIENT_CACHE.store(cache, Ordering::Release);
        let destroy_cache = ScopeGuard::new(destroy_client_cache);

        let stats = Stats::new()?;

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

        let mut mode = DEV_MODE.load(Ordering::Relaxed) & 0o777;
        if DEV_GID.load(Ordering::Relaxed) != 0 {
            // The group check is done in `open`: misc devices have no node group.
            mode |= 0o066;
        }
        let device = Device::register(module, c_str!("memnotify"), mode, stats.groups())?;
        free_shrinker.dismiss();
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
            device: Some(device),
            _stats: stats,
            shrinker,
        })
    }
}

impl Drop for Memnotify {
    fn drop(&mut self) {
        // No file can be open (each holds a module reference), so no new work can be
        // queued by a file; stop the other sources in order.
        drop(self.device.take());
        // SAFETY: registered in `init`; `shrinker_free` waits for running callbacks.
        unsafe { bindings::shrinker_free(self.shrinker) };
        // SAFETY: initialised in `init`; this also stops a self-rearming work item.
        unsafe { bindings::cancel_delayed_work_sync(self.shared.sampler.get()) };
        // Clients are freed by RCU callbacks in this module's text: wait for them.
        // SAFETY: no preconditions in process context.
        unsafe { bindings::rcu_barrier() };
        destroy_client_cache();
        SHARED.store(ptr::null_mut(), Ordering::Release);
        pr_info!("unloaded\n");
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The C interfaces the `kernel` crate does not wrap in a form the module can use, in one
//! place, the same on every kernel series; what differs between series is in the glue
//! (`glue_6.rs`, `glue_7.rs`).
//!
//! Neither 6.12 nor 7.3 has what a misc device with `poll` and `fasync` needs: 7.3's
//! `kernel::miscdevice::MiscDevice` has no `poll` and no `fasync`, and its
//! `kernel::sync::poll::PollTable` waits on a `PollCondVar`, not on the wait queue each
//! file keeps here. Module parameters with a checked range, delayed work on the high
//! priority workqueue and shrinkers have no abstraction in either.

use core::cell::UnsafeCell;

use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_uint};

use crate::glue;
pub(crate) use crate::glue::{misc_deregister, misc_register};

/// `MISC_DYNAMIC_MINOR` from `include/linux/miscdevice.h`.
pub(crate) const MISC_DYNAMIC_MINOR: c_int = 255;

/// `EPOLL*` bits from `include/uapi/linux/eventpoll.h`: what `->poll` returns.
pub(crate) const EPOLLIN: bindings::__poll_t = 0x0001;
pub(crate) const EPOLLOUT: bindings::__poll_t = 0x0004;
pub(crate) const EPOLLRDNORM: bindings::__poll_t = 0x0040;
pub(crate) const EPOLLWRNORM: bindings::__poll_t = 0x0100;

#[cfg(CONFIG_SWAP)]
extern "C" {
    /// `si_swapinfo()` from `mm/swapfile.c`, exported by
    /// `kernel-module/patches/0001-mm-export-si_swapinfo-for-the-memnotify-module.patch`.
    pub(crate) fn si_swapinfo(info: *mut bindings::sysinfo);
}

/// A `static` the C side writes to through a pointer (module parameters, registration
/// structures). Rust code only reads it through volatile or atomic accesses.
#[repr(transparent)]
pub(crate) struct CShared<T>(UnsafeCell<T>);

/// The types a [`CShared`] may hold: C structures that C reads and writes under its own
/// locking once they are handed over.
///
/// # Safety
///
/// Implement only for types that Rust code never reads or writes through a shared
/// reference once C has a pointer to them.
pub(crate) unsafe trait HandedToC {}

// SAFETY: a parameter's `kernel_param` is read by the module loader and sysfs under
// `kernel_param_lock`; Rust only takes its address.
unsafe impl HandedToC for bindings::kernel_param {}
// SAFETY: lockdep alone uses a key; Rust only takes its address.
unsafe impl HandedToC for core::mem::MaybeUninit<bindings::lock_class_key> {}

// SAFETY: `T: HandedToC`: after initialisation, the contents are only accessed through
// raw pointers, by C under its own locking.
unsafe impl<T: HandedToC> Sync for CShared<T> {}

impl<T> CShared<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    pub(crate) const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// Declares a `uint` module parameter the way `module_param()` does in C: a
/// `struct kernel_param` in the `__param` section and `parm`/`parmtype` lines in
/// `.modinfo` (loadable modules have no name prefix there). Values outside `$range` are
/// refused with EINVAL, at load time and when written in sysfs, and the value in force
/// stays.
macro_rules! module_param_uint {
    (
        $value:ident, $param:ident, $name:literal, $default:expr, $range:expr, $perm:expr,
        $desc:literal
    ) => {
        pub(crate) static $value: core::sync::atomic::AtomicU32 =
            core::sync::atomic::AtomicU32::new($default);

        const _: () = {
            const RANGE: core::ops::RangeInclusive<u32> = $range;
            const DEFAULT: u32 = $default;
            const DEFAULT_IN_RANGE: bool = *RANGE.start() <= DEFAULT && DEFAULT <= *RANGE.end();
            assert!(DEFAULT_IN_RANGE);

            /// `param_set_uint` with a range check.
            ///
            /// # Safety
            ///
            /// Called by C with the arguments its callback type promises.
            unsafe extern "C" fn set(
                text: *const kernel::ffi::c_char,
                _param: *const kernel::bindings::kernel_param,
            ) -> kernel::ffi::c_int {
                let mut parsed: kernel::ffi::c_uint = 0;
                // SAFETY: `text` is the NUL-terminated value being set; `parsed` is a
                // valid `c_uint`.
                let ret = unsafe { kernel::bindings::kstrtouint(text, 0, &mut parsed) };
                if ret != 0 {
                    return ret;
                }
                if !RANGE.contains(&parsed) {
                    return kernel::error::code::EINVAL.to_errno();
                }
                $value.store(parsed, core::sync::atomic::Ordering::Relaxed);
                0
            }

            static OPS: kernel::bindings::kernel_param_ops = kernel::bindings::kernel_param_ops {
                flags: 0,
                set: Some(set as unsafe extern "C" fn(_, _) -> _),
                get: Some(kernel::bindings::param_get_uint),
                free: None,
            };

            #[link_section = "__param"]
            #[used(compiler)]
            static $param: $crate::ffi::CShared<kernel::bindings::kernel_param> =
                $crate::ffi::CShared::new(kernel::bindings::kernel_param {
                    name: concat!($name, "\0").as_ptr().cast(),
                    // Taking the address of an extern static is safe: nothing is read.
                    mod_: core::ptr::addr_of_mut!(kernel::bindings::__this_module),
                    ops: &OPS,
                    perm: $perm,
                    level: -1,
                    flags: 0,
                    __bindgen_anon_1: kernel::bindings::kernel_param__bindgen_ty_1 {
                        arg: $value.as_ptr().cast(),
                    },
                });

            #[link_section = ".modinfo"]
            #[used(compiler)]
            static PARMTYPE: [u8; concat!("parmtype=", $name, ":uint\0").len()] =
                $crate::ffi::bytes(concat!("parmtype=", $name, ":uint\0"));
            #[link_section = ".modinfo"]
            #[used(compiler)]
            static PARM: [u8; concat!("parm=", $name, ":", $desc, "\0").len()] =
                $crate::ffi::bytes(concat!("parm=", $name, ":", $desc, "\0"));
        };
    };
}
pub(crate) use module_param_uint;

/// A string literal as a byte array of its own length, for `.modinfo` entries.
pub(crate) const fn bytes<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// A lockdep class key in static storage, as lockdep requires; expands to its pointer.
/// (6.12's `kernel::sync::LockClassKey` does not expose its pointer outside the crate.)
macro_rules! lock_class {
    () => {{
        static KEY: $crate::ffi::CShared<core::mem::MaybeUninit<kernel::bindings::lock_class_key>> =
            $crate::ffi::CShared::new(core::mem::MaybeUninit::uninit());
        KEY.get().cast::<kernel::bindings::lock_class_key>()
    }};
}
pub(crate) use lock_class;

/// A `device_attribute` of the statistics group (its `show` knows its index by address).
pub(crate) type ShowFn = unsafe extern "C" fn(
    *mut bindings::device,
    *mut bindings::device_attribute,
    *mut c_char,
) -> isize;

/// `INIT_DELAYED_WORK()` from `include/linux/workqueue.h` (a macro there).
///
/// # Safety
///
/// `work` points to writable memory that does not move until the work is cancelled.
pub(crate) unsafe fn init_delayed_work(
    work: *mut bindings::delayed_work,
    func: unsafe extern "C" fn(*mut bindings::work_struct),
    name: &'static kernel::str::CStr,
    work_key: *mut bindings::lock_class_key,
    timer_key: *mut bindings::lock_class_key,
) {
    // SAFETY: the caller guarantees `work` is valid; both initialisers accept
    // uninitialised memory, as the C macro does.
    unsafe {
        bindings::init_work_with_key(
            core::ptr::addr_of_mut!((*work).work),
            Some(func),
            false,
            glue::c_str_ptr(name),
            work_key,
        );
        glue::timer_init_key(
            core::ptr::addr_of_mut!((*work).timer),
            Some(bindings::delayed_work_timer_fn),
            bindings::TIMER_IRQSAFE,
            glue::c_str_ptr(name),
            timer_key,
        );
    }
}

/// `queue_delayed_work`-style re-arming: (re)starts `work` on the system high-priority
/// workqueue after `delay_ms`, moving an already pending timer. High priority (a nice
/// -20 kworker) because an evaluation runs when memory is short, which is often when the
/// CPUs are busy too: it should neither wait behind the load it reports on nor, while it
/// delivers to many files, get only a fair share of the CPU with the tasks it wakes.
///
/// # Safety
///
/// `work` was initialised by [`init_delayed_work`] and is cancelled before it is freed.
pub(crate) unsafe fn mod_delayed_work(work: *mut bindings::delayed_work, delay_ms: u32) {
    // SAFETY: `__msecs_to_jiffies` is a pure conversion.
    let delay = unsafe { bindings::__msecs_to_jiffies(delay_ms as c_uint) };
    // SAFETY: `system_highpri_wq` is set up before any module loads; `work` is valid by
    // contract.
    unsafe {
        bindings::mod_delayed_work_on(
            bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int,
            bindings::system_highpri_wq,
            work,
            delay,
        )
    };
}

/// `queue_delayed_work(system_highpri_wq, work, msecs_to_jiffies(delay_ms))` (inline in
/// C): queues the work unless it is already pending, whose timer it leaves alone.
///
/// # Safety
///
/// `work` was initialised with [`init_delayed_work`] and is not freed while queued.
pub(crate) unsafe fn queue_delayed_work(work: *mut bindings::delayed_work, delay_ms: u32) {
    // SAFETY: `__msecs_to_jiffies` is a pure conversion.
    let delay = unsafe { bindings::__msecs_to_jiffies(delay_ms as c_uint) };
    // SAFETY: `system_highpri_wq` is set up before any module loads; `work` is valid by
    // contract.
    unsafe {
        bindings::queue_delayed_work_on(
            bindings::wq_misc_consts_WORK_CPU_UNBOUND as c_int,
            bindings::system_highpri_wq,
            work,
            delay,
        )
    };
}

/// `cond_resched()` from `include/linux/sched.h` (a macro there): lets another task run
/// if one is waiting, in a kernel without full preemption. Process context, no spinlock
/// or RCU read lock held.
pub(crate) fn cond_resched() {
    #[cfg(any(not(CONFIG_PREEMPTION), CONFIG_PREEMPT_DYNAMIC))]
    // SAFETY: callers run in process context and hold no spinlock or RCU read lock.
    unsafe {
        bindings::__cond_resched()
    };
}

/// Reads a node-wide VM counter like `global_node_page_state()` (an inline in C).
pub(crate) fn node_page_state(item: bindings::node_stat_item) -> u64 {
    // SAFETY: `vm_node_stat` is an exported array of `NR_VM_NODE_STAT_ITEMS` atomics and
    // `item` is one of the bindings' `node_stat_item` constants, so the index is in bounds;
    // the read is a plain atomic load, as `atomic_long_read()` does.
    let value = unsafe {
        let counter = core::ptr::addr_of!(bindings::vm_node_stat[item as usize].counter);
        core::ptr::read_volatile(counter)
    };
    // Per-CPU drift can make the global sum briefly negative (the C helper clamps too).
    if value < 0 {
        0
    } else {
        value as u64
    }
}

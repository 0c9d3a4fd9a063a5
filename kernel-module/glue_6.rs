// SPDX-License-Identifier: GPL-2.0

//! What differs on Linux 6.12: C declarations its `kernel::bindings` lacks, and the older
//! spellings of the interfaces 7.x renamed. `glue_7.rs` provides the same items; the
//! `Kbuild` file picks one by the kernel's version, so dropping 6.12 is deleting this file.
//!
//! The layouts are copied from the 6.12 headers named on each item; the `const`
//! assertions at the end check their sizes, so a layout change fails the build instead of
//! the kernel.

use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_void};
use kernel::uaccess::UserSlice;

/// `struct miscdevice` from `include/linux/miscdevice.h` (6.12; not in its bindings).
#[repr(C)]
pub(crate) struct MiscDevice {
    pub(crate) minor: c_int,
    pub(crate) name: *const c_char,
    pub(crate) fops: *const bindings::file_operations,
    pub(crate) list: bindings::list_head,
    pub(crate) parent: *mut bindings::device,
    pub(crate) this_device: *mut bindings::device,
    pub(crate) groups: *mut *const bindings::attribute_group,
    pub(crate) nodename: *const c_char,
    pub(crate) mode: bindings::umode_t,
}

/// `poll_queue_proc` from `include/linux/poll.h`.
pub(crate) type PollQueueProc = Option<
    unsafe extern "C" fn(*mut bindings::file, *mut bindings::wait_queue_head, *mut PollTable),
>;

/// `struct poll_table_struct` from `include/linux/poll.h` (opaque in 6.12's bindings),
/// with the C field names.
#[repr(C)]
pub(crate) struct PollTable {
    pub(crate) _qproc: PollQueueProc,
    pub(crate) _key: bindings::__poll_t,
}

// Only a pointer crosses the boundary; what it points to reaches empty C structures
// (`struct mod_arch_specific` on some architectures) that the lint flags, as in the bindings.
#[allow(improper_ctypes)]
extern "C" {
    /// `misc_register()` from `drivers/char/misc.c`.
    pub(crate) fn misc_register(misc: *mut MiscDevice) -> c_int;
    /// `misc_deregister()` from `drivers/char/misc.c`.
    pub(crate) fn misc_deregister(misc: *mut MiscDevice);
}

/// `init_timer_key()`, which 6.16 renamed `timer_init_key()`.
pub(crate) use bindings::init_timer_key as timer_init_key;

/// A C string's pointer (6.12's `CStr` is the kernel crate's own type).
pub(crate) fn c_str_ptr(text: &kernel::str::CStr) -> *const c_char {
    text.as_char_ptr()
}

/// The user buffer of a `read`/`write` call (6.12 takes the address as a `usize`).
pub(crate) fn user_slice(buf: *mut c_void, len: usize) -> UserSlice {
    UserSlice::new(buf as usize, len)
}

/// Sets a device attribute's `show` callback.
pub(crate) fn set_show(attribute: &mut bindings::device_attribute, show: crate::ffi::ShowFn) {
    attribute.show = Some(show);
}

/// Sets an attribute group's attribute list.
pub(crate) fn set_attrs(
    group: &mut bindings::attribute_group,
    attrs: *mut *mut bindings::attribute,
) {
    group.attrs = attrs;
}

// Layout checks against the C definitions.
const _: () = {
    use core::mem::{align_of, size_of};
    assert!(size_of::<PollTable>() == 2 * size_of::<usize>());
    // miscdevice: int (padded), 4 pointers, list_head (2 pointers), 3 pointers, umode_t (padded).
    assert!(size_of::<MiscDevice>() == 10 * size_of::<usize>());
    assert!(align_of::<MiscDevice>() == align_of::<usize>());
};

/// The warning of `warn_on_once!` (`memnotify.rs`): 6.12 has no `warn_on!`, and its
/// `__WARN_FLAGS` (a trap with a bug-table entry) is inline assembly per architecture, so
/// this prints what `__warn()` prints (the cut line, `WARNING: … at file:line`, a
/// backtrace) and sets the W taint. A macro, so that `file!()` and `line!()` are the
/// caller's.
macro_rules! warn_here {
    () => {
        $crate::glue::warn(file!(), line!())
    };
}
pub(crate) use warn_here;

/// The body of [`warn_here`]: a warning that the console and log scanners, and people,
/// recognise as the kernel's own.
#[cold]
pub(crate) fn warn(file: &str, line: u32) {
    kernel::pr_warn!("------------[ cut here ]------------\n");
    kernel::pr_warn!("WARNING: at {}:{} (memnotify)\n", file, line);
    // SAFETY: `dump_stack` and `add_taint` may be called from any context.
    unsafe {
        bindings::dump_stack();
        bindings::add_taint(bindings::TAINT_WARN, bindings::lockdep_ok_LOCKDEP_STILL_OK);
    }
}

// SPDX-License-Identifier: GPL-2.0

//! What differs on Linux 7.x: its bindings know `struct miscdevice` and
//! `struct poll_table_struct`, C strings are `core::ffi::CStr`, user pointers a type of
//! their own, and sysfs callbacks sit in unions with their `const` variants. The same items
//! as `glue_6.rs`; the `Kbuild` file picks one by the kernel's version.

use kernel::bindings;
use kernel::ffi::{c_char, c_void};
use kernel::str::CStrExt;
use kernel::uaccess::{UserPtr, UserSlice};

pub(crate) use bindings::{
    misc_deregister, misc_register, miscdevice as MiscDevice, poll_table_struct as PollTable,
    timer_init_key,
};

/// A C string's pointer.
pub(crate) fn c_str_ptr(text: &kernel::str::CStr) -> *const c_char {
    text.as_char_ptr()
}

/// The user buffer of a `read`/`write` call.
pub(crate) fn user_slice(buf: *mut c_void, len: usize) -> UserSlice {
    UserSlice::new(UserPtr::from_ptr(buf), len)
}

/// Sets a device attribute's `show` callback (the non-`const` member of its union).
pub(crate) fn set_show(attribute: &mut bindings::device_attribute, show: crate::ffi::ShowFn) {
    attribute.__bindgen_anon_1.show = Some(show);
}

/// Sets an attribute group's attribute list (the non-`const` member of its union).
pub(crate) fn set_attrs(
    group: &mut bindings::attribute_group,
    attrs: *mut *mut bindings::attribute,
) {
    group.__bindgen_anon_2.attrs = attrs;
}

/// The warning of `warn_on_once!` (`memnotify.rs`): upstream's `warn_on!` (a backtrace,
/// the W taint, `panic_on_warn`), at the caller's location.
macro_rules! warn_here {
    () => {
        kernel::warn_on!(true)
    };
}
pub(crate) use warn_here;

// SPDX-License-Identifier: GPL-2.0

//! The misc device shell, in the shape of upstream's `kernel::miscdevice`: the device type
//! implements [`MiscFile`], a vtable-like trait with typed per-file data, and
//! [`Registration`] builds the `file_operations` from it and registers the misc device.
//! Upstream's abstraction (7.3's too) has no `poll` and no `fasync`, which this device
//! needs, so the trampolines here are the raw FFI, the same on every kernel series; the
//! few C declarations that differ come from the glue room. Everything below the trait is
//! safe code with typed data: the `unsafe` of the file operations stays in this file.

use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_void};
use kernel::prelude::*;
use kernel::uaccess::{UserSliceReader, UserSliceWriter};

use crate::ffi::{misc_deregister, misc_register, CShared, HandedToC, MISC_DYNAMIC_MINOR};
use crate::glue::{self, MiscDevice};

/// An open file of the device, as the VFS hands it to a file operation.
#[derive(Clone, Copy)]
pub(crate) struct File(NonNull<bindings::file>);

impl File {
    /// The C `struct file`.
    pub(crate) fn as_ptr(self) -> *mut bindings::file {
        self.0.as_ptr()
    }

    /// The user the file is charged to, from the credentials the file keeps for its
    /// lifetime: the opener's real uid when it opened from the initial user namespace,
    /// else the owner of the outermost user namespace it opened from. So the per-user
    /// limit holds for a user across every namespace it creates, whatever uids it maps
    /// there (its subordinate uids included), as the kernel's ucounts charge a namespace
    /// to its owner in the parent.
    pub(crate) fn user(self) -> u32 {
        // SAFETY: a `File` is only made from a file the VFS passed to a file operation;
        // `f_cred` is set at open and valid until the file is freed, the credentials hold
        // a reference on their user namespace and each namespace on its parent, and
        // `level`, `parent` and `owner` are set at the namespace's creation and never
        // change.
        unsafe {
            let cred = (*self.0.as_ptr()).f_cred;
            let mut ns = (*cred).user_ns;
            if (*ns).level == 0 {
                return (*cred).uid.val;
            }
            while (*ns).level > 1 {
                ns = (*ns).parent;
            }
            (*ns).owner.val
        }
    }
}

/// The poll table of a `->poll` call.
pub(crate) struct PollTable {
    file: *mut bindings::file,
    table: *mut glue::PollTable,
}

impl PollTable {
    /// `poll_wait()` from `include/linux/poll.h` (a static inline there): queues the
    /// poller on `queue`.
    ///
    /// # Safety
    ///
    /// `queue` outlives every waiter the table adds to it.
    pub(crate) unsafe fn wait(&self, queue: *mut bindings::wait_queue_head) {
        if !self.table.is_null() && !queue.is_null() {
            // SAFETY: `table` is the valid `poll_table` of the running `->poll` call.
            if let Some(qproc) = unsafe { (*self.table)._qproc } {
                // SAFETY: this is exactly what the C inline does with the same arguments.
                unsafe { qproc(self.file, queue, self.table) };
            }
        }
        // Pairs with the barrier implied by `__wake_up`: the caller's load of its ready
        // flag must not move before the waiter is queued (`poll_wait`'s `smp_mb()` in C).
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    }
}

/// A misc device's file operations, with typed per-file data.
pub(crate) trait MiscFile: 'static {
    /// What `open` makes for each file; the file's `private_data` points to it until
    /// `release` takes it back.
    type Data: 'static;

    /// Opens a file: its data, or the error that refuses it.
    fn open(file: File) -> Result<NonNull<Self::Data>>;

    /// The file's last reference is gone: takes its data back.
    fn release(data: NonNull<Self::Data>, file: File);

    /// `read` into `out` at `*pos`; returns how many bytes were written and advances
    /// `*pos`, which is stored back only on success.
    fn read(data: &Self::Data, out: UserSliceWriter, pos: &mut i64) -> Result<usize>;

    /// `write` of the bytes in `input`; returns how many were taken.
    fn write(data: &Self::Data, input: UserSliceReader) -> Result<usize>;

    /// `poll`: waits on the file's queues through `table` and returns the ready mask.
    fn poll(data: &Self::Data, table: &PollTable) -> bindings::__poll_t;

    /// `fasync`: SIGIO on or off for `fd`; returns `fasync_helper`'s result.
    fn fasync(data: &Self::Data, fd: c_int, file: File, on: bool) -> Result<c_int>;
}

/// The C entry points of a [`MiscFile`].
struct VTable<T>(PhantomData<T>);

impl<T: MiscFile> VTable<T> {
    /// The data `open` stored for `file`.
    ///
    /// # Safety
    ///
    /// `file` is a file of this device between `open` and `release`.
    unsafe fn data<'a>(file: *mut bindings::file) -> &'a T::Data {
        // SAFETY: `open` stored a valid `T::Data` pointer, and `release` takes it back
        // only when no other file operation can run.
        unsafe { &*(*file).private_data.cast::<T::Data>() }
    }

    /// The VFS's file (never null in a file operation).
    fn file(file: *mut bindings::file) -> File {
        // SAFETY: the VFS calls every file operation with a valid file.
        File(unsafe { NonNull::new_unchecked(file) })
    }

    /// # Safety
    ///
    /// Called by C with the arguments its callback type promises.
    unsafe extern "C" fn open(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        match T::open(Self::file(file)) {
            Ok(data) => {
                // SAFETY: `file` is valid and being opened: nothing else uses
                // `private_data` yet.
                unsafe { (*file).private_data = data.as_ptr().cast::<c_void>() };
                0
            }
            Err(error) => error.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by C with the arguments its callback type promises.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: `open` succeeded for this file, so `private_data` is its data.
        let data = unsafe { NonNull::new_unchecked((*file).private_data.cast::<T::Data>()) };
        T::release(data, Self::file(file));
        0
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
        // SAFETY: the file is open; `offset` is valid for the call.
        let (data, mut pos) = unsafe { (Self::data(file), *offset) };
        let out = glue::user_slice(buf.cast(), count).writer();
        match T::read(data, out, &mut pos) {
            Ok(n) => {
                // SAFETY: as above.
                unsafe { *offset = pos };
                n as isize
            }
            Err(error) => error.to_errno() as isize,
        }
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
        // SAFETY: the file is open.
        let data = unsafe { Self::data(file) };
        let input = glue::user_slice(buf.cast_mut().cast(), count).reader();
        match T::write(data, input) {
            Ok(n) => n as isize,
            Err(error) => error.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by C with the arguments its callback type promises.
    unsafe extern "C" fn poll(
        file: *mut bindings::file,
        table: *mut bindings::poll_table_struct,
    ) -> bindings::__poll_t {
        // SAFETY: the file is open.
        let data = unsafe { Self::data(file) };
        let table = PollTable {
            file,
            table: table.cast::<glue::PollTable>(),
        };
        T::poll(data, &table)
    }

    /// # Safety
    ///
    /// Called by C with the arguments its callback type promises.
    unsafe extern "C" fn fasync(fd: c_int, file: *mut bindings::file, on: c_int) -> c_int {
        // SAFETY: the file is open (the VFS also calls this with on=0 before `release`).
        let data = unsafe { Self::data(file) };
        match T::fasync(data, fd, Self::file(file), on != 0) {
            Ok(ret) => ret,
            Err(error) => error.to_errno(),
        }
    }

    /// The `file_operations` of the device.
    fn fops(module: &'static ThisModule) -> bindings::file_operations {
        // SAFETY: all-zero is a valid `file_operations` (every callback absent).
        let mut fops: bindings::file_operations = unsafe { core::mem::zeroed() };
        fops.owner = module.as_ptr();
        fops.open = Some(Self::open);
        fops.release = Some(Self::release);
        fops.read = Some(Self::read);
        fops.write = Some(Self::write);
        fops.poll = Some(Self::poll);
        fops.fasync = Some(Self::fasync);
        fops.llseek = Some(bindings::default_llseek);
        fops
    }
}

/// The C structures of a misc device of type `T`: the device and its file operations.
struct Registration<T: MiscFile> {
    misc: MiscDevice,
    fops: bindings::file_operations,
    _file: PhantomData<T>,
}

// SAFETY: `Device::register` fills the registration through a raw pointer before it
// registers the misc device; from then on only C reads it, under the misc layer's lock.
unsafe impl<T: MiscFile> HandedToC for Registration<T> {}

/// A registered misc device of type `T`, pinned because C keeps pointers into it;
/// dropping it deregisters the device.
pub(crate) struct Device<T: MiscFile>(Pin<KBox<CShared<Registration<T>>>>);

impl<T: MiscFile> Device<T> {
    /// Registers `/dev/<name>` with node mode `mode` and the sysfs attribute groups
    /// `groups` (a null-terminated array that must outlive the device).
    pub(crate) fn register(
        module: &'static ThisModule,
        name: &'static CStr,
        mode: u32,
        groups: *mut *const bindings::attribute_group,
    ) -> Result<Self> {
        let registration = KBox::pin(
            CShared::new(Registration {
                misc: MiscDevice {
                    minor: MISC_DYNAMIC_MINOR,
                    name: glue::c_str_ptr(name),
                    fops: ptr::null(),
                    // SAFETY: all-zero is an unlinked `list_head`, as in C's static
                    // initialisers.
                    list: unsafe { core::mem::zeroed() },
                    parent: ptr::null_mut(),
                    this_device: ptr::null_mut(),
                    groups,
                    nodename: ptr::null(),
                    mode: mode as bindings::umode_t,
                },
                fops: VTable::<T>::fops(module),
                _file: PhantomData,
            }),
            GFP_KERNEL,
        )?;
        let raw = registration.get();
        // SAFETY: `raw` points to the pinned registration, not yet shared with C; the
        // pointer set here points into the same allocation.
        unsafe { (*raw).misc.fops = ptr::addr_of!((*raw).fops) };
        // SAFETY: the registration is pinned and lives until `drop` deregisters it.
        let ret = unsafe { misc_register(ptr::addr_of_mut!((*raw).misc)) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(Device(registration))
    }
}

impl<T: MiscFile> Drop for Device<T> {
    fn drop(&mut self) {
        // SAFETY: registered in `register` and pinned since; C's pointers into it are
        // raw, as is this one. Each open file holds a module reference, so none is open
        // when the module drops the device.
        unsafe { misc_deregister(ptr::addr_of_mut!((*self.0.get()).misc)) };
    }
}

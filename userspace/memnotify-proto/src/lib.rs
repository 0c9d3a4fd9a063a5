//! The `/dev/memnotify` protocol, shared by the kernel module and userspace.
//!
//! Everything here is pure, `no_std` and allocation-free: the kernel module
//! compiles the very same files (`src/proto/`) into
//! `memnotify.ko` through a `#[path]` module, so what the host tests check is
//! what runs in the kernel.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod proto;
#[cfg(feature = "serde")]
mod serde_amount;

pub use proto::*;

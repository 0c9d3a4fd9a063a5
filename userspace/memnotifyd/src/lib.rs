//! The parts of `memnotifyd` that other crates use: the configuration parser, exposed
//! so the fuzz targets in `fuzz/` can drive it. The daemon itself is the binary.

pub mod config;
pub mod dbus;

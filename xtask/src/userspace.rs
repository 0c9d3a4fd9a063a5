//! `cargo xtask userspace`: static guest binaries of every userspace crate.
//!
//! Built with Debian's rustc (it ships the arm64 standard library; rustup's toolchain here
//! has no other targets) into `target/guest/`, apart from the host build's artefacts.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};

use crate::setup::KERNEL_RUSTC;
use crate::util::{run_logged, target_dir};
use crate::{project_root, Arch};

/// Packages whose binaries go into the guest.
const GUEST_PACKAGES: &[&str] = &["memnotify", "memnotifyd", "memhog", "mn-probe", "mn-bench"];
/// The binaries they provide.
pub const GUEST_BINARIES: &[&str] = &[
    "memnotify",
    "mn_test",
    "memnotifyd",
    "memhog",
    "mn-probe",
    "mn-bench",
];

/// Builds the guest binaries for `arch` and returns their paths.
pub fn build(arch: Arch) -> Result<Vec<PathBuf>> {
    let target = arch.rust_target();
    let target_root = target_dir().join("guest");
    let mut cargo = Command::new("cargo");
    cargo
        .current_dir(project_root())
        .env("RUSTC", KERNEL_RUSTC)
        .env("CARGO_TARGET_DIR", &target_root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args(["build", "--release", "--locked", "--target", target]);
    for package in GUEST_PACKAGES {
        cargo.args(["-p", package]);
    }
    if arch == Arch::Arm64 {
        cargo.env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "aarch64-linux-gnu-gcc",
        );
    }
    let log = target_dir().join(format!("logs/userspace-{}.log", arch.name()));
    run_logged(
        cargo,
        &log,
        &format!("building userspace for {}", arch.name()),
    )?;
    let out = target_root.join(target).join("release");
    let binaries: Vec<PathBuf> = GUEST_BINARIES.iter().map(|name| out.join(name)).collect();
    for binary in &binaries {
        if !binary.exists() {
            bail!("the userspace build produced no {}", binary.display());
        }
    }
    Ok(binaries)
}

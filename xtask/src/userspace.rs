//! `cargo xtask userspace`: static guest binaries of every userspace crate.
//!
//! Built with Debian's rustc 1.96 (rustup's toolchain here has no other targets). The
//! x86_64 and arm64 standard libraries come packaged (native, `libstd-rust-web-dev:arm64`);
//! for armhf Debian's packaged std may be older than the compiler (bookworm's is 1.85), so
//! ARMv7 builds std from the compiler's own source (`rust-web-src`) with `-Zbuild-std`.

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

/// The crates `-Zbuild-std` builds: the release profile aborts on panic, so `panic_abort`
/// has to be among them.
const BUILD_STD_CRATES: &str = "std,panic_abort";

/// Whether `arch`'s standard library is built from source rather than taken from a package.
fn builds_std_from_source(arch: Arch) -> bool {
    arch.facts().builds_std_from_source
}

/// The C cross compiler that links `arch`'s binaries against its static glibc.
fn cross_linker(arch: Arch) -> Option<&'static str> {
    let facts = arch.facts();
    (!facts.native).then_some(facts.c_compiler)
}

/// Cargo's target directory for `arch`. Builds of std from source use their own: the
/// nightly switches they need change the fingerprints of the shared host artefacts (build
/// scripts, proc macros), which would otherwise be rebuilt at every change of architecture.
fn guest_target_dir(arch: Arch) -> PathBuf {
    if builds_std_from_source(arch) {
        target_dir().join("guest-build-std")
    } else {
        target_dir().join("guest")
    }
}

/// Builds the guest binaries for `arch` and returns their paths.
pub fn build(arch: Arch) -> Result<Vec<PathBuf>> {
    let target_root = guest_target_dir(arch);
    let out = cargo_build(arch, &target_root, GUEST_PACKAGES, None, "userspace")?;
    let binaries: Vec<PathBuf> = GUEST_BINARIES.iter().map(|name| out.join(name)).collect();
    for binary in &binaries {
        if !binary.exists() {
            bail!("the userspace build produced no {}", binary.display());
        }
    }
    Ok(binaries)
}

/// Builds memnotifyd with the cargo feature `dbus` for `arch` (only the D-Bus scenario
/// needs it) and returns its path. It has target directories of its own: in the shared
/// one the featured binary would replace the image's plain `memnotifyd`.
pub fn build_memnotifyd_dbus(arch: Arch) -> Result<PathBuf> {
    let base = guest_target_dir(arch);
    let target_root = base.with_file_name(format!(
        "{}-dbus",
        base.file_name().unwrap_or_default().to_string_lossy()
    ));
    let out = cargo_build(
        arch,
        &target_root,
        &["memnotifyd"],
        Some("memnotifyd/dbus"),
        "memnotifyd-dbus",
    )?;
    let binary = out.join("memnotifyd");
    if !binary.exists() {
        bail!("the build produced no {}", binary.display());
    }
    Ok(binary)
}

/// Runs the static release build of `packages` for `arch`; returns the output directory.
fn cargo_build(
    arch: Arch,
    target_root: &std::path::Path,
    packages: &[&str],
    features: Option<&str>,
    what: &str,
) -> Result<PathBuf> {
    let target = arch.facts().rust_target;
    let mut cargo = Command::new("cargo");
    cargo
        .current_dir(project_root())
        .env("RUSTC", KERNEL_RUSTC)
        .env("CARGO_TARGET_DIR", target_root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args(["build", "--release", "--locked", "--target", target]);
    for package in packages {
        cargo.args(["-p", package]);
    }
    if let Some(features) = features {
        cargo.args(["--features", features]);
    }
    if let Some(linker) = cross_linker(arch) {
        let variable = format!(
            "CARGO_TARGET_{}_LINKER",
            target.to_uppercase().replace('-', "_")
        );
        cargo.env(variable, linker);
    }
    if builds_std_from_source(arch) {
        // -Zbuild-std is unstable; RUSTC_BOOTSTRAP lets the stable cargo and rustc use it.
        // Cargo takes std's source and lockfile from the sysroot of KERNEL_RUSTC, so the
        // library matches the compiler exactly; std's dependencies come from crates.io.
        cargo
            .env("RUSTC_BOOTSTRAP", "1")
            .arg(format!("-Zbuild-std={BUILD_STD_CRATES}"));
    }
    let log = target_dir().join(format!("logs/{what}-{}.log", arch.name()));
    run_logged(cargo, &log, &format!("building {what} for {}", arch.name()))?;
    Ok(target_root.join(target).join("release"))
}

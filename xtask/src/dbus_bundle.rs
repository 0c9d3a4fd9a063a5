//! The D-Bus scenario's `/extra` (issue 17): Debian's own system bus and clients, a GLib
//! program, and memnotifyd built with the cargo feature `dbus`.
//!
//! Through the same mechanism as the benchmarks' earlyoom ([`crate::debian`]): Debian's
//! packages for the guest's architecture unpacked into the cache, the binaries copied
//! with their shared libraries and loader. Under `/extra/dbus` in the guest:
//!
//! - `bin/`: `dbus-daemon`, `dbus-send`, `dbus-monitor`, `dbus-uuidgen` (Debian's),
//!   `glib-memory-monitor` (`qemu/glib-memory-monitor.c`, compiled here against Debian's
//!   GLib for the guest) and `memnotifyd` (static, with D-Bus);
//! - `lib/`: their libraries and the loader; `loader`: the loader's path in the guest;
//! - `share/`: Debian's `system.conf` and memnotifyd's bus policy;
//! - `setup`: `qemu/initramfs/dbus-setup`, which puts them where they belong.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::debian;
use crate::util::target_dir;
use crate::{project_root, userspace, Arch};

/// Debian packages whose files or libraries the bundle takes.
const PACKAGES: &[&str] = &[
    // The bus and its clients.
    "dbus-daemon",
    "dbus-bin",
    "dbus-system-bus-common:all",
    "libdbus-1-3",
    "libexpat1",
    "libsystemd0",
    "libapparmor1",
    "libaudit1",
    "libcap-ng0",
    "libcap2",
    "libgcrypt20",
    "libgpg-error0",
    "liblz4-1",
    "liblzma5",
    "libzstd1",
    "libselinux1",
    "libpcre2-8-0",
    // GLib, and its headers for the test program.
    "libglib2.0-0",
    "libglib2.0-dev",
    "libffi8",
    "libmount1",
    "libblkid1",
    "zlib1g",
];

/// Debian's binaries the scenario runs.
const BINARIES: &[&str] = &["dbus-daemon", "dbus-send", "dbus-monitor", "dbus-uuidgen"];

/// The C compiler for `arch`'s dynamically linked programs.
fn c_compiler(arch: Arch) -> &'static str {
    arch.facts().c_compiler
}

/// Finds `relative` in one of the unpacked packages.
fn find_in(unpacked: &[PathBuf], relative: &str) -> Result<PathBuf> {
    unpacked
        .iter()
        .map(|dir| dir.join(relative))
        .find(|path| path.exists())
        .with_context(|| format!("no unpacked package has {relative}"))
}

/// Compiles `qemu/glib-memory-monitor.c` against Debian's GLib for `arch`.
fn glib_program(arch: Arch, unpacked: &[PathBuf], search: &[PathBuf], out: &Path) -> Result<()> {
    let triple = arch.facts().multiarch;
    let include = find_in(unpacked, "usr/include/glib-2.0")?;
    let config_include = find_in(unpacked, &format!("usr/lib/{triple}/glib-2.0/include"))?;
    let mut cc = Command::new(c_compiler(arch));
    cc.arg("-O2")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(&include)
        .arg("-I")
        .arg(&config_include)
        .arg(project_root().join("qemu/glib-memory-monitor.c"))
        .arg("-o")
        .arg(out);
    for library in ["libgio-2.0.so.0", "libgobject-2.0.so.0", "libglib-2.0.so.0"] {
        cc.arg(find_in(unpacked, &format!("usr/lib/{triple}/{library}"))?);
    }
    for dir in search {
        cc.arg(format!("-Wl,-rpath-link,{}", dir.display()));
    }
    let status = cc
        .status()
        .with_context(|| format!("running {}", c_compiler(arch)))?;
    if !status.success() {
        bail!(
            "compiling qemu/glib-memory-monitor.c for {} failed",
            arch.name()
        );
    }
    Ok(())
}

/// Prepares the bundle for `arch` and returns the directory to pass as `--extra`.
pub fn extra(arch: Arch) -> Result<PathBuf> {
    let unpacked: Vec<PathBuf> = PACKAGES
        .iter()
        .map(|package| debian::unpack(arch, package))
        .collect::<Result<_>>()?;
    let search: Vec<PathBuf> = unpacked
        .iter()
        .flat_map(|dir| debian::package_library_dirs(arch, dir))
        .collect();
    let memnotifyd = userspace::build_memnotifyd_dbus(arch)?;

    let extra = target_dir().join(format!("extra/dbus-{}", arch.name()));
    if extra.exists() {
        std::fs::remove_dir_all(&extra)?;
    }
    let root = extra.join("dbus");
    let bin = root.join("bin");
    let share = root.join("share");
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(&share)?;
    let mut binaries = Vec::new();
    for name in BINARIES {
        let from = find_in(&unpacked, &format!("usr/bin/{name}"))?;
        std::fs::copy(&from, bin.join(name))?;
        binaries.push(from);
    }
    let glib = bin.join("glib-memory-monitor");
    glib_program(arch, &unpacked, &search, &glib)?;
    binaries.push(glib);
    let interpreter = debian::bundle_libraries(arch, &binaries, &search, &root.join("lib"))?;
    std::fs::write(root.join("loader"), format!("{interpreter}\n"))?;
    std::fs::copy(&memnotifyd, bin.join("memnotifyd"))?;
    std::fs::copy(
        find_in(&unpacked, "usr/share/dbus-1/system.conf")?,
        share.join("system.conf"),
    )?;
    let repo = project_root();
    std::fs::copy(
        repo.join("userspace/memnotifyd/dbus/memnotifyd.conf"),
        share.join("memnotifyd.conf"),
    )?;
    std::fs::copy(repo.join("qemu/initramfs/dbus-setup"), root.join("setup"))?;
    eprintln!("==> D-Bus bundle {}: {}", arch.name(), extra.display());
    Ok(extra)
}

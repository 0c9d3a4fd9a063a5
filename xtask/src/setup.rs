//! `cargo xtask setup`: check every prerequisite, install what is missing, verify versions.
//!
//! Idempotent: a machine that has everything only gets the checks. Every other command
//! calls [`ensure`] first, so a newcomer's first command does all the set-up.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use crate::util::{cache_dir, output_of};

/// Where Debian's clang/lld 19 live; put first on PATH for kernel builds (`LLVM=1`).
pub const LLVM_BIN: &str = "/usr/lib/llvm-19/bin";
/// Debian's rustc 1.96, whose `core` source (rust-web-src) the kernel build needs.
pub const KERNEL_RUSTC: &str = "/usr/bin/rustc";
/// Debian's clippy-driver matching [`KERNEL_RUSTC`], for `CLIPPY=1` module builds.
pub const KERNEL_CLIPPY: &str = "/usr/bin/clippy-driver";
const BINDGEN_VERSION: &str = "0.73.2";
/// cargo-fuzz for `cargo xtask fuzz` (the host fuzz targets in `fuzz/`).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Debian packages from the main suite.
const PACKAGES: &[&str] = &[
    "make",
    "g++",
    "patch",
    "bc",
    "bison",
    "flex",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "xz-utils",
    "gzip",
    "kmod",
    "python3",
    "shellcheck",
    "rustc-web",
    "rust-web-src",
    "rust-web-clippy",
    "clang-19",
    "lld-19",
    "llvm-19",
    "libclang-19-dev",
    "busybox-static",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "libstd-rust-web-dev:arm64",
    // ARMv7: only the cross linker and glibc; std is built from rust-web-src's library.
    "gcc-arm-linux-gnueabihf",
    "libc6-dev-armhf-cross",
    // The layer checks: bitbake's host tools and the en_US.UTF-8 locale oe-core insists on,
    // (Buildroot's make <defconfig> and show-info need nothing more than the kernel build.)
    "chrpath",
    "diffstat",
    "gawk",
    "lz4",
    "zstd",
    "file",
    "git",
    "wget",
    "rpcsvc-proto",
    "locales-all",
];

/// Packages that must come from bookworm-backports (bookworm's QEMU 7.2 conflicts with the
/// backported qemu-utils these machines ship).
const BACKPORTS_PACKAGES: &[&str] = &["qemu-system-x86", "qemu-system-arm"];

fn is_root() -> bool {
    output_of("id", &["-u"]).is_ok_and(|uid| uid == "0")
}

fn privileged(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut command = Command::new("sudo");
        command.arg(program);
        command
    }
}

fn run(mut command: Command) -> Result<()> {
    let status = command
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

fn package_installed(package: &str) -> bool {
    output_of("dpkg-query", &["-W", "-f=${db:Status-Status}", package])
        .is_ok_and(|status| status == "installed")
}

fn codename() -> String {
    std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .unwrap_or("")
        .trim_matches('"')
        .to_string()
}

/// Adds bookworm-backports to apt's sources (same mirror as bookworm) if it is missing.
fn ensure_backports() -> Result<bool> {
    let mut sources = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in dir.flatten() {
            sources += &std::fs::read_to_string(entry.path()).unwrap_or_default();
        }
    }
    if sources.contains("bookworm-backports") {
        return Ok(false);
    }
    let mirror = sources
        .lines()
        .find_map(|line| {
            let line = line.trim();
            line.strip_prefix("URIs:")
                .map(str::trim)
                .filter(|uri| uri.contains("debian") && !uri.contains("security"))
                .map(str::to_string)
                .or_else(|| {
                    let mut words = line.strip_prefix("deb ")?.split_whitespace();
                    let uri = words.find(|word| !word.starts_with('['))?;
                    let suite = words.next()?;
                    (suite == "bookworm").then(|| uri.to_string())
                })
        })
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_string());
    println!("fix  apt: adding bookworm-backports ({mirror})");
    let text = format!(
        "Types: deb\nURIs: {mirror}\nSuites: bookworm-backports\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    );
    let tmp = std::env::temp_dir().join("memnotify-bookworm-backports.sources");
    std::fs::write(&tmp, text)?;
    let mut install = privileged("install");
    install
        .args(["-m", "0644"])
        .arg(&tmp)
        .arg("/etc/apt/sources.list.d/memnotify-bookworm-backports.sources");
    run(install)?;
    Ok(true)
}

/// Debian architectures whose packages the guests need (busybox, the Rust std for arm64).
const FOREIGN_ARCHITECTURES: &[&str] = &["arm64", "armhf"];

fn ensure_foreign_architectures() -> Result<bool> {
    let foreign = output_of("dpkg", &["--print-foreign-architectures"]).unwrap_or_default();
    let mut changed = false;
    for wanted in FOREIGN_ARCHITECTURES {
        if foreign.split_whitespace().any(|arch| arch == *wanted) {
            continue;
        }
        println!("fix  dpkg: adding the {wanted} architecture");
        let mut command = privileged("dpkg");
        command.args(["--add-architecture", wanted]);
        run(command)?;
        changed = true;
    }
    Ok(changed)
}

/// `apt-get update`, tolerating an index that fails to download (a mirror caught mid-sync
/// has been seen serving a short bookworm-security armhf index): apt keeps the indexes it
/// got, and a package that is really unavailable makes the install fail loudly.
fn apt_update() -> Result<()> {
    for attempt in 1..=2 {
        let mut command = privileged("apt-get");
        command.arg("update");
        match run(command) {
            Ok(()) => return Ok(()),
            Err(error) if attempt == 1 => println!("warn apt-get update: {error:#}; retrying"),
            Err(error) => {
                println!("warn apt-get update: {error:#}; going on with the indexes apt has")
            }
        }
    }
    Ok(())
}

fn apt_install(packages: &[&str], suite: Option<&str>) -> Result<()> {
    let mut command = privileged("apt-get");
    command.args(["install", "-y", "--no-install-recommends"]);
    if let Some(suite) = suite {
        command.args(["-t", suite]);
    }
    command.args(packages);
    run(command)
}

fn cargo_bin(name: &str) -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    cargo_home.join("bin").join(name)
}

/// The path of `bindgen`, installing bindgen-cli with cargo if it is missing or too old.
pub fn bindgen() -> PathBuf {
    cargo_bin("bindgen")
}

/// The path of `cargo-fuzz`.
pub fn cargo_fuzz() -> PathBuf {
    cargo_bin("cargo-fuzz")
}

/// Installs cargo-fuzz with cargo if it is missing or not the pinned version.
pub fn ensure_cargo_fuzz(verbose: bool) -> Result<()> {
    let found = output_of(
        cargo_fuzz().to_str().unwrap_or("cargo-fuzz"),
        &["--version"],
    )
    .ok()
    .and_then(|text| text.split_whitespace().nth(1).map(str::to_string));
    match found {
        Some(version) if version == CARGO_FUZZ_VERSION => {
            if verbose {
                println!("ok   cargo-fuzz {version}");
            }
        }
        found => {
            println!(
                "fix  cargo-fuzz: found {}, want {CARGO_FUZZ_VERSION}; cargo install cargo-fuzz",
                found.as_deref().unwrap_or("none")
            );
            let mut command = Command::new("cargo");
            command.args([
                "install",
                "cargo-fuzz",
                "--locked",
                "--version",
                CARGO_FUZZ_VERSION,
            ]);
            run(command)?;
        }
    }
    Ok(())
}

fn bindgen_version(path: &Path) -> Option<String> {
    let text = output_of(path.to_str()?, &["--version"]).ok()?;
    text.split_whitespace().nth(1).map(str::to_string)
}

/// The Debian architecture whose busybox-static the guest of `arch` runs.
fn busybox_deb_arch(arch: crate::Arch) -> Option<&'static str> {
    let facts = arch.facts();
    (!facts.native).then_some(facts.deb_arch)
}

/// busybox for the guest: Debian's busybox-static for amd64, unpacked from the arm64 or
/// armhf .deb for the ARM guests (it cannot be installed next to the amd64 one).
pub fn busybox(arch: crate::Arch) -> PathBuf {
    match busybox_deb_arch(arch) {
        None => PathBuf::from("/bin/busybox"),
        Some(deb_arch) => cache_dir().join(format!("busybox-{deb_arch}/bin/busybox")),
    }
}

fn ensure_busybox(arch: crate::Arch) -> Result<bool> {
    let Some(deb_arch) = busybox_deb_arch(arch) else {
        return Ok(false);
    };
    let path = busybox(arch);
    if path.exists() {
        return Ok(false);
    }
    println!("fix  busybox-static:{deb_arch}: downloading and unpacking");
    let work = cache_dir().join(format!("busybox-{deb_arch}.download"));
    std::fs::create_dir_all(&work)?;
    let mut download = Command::new("apt-get");
    download
        .current_dir(&work)
        .arg("download")
        .arg(format!("busybox-static:{deb_arch}"));
    run(download)?;
    let deb = std::fs::read_dir(&work)?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .context("apt-get download produced no .deb")?;
    let unpack = cache_dir().join(format!("busybox-{deb_arch}"));
    let mut extract = Command::new("dpkg-deb");
    extract.arg("-x").arg(&deb).arg(&unpack);
    run(extract)?;
    std::fs::remove_dir_all(&work)?;
    if !path.exists() {
        bail!(
            "busybox-static:{deb_arch} did not contain {}",
            path.display()
        );
    }
    Ok(true)
}

/// Checks everything, installs what is missing and prints one line per piece.
pub fn setup(verbose: bool) -> Result<()> {
    let say = |line: String| {
        if verbose {
            println!("{line}");
        }
    };
    if codename() != "bookworm" {
        println!(
            "warn os: this is '{}', not Debian bookworm; package names may differ",
            codename()
        );
    }
    let mut changed_sources = ensure_backports()?;
    changed_sources |= ensure_foreign_architectures()?;

    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|package| !package_installed(package))
        .collect();
    let missing_backports: Vec<&str> = BACKPORTS_PACKAGES
        .iter()
        .copied()
        .filter(|package| !package_installed(package))
        .collect();
    for package in PACKAGES.iter().chain(BACKPORTS_PACKAGES) {
        if missing.contains(package) || missing_backports.contains(package) {
            println!("fix  {package}: not installed, installing");
        } else {
            say(format!("ok   {package}"));
        }
    }
    if changed_sources || !missing.is_empty() || !missing_backports.is_empty() {
        apt_update()?;
    }
    if !missing.is_empty() {
        apt_install(&missing, None)?;
    }
    if !missing_backports.is_empty() {
        apt_install(&missing_backports, Some("bookworm-backports"))?;
    }

    let bindgen = bindgen();
    match bindgen_version(&bindgen) {
        Some(version) if version == BINDGEN_VERSION => say(format!("ok   bindgen {version}")),
        found => {
            println!(
                "fix  bindgen: found {}, want {BINDGEN_VERSION}; cargo install bindgen-cli",
                found.as_deref().unwrap_or("none")
            );
            let mut command = Command::new("cargo");
            command.args([
                "install",
                "bindgen-cli",
                "--locked",
                "--version",
                BINDGEN_VERSION,
            ]);
            run(command)?;
        }
    }
    ensure_cargo_fuzz(verbose)?;
    for arch in crate::Arch::ALL {
        let unpacked = ensure_busybox(arch)?;
        say(format!(
            "ok   busybox {}{} ({})",
            arch.name(),
            if unpacked { " unpacked" } else { "" },
            busybox(arch).display()
        ));
    }

    // Versions the kernel build depends on.
    let checks: [(&str, Result<String>); 4] = [
        ("rustc (kernel)", output_of(KERNEL_RUSTC, &["--version"])),
        (
            "clang",
            output_of(&format!("{LLVM_BIN}/clang"), &["--version"]),
        ),
        (
            "bindgen",
            output_of(bindgen.to_str().unwrap_or("bindgen"), &["--version"]),
        ),
        ("qemu", output_of("qemu-system-x86_64", &["--version"])),
    ];
    for (what, result) in checks {
        match result {
            Ok(text) => say(format!(
                "ok   {what}: {}",
                text.lines().next().unwrap_or("")
            )),
            Err(error) => bail!("{what} is not usable after setup: {error:#}"),
        }
    }
    let core_src = Path::new("/usr/lib/rustlib/src/rust/library/core/src/lib.rs");
    if !core_src.exists() {
        bail!(
            "{} is missing: rust-web-src did not install the core source",
            core_src.display()
        );
    }
    say(format!("ok   Rust core source ({})", core_src.display()));
    // `-Zbuild-std` (the ARMv7 userspace) resolves std's dependencies with this lockfile.
    let std_lockfile = Path::new("/usr/lib/rustlib/src/rust/library/Cargo.lock");
    if !std_lockfile.exists() {
        bail!(
            "{} is missing: rust-web-src did not install std's lockfile",
            std_lockfile.display()
        );
    }
    say(format!(
        "ok   Rust std lockfile ({})",
        std_lockfile.display()
    ));
    Ok(())
}

/// Runs the set-up once per xtask invocation, quietly when nothing is missing.
pub fn ensure() -> Result<()> {
    static DONE: OnceLock<()> = OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    setup(false)?;
    let _ = DONE.set(());
    Ok(())
}

/// The version string of the kernel rustc, clang and bindgen, for cache keys.
pub fn toolchain_fingerprint() -> Result<String> {
    Ok(format!(
        "{}\n{}\n{}",
        output_of(KERNEL_RUSTC, &["--version"])?,
        output_of(&format!("{LLVM_BIN}/clang"), &["--version"])?
            .lines()
            .next()
            .unwrap_or(""),
        output_of(bindgen().to_str().unwrap_or("bindgen"), &["--version"])?,
    ))
}

/// PATH with LLVM 19 first, for `LLVM=1` kernel builds.
pub fn kernel_path_env() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{LLVM_BIN}:{path}")
}

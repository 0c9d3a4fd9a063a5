//! Debian's binaries in the guest: packages for the guest's architecture are downloaded
//! with `apt-get download` and unpacked into the cache (never installed on the host,
//! where they could start services), and a binary is bundled with the shared libraries it
//! needs (transitively, by `readelf -d`) and its dynamic loader, to go under /extra.
//!
//! The benchmarks carry earlyoom this way; the D-Bus scenario carries dbus-daemon,
//! dbus-send, dbus-monitor and a GLib program.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cache_dir, output_of};
use crate::Arch;

/// Where the host keeps shared libraries of `arch` (the native ones, or the multiarch
/// and cross packages for arm64 and armhf).
fn library_dirs(arch: Arch) -> &'static [&'static str] {
    arch.facts().library_dirs
}

/// Unpacks Debian's `package` for `arch` into the cache (once) and returns the directory.
/// A package of every architecture is named `name:all` (apt knows it without a suffix;
/// only for the native architecture does it also accept `name:<arch>`).
pub fn unpack(arch: Arch, package: &str) -> Result<PathBuf> {
    let (package, deb_arch) = match package.strip_suffix(":all") {
        Some(name) => (name, "all"),
        None => (package, arch.facts().deb_arch),
    };
    let unpacked = cache_dir().join(format!("debs/{package}-{deb_arch}"));
    if unpacked.exists() {
        return Ok(unpacked);
    }
    eprintln!("==> {package}:{deb_arch}: downloading Debian's package into the cache");
    let work = unpacked.with_extension("download");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let status = Command::new("apt-get")
        .current_dir(&work)
        .arg("download")
        .arg(if deb_arch == "all" {
            package.to_string()
        } else {
            format!("{package}:{deb_arch}")
        })
        .status()
        .context("running apt-get download")?;
    if !status.success() {
        bail!("apt-get download {package}:{deb_arch} failed");
    }
    let deb = std::fs::read_dir(&work)?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .context("apt-get download produced no .deb")?;
    let staging = unpacked.with_extension("unpacking");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&staging)
        .status()
        .context("running dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed", deb.display());
    }
    std::fs::remove_dir_all(&work)?;
    std::fs::rename(&staging, &unpacked)?;
    Ok(unpacked)
}

/// Downloads Debian's `package` at `version` from `apt_source` (`URI suite component`) into
/// `work`, through a temporary sources list and package lists of its own, so that the
/// machine's apt configuration stays as it is. When Debian has dropped `version` (its
/// suites keep only the newest), takes the newest of the package and says so in one line.
/// Returns the .deb and the version it holds.
pub fn download_pinned(
    package: &str,
    version: &str,
    apt_source: &str,
    work: &Path,
) -> Result<(PathBuf, String)> {
    if work.exists() {
        std::fs::remove_dir_all(work)?;
    }
    std::fs::create_dir_all(work.join("lists/partial"))?;
    std::fs::create_dir_all(work.join("cache/archives/partial"))?;
    let sources = work.join("sources.list");
    std::fs::write(
        &sources,
        format!("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {apt_source}\n"),
    )?;
    let options = [
        format!("Dir::Etc::sourcelist={}", sources.display()),
        "Dir::Etc::sourceparts=-".to_string(),
        format!("Dir::State::Lists={}", work.join("lists").display()),
        format!("Dir::Cache={}", work.join("cache").display()),
        "APT::Get::List-Cleanup=0".to_string(),
        // The download directory is ours, not apt's `_apt` user's.
        "APT::Sandbox::User=root".to_string(),
    ];
    let apt_get = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.current_dir(work).arg("-q");
        for option in &options {
            command.args(["-o", option]);
        }
        command.args(args);
        command
    };
    eprintln!("==> {package} {version}: downloading from {apt_source}");
    let status = apt_get(&["update"])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running apt-get update")?;
    if !status.success() {
        bail!("apt-get update for {apt_source} failed");
    }
    let pinned = apt_get(&["download", &format!("{package}={version}")])
        .status()
        .context("running apt-get download")?;
    if !pinned.success() {
        let newest = apt_get(&["download", package])
            .status()
            .context("running apt-get download")?;
        if !newest.success() {
            bail!("apt-get download {package} failed ({apt_source})");
        }
    }
    let deb = std::fs::read_dir(work)?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .context("apt-get download produced no .deb")?;
    let taken = output_of(
        "dpkg-deb",
        &["--field", deb.to_str().context("path")?, "Version"],
    )?;
    if taken != version {
        println!(
            "note {package} {version} is gone from Debian; using {taken}, the newest \
             (bump the pin in xtask/src/kernel.rs)"
        );
    }
    Ok((deb, taken))
}

/// The library directories inside an unpacked package.
pub fn package_library_dirs(arch: Arch, unpacked: &Path) -> Vec<PathBuf> {
    [
        format!("lib/{}", arch.facts().multiarch),
        format!("usr/lib/{}", arch.facts().multiarch),
    ]
    .iter()
    .map(|dir| unpacked.join(dir))
    .filter(|dir| dir.is_dir())
    .collect()
}

/// The `NEEDED` entries of an ELF file's dynamic section, from `readelf -d` output.
pub fn needed(readelf_dynamic: &str) -> Vec<String> {
    readelf_dynamic
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| {
            let start = line.find('[')? + 1;
            let end = line[start..].find(']')? + start;
            Some(line[start..end].to_string())
        })
        .collect()
}

/// The program interpreter named in `readelf -l` output.
pub fn interpreter(readelf_program: &str) -> Option<String> {
    readelf_program.lines().find_map(|line| {
        let rest = line.split("Requesting program interpreter:").nth(1)?;
        Some(rest.trim().trim_end_matches(']').trim().to_string())
    })
}

/// Finds a library by name: first in `search` (unpacked packages), then in the host's
/// directories for `arch`.
fn find_library(arch: Arch, search: &[PathBuf], name: &str) -> Result<PathBuf> {
    search
        .iter()
        .cloned()
        .chain(library_dirs(arch).iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|path| path.exists())
        .with_context(|| {
            format!(
                "{name} for {} not found in {search:?} nor {:?}",
                arch.name(),
                library_dirs(arch)
            )
        })
}

/// Copies the dynamic loader of `binaries` and every library they need (transitively)
/// into `lib_dir`; returns the loader's path in the guest (the ELF interpreter).
pub fn bundle_libraries(
    arch: Arch,
    binaries: &[PathBuf],
    search: &[PathBuf],
    lib_dir: &Path,
) -> Result<String> {
    std::fs::create_dir_all(lib_dir)?;
    let first = binaries.first().context("nothing to bundle")?;
    let program = output_of("readelf", &["-l", first.to_str().context("path")?])?;
    let interpreter = interpreter(&program)
        .with_context(|| format!("{} names no program interpreter", first.display()))?;
    let loader_name = Path::new(&interpreter)
        .file_name()
        .context("interpreter without a name")?
        .to_string_lossy()
        .into_owned();
    let mut wanted = binaries.to_vec();
    let mut copied = vec![loader_name.clone()];
    std::fs::copy(
        find_library(arch, search, &loader_name)?,
        lib_dir.join(&loader_name),
    )?;
    while let Some(file) = wanted.pop() {
        let dynamic = output_of("readelf", &["-d", file.to_str().context("path")?])?;
        for name in needed(&dynamic) {
            if copied.contains(&name) {
                continue;
            }
            let path = find_library(arch, search, &name)?;
            // `copy` follows the symlinks the library directories are made of.
            std::fs::copy(&path, lib_dir.join(&name))?;
            copied.push(name);
            wanted.push(path);
        }
    }
    eprintln!(
        "==> bundled for {}: {} (loader {interpreter})",
        arch.name(),
        copied.join(", ")
    );
    Ok(interpreter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readelf_output_is_parsed() {
        let dynamic = " 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n \
                       0x0000000000000001 (NEEDED)             Shared library: [ld-linux-aarch64.so.1]\n \
                       0x000000000000000c (INIT)               0x1000\n";
        assert_eq!(needed(dynamic), vec!["libc.so.6", "ld-linux-aarch64.so.1"]);
        let program = "  INTERP         0x0000000000000318 0x0000000000000318\n      \
                       [Requesting program interpreter: /lib64/ld-linux-x86-64.so.2]\n";
        assert_eq!(
            interpreter(program).as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(interpreter("no interpreter"), None);
    }
}

//! `cargo xtask image`: the gzip cpio initramfs of a cell.
//!
//! The archive is described in the kernel's `gen_init_cpio` format, so device nodes and
//! ownership need no root; `run -- CMD` appends a second small archive with the command
//! (the kernel unpacks concatenated archives in order).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::kernel::{self, Kernel};
use crate::util::target_dir;
use crate::{project_root, setup, userspace, Cell};

const DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr",
    "/usr/bin",
    "/usr/sbin",
    "/dev",
    "/proc",
    "/sys",
    "/tmp",
    "/run",
    "/root",
    "/etc",
    "/etc/init.d",
    "/etc/memnotify",
    "/usr/share",
    "/usr/share/memnotify",
    "/lib",
    "/lib/modules",
    "/mnt",
    "/extra",
];

/// The shell functions every scenario step sources (`wait_for`), in the image.
pub const SCENARIO_LIB: &str = "/usr/share/memnotify/scenario-lib.sh";

/// What a built image consists of.
pub struct Image {
    pub kernel: Kernel,
    pub initrd: PathBuf,
}

/// Builds the kernel, module and userspace of `cell` and packs the initramfs.
/// `command`, if given, is appended as `/etc/memnotify/cmd.sh`.
pub fn build(cell: Cell, extra: Option<&Path>, command: Option<&str>) -> Result<Image> {
    let kernel = kernel::kernel(cell)?;
    let module = kernel::module(cell, &kernel)?;
    let binaries = userspace::build(cell.arch)?;
    let root = project_root();
    let mut spec = String::new();
    for dir in DIRS {
        writeln!(spec, "dir {dir} 0755 0 0")?;
    }
    writeln!(spec, "nod /dev/console 0600 0 0 c 5 1")?;
    writeln!(spec, "nod /dev/null 0666 0 0 c 1 3")?;
    let file = |spec: &mut String, to: &str, from: &Path, mode: &str| -> Result<()> {
        if !from.exists() {
            bail!(
                "{} is missing (wanted at {to} in the image)",
                from.display()
            );
        }
        writeln!(spec, "file {to} {} {mode} 0 0", from.display())?;
        Ok(())
    };
    file(
        &mut spec,
        "/bin/busybox",
        &setup::busybox(cell.arch),
        "0755",
    )?;
    file(
        &mut spec,
        "/init",
        &root.join("qemu/initramfs/init"),
        "0755",
    )?;
    file(
        &mut spec,
        "/usr/bin/memnotify-demo",
        &root.join("qemu/initramfs/memnotify-demo"),
        "0755",
    )?;
    file(
        &mut spec,
        SCENARIO_LIB,
        &root.join("qemu/initramfs/scenario-lib.sh"),
        "0644",
    )?;
    file(&mut spec, "/lib/modules/memnotify.ko", &module, "0644")?;
    for binary in &binaries {
        let name = binary.file_name().unwrap_or_default().to_string_lossy();
        file(&mut spec, &format!("/usr/bin/{name}"), binary, "0755")?;
    }
    let dist = root.join("userspace/memnotifyd/dist");
    for (from, to, mode) in [
        ("memnotifyd.yaml", "/etc/memnotify/memnotifyd.yaml", "0644"),
        ("memnotifyd.init", "/etc/init.d/memnotifyd", "0755"),
    ] {
        file(&mut spec, to, &dist.join(from), mode)?;
    }
    if let Some(extra) = extra {
        add_tree(&mut spec, extra, "/extra")
            .with_context(|| format!("adding {} under /extra", extra.display()))?;
    }

    let dir = target_dir().join(format!("image/{}", cell.name()));
    std::fs::create_dir_all(&dir)?;
    let _lock = kernel::lock_file(&dir.with_extension("lock"))?;
    // An image with an extra tree is kept apart from the plain one, which other runs
    // (scenarios, another xtask) may be using.
    let initrd = match extra.and_then(Path::file_name) {
        Some(name) => dir.join(format!("initrd-{}.cpio.gz", name.to_string_lossy())),
        None => dir.join("initrd.cpio.gz"),
    };
    pack(&kernel, &spec, &dir.join("initrd.spec"), &initrd)?;
    if let Some(command) = command {
        let script = dir.join("cmd.sh");
        std::fs::write(&script, format!("{command}\n"))?;
        let mut cmd_spec = String::new();
        writeln!(cmd_spec, "dir /etc 0755 0 0")?;
        writeln!(cmd_spec, "dir /etc/memnotify 0755 0 0")?;
        writeln!(
            cmd_spec,
            "file /etc/memnotify/cmd.sh {} 0755 0 0",
            script.display()
        )?;
        let cmd_archive = dir.join("cmd.cpio.gz");
        pack(&kernel, &cmd_spec, &dir.join("cmd.spec"), &cmd_archive)?;
        let with_command = dir.join(format!("initrd-cmd-{}.cpio.gz", std::process::id()));
        let mut bytes = std::fs::read(&initrd)?;
        bytes.extend(std::fs::read(&cmd_archive)?);
        std::fs::write(&with_command, bytes)?;
        return Ok(Image {
            kernel,
            initrd: with_command,
        });
    }
    eprintln!("==> image {cell}: {}", initrd.display());
    Ok(Image { kernel, initrd })
}

/// Adds every file below `from` under `to`, keeping the executable bit.
fn add_tree(spec: &mut String, from: &Path, to: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(from)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(char::is_whitespace) {
            bail!(
                "{}: names with spaces cannot go into the image",
                path.display()
            );
        }
        let dest = format!("{to}/{name}");
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            writeln!(spec, "dir {dest} 0755 0 0")?;
            add_tree(spec, &path, &dest)?;
        } else {
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                "0755"
            } else {
                "0644"
            };
            writeln!(spec, "file {dest} {} {mode} 0 0", path.display())?;
        }
    }
    Ok(())
}

/// Packs `spec` into `out`, replacing it atomically: a guest booting from the previous
/// archive (another xtask) keeps reading a whole file.
fn pack(kernel: &Kernel, spec: &str, spec_path: &Path, out: &Path) -> Result<()> {
    let partial = out.with_extension(format!("partial-{}", std::process::id()));
    pack_into(kernel, spec, spec_path, &partial)?;
    std::fs::rename(&partial, out)?;
    Ok(())
}

fn pack_into(kernel: &Kernel, spec: &str, spec_path: &Path, out: &Path) -> Result<()> {
    std::fs::write(spec_path, spec)?;
    let cpio = Command::new(kernel.gen_init_cpio())
        .arg(spec_path)
        .stderr(Stdio::inherit())
        .output()
        .context("running gen_init_cpio")?;
    if !cpio.status.success() {
        bail!("gen_init_cpio failed on {}", spec_path.display());
    }
    let mut gzip = Command::new("gzip")
        .arg("-9n")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(out)?)
        .spawn()
        .context("running gzip")?;
    use std::io::Write;
    gzip.stdin
        .take()
        .context("gzip stdin")?
        .write_all(&cpio.stdout)?;
    if !gzip.wait()?.success() {
        bail!("gzip failed");
    }
    Ok(())
}

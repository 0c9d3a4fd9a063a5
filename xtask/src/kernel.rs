//! `cargo xtask kernel` and `cargo xtask module`: a Rust-enabled kernel per cell (Linux 6.12
//! or 7.3, from Debian's source packages, pinned), cached outside the repository under a
//! hash of every input, and the module built against it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::setup::{self, KERNEL_CLIPPY, KERNEL_RUSTC};
use crate::util::{cache_dir, run_logged, sorted_files, target_dir, InputHash};
use crate::{debian, project_root, Arch, Cell};

/// Bump when the way kernels are built changes, so old cache entries are not reused.
const RECIPE_VERSION: &str = "1";

/// A kernel series the module is built and tested against.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Series {
    /// Linux 6.12 LTS (Debian bookworm's `linux-source-6.12`), the default.
    #[default]
    V6_12,
    /// Linux 7.3 (Debian trixie-backports' `linux-source-7.3`), the newest Debian ships.
    V7_3,
}

/// What xtask knows about one kernel series: where its source comes from.
pub struct SeriesFacts {
    /// `--kernel`'s value, the patch directory and the Kconfig fragment's name.
    pub name: &'static str,
    /// The Debian source package and the pinned version of it. When Debian has dropped that
    /// version (security updates replace it), the newest of the package is taken instead
    /// and a line says so; bump the pin to make that the cached one.
    pub package: &'static str,
    pub pinned: &'static str,
    /// The apt source (one-line format, without the `deb` and options) it comes from.
    pub apt_source: &'static str,
}

const V6_12: SeriesFacts = SeriesFacts {
    name: "6.12",
    package: "linux-source-6.12",
    pinned: "6.12.118-1~deb12u1",
    apt_source: "http://deb.debian.org/debian-security bookworm-security main",
};

const V7_3: SeriesFacts = SeriesFacts {
    name: "7.3",
    package: "linux-source-7.3",
    pinned: "7.3.4-1~bpo13+1",
    apt_source: "http://deb.debian.org/debian trixie-backports main",
};

impl SeriesFacts {
    /// The upstream release the pinned Debian version packages: `6.12.118` of
    /// `6.12.118-1~deb12u1`.
    pub fn upstream_version(&self) -> &'static str {
        let pinned: &'static str = self.pinned;
        pinned.split('-').next().unwrap_or(pinned)
    }
}

impl Series {
    pub const ALL: [Series; 2] = [Series::V6_12, Series::V7_3];

    pub fn facts(self) -> &'static SeriesFacts {
        match self {
            Series::V6_12 => &V6_12,
            Series::V7_3 => &V7_3,
        }
    }

    pub fn name(self) -> &'static str {
        self.facts().name
    }

    pub fn parse(text: &str) -> Result<Series> {
        match Series::ALL.into_iter().find(|series| series.name() == text) {
            Some(series) => Ok(series),
            None => bail!("unknown kernel '{text}': use 6.12 or 7.3"),
        }
    }
}

/// The source tarball of a series and the Debian version it came from.
struct Source {
    tarball: PathBuf,
    version: String,
}

/// The series' source tarball, from the cache or downloaded (`apt-get download` through a
/// temporary sources list: the machine's apt configuration is left alone).
fn source(series: Series) -> Result<Source> {
    let facts = series.facts();
    let dir = cache_dir().join(format!("sources/{}", facts.package));
    let _lock = lock_file(&dir.with_extension("lock"))?;
    // The version last taken for this pin (itself, or the newest when the pin was gone).
    let resolved = dir.join(format!("{}.resolved", facts.pinned));
    if let Ok(version) = std::fs::read_to_string(&resolved) {
        let tarball = dir.join(format!("{version}/{}.tar.xz", facts.package));
        if tarball.exists() {
            return Ok(Source { tarball, version });
        }
    }
    let (deb, version) = debian::download_pinned(
        facts.package,
        facts.pinned,
        facts.apt_source,
        &dir.join("download"),
    )?;
    let unpacked = dir.join(&version);
    let staging = dir.join(format!("{version}.unpacking"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    let member = format!("./usr/src/{}.tar.xz", facts.package);
    let script = format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' --strip-components=3 '{member}'",
        deb.display(),
        staging.display()
    );
    let mut extract = Command::new("sh");
    extract.args(["-c", &script]);
    run_logged(
        extract,
        &dir.join("extract.log"),
        &format!("taking {member} out of {}", facts.package),
    )?;
    if unpacked.exists() {
        std::fs::remove_dir_all(&unpacked)?;
    }
    std::fs::rename(&staging, &unpacked)?;
    std::fs::remove_dir_all(dir.join("download"))?;
    std::fs::write(&resolved, &version)?;
    Ok(Source {
        tarball: unpacked.join(format!("{}.tar.xz", facts.package)),
        version,
    })
}

/// A configured and built kernel tree.
pub struct Kernel {
    pub build_dir: PathBuf,
    pub arch: Arch,
}

impl Kernel {
    /// The boot image QEMU loads.
    pub fn image(&self) -> PathBuf {
        self.build_dir.join(self.arch.facts().kernel_image)
    }

    /// The kernel's own initramfs generator (no root needed for device nodes).
    pub fn gen_init_cpio(&self) -> PathBuf {
        self.build_dir.join("usr/gen_init_cpio")
    }

    /// `make` in this build tree with the project's toolchain.
    pub fn make(&self) -> Command {
        make_command(&self.build_dir, self.arch)
    }
}

fn make_command(build_dir: &Path, arch: Arch) -> Command {
    let mut command = Command::new("make");
    command
        .env("PATH", setup::kernel_path_env())
        .arg("-C")
        .arg(build_dir)
        .arg(format!("ARCH={}", arch.facts().kernel_arch))
        .arg("LLVM=1")
        .arg(format!("RUSTC={KERNEL_RUSTC}"))
        .arg(format!("BINDGEN={}", setup::bindgen().display()));
    command
}

/// The fragments merged onto tinyconfig for a cell, in order: shared ones, then the one
/// for what the kernel series names differently. The debug variant adds `debug.config` last.
pub fn fragments(cell: Cell) -> Vec<PathBuf> {
    let configs = project_root().join("qemu/configs");
    let mut fragments = vec![
        configs.join("qemu-common.config"),
        configs.join(format!("qemu-{}.config", cell.arch.name())),
        configs.join("memnotify.config"),
        configs.join(format!("swap-{}.config", cell.swap_name())),
        configs.join(format!("kernel-{}.config", cell.kernel.name())),
    ];
    if cell.debug {
        fragments.push(configs.join("debug.config"));
    }
    fragments
}

/// The project's kernel patches for a series (`kernel-module/patches/<series>/`), applied
/// in name order.
pub fn patches(series: Series) -> Result<Vec<PathBuf>> {
    sorted_files(
        &project_root()
            .join("kernel-module/patches")
            .join(series.name()),
        "patch",
    )
}

/// Unpacks the Debian kernel source once per (source version, patch set) and applies the patches.
fn source_tree(series: Series, source: &Source) -> Result<PathBuf> {
    let mut hash = InputHash::default();
    hash.add("source", source.version.as_bytes());
    for patch in patches(series)? {
        hash.add_file(&patch)?;
    }
    let dir = cache_dir().join(format!("src/linux-{}-{}", series.name(), hash.short()));
    let _lock = lock_file(&dir.with_extension("lock"))?;
    if dir.join(".memnotify-ready").exists() {
        return Ok(dir);
    }
    let staging = cache_dir().join(format!("src/.unpacking-{}", hash.short()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    let mut untar = Command::new("tar");
    untar
        .arg("-xf")
        .arg(&source.tarball)
        .arg("-C")
        .arg(&staging)
        .arg("--strip-components=1");
    run_logged(
        untar,
        &staging.with_extension("log"),
        "unpacking the kernel source",
    )?;
    for patch in patches(series)? {
        let mut apply = Command::new("patch");
        apply
            .current_dir(&staging)
            .args(["-p1", "--forward", "--batch", "-i"])
            .arg(&patch);
        let name = patch
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        run_logged(
            apply,
            &staging.with_extension("patch.log"),
            &format!("applying {name}"),
        )?;
    }
    std::fs::write(staging.join(".memnotify-ready"), "")?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::rename(&staging, &dir)?;
    Ok(dir)
}

/// The cache key of a cell's kernel: source, patches, fragments, toolchain, recipe.
fn kernel_key(cell: Cell, source: &Source) -> Result<String> {
    let mut hash = InputHash::default();
    hash.add("recipe", RECIPE_VERSION.as_bytes())
        .add("source", source.version.as_bytes())
        .add("arch", cell.arch.name().as_bytes())
        .add("toolchain", setup::toolchain_fingerprint()?.as_bytes());
    for patch in patches(cell.kernel)? {
        hash.add_file(&patch)?;
    }
    for fragment in fragments(cell) {
        hash.add_file(&fragment)?;
    }
    Ok(hash.short())
}

/// Builds (or reuses) the kernel for `cell`.
pub fn kernel(cell: Cell) -> Result<Kernel> {
    setup::ensure()?;
    let source = source(cell.kernel)?;
    let key = kernel_key(cell, &source)?;
    let build_dir = cache_dir().join(format!("kernels/{}-{key}", cell.name()));
    let kernel = Kernel {
        build_dir: build_dir.clone(),
        arch: cell.arch,
    };
    // One build per cache entry at a time: a second xtask waits here instead of
    // deleting the tree under the first one's feet.
    let _lock = lock_file(&cache_dir().join(format!("kernels/{}-{key}.lock", cell.name())))?;
    let stamp = build_dir.join(".memnotify-built");
    if stamp.exists() && kernel.image().exists() {
        eprintln!("==> kernel {cell}: cached ({})", build_dir.display());
        return Ok(kernel);
    }
    let source = source_tree(cell.kernel, &source)?;
    if build_dir.exists() {
        std::fs::remove_dir_all(&build_dir)?;
    }
    std::fs::create_dir_all(&build_dir)?;
    let logs = build_dir.join("logs");
    let make_in_source = |target: &str| {
        let mut command = make_command(&source, cell.arch);
        command
            .arg(format!("O={}", build_dir.display()))
            .arg(target);
        command
    };
    run_logged(
        make_in_source("tinyconfig"),
        &logs.join("tinyconfig.log"),
        "make tinyconfig",
    )?;
    let mut merge = Command::new(source.join("scripts/kconfig/merge_config.sh"));
    merge
        .env("PATH", setup::kernel_path_env())
        .env("ARCH", cell.arch.facts().kernel_arch)
        .current_dir(&source)
        .args(["-m", "-O"])
        .arg(&build_dir)
        .arg(build_dir.join(".config"))
        .args(fragments(cell));
    run_logged(
        merge,
        &logs.join("merge_config.log"),
        "merging config fragments",
    )?;
    run_logged(
        make_in_source("olddefconfig"),
        &logs.join("olddefconfig.log"),
        "make olddefconfig",
    )?;
    verify_config(&build_dir.join(".config"), &fragments(cell))?;
    let mut rustavailable = kernel.make();
    rustavailable.arg("rustavailable");
    run_logged(
        rustavailable,
        &logs.join("rustavailable.log"),
        "make rustavailable",
    )?;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    let mut build = kernel.make();
    build.arg(format!("-j{jobs}"));
    run_logged(
        build,
        &logs.join("build.log"),
        &format!(
            "building kernel {cell} ({} on 2 cores, longer beside other work)",
            if cell.debug {
                "about 8 minutes"
            } else {
                "4-6 minutes"
            }
        ),
    )?;
    if !kernel.image().exists() || !kernel.gen_init_cpio().exists() {
        bail!(
            "the kernel build finished without {}",
            kernel.image().display()
        );
    }
    std::fs::write(&stamp, &key)?;
    eprintln!("==> kernel {cell}: {}", kernel.image().display());
    Ok(kernel)
}

/// Takes an exclusive lock on `path` (created if needed), waiting for other holders.
pub fn lock_file(path: &Path) -> Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    if file.try_lock().is_err() {
        eprintln!(
            "==> waiting for another xtask building the same tree ({})",
            path.display()
        );
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(file)
}

/// Fails loudly when an option a fragment asks for did not make it into `.config`
/// (Kconfig drops unmet options silently): `qemu/check-kconfig.sh`, the one copy of this check,
/// which the Yocto layer and the Buildroot tree run too.
pub fn verify_config(config: &Path, fragments: &[PathBuf]) -> Result<()> {
    let output = std::process::Command::new("sh")
        .arg(project_root().join("qemu/check-kconfig.sh"))
        .arg(config)
        .args(fragments)
        .output()
        .context("running qemu/check-kconfig.sh")?;
    if !output.status.success() {
        bail!(
            "options dropped out of {}:\n{}",
            config.display(),
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(())
}

/// Copies `from` to `to` only when the content differs, so make sees unchanged mtimes.
fn sync_file(from: &Path, to: &Path) -> Result<()> {
    let content = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if std::fs::read(to).ok().as_deref() != Some(&content[..]) {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(to, content)?;
    }
    Ok(())
}

fn sync_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default();
        if path.is_dir() {
            sync_tree(&path, &to.join(name))?;
        } else {
            sync_file(&path, &to.join(name))?;
        }
    }
    Ok(())
}

/// Builds `kernel-module/` against the cell's kernel (with CLIPPY=1) and fails on any warning.
/// The sources are mirrored into `target/` so the checkout stays free of build products.
pub fn module(cell: Cell, kernel: &Kernel) -> Result<PathBuf> {
    let root = project_root();
    let work = target_dir().join(format!("module/{}", cell.name()));
    // Concurrent xtasks (a test run and a bench run) must not rebuild the same tree at once.
    let _lock = lock_file(&work.with_extension("lock"))?;
    // Always a full rebuild (seconds): an incremental make would not repeat the compiler's
    // warnings, and the warning check below must see them.
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    for name in ["Kbuild", "Makefile"] {
        sync_file(
            &root.join("kernel-module").join(name),
            &work.join("kernel-module").join(name),
        )?;
    }
    for source in sorted_files(&root.join("kernel-module"), "rs")? {
        let name = source.file_name().unwrap_or_default();
        sync_file(&source, &work.join("kernel-module").join(name))?;
    }
    sync_tree(
        &root.join("userspace/memnotify-proto/src"),
        &work.join("userspace/memnotify-proto/src"),
    )?;
    let log = target_dir().join(format!("logs/module-{}.log", cell.name()));
    let mut make = kernel.make();
    make.arg(format!("M={}", work.join("kernel-module").display()))
        .arg("CLIPPY=1")
        .arg(format!("CLIPPY_DRIVER={KERNEL_CLIPPY}"))
        .arg("modules");
    run_logged(make, &log, &format!("building memnotify.ko for {cell}"))?;
    let warnings: Vec<String> = std::fs::read_to_string(&log)?
        .lines()
        .filter(|line| line.contains("warning"))
        .map(str::to_string)
        .collect();
    if !warnings.is_empty() {
        bail!(
            "the module build has warnings (the project builds warning-free):\n{}\nlog: {}",
            warnings.join("\n"),
            log.display()
        );
    }
    let ko = work.join("kernel-module/memnotify.ko");
    if !ko.exists() {
        bail!("the module build produced no {}", ko.display());
    }
    eprintln!("==> module {cell}: {}", ko.display());
    Ok(ko)
}

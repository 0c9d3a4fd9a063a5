//! `cargo xtask`: build kernels, the module, userspace and images; boot them under QEMU; run
//! scenarios; run the whole CI matrix. `cargo xtask help` lists the commands.

mod bench;
mod buildroot;
mod ci;
mod dbus_bundle;
mod debian;
mod fuzz;
mod image;
mod kernel;
mod qemu;
mod scenario;
mod setup;
mod soak;
mod userspace;
mod util;
mod yocto;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use xshell::Shell;

const HELP: &str = "\
cargo xtask <command> [options]

Commands:
  setup                              check and install every prerequisite (idempotent)
  kernel     --arch A --swap S [--debug]
                                     build (or reuse) the Rust-enabled 6.12 kernel of a cell
  module     --arch A --swap S       build kernel-module/ against that kernel
  userspace  --arch A                build the static userspace binaries for the guest
  image      --arch A --swap S [--extra DIR]
                                     build the gzip cpio initramfs
  run        --arch A --swap S [--debug] [--mem 256M] [--extra DIR] [--timeout SECS] [-- CMD…]
                                     boot under QEMU: a shell, or run CMD and exit with its status
  qemu-test  [A] [--arch A] [--swap S] [--scenario NAMES] [--debug]
                                     NAMES: comma-separated, `module-*` selects by prefix
                                     run the YAML scenarios of qemu/scenarios/ (default: all cells)
  bench      --arch A --swap S [--mem 512M] [--timeout SECS] [-- --quick]
                                     measure memnotify against a /proc/meminfo poller, PSI
                                     and earlyoom in the guest; table + target/bench/<cell>.json
  fuzz       [--seconds N] [--target NAME]
                                     host fuzzing of the protocol crate and memnotifyd's
                                     config parser (cargo-fuzz; N seconds per target, 60)
  soak       --arch A --swap S [--debug] [--seconds N]
                                     long reliability runs (guest fuzzer N s, default 600;
                                     churn, rmmod races, socket abuse, OOM) and a summary
  ci                                 host checks, the whole matrix (6 cells, plus the
                                     debug kernel on x86_64 and arm64), the layer checks;
                                     MEMNOTIFY_CI_JOBS cells at a time (default 2)
  yocto-crates                       regenerate meta-memnotify's crate list from Cargo.lock
  yocto-check                        offline checks of the Yocto layer
  buildroot-check                    offline checks of the Buildroot tree

A is x86_64, arm64 or arm (ARMv7), S is on or off (CONFIG_SWAP and an active swap disk).
--debug selects the debug kernel (qemu/configs/debug.config: lockdep, KASAN, kmemleak,
DEBUG_OBJECTS, SLUB debugging), cached apart; qemu-test then also fails on kmemleak reports.
Kernels are cached in $MEMNOTIFY_CACHE (default ~/.cache/memnotify); the rest lands in target/.
";

/// A guest architecture.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    X86_64,
    Arm64,
    /// 32-bit ARMv7 (little-endian, hard-float userspace), the N9's kind of CPU.
    Arm,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::X86_64, Arch::Arm64, Arch::Arm];

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
            Arch::Arm => "arm",
        }
    }

    /// The kernel's ARCH= value.
    pub fn kernel_arch(self) -> &'static str {
        self.name()
    }

    /// The Rust target triple of the guest's userspace.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
            Arch::Arm => "armv7-unknown-linux-gnueabihf",
        }
    }

    fn parse(text: &str) -> Result<Arch> {
        match text {
            "x86_64" | "x86-64" | "amd64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            "arm" | "armv7" | "armhf" => Ok(Arch::Arm),
            other => bail!("unknown arch '{other}': use x86_64, arm64 or arm"),
        }
    }
}

/// One cell of the test matrix: an architecture with swap on or off.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cell {
    pub arch: Arch,
    pub swap: bool,
}

impl Cell {
    pub fn all() -> Vec<Cell> {
        Arch::ALL
            .iter()
            .flat_map(|&arch| [true, false].map(|swap| Cell { arch, swap }))
            .collect()
    }

    pub fn swap_name(self) -> &'static str {
        if self.swap {
            "on"
        } else {
            "off"
        }
    }

    /// A file-name friendly name, e.g. `x86_64-swapoff` (`x86_64-swapoff-debug` with the
    /// debug kernel), used for the kernel cache entry, module, image and log directories.
    pub fn name(self) -> String {
        let debug = if debug_kernel() { "-debug" } else { "" };
        format!("{}-swap{}{debug}", self.arch.name(), self.swap_name())
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} swap={}", self.arch.name(), self.swap_name())?;
        if debug_kernel() {
            write!(f, " debug")?;
        }
        Ok(())
    }
}

/// Set by `--debug`: this xtask run uses the debug kernel variant (lockdep, KASAN,
/// kmemleak, ...; `qemu/configs/debug.config`). One command uses one variant, so the
/// choice is process-wide rather than a field every build step passes along.
static DEBUG_KERNEL: AtomicBool = AtomicBool::new(false);

/// Whether this run uses the debug kernel variant.
pub fn debug_kernel() -> bool {
    DEBUG_KERNEL.load(Ordering::Relaxed)
}

fn parse_swap(text: &str) -> Result<bool> {
    match text {
        "on" | "yes" | "1" => Ok(true),
        "off" | "no" | "0" => Ok(false),
        other => bail!("unknown swap setting '{other}': use on or off"),
    }
}

/// Parsed command-line options shared by the subcommands.
#[derive(Default)]
struct Options {
    arch: Option<Arch>,
    swap: Option<bool>,
    mem: Option<String>,
    extra: Option<PathBuf>,
    scenario: Option<String>,
    timeout: Option<u64>,
    seconds: Option<u64>,
    target: Option<String>,
    debug: bool,
    command: Vec<String>,
}

impl Options {
    fn cell(&self) -> Result<Cell> {
        Ok(Cell {
            arch: self
                .arch
                .context("--arch is required (x86_64, arm64 or arm)")?,
            swap: self.swap.context("--swap is required (on or off)")?,
        })
    }

    /// The cells selected by --arch/--swap, each defaulting to all.
    fn cells(&self) -> Vec<Cell> {
        Cell::all()
            .into_iter()
            // The debug kernel needs KASAN, which Rust on 32-bit ARM excludes (patches/0002).
            .filter(|cell| !(debug_kernel() && cell.arch == Arch::Arm))
            .filter(|cell| self.arch.is_none_or(|arch| arch == cell.arch))
            .filter(|cell| self.swap.is_none_or(|swap| swap == cell.swap))
            .collect()
    }
}

fn parse_options(mut parser: lexopt::Parser) -> Result<Options> {
    use lexopt::prelude::*;
    let mut options = Options::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("arch") => options.arch = Some(Arch::parse(&parser.value()?.string()?)?),
            Long("swap") => options.swap = Some(parse_swap(&parser.value()?.string()?)?),
            Long("mem") => options.mem = Some(parser.value()?.string()?),
            Long("extra") => options.extra = Some(parser.value()?.into()),
            Long("scenario") => options.scenario = Some(parser.value()?.string()?),
            Long("timeout") => options.timeout = Some(parser.value()?.parse()?),
            Long("seconds") => options.seconds = Some(parser.value()?.parse()?),
            Long("target") => options.target = Some(parser.value()?.string()?),
            Long("debug") => options.debug = true,
            Value(value) if options.arch.is_none() => {
                options.arch = Some(Arch::parse(&value.string()?)?)
            }
            Value(value) => bail!("unexpected argument '{}'", value.to_string_lossy()),
            Long("help") | Short('h') => {
                print!("{HELP}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(options)
}

fn main() {
    if let Err(error) = real_main() {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // Everything after `--` is the guest command of `run`.
    let command = match args.iter().position(|arg| arg == "--") {
        Some(index) => {
            let command = args.split_off(index + 1);
            args.pop();
            command
        }
        None => Vec::new(),
    };
    let Some(subcommand) = args.first().cloned() else {
        print!("{HELP}");
        bail!("no command given");
    };
    let mut options = parse_options(lexopt::Parser::from_args(args.into_iter().skip(1)))?;
    options.command = command;
    if options.debug {
        if !["kernel", "module", "image", "run", "qemu-test", "soak"].contains(&subcommand.as_str())
        {
            bail!("--debug applies to kernel, module, image, run, qemu-test and soak");
        }
        if options.arch == Some(Arch::Arm) {
            bail!(
                "--debug needs KASAN, which Rust on 32-bit ARM does not support \
                 (kernel-module/patches/0002); use x86_64 or arm64"
            );
        }
        DEBUG_KERNEL.store(true, Ordering::Relaxed);
    }
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    match subcommand.as_str() {
        "setup" => setup::setup(true),
        "kernel" => kernel::kernel(options.cell()?).map(drop),
        "module" => {
            let cell = options.cell()?;
            kernel::module(cell, &kernel::kernel(cell)?).map(drop)
        }
        "userspace" => {
            setup::ensure()?;
            userspace::build(options.arch.context("--arch is required")?).map(drop)
        }
        "image" => image::build(options.cell()?, options.extra.as_deref(), None).map(drop),
        "run" => {
            let status = qemu::run(
                options.cell()?,
                options.mem.as_deref(),
                options.extra.as_deref(),
                &options.command,
                options.timeout,
            )?;
            std::process::exit(status);
        }
        "qemu-test" => {
            let report = scenario::run_cells(&options.cells(), options.scenario.as_deref())?;
            if report.failed > 0 {
                bail!("{} scenario(s) failed", report.failed);
            }
            Ok(())
        }
        "bench" => bench::bench(
            options.cell()?,
            options.mem.as_deref(),
            options.timeout,
            &options.command,
        ),
        "soak" => soak::soak(options.cell()?, options.seconds.unwrap_or(600)),
        "fuzz" => fuzz::fuzz(options.seconds.unwrap_or(60), options.target.as_deref()),
        "ci" => ci::ci(&sh),
        "yocto-crates" => yocto::crates(&sh),
        "yocto-check" => yocto::check(&sh),
        "buildroot-check" => buildroot::check(&sh),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => {
            print!("{HELP}");
            bail!("unknown command '{other}'")
        }
    }
}

/// The repository's top directory.
pub fn project_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

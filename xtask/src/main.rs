//! `cargo xtask`: build kernels, the module, userspace and images; boot them under QEMU; run
//! scenarios; run the whole CI matrix. `cargo xtask help` lists the commands.

mod arch;
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

use anyhow::{bail, Context, Result};
use xshell::Shell;

const HELP: &str = "\
cargo xtask <command> [options]

Commands:
  setup                              check and install every prerequisite (idempotent)
  kernel     --arch A --swap S [--kernel K] [--debug]
                                     build (or reuse) the Rust-enabled kernel of a cell
  module     --arch A --swap S [--kernel K]
                                     build kernel-module/ against that kernel
  userspace  --arch A                build the static userspace binaries for the guest
  image      --arch A --swap S [--kernel K] [--extra DIR]
                                     build the gzip cpio initramfs
  run        --arch A --swap S [--kernel K] [--debug] [--mem 256M] [--extra DIR]
             [--timeout SECS] [-- CMD…]
                                     boot under QEMU: a shell, or run CMD and exit with its status
  qemu-test  [A] [--arch A] [--swap S] [--kernel K] [--scenario NAMES] [--debug]
             [--fresh-guests]
                                     NAMES: comma-separated, `module-*` selects by prefix
                                     run the YAML scenarios of qemu/scenarios/ (default: all
                                     six cells of the kernel series); scenarios share a
                                     guest, cleaned between them, --fresh-guests boots one each
  bench      --arch A --swap S [--kernel K] [--mem 512M] [--timeout SECS] [-- --quick]
                                     measure memnotify against a /proc/meminfo poller, PSI
                                     and earlyoom in the guest; table + target/bench/<cell>.json
  fuzz       [--seconds N] [--target NAME]
                                     host fuzzing of the protocol crate and memnotifyd's
                                     config parser (cargo-fuzz; N seconds per target, 60)
  soak       --arch A --swap S [--kernel K] [--debug] [--seconds N]
                                     long reliability runs (guest fuzzer N s, default 600;
                                     churn, rmmod races, socket abuse, OOM) and a summary
  ci                                 host checks, the whole matrix (six cells on 6.12, three
                                     on 7.3, the 7.3 debug kernel on x86_64 and arm64), the
                                     layer checks; MEMNOTIFY_CI_JOBS cells at a time (default 2)
  yocto-crates                       regenerate meta-memnotify's crate list from Cargo.lock
  yocto-check                        offline checks of the Yocto layer
  buildroot-check                    offline checks of the Buildroot tree

A is x86_64, arm64 or arm (ARMv7), S is on or off (CONFIG_SWAP and an active swap disk),
K is the kernel series, 6.12 (the default) or 7.3: Debian's linux-source-6.12 or
linux-source-7.3, each pinned in xtask/src/kernel.rs.
--debug selects the debug kernel (qemu/configs/debug.config: lockdep, KASAN, kmemleak,
DEBUG_OBJECTS, SLUB debugging), cached apart; qemu-test then also fails on kmemleak reports.
Kernels are cached in $MEMNOTIFY_CACHE (default ~/.cache/memnotify); the rest lands in target/.
";

pub use arch::Arch;
pub use kernel::Series;

/// One cell of the test matrix: an architecture with swap on or off, on a kernel series,
/// with the normal or the debug kernel (`qemu/configs/debug.config`: lockdep, KASAN,
/// kmemleak, ...).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cell {
    pub arch: Arch,
    pub swap: bool,
    pub kernel: Series,
    pub debug: bool,
}

impl Cell {
    /// A normal (not debug) cell.
    pub fn new(arch: Arch, swap: bool, kernel: Series) -> Cell {
        Cell {
            arch,
            swap,
            kernel,
            debug: false,
        }
    }

    /// The six normal cells of a kernel series.
    pub fn all(kernel: Series) -> Vec<Cell> {
        Arch::ALL
            .iter()
            .flat_map(|&arch| [true, false].map(|swap| Cell::new(arch, swap, kernel)))
            .collect()
    }

    pub fn swap_name(self) -> &'static str {
        if self.swap {
            "on"
        } else {
            "off"
        }
    }

    /// A file-name friendly name, e.g. `x86_64-swapoff-6.12` (`x86_64-swapoff-6.12-debug`
    /// with the debug kernel), used for the kernel cache entry, module, image and log
    /// directories.
    pub fn name(self) -> String {
        let debug = if self.debug { "-debug" } else { "" };
        format!(
            "{}-swap{}-{}{debug}",
            self.arch.name(),
            self.swap_name(),
            self.kernel.name()
        )
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} swap={} {}",
            self.arch.name(),
            self.swap_name(),
            self.kernel.name()
        )?;
        if self.debug {
            write!(f, " debug")?;
        }
        Ok(())
    }
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
    kernel: Option<Series>,
    debug: bool,
    fresh_guests: bool,
    command: Vec<String>,
}

impl Options {
    fn cell(&self) -> Result<Cell> {
        Ok(Cell {
            arch: self
                .arch
                .context("--arch is required (x86_64, arm64 or arm)")?,
            swap: self.swap.context("--swap is required (on or off)")?,
            kernel: self.kernel.unwrap_or_default(),
            debug: self.debug,
        })
    }

    /// The cells selected by --arch/--swap, each defaulting to all, on the --kernel series
    /// (default 6.12), with the debug kernel if --debug (which leaves ARMv7 out).
    fn cells(&self) -> Vec<Cell> {
        Cell::all(self.kernel.unwrap_or_default())
            .into_iter()
            .map(|cell| Cell {
                debug: self.debug,
                ..cell
            })
            .filter(|cell| !cell.debug || cell.arch.facts().debug_kernel)
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
            Long("kernel") => options.kernel = Some(Series::parse(&parser.value()?.string()?)?),
            Long("debug") => options.debug = true,
            Long("fresh-guests") => options.fresh_guests = true,
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
    const CELL_COMMANDS: &[&str] = &[
        "kernel",
        "module",
        "image",
        "run",
        "qemu-test",
        "bench",
        "soak",
    ];
    if options.kernel.is_some() && !CELL_COMMANDS.contains(&subcommand.as_str()) {
        bail!("--kernel applies to {}", CELL_COMMANDS.join(", "));
    }
    if options.debug {
        if !CELL_COMMANDS.contains(&subcommand.as_str()) || subcommand == "bench" {
            bail!("--debug applies to kernel, module, image, run, qemu-test and soak");
        }
        if options.arch.is_some_and(|arch| !arch.facts().debug_kernel) {
            bail!(
                "--debug needs KASAN, which Rust on 32-bit ARM does not support; \
                 use x86_64 or arm64"
            );
        }
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
            let report = scenario::run_cells(
                &options.cells(),
                options.scenario.as_deref(),
                options.fresh_guests,
            )?;
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

//! `cargo xtask ci`: host checks, the whole QEMU matrix, the layer checks; a summary table
//! and `N passed, N failed` as the last line.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::scenario::{self, Outcome, Report, Row};
use crate::util::{output_of, run_logged, sorted_files, summary, target_dir};
use crate::{buildroot, fuzz, kernel, project_root, setup, yocto, Arch, Cell, Series};

/// Seconds per fuzz target in CI: 5 targets, two at a time, plus the build (under 3 minutes).
const FUZZ_SECONDS: u64 = 20;

struct Check {
    name: String,
    passed: bool,
    /// Could not run (its reason in `note`): neither passed nor failed.
    skipped: bool,
    seconds: f64,
    note: String,
}

fn run_check(checks: &mut Vec<Check>, name: &str, check: impl FnOnce() -> Result<()>) -> bool {
    let start = Instant::now();
    let result = check();
    let passed = result.is_ok();
    let note = match result {
        Ok(()) => String::new(),
        Err(error) => {
            eprintln!("FAIL {name}: {error:#}");
            summary(&error, 90)
        }
    };
    checks.push(Check {
        name: name.to_string(),
        passed,
        skipped: false,
        seconds: start.elapsed().as_secs_f64(),
        note,
    });
    passed
}

/// Cells run at a time. A guest mostly waits (sampling intervals, timeouts), using about
/// half a core under TCG, so two cells share a 2-core machine well.
const DEFAULT_JOBS: usize = 2;

/// Scenarios the debug kernels run: everything that drives the module (the userspace
/// suite adds nothing there and is slow under KASAN).
const DEBUG_SCENARIOS: &str = "boot*,module-*,reliability-*";

/// The matrix, longest first: the two debug cells, then the six 6.12 cells, then the 7.3
/// cells of x86_64 swap off, ARMv7 swap off and arm64 swap on. The debug kernels are 7.3:
/// its glue is the newer code, and its lockdep and KASAN know more checks. The kernels are
/// built in this order too, so the last cell to start is one whose scenarios are short.
fn matrix() -> Vec<Cell> {
    let debug = |arch, swap| Cell {
        debug: true,
        ..Cell::new(arch, swap, Series::V7_3)
    };
    let mut cells = vec![debug(Arch::X86_64, false), debug(Arch::Arm64, true)];
    cells.extend(Cell::all(Series::V6_12));
    cells.extend([
        Cell::new(Arch::X86_64, false, Series::V7_3),
        Cell::new(Arch::Arm, false, Series::V7_3),
        Cell::new(Arch::Arm64, true, Series::V7_3),
    ]);
    cells
}

/// What the kernel builder has made of each cell's kernel, in matrix order.
#[derive(Clone)]
enum KernelState {
    Pending,
    Ready,
    Failed(String),
}

/// The kernels of the matrix, built one after another by one thread while the lanes run
/// guests: a kernel build keeps both cores busy, a guest mostly waits, so building ahead
/// fills the time a lane spends in its scenarios. Lanes wait here for their cell's kernel.
struct Kernels {
    states: Mutex<Vec<KernelState>>,
    changed: Condvar,
}

impl Kernels {
    fn new(count: usize) -> Kernels {
        Kernels {
            states: Mutex::new(vec![KernelState::Pending; count]),
            changed: Condvar::new(),
        }
    }

    fn set(&self, index: usize, state: KernelState) {
        if let Ok(mut states) = self.states.lock() {
            states[index] = state;
        }
        self.changed.notify_all();
    }

    /// Blocks until the kernel of cell `index` is built; its error if the build failed.
    fn wait(&self, index: usize) -> Result<()> {
        let mut states = self
            .states
            .lock()
            .map_err(|_| anyhow::anyhow!("kernel builder panicked"))?;
        loop {
            match &states[index] {
                KernelState::Ready => return Ok(()),
                KernelState::Failed(message) => bail!("building the kernel: {message}"),
                KernelState::Pending => {
                    states = self
                        .changed
                        .wait(states)
                        .map_err(|_| anyhow::anyhow!("kernel builder panicked"))?;
                }
            }
        }
    }

    /// Builds every kernel of `cells` in order (cached ones are found at once).
    fn build_all(&self, cells: &[Cell]) {
        /// However the builder ends, no lane waits for a kernel it will never build.
        struct Finish<'a>(&'a Kernels);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                if let Ok(mut states) = self.0.states.lock() {
                    for state in states.iter_mut() {
                        if matches!(state, KernelState::Pending) {
                            *state = KernelState::Failed("the kernel builder stopped".into());
                        }
                    }
                }
                self.0.changed.notify_all();
            }
        }
        let _finish = Finish(self);
        let start = Instant::now();
        for (index, &cell) in cells.iter().enumerate() {
            let state = match kernel::kernel(cell) {
                Ok(_) => KernelState::Ready,
                Err(error) => {
                    eprintln!("[kernels] FAIL {cell}: {error:#}");
                    KernelState::Failed(summary(&error, 70))
                }
            };
            self.set(index, state);
            eprintln!(
                "[kernels] {} of {} kernels done after {:.1} min",
                index + 1,
                cells.len(),
                start.elapsed().as_secs_f64() / 60.0
            );
        }
    }
}

/// One `cargo xtask qemu-test` child: a cell of the matrix.
struct CellJob {
    cell: Cell,
}

impl CellJob {
    /// Runs the child, streaming its output into a log and, prefixed, to the terminal;
    /// returns its rows.
    fn run(&self, kernel: impl FnOnce() -> Result<()>) -> Vec<Row> {
        let start = Instant::now();
        let label = self.cell.to_string();
        let log = target_dir().join(format!("logs/ci-{}.log", self.cell.name()));
        match kernel().and_then(|()| self.run_child(&label, &log)) {
            Ok(rows) => rows,
            Err(error) => {
                eprintln!("[{label}] FAIL: {error:#} (log: {})", log.display());
                vec![Row {
                    cell: label,
                    name: "build and boot".to_string(),
                    outcome: Outcome::Fail,
                    seconds: start.elapsed().as_secs_f64(),
                    note: summary(&error, 80),
                }]
            }
        }
    }

    fn run_child(&self, label: &str, log: &Path) -> Result<Vec<Row>> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .current_dir(project_root())
            .args(["qemu-test", "--arch", self.cell.arch.name()])
            .args(["--swap", self.cell.swap_name()])
            .args(["--kernel", self.cell.kernel.name()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.cell.debug {
            command.args(["--debug", "--scenario", DEBUG_SCENARIOS]);
        }
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let log_file = Arc::new(Mutex::new(
            File::create(log).with_context(|| format!("creating {}", log.display()))?,
        ));
        eprintln!("[{label}] started (log: {})", log.display());
        let mut child = command.spawn().context("starting cargo xtask qemu-test")?;
        let streams: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().context("child stdout")?),
            Box::new(child.stderr.take().context("child stderr")?),
        ];
        let readers: Vec<_> = streams
            .into_iter()
            .map(|stream| {
                let log_file = Arc::clone(&log_file);
                let label = label.to_string();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        if let Ok(mut file) = log_file.lock() {
                            let _ = writeln!(file, "{line}");
                        }
                        // The child prints its table at the end; the parent prints the whole one.
                        if !line.starts_with(char::is_whitespace) || line.contains("…") {
                            eprintln!("[{label}] {line}");
                        }
                    }
                })
            })
            .collect();
        let status = child.wait()?;
        for reader in readers {
            let _ = reader.join();
        }
        let path = scenario::report_path(&self.cell.name());
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "qemu-test exited with {status} and left no {}",
                path.display()
            )
        })?;
        let rows: Vec<Row> =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        let failed = rows.iter().any(|row| row.outcome == Outcome::Fail);
        if !status.success() && !failed {
            bail!("qemu-test exited with {status} but reported no failed scenario");
        }
        Ok(rows)
    }
}

/// Runs the cells with `workers` children at a time, each once `kernels` has its kernel;
/// rows come back in matrix order.
fn run_matrix(cells: &[Cell], kernels: &Kernels, workers: usize) -> Vec<Row> {
    let queue = Mutex::new(cells.iter().copied().enumerate().collect::<VecDeque<_>>());
    // The queue's lock is held only while taking a cell, never while running it.
    let next_job = || queue.lock().ok().and_then(|mut queue| queue.pop_front());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                while let Some((index, cell)) = next_job() {
                    let rows = CellJob { cell }.run(|| kernels.wait(index));
                    if let Ok(mut results) = results.lock() {
                        results.push((index, rows));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().flat_map(|(_, rows)| rows).collect()
}

fn ci_jobs() -> Result<usize> {
    match std::env::var("MEMNOTIFY_CI_JOBS") {
        Ok(text) => match text.parse::<usize>() {
            Ok(jobs) if jobs >= 1 => Ok(jobs),
            _ => bail!("MEMNOTIFY_CI_JOBS must be a number ≥ 1, not '{text}'"),
        },
        Err(_) => Ok(DEFAULT_JOBS),
    }
}

fn cargo(args: &[&str], log: &str, what: &str) -> Result<()> {
    let mut command = Command::new("cargo");
    command.current_dir(project_root()).args(args);
    run_logged(command, &target_dir().join(format!("logs/{log}.log")), what)
}

/// The layer checks, one row each, skipped (with the reason) when no upstream tree is at hand.
fn layer_checks() -> Vec<Check> {
    let layers = yocto::run_checks()
        .0
        .into_iter()
        .chain(buildroot::run_checks().0);
    layers
        .map(|result| Check {
            name: result.name,
            passed: result.status == yocto::Status::Pass,
            skipped: result.status == yocto::Status::Skip,
            seconds: result.seconds,
            note: result
                .note
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(90)
                .collect(),
        })
        .collect()
}

/// Formatting, clippy, the host tests and a short fuzzing run.
fn host_checks(checks: &mut Vec<Check>) {
    run_check(checks, "cargo fmt --check", || {
        cargo(
            &["fmt", "--all", "--", "--check"],
            "ci-fmt",
            "cargo fmt --check",
        )
    });
    run_check(checks, "rustfmt --check kernel-module", || {
        // The module is not a cargo crate; the kernel's .rustfmt.toml is edition 2021 and
        // Unix newlines, rustfmt's defaults otherwise.
        // Every file, not just memnotify.rs: rustfmt does not follow the glue room's
        // `cfg_attr(path)`.
        let mut command = Command::new("rustfmt");
        command
            .current_dir(project_root())
            .args(["--check", "--edition", "2021"])
            .args(sorted_files(&project_root().join("kernel-module"), "rs")?);
        run_logged(
            command,
            &target_dir().join("logs/ci-rustfmt-module.log"),
            "rustfmt --check kernel-module",
        )
    });
    run_check(checks, "shellcheck", || {
        let scripts = shell_scripts()?;
        if scripts.is_empty() {
            bail!("no shell scripts found through `git ls-files`");
        }
        let mut command = Command::new("shellcheck");
        command.current_dir(project_root()).args(&scripts);
        run_logged(
            command,
            &target_dir().join("logs/ci-shellcheck.log"),
            &format!("shellcheck ({} scripts)", scripts.len()),
        )
    });
    run_check(checks, "cargo clippy -D warnings", || {
        cargo(
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ],
            "ci-clippy",
            "cargo clippy",
        )
    });
    run_check(checks, "cargo test", || {
        cargo(
            &["test", "--workspace", "--locked"],
            "ci-test",
            "cargo test (host)",
        )
    });
    run_check(checks, "cargo fuzz (20 s per target)", || {
        // A short run: regressions in the parsers surface here; long runs are by hand.
        fuzz::fuzz(FUZZ_SECONDS, None)
    });
}

/// The project's shell scripts: the tracked files named `*.sh` or starting with a
/// `#!` line for a shell (the guest's /init, init scripts, the CI entry point).
fn shell_scripts() -> Result<Vec<PathBuf>> {
    let root = project_root();
    let listed = output_of("git", &["-C", &root.to_string_lossy(), "ls-files", "-z"])?;
    let mut scripts = Vec::new();
    for name in listed.split('\0').filter(|name| !name.is_empty()) {
        let path = PathBuf::from(name);
        let mut first = [0u8; 64];
        let Ok(n) = File::open(root.join(&path)).and_then(|mut file| file.read(&mut first)) else {
            continue;
        };
        let line = first[..n]
            .split(|&byte| byte == b'\n')
            .next()
            .unwrap_or(&[]);
        if path.extension().is_some_and(|ext| ext == "sh") || is_shell_shebang(line) {
            scripts.push(path);
        }
    }
    Ok(scripts)
}

/// Whether a first line runs a POSIX shell or bash (`#!/bin/sh`, `#!/usr/bin/env bash`,
/// busybox's `#!/bin/busybox sh`).
fn is_shell_shebang(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"#!") else {
        return false;
    };
    String::from_utf8_lossy(rest)
        .split_whitespace()
        .any(|word| {
            matches!(
                word.rsplit('/').next(),
                Some("sh" | "bash" | "dash" | "ash")
            )
        })
}

pub fn ci(_sh: &Shell) -> Result<()> {
    let start = Instant::now();
    let mut checks = Vec::new();
    run_check(&mut checks, "setup", setup::ensure);
    let jobs = ci_jobs()?;
    let cells = matrix();
    let kernels = Kernels::new(cells.len());
    let mut report = Report::default();
    let layers = std::thread::scope(|scope| {
        // One thread builds the kernels in matrix order, then runs the layer checks, while
        // this one runs the host checks and then the lanes of guests.
        let builder = scope.spawn(|| {
            kernels.build_all(&cells);
            layer_checks()
        });
        host_checks(&mut checks);
        if run_check(&mut checks, "load scenarios", || {
            scenario::load_all().map(drop)
        }) {
            let matrix_start = Instant::now();
            for row in run_matrix(&cells, &kernels, jobs) {
                report.add(row);
            }
            eprintln!(
                "==> QEMU matrix: {:.1} min with {jobs} cells at a time",
                matrix_start.elapsed().as_secs_f64() / 60.0
            );
        }
        builder.join()
    })
    .map_err(|_| anyhow::anyhow!("the kernel builder panicked"))?;
    checks.extend(layers);

    println!("\n== host and layer checks");
    for check in &checks {
        println!(
            "{:<44} {:<6} {:>7.1}s  {}",
            check.name,
            if check.skipped {
                "skip"
            } else if check.passed {
                "pass"
            } else {
                "FAIL"
            },
            check.seconds,
            check.note
        );
    }
    println!("\n== QEMU scenarios");
    print!("{}", report.table());
    let passed = checks.iter().filter(|check| check.passed).count() + report.passed;
    let failed_checks: Vec<_> = checks
        .iter()
        .filter(|check| !check.passed && !check.skipped)
        .collect();
    let failed = failed_checks.len() + report.failed;
    let skipped_checks = checks.iter().filter(|check| check.skipped).count();
    println!(
        "\nci finished in {:.0} min ({} scenario runs and {skipped_checks} checks skipped, each with its reason above)",
        start.elapsed().as_secs_f64() / 60.0,
        report.skipped
    );
    // The failures again, next to the last line: a log cut to its tail still names them.
    for check in failed_checks {
        println!("FAIL {}: {}", check.name, check.note);
    }
    for row in report
        .rows
        .iter()
        .filter(|row| row.outcome == Outcome::Fail)
    {
        println!("FAIL {} {}: {}", row.cell, row.name, row.note);
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_wait_for_their_kernel_and_see_its_failure() {
        let kernels = Kernels::new(2);
        std::thread::scope(|scope| {
            let first = scope.spawn(|| kernels.wait(0));
            let second = scope.spawn(|| kernels.wait(1));
            kernels.set(1, KernelState::Failed("no space".into()));
            kernels.set(0, KernelState::Ready);
            assert!(first.join().expect("lane").is_ok());
            let error = second.join().expect("lane").expect_err("a failed kernel");
            assert!(format!("{error:#}").contains("no space"));
        });
    }

    #[test]
    fn a_builder_that_stops_early_releases_every_lane() {
        let kernels = Kernels::new(3);
        kernels.set(0, KernelState::Ready);
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| kernels.wait(2));
            // An empty list: the builder returns at once, as it would after a panic.
            kernels.build_all(&[]);
            let error = waiting.join().expect("lane").expect_err("never built");
            assert!(format!("{error:#}").contains("stopped"));
        });
        assert!(kernels.wait(0).is_ok());
    }

    #[test]
    fn shell_shebangs_are_told_from_others() {
        for line in [
            "#!/bin/sh",
            "#!/usr/bin/env bash",
            "#!/bin/busybox sh",
            "#! /bin/dash -e",
        ] {
            assert!(is_shell_shebang(line.as_bytes()), "{line}");
        }
        for line in ["#!/usr/bin/env python3", "#!/bin/bashful", "# sh", "sh"] {
            assert!(!is_shell_shebang(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn the_tracked_scripts_include_the_guests_init() {
        let scripts = shell_scripts().unwrap();
        for script in [
            "qemu/initramfs/init",
            "qemu/initramfs/scenario-lib.sh",
            ".ci/run",
        ] {
            assert!(
                scripts.iter().any(|path| path.as_os_str() == script),
                "{script}"
            );
        }
        assert!(!scripts
            .iter()
            .any(|path| path.extension().is_some_and(|ext| ext == "rs")));
    }

    #[test]
    fn the_matrix_has_every_required_cell_once() {
        let cells = matrix();
        assert_eq!(cells.len(), 11);
        assert!(cells[..2].iter().all(|cell| cell.debug));
        for (index, cell) in cells.iter().enumerate() {
            assert!(!cells[index + 1..].contains(cell), "{cell} twice");
        }
        let series = |kernel| cells.iter().filter(|cell| cell.kernel == kernel).count();
        assert_eq!((series(Series::V6_12), series(Series::V7_3)), (6, 5));
    }
}

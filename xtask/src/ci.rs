//! `cargo xtask ci`: host checks, the whole QEMU matrix, the layer checks; a summary table
//! and `N passed, N failed` as the last line.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};
use xshell::Shell;

use crate::scenario::{self, Outcome, Report, Row};
use crate::util::{run_logged, summary, target_dir};
use crate::{buildroot, fuzz, project_root, setup, yocto, Cell};

/// Seconds per fuzz target in CI: 5 targets, two at a time, plus the build (under 3 minutes).
const FUZZ_SECONDS: u64 = 20;

struct Check {
    name: String,
    passed: bool,
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
        seconds: start.elapsed().as_secs_f64(),
        note,
    });
    passed
}

fn cargo(args: &[&str], log: &str, what: &str) -> Result<()> {
    let mut command = Command::new("cargo");
    command.current_dir(project_root()).args(args);
    run_logged(command, &target_dir().join(format!("logs/{log}.log")), what)
}

pub fn ci(sh: &Shell) -> Result<()> {
    let start = Instant::now();
    let mut checks = Vec::new();
    run_check(&mut checks, "setup", setup::ensure);
    run_check(&mut checks, "cargo fmt --check", || {
        cargo(
            &["fmt", "--all", "--", "--check"],
            "ci-fmt",
            "cargo fmt --check",
        )
    });
    run_check(&mut checks, "rustfmt --check kernel-module", || {
        // The module is not a cargo crate; the kernel's .rustfmt.toml is edition 2021 and
        // Unix newlines, rustfmt's defaults otherwise.
        let mut command = Command::new("rustfmt");
        command.current_dir(project_root()).args([
            "--check",
            "--edition",
            "2021",
            "kernel-module/memnotify.rs",
        ]);
        run_logged(
            command,
            &target_dir().join("logs/ci-rustfmt-module.log"),
            "rustfmt --check kernel-module",
        )
    });
    run_check(&mut checks, "cargo clippy -D warnings", || {
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
    run_check(&mut checks, "cargo test", || {
        cargo(
            &["test", "--workspace", "--locked"],
            "ci-test",
            "cargo test (host)",
        )
    });
    run_check(&mut checks, "cargo fuzz (20 s per target)", || {
        // A short run: regressions in the parsers surface here; long runs are by hand.
        fuzz::fuzz(FUZZ_SECONDS, None)
    });

    let scenarios = scenario::load_all();
    let mut report = Report::default();
    for cell in Cell::all() {
        let scenarios = match &scenarios {
            Ok(scenarios) => scenarios,
            Err(error) => {
                run_check(&mut checks, "load scenarios", || bail!("{error:#}"));
                break;
            }
        };
        let cell_start = Instant::now();
        if let Err(error) = scenario::run_cell(cell, scenarios, None, &mut report) {
            eprintln!("FAIL build {cell}: {error:#}");
            report.add(Row {
                cell,
                name: "build".to_string(),
                outcome: Outcome::Fail,
                seconds: cell_start.elapsed().as_secs_f64(),
                note: summary(&error, 80),
            });
        }
    }

    run_check(&mut checks, "yocto-check", || yocto::check(sh));
    run_check(&mut checks, "buildroot-check", || buildroot::check(sh));

    println!("\n== host and layer checks");
    for check in &checks {
        println!(
            "{:<28} {:<6} {:>7.1}s  {}",
            check.name,
            if check.passed { "pass" } else { "FAIL" },
            check.seconds,
            check.note
        );
    }
    println!("\n== QEMU scenarios");
    print!("{}", report.table());
    let passed = checks.iter().filter(|check| check.passed).count() + report.passed;
    let failed = checks.iter().filter(|check| !check.passed).count() + report.failed;
    println!(
        "\nci finished in {:.0} min ({} scenario runs skipped, each with its reason above)",
        start.elapsed().as_secs_f64() / 60.0,
        report.skipped
    );
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}

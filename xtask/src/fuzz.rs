//! `cargo xtask fuzz [--seconds N] [--target NAME]`: the host fuzz targets of `fuzz/`
//! (cargo-fuzz, libFuzzer) for a time each, two at a time on 2 cores.
//!
//! cargo-fuzz needs nightly rustc flags (`-Zsanitizer`, `--cfg fuzzing` with
//! `-Cpasses=sancov-module`); the project's toolchain is stable, so the build runs with
//! `RUSTC_BOOTSTRAP=1`, which unlocks them on a stable compiler. The targets are built
//! with debug assertions (`-a`) so that integer overflow panics, as it does in the
//! kernel (`CONFIG_RUST_OVERFLOW_CHECKS`). A crash leaves its input in
//! `fuzz/artifacts/<target>/`; the corpus grows in `target/fuzz/corpus/<target>/`, seeded
//! from the committed `fuzz/seeds/<target>/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::project_root;
use crate::setup;
use crate::util::{run_logged, target_dir};

/// Every fuzz target in `fuzz/Cargo.toml`.
pub const TARGETS: &[&str] = &["thresholds", "line", "watch", "levels", "config"];

/// How many targets run at once (the machines have 2 cores).
const PARALLEL: usize = 2;

/// What one target's run found.
pub struct Outcome {
    pub target: String,
    pub runs: u64,
    pub crashed: bool,
    pub log: PathBuf,
}

fn fuzz_dir() -> PathBuf {
    project_root().join("fuzz")
}

fn cargo_fuzz(args: &[&str]) -> Command {
    let mut command = Command::new("cargo");
    command
        .current_dir(fuzz_dir())
        // cargo-fuzz's nightly flags on the stable toolchain (see the module comment).
        .env("RUSTC_BOOTSTRAP", "1")
        .arg("fuzz")
        .args(args)
        .args(["--debug-assertions", "--target-dir"])
        .arg(target_dir().join("fuzz"));
    command
}

/// Builds every target.
pub fn build() -> Result<()> {
    setup::ensure_cargo_fuzz(false)?;
    run_logged(
        cargo_fuzz(&["build"]),
        &target_dir().join("logs/fuzz-build.log"),
        "building the fuzz targets",
    )
}

fn start(target: &str, seconds: u64, log: &Path) -> Result<Child> {
    let corpus = target_dir().join(format!("fuzz/corpus/{target}"));
    std::fs::create_dir_all(&corpus)?;
    let seeds = fuzz_dir().join(format!("seeds/{target}"));
    let mut command = cargo_fuzz(&["run", target]);
    command.arg(&corpus);
    if seeds.is_dir() {
        command.arg(&seeds);
    }
    command.args([
        "--",
        &format!("-max_total_time={seconds}"),
        // A slow or huge input is a finding too: the parsers run on every write/reload.
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]);
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let out = std::fs::File::create(log)?;
    command
        .stdout(out.try_clone()?)
        .stderr(out)
        .stdin(std::process::Stdio::null());
    command
        .spawn()
        .with_context(|| format!("starting cargo fuzz run {target}"))
}

/// libFuzzer's `Done N runs in S second(s)`, or its final `stat::number_of_executed_units`.
fn runs_in(log: &Path) -> u64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            line.strip_prefix("Done ")
                .and_then(|rest| rest.split_whitespace().next())
                .or_else(|| {
                    line.strip_prefix("stat::number_of_executed_units:")
                        .map(str::trim)
                })
                .and_then(|number| number.parse().ok())
        })
        .max()
        .unwrap_or(0)
}

/// Runs `targets` for `seconds` each, at most [`PARALLEL`] at once.
pub fn run(targets: &[&str], seconds: u64) -> Result<Vec<Outcome>> {
    let mut waiting: Vec<&str> = targets.iter().rev().copied().collect();
    let mut running: Vec<(String, Child, PathBuf)> = Vec::new();
    let mut outcomes = Vec::new();
    while !waiting.is_empty() || !running.is_empty() {
        while running.len() < PARALLEL {
            let Some(target) = waiting.pop() else { break };
            let log = target_dir().join(format!("logs/fuzz-{target}.log"));
            eprintln!(
                "==> fuzzing {target} for {seconds}s (log: {})",
                log.display()
            );
            running.push((target.to_string(), start(target, seconds, &log)?, log));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut index = 0;
        while index < running.len() {
            if let Some(status) = running[index].1.try_wait()? {
                let (target, _, log) = running.remove(index);
                let runs = runs_in(&log);
                let crashed = !status.success();
                eprintln!(
                    "    {target}: {runs} inputs, {}",
                    if crashed { "CRASH" } else { "no crash" }
                );
                if crashed {
                    eprintln!("{}", crate::util::tail_lines(&log, 40).unwrap_or_default());
                }
                outcomes.push(Outcome {
                    target,
                    runs,
                    crashed,
                    log,
                });
            } else {
                index += 1;
            }
        }
    }
    outcomes.sort_by_key(|outcome| TARGETS.iter().position(|&t| t == outcome.target));
    Ok(outcomes)
}

/// `cargo xtask fuzz`: build, run, print a table; fails on any crash.
pub fn fuzz(seconds: u64, only: Option<&str>) -> Result<()> {
    let targets: Vec<&str> = match only {
        Some(name) if TARGETS.contains(&name) => vec![name],
        Some(name) => bail!("no fuzz target '{name}': use one of {}", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    let start = Instant::now();
    build()?;
    let outcomes = run(&targets, seconds)?;
    println!("{:<12} {:>12}  result", "target", "inputs");
    for outcome in &outcomes {
        println!(
            "{:<12} {:>12}  {}",
            outcome.target,
            outcome.runs,
            if outcome.crashed {
                format!("CRASH (log {})", outcome.log.display())
            } else {
                "ok".to_string()
            }
        );
    }
    let total: u64 = outcomes.iter().map(|outcome| outcome.runs).sum();
    println!(
        "fuzz: {total} inputs over {} targets in {:.0}s",
        outcomes.len(),
        start.elapsed().as_secs_f64()
    );
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|outcome| outcome.crashed)
        .map(|outcome| outcome.target.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!(
            "fuzz target(s) crashed: {} (inputs in fuzz/artifacts/)",
            crashed.join(", ")
        );
    }
    Ok(())
}

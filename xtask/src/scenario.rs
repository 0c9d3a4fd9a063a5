//! `cargo xtask qemu-test`: YAML scenarios from `qemu/scenarios/`, driven with rexpect over
//! the guest's serial console.
//!
//! A scenario file holds one scenario (a mapping) or several (a sequence):
//!
//! ```yaml
//! name: module-basic                 # unique
//! description: what it shows
//! applies: { arch: [x86_64, arm64], swap: [on, off] }   # optional; default: every cell
//! mem: 256M                          # optional guest RAM
//! module: loaded                     # or: unloaded (insmod left to the steps)
//! steps:
//!   - run: cat /dev/memnotify        # a shell command; stdin is /dev/null, stderr is merged
//!     expect: ['^used \d+ active']   # regexes that must all match its output (multi-line mode)
//!     reject: ['Oops']               # regexes that must not match
//!     status: 0                      # expected exit status: a number, `nonzero` or `any`
//!     timeout: 30                    # seconds
//! ```
//!
//! Every scenario boots a fresh guest. The whole console is also scanned for kernel
//! splats (`BUG:`, `WARNING:`, `Oops`, …): any makes the scenario fail.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::Deserialize;

use crate::image::{self, Image};
use crate::qemu::{self, Boot, Mode};
use crate::util::target_dir;
use crate::{project_root, Cell};

/// Console lines that mean the kernel is unhappy, whatever the scenario says.
pub const SPLATS: &[&str] = &[
    r"BUG:",
    r"WARNING:",
    r"Oops",
    r"Call Trace",
    r"KASAN",
    r"kmemleak",
    r"possible circular locking",
    r"Kernel panic",
    r"general protection fault",
    r"Unable to handle kernel",
];

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub applies: Applies,
    #[serde(default = "default_mem")]
    pub mem: String,
    #[serde(default)]
    pub module: ModuleState,
    pub steps: Vec<Step>,
}

fn default_mem() -> String {
    "256M".to_string()
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Applies {
    pub arch: Option<Vec<String>>,
    pub swap: Option<Vec<String>>,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ModuleState {
    #[default]
    Loaded,
    Unloaded,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub run: String,
    #[serde(default)]
    pub expect: Patterns,
    #[serde(default)]
    pub reject: Patterns,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// One regex or a list of them.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(untagged)]
pub enum Patterns {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Patterns {
    fn list(&self) -> Vec<&str> {
        match self {
            Patterns::None => Vec::new(),
            Patterns::One(one) => vec![one.as_str()],
            Patterns::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

/// The exit status a step expects.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum Status {
    Code(i32),
    Word(StatusWord),
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StatusWord {
    Nonzero,
    Any,
}

impl Default for Status {
    fn default() -> Self {
        Status::Code(0)
    }
}

impl Status {
    fn accepts(&self, code: i32) -> bool {
        match self {
            Status::Code(want) => *want == code,
            Status::Word(StatusWord::Nonzero) => code != 0,
            Status::Word(StatusWord::Any) => true,
        }
    }
}

impl Scenario {
    /// Why this scenario does not run on `cell`, if it does not.
    pub fn skip_reason(&self, cell: Cell) -> Option<String> {
        if let Some(arches) = &self.applies.arch {
            if !arches.iter().any(|arch| arch == cell.arch.name()) {
                return Some(format!("applies to arch {}", arches.join(", ")));
            }
        }
        if let Some(swaps) = &self.applies.swap {
            if !swaps.iter().any(|swap| swap == cell.swap_name()) {
                return Some(format!("applies to swap {}", swaps.join(", ")));
            }
        }
        None
    }

    fn validate(&self, file: &Path) -> Result<()> {
        let context = || format!("{}: scenario '{}'", file.display(), self.name);
        for step in &self.steps {
            for pattern in step.expect.list().into_iter().chain(step.reject.list()) {
                Regex::new(pattern)
                    .with_context(|| format!("{}: bad regex {pattern:?}", context()))?;
            }
        }
        if self.steps.is_empty() {
            bail!("{}: has no steps", context());
        }
        for list in [&self.applies.arch, &self.applies.swap]
            .into_iter()
            .flatten()
        {
            for value in list {
                if !["x86_64", "arm64", "on", "off"].contains(&value.as_str()) {
                    bail!("{}: unknown applies value '{value}'", context());
                }
            }
        }
        Ok(())
    }
}

/// Every scenario in `qemu/scenarios/`, sorted by file name; names must be unique.
pub fn load_all() -> Result<Vec<Scenario>> {
    let dir = project_root().join("qemu/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| {
        path.extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
    });
    files.sort();
    let mut scenarios: Vec<Scenario> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let value: serde_yaml::Value =
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        let found: Vec<Scenario> = if value.is_sequence() {
            serde_yaml::from_value(value)
        } else {
            serde_yaml::from_value(value).map(|one| vec![one])
        }
        .with_context(|| format!("reading scenarios from {}", file.display()))?;
        for scenario in found {
            scenario.validate(&file)?;
            if scenarios.iter().any(|other| other.name == scenario.name) {
                bail!(
                    "{}: scenario name '{}' is used twice",
                    file.display(),
                    scenario.name
                );
            }
            scenarios.push(scenario);
        }
    }
    Ok(scenarios)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

pub struct Row {
    pub cell: Cell,
    pub name: String,
    pub outcome: Outcome,
    pub seconds: f64,
    pub note: String,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Report {
    pub fn add(&mut self, row: Row) {
        match row.outcome {
            Outcome::Pass => self.passed += 1,
            Outcome::Fail => self.failed += 1,
            Outcome::Skip => self.skipped += 1,
        }
        self.rows.push(row);
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<18} {:<34} {:<6} {:>7}  note",
            "cell", "scenario", "result", "time"
        );
        for row in &self.rows {
            let result = match row.outcome {
                Outcome::Pass => "pass",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "skip",
            };
            let _ = writeln!(
                out,
                "{:<18} {:<34} {:<6} {:>6.1}s  {}",
                row.cell.to_string(),
                row.name,
                result,
                row.seconds,
                row.note
            );
        }
        out
    }
}

/// Runs the scenarios (all, or the one named) on each cell and prints the table.
pub fn run_cells(cells: &[Cell], only: Option<&str>) -> Result<Report> {
    let scenarios = load_all()?;
    if let Some(name) = only {
        if !scenarios.iter().any(|scenario| scenario.name == name) {
            bail!("no scenario named '{name}' in qemu/scenarios/");
        }
    }
    let mut report = Report::default();
    for &cell in cells {
        run_cell(cell, &scenarios, only, &mut report)?;
    }
    print!("{}", report.table());
    println!(
        "{} passed, {} failed, {} skipped",
        report.passed, report.failed, report.skipped
    );
    Ok(report)
}

/// Runs the selected scenarios on one cell, adding rows to `report`.
pub fn run_cell(
    cell: Cell,
    scenarios: &[Scenario],
    only: Option<&str>,
    report: &mut Report,
) -> Result<()> {
    let image = image::build(cell, None, None)?;
    for scenario in scenarios {
        if only.is_some_and(|name| name != scenario.name) {
            continue;
        }
        if let Some(reason) = scenario.skip_reason(cell) {
            eprintln!("--- skip {} on {cell}: {reason}", scenario.name);
            report.add(Row {
                cell,
                name: scenario.name.clone(),
                outcome: Outcome::Skip,
                seconds: 0.0,
                note: reason,
            });
            continue;
        }
        eprintln!("--- {} on {cell}: {}", scenario.name, scenario.description);
        let start = Instant::now();
        let log = target_dir().join(format!("qemu-test/{}/{}.log", cell.name(), scenario.name));
        let result = run_one(cell, &image, scenario, &log);
        let seconds = start.elapsed().as_secs_f64();
        let (outcome, note) = match result {
            Ok(()) => (Outcome::Pass, String::new()),
            Err(error) => {
                eprintln!("FAIL {} on {cell}: {error:#}", scenario.name);
                if let Ok(tail) = crate::util::tail_lines(&log, 30) {
                    eprintln!("---- last console lines ({}):\n{tail}\n----", log.display());
                }
                (Outcome::Fail, crate::util::summary(&error, 80))
            }
        };
        if outcome == Outcome::Pass {
            eprintln!("pass {} on {cell} ({seconds:.1}s)", scenario.name);
        }
        report.add(Row {
            cell,
            name: scenario.name.clone(),
            outcome,
            seconds,
            note,
        });
    }
    Ok(())
}

/// Boots a guest for one scenario and runs its steps.
fn run_one(cell: Cell, image: &Image, scenario: &Scenario, log: &Path) -> Result<()> {
    let boot = Boot {
        cell,
        image,
        mem: &scenario.mem,
        mode: Mode::Script,
        load_module: scenario.module == ModuleState::Loaded,
    };
    let command = qemu::qemu_command(&boot)?;
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut transcript = String::new();
    let result = drive(command, scenario, &mut transcript);
    std::fs::write(log, &transcript)?;
    result?;
    let splats: Vec<&str> = transcript
        .lines()
        .filter(|line| SPLATS.iter().any(|splat| line.contains(splat)))
        .collect();
    if !splats.is_empty() {
        bail!("kernel splat on the console: {}", splats[0].trim());
    }
    Ok(())
}

/// Reads from the session until `pattern` matches or `timeout` passes, appending all
/// that was read to `transcript`; returns the text before the match and the match.
fn expect(
    session: &mut rexpect::session::PtySession,
    pattern: &str,
    timeout: Duration,
    transcript: &mut String,
) -> Result<(String, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        match session.exp_regex(pattern) {
            Ok((before, matched)) => {
                transcript.push_str(&before);
                transcript.push_str(&matched);
                return Ok((before, matched));
            }
            Err(rexpect::error::Error::Timeout { .. }) if Instant::now() < deadline => continue,
            Err(rexpect::error::Error::Timeout { got, .. }) => {
                transcript.push_str(&got);
                bail!(
                    "timed out after {}s waiting for {pattern:?}",
                    timeout.as_secs()
                );
            }
            Err(rexpect::error::Error::EOF { got, .. }) => {
                transcript.push_str(&got);
                bail!("the guest stopped while waiting for {pattern:?}");
            }
            Err(error) => bail!("console: {error}"),
        }
    }
}

fn drive(
    command: std::process::Command,
    scenario: &Scenario,
    transcript: &mut String,
) -> Result<()> {
    let options = rexpect::reader::Options::new()
        .timeout_ms(Some(1000))
        .strip_ansi_escape_codes(true);
    let mut session =
        rexpect::session::spawn_with_options(command, options).context("starting QEMU")?;
    expect(
        &mut session,
        "memnotify-ready",
        Duration::from_secs(180),
        transcript,
    )
    .context("waiting for the guest to boot")?;
    for (index, step) in scenario.steps.iter().enumerate() {
        let timeout = Duration::from_secs(step.timeout.unwrap_or(30));
        // The marker is split in the command text so only its output can match.
        let marker = format!("@@MN-RC-{index}@@");
        let sent = format!(
            "( {}\n) </dev/null 2>&1; echo \"@@MN-RC-{index}\"\"@@=$?\"",
            step.run.trim_end()
        );
        let _ = writeln!(
            transcript,
            "\n>>> step {}: {}",
            index + 1,
            step.run.trim_end()
        );
        session.send_line(&sent).context("sending a step")?;
        let (output, matched) = expect(
            &mut session,
            &format!(r"{marker}=(\d+)"),
            timeout,
            transcript,
        )
        .with_context(|| format!("step {} ({})", index + 1, first_line(&step.run)))?;
        let code: i32 = matched
            .rsplit('=')
            .next()
            .and_then(|code| code.trim().parse().ok())
            .context("unreadable exit status")?;
        let output = output.replace('\r', "");
        let step_name = || format!("step {} ({})", index + 1, first_line(&step.run));
        if !step.status.accepts(code) {
            bail!(
                "{}: exit status {code}, expected {:?}\n{}",
                step_name(),
                step.status,
                tail(&output)
            );
        }
        for pattern in step.expect.list() {
            let regex = Regex::new(&format!("(?m){pattern}"))?;
            if !regex.is_match(&output) {
                bail!(
                    "{}: output does not match {pattern:?}\n{}",
                    step_name(),
                    tail(&output)
                );
            }
        }
        for pattern in step.reject.list() {
            let regex = Regex::new(&format!("(?m){pattern}"))?;
            if regex.is_match(&output) {
                bail!(
                    "{}: output matches rejected {pattern:?}\n{}",
                    step_name(),
                    tail(&output)
                );
            }
        }
    }
    // Power off; `reboot -f` ends QEMU (-no-reboot) on every architecture.
    session
        .send_line("sync; reboot -f")
        .context("powering off")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match session.exp_eof() {
            Ok(rest) => {
                transcript.push_str(&rest);
                break;
            }
            Err(rexpect::error::Error::Timeout { .. }) if Instant::now() < deadline => continue,
            Err(rexpect::error::Error::Timeout { .. }) => {
                let _ = session.process_mut().exit();
                bail!("the guest did not power off within a minute");
            }
            // The pty reports EIO once QEMU has exited: that is the end of the console.
            Err(_) => break,
        }
    }
    Ok(())
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").chars().take(60).collect()
}

fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines.len().saturating_sub(15);
    lines[start..].join("\n")
}

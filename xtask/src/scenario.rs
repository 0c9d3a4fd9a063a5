//! `cargo xtask qemu-test`: YAML scenarios from `qemu/scenarios/`, driven with rexpect over
//! the guest's serial console.
//!
//! A scenario file holds one scenario (a mapping) or several (a sequence):
//!
//! ```yaml
//! name: module-basic                 # unique
//! description: what it shows
//! applies: { arch: [x86_64, arm64, arm], swap: [on, off] }   # optional; default: every cell
//! mem: 256M                          # optional guest RAM
//! module: loaded                     # or: unloaded (insmod left to the steps)
//! extra: dbus                        # optional: a bundle under /extra (dbus: Debian's
//!                                    # system bus and clients, memnotifyd with D-Bus)
//! steps:
//!   - run: cat /dev/memnotify        # a shell command; stdin is /dev/null, stderr is merged;
//!                                    # `wait_for` (qemu/initramfs/scenario-lib.sh) is defined,
//!                                    # and a bare `sleep` line is refused (see `fixed_wait`)
//!     expect: ['^used \d+ active']   # regexes that must all match its output (multi-line mode)
//!     reject: ['Oops']               # regexes that must not match
//!     status: 0                      # expected exit status: a number, `nonzero` or `any`
//!     timeout: 30                    # seconds
//! ```
//!
//! Scenarios share guests, cleaned between them (see [`SharedGuest`]); `--fresh-guests`
//! boots one per scenario. The whole console is also scanned for kernel
//! splats (`BUG:`, `WARNING:`, `Oops`, …): any makes the scenario fail. The console shows
//! only errors (`loglevel=4`), and warnings (`WARNING:` headers, lockdep reports) are
//! printed one level lower, so after the steps the kernel log itself (`dmesg -r`) is
//! scanned too, at warning level and above, leaving out the OOM killer's reports and
//! kswapd's allocation failures (stack dumps by design, from scenarios that run the guest
//! out of memory on purpose).
//! With the debug kernel (`--debug`) kmemleak is scanned last and any leak fails the
//! scenario. The kernel log is kept next to the console log (`<scenario>.kernel.log`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::image::{self, Image};
use crate::qemu::{self, Boot, Mode};
use crate::util::target_dir;
use crate::{project_root, Cell};

/// How the transcript marks the text of a step (not console output).
const STEP_MARK: &str = ">>>   ";

/// Console lines that mean the kernel is unhappy, whatever the scenario says.
pub const SPLATS: &[&str] = &[
    r"BUG:",
    r"WARNING:",
    r"Oops",
    r"Call Trace",
    // arm64 spells it this way.
    r"Call trace:",
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
    /// A bundle the image carries under /extra.
    #[serde(default)]
    pub extra: Option<Extra>,
    pub steps: Vec<Step>,
}

/// The bundles a scenario can ask for.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Extra {
    /// `xtask/src/dbus_bundle.rs`.
    Dbus,
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
        for (index, step) in self.steps.iter().enumerate() {
            if let Some(line) = fixed_wait(&step.run) {
                bail!(
                    "{}: step {}: `{line}` waits a fixed time; wait on the condition with \
                     wait_for (qemu/initramfs/scenario-lib.sh); a measured window goes on \
                     one line with its readings",
                    context(),
                    index + 1
                );
            }
        }
        for list in [&self.applies.arch, &self.applies.swap]
            .into_iter()
            .flatten()
        {
            for value in list {
                if !["x86_64", "arm64", "arm", "on", "off"].contains(&value.as_str()) {
                    bail!("{}: unknown applies value '{value}'", context());
                }
            }
        }
        Ok(())
    }
}

/// The first line of `run` that waits a fixed time before going on: a `sleep` alone on its
/// line, or chained with `&&`. On a busy host a guest's vCPU is starved for seconds, so
/// such a wait is a race; polling loops (`do sleep 0.1; done`), background sleepers
/// (`sleep 300 &`) and measured windows (`e1=…; sleep 3; e2=…`) are not flagged.
fn fixed_wait(run: &str) -> Option<&str> {
    run.lines().map(str::trim).find(|line| {
        let code = line.split(" #").next().unwrap_or(line).trim();
        let alone = code.strip_prefix("sleep ").is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
        });
        alone || code.contains("&& sleep ")
    })
}

/// The scenarios of one YAML text (one mapping or a sequence), validated; `origin` names
/// it in errors.
pub fn parse(text: &str, origin: &Path) -> Result<Vec<Scenario>> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).with_context(|| format!("parsing {}", origin.display()))?;
    let found: Vec<Scenario> = if value.is_sequence() {
        serde_yaml::from_value(value)
    } else {
        serde_yaml::from_value(value).map(|one| vec![one])
    }
    .with_context(|| format!("reading scenarios from {}", origin.display()))?;
    for scenario in &found {
        scenario.validate(origin)?;
    }
    Ok(found)
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
        for scenario in parse(&text, &file)? {
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

#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

#[derive(Serialize, Deserialize)]
pub struct Row {
    /// The cell as shown in the table (`arm64 swap=on`, `… debug`).
    pub cell: String,
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
                row.cell, row.name, result, row.seconds, row.note
            );
        }
        out
    }
}

/// Which scenarios to run: `--scenario` takes comma-separated names, a name ending in `*`
/// selects every scenario starting with the rest (`module-*`), and `!name` (or `!prefix*`)
/// leaves out what the others selected.
pub struct Selection {
    patterns: Vec<String>,
}

impl Selection {
    /// Every scenario.
    pub fn all() -> Selection {
        Selection {
            patterns: Vec::new(),
        }
    }

    /// Parses `text` and checks that each pattern selects at least one of `scenarios`.
    pub fn parse(text: &str, scenarios: &[Scenario]) -> Result<Selection> {
        let selection = Selection {
            patterns: text
                .split(',')
                .map(str::trim)
                .filter(|pattern| !pattern.is_empty())
                .map(str::to_string)
                .collect(),
        };
        if selection.patterns.is_empty() {
            bail!("--scenario '{text}' names no scenario");
        }
        for pattern in &selection.patterns {
            let pattern = pattern.strip_prefix('!').unwrap_or(pattern);
            if !scenarios
                .iter()
                .any(|scenario| Selection::matches(pattern, &scenario.name))
            {
                bail!("no scenario in qemu/scenarios/ matches '{pattern}'");
            }
        }
        Ok(selection)
    }

    fn matches(pattern: &str, name: &str) -> bool {
        match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        }
    }

    pub fn selects(&self, name: &str) -> bool {
        let (excluded, included): (Vec<&String>, Vec<&String>) = self
            .patterns
            .iter()
            .partition(|pattern| pattern.starts_with('!'));
        let included = included.is_empty()
            || included
                .iter()
                .any(|pattern| Selection::matches(pattern, name));
        included
            && !excluded
                .iter()
                .any(|pattern| Selection::matches(&pattern[1..], name))
    }
}

/// Where `qemu-test` leaves a cell's rows for `cargo xtask ci`, which runs cells as
/// child processes (`cell_dir` is the cell's name, e.g. `arm64-swapon-debug`).
pub fn report_path(cell_dir: &str) -> PathBuf {
    target_dir().join(format!("qemu-test/{cell_dir}/report.json"))
}

/// Runs the selected scenarios on each cell and prints the table.
/// With `fresh_guests`, every scenario boots its own guest instead of sharing one.
pub fn run_cells(cells: &[Cell], only: Option<&str>, fresh_guests: bool) -> Result<Report> {
    let scenarios = load_all()?;
    let selection = match only {
        Some(text) => Selection::parse(text, &scenarios)?,
        None => Selection::all(),
    };
    let mut report = Report::default();
    for &cell in cells {
        let path = report_path(&cell.name());
        // A stale report must never stand in for a run that died before writing one.
        let _ = std::fs::remove_file(&path);
        let mut cell_report = Report::default();
        run_cell(cell, &scenarios, &selection, fresh_guests, &mut cell_report)?;
        std::fs::create_dir_all(path.parent().context("report path has a parent")?)?;
        std::fs::write(&path, serde_json::to_string_pretty(&cell_report.rows)?)
            .with_context(|| format!("writing {}", path.display()))?;
        for row in cell_report.rows {
            report.add(row);
        }
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
    selection: &Selection,
    fresh_guests: bool,
    report: &mut Report,
) -> Result<()> {
    let image = image::build(cell, None, None)?;
    // Images with a bundle, built when a selected scenario first needs one; a bundle that
    // cannot be prepared (no network for Debian's packages) fails its scenarios only.
    let mut dbus_image: Option<std::result::Result<Image, String>> = None;
    let mut shared = (!fresh_guests).then(SharedGuest::new);
    for scenario in scenarios {
        if !selection.selects(&scenario.name) {
            continue;
        }
        if let Some(reason) = scenario.skip_reason(cell) {
            eprintln!("--- skip {} on {cell}: {reason}", scenario.name);
            report.add(Row {
                cell: cell.to_string(),
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
        let mut run = |image: &Image| match shared.as_mut() {
            Some(shared) => shared.run(cell, image, scenario, &log),
            None => run_one(cell, image, scenario, &log),
        };
        let result = match scenario.extra {
            None => run(&image),
            Some(Extra::Dbus) => {
                let built = dbus_image.get_or_insert_with(|| {
                    crate::dbus_bundle::extra(cell.arch)
                        .and_then(|extra| image::build(cell, Some(&extra), None))
                        .map_err(|error| format!("{error:#}"))
                });
                match built {
                    Ok(image) => run(image),
                    Err(message) => Err(anyhow::anyhow!("preparing the D-Bus bundle: {message}")),
                }
            }
        };
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
            cell: cell.to_string(),
            name: scenario.name.clone(),
            outcome,
            seconds,
            note,
        });
    }
    if let Some(shared) = shared {
        shared.finish();
    }
    Ok(())
}

/// Boots a guest for one scenario and runs its steps.
pub fn run_one(cell: Cell, image: &Image, scenario: &Scenario, log: &Path) -> Result<()> {
    let boot = Boot {
        cell,
        image,
        mem: &scenario.mem,
        mode: Mode::Script,
        load_module: scenario.module == ModuleState::Loaded,
    };
    let mut transcript = String::new();
    let mut checks = AfterSteps::default();
    let result = (|| {
        let mut guest = Guest::boot(&boot, &mut transcript)?;
        guest.run_steps(scenario, &mut transcript)?;
        checks = guest.after_steps(cell)?;
        guest.power_off(&mut transcript)
    })();
    write_logs(log, &transcript, &checks)?;
    result?;
    judge(&transcript, &checks)
}

fn write_logs(log: &Path, transcript: &str, checks: &AfterSteps) -> Result<()> {
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(log, transcript)?;
    std::fs::write(log.with_extension("kernel.log"), &checks.kernel_log)?;
    Ok(())
}

/// Fails on a kernel splat in the console or the kernel log, or a kmemleak report.
fn judge(transcript: &str, checks: &AfterSteps) -> Result<()> {
    let splats: Vec<&str> = transcript
        .lines()
        .filter(|line| !line.starts_with(STEP_MARK) && !line.starts_with(">>> step"))
        .filter(|line| SPLATS.iter().any(|splat| line.contains(splat)))
        .collect();
    if !splats.is_empty() {
        bail!(
            "kernel splat on the console: {}\n{}",
            splats[0].trim(),
            excerpt(transcript, splats[0])
        );
    }
    let splats = log_splats(&checks.kernel_log);
    if let Some(first) = splats.first() {
        bail!(
            "kernel splat in the kernel log: {}\n{}",
            first.trim(),
            excerpt(&checks.kernel_log, first)
        );
    }
    if let Some(leaks) = &checks.leaks {
        if leaks.contains("unreferenced object") {
            let count = leaks.matches("unreferenced object").count();
            let head: Vec<&str> = leaks.lines().take(40).collect();
            bail!("kmemleak: {count} suspected leak(s)\n{}", head.join("\n"));
        }
    }
    Ok(())
}

/// A boot under TCG costs both cores about 3 s on a normal kernel and 30 s on a debug one;
/// over a cell's 40 scenarios and the matrix's eleven cells that is a large share of what
/// CI can do on two cores. So scenarios share guests: one boot runs scenario after scenario
/// (of the same RAM size and bundle) until one fails, and the next one after a failure gets
/// a fresh guest. Each scenario still starts from a clean state: the kernel log was cleared
/// as the last one's was read, [`Guest::prepare`] clears kmemleak's reports, empties /tmp,
/// /run and /var/log, drops the caches and loads a fresh module when the scenario wants it;
/// [`Guest::teardown`] kills every process the scenario left and unloads the module, so a
/// leak or splat on unload counts against the scenario that loaded it. The kernel's
/// checkers (lockdep's lock graph, KASAN, kmemleak) see the scenarios one after another.
pub struct SharedGuest {
    guest: Option<(Guest, String, Option<Extra>)>,
}

impl SharedGuest {
    pub fn new() -> SharedGuest {
        SharedGuest { guest: None }
    }

    /// Runs `scenario` in the current guest if it fits, else in a fresh one.
    pub fn run(
        &mut self,
        cell: Cell,
        image: &Image,
        scenario: &Scenario,
        log: &Path,
    ) -> Result<()> {
        let mut transcript = String::new();
        let mut checks = AfterSteps::default();
        let result = self.drive(cell, image, scenario, &mut transcript, &mut checks);
        write_logs(log, &transcript, &checks)?;
        let judged = result.and_then(|()| judge(&transcript, &checks));
        if judged.is_err() {
            // A failed scenario may leave the kernel tainted, lockdep off or the guest
            // stuck: the next scenario boots afresh.
            self.guest = None;
        }
        judged
    }

    fn drive(
        &mut self,
        cell: Cell,
        image: &Image,
        scenario: &Scenario,
        transcript: &mut String,
        checks: &mut AfterSteps,
    ) -> Result<()> {
        let fits = matches!(&self.guest, Some((_, mem, extra))
            if *mem == scenario.mem && *extra == scenario.extra);
        let first = !fits;
        if !fits {
            if let Some((guest, _, _)) = self.guest.take() {
                // Its scenarios are judged; a guest that will not power off is killed.
                if let Err(error) = guest.power_off(&mut String::new()) {
                    eprintln!("note: the shared guest: {error:#}");
                }
            }
            let boot = Boot {
                cell,
                image,
                mem: &scenario.mem,
                mode: Mode::Script,
                load_module: false,
            };
            let guest = Guest::boot(&boot, transcript)?;
            self.guest = Some((guest, scenario.mem.clone(), scenario.extra));
        }
        let (guest, _, _) = self.guest.as_mut().context("a booted guest")?;
        guest.prepare(scenario, first)?;
        guest.run_steps(scenario, transcript)?;
        guest.teardown()?;
        *checks = guest.after_steps(cell)?;
        Ok(())
    }

    /// Powers the last guest off (its scenarios are judged already: a guest that will not
    /// power off is killed, and said so).
    pub fn finish(mut self) {
        if let Some((guest, _, _)) = self.guest.take() {
            if let Err(error) = guest.power_off(&mut String::new()) {
                eprintln!("note: the shared guest: {error:#}");
            }
        }
    }
}

/// What the harness collects from the guest after a scenario's steps.
#[derive(Default)]
struct AfterSteps {
    /// `dmesg -r -c`: every record with its `<level>` prefix.
    kernel_log: String,
    /// The kmemleak report after two scans (debug kernels only).
    leaks: Option<String>,
}

/// Up to 40 lines of `text` from the one containing `line`: a splat with its trace.
fn excerpt(text: &str, line: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|candidate| *candidate == line)
        .unwrap_or(0);
    let from = start.saturating_sub(2);
    lines[from..(start + 40).min(lines.len())].join("\n")
}

/// Splat lines of a raw kernel log (`dmesg -r`), at warning level (4) and above, outside
/// the OOM killer's reports: from `… invoked oom-killer:` to `Out of memory: Killed
/// process N (name)` (or the memory cgroup's `Memory cgroup out of memory: …`), and the
/// victim's own `name: page allocation failure:` report that may follow (its last
/// allocation, refused once it is killed), which ends with show_mem's `… pages reserved`.
pub fn log_splats(raw: &str) -> Vec<&str> {
    let mut splats = Vec::new();
    let mut in_oom_report = false;
    let mut in_victim_report = false;
    let mut victim: Option<String> = None;
    for line in raw.lines() {
        let (level, text) = match line.strip_prefix('<').and_then(|rest| rest.split_once('>')) {
            Some((number, text)) => match number.parse::<u32>() {
                // The facility is in the upper bits.
                Ok(priority) => (priority & 7, text),
                Err(_) => (4, line),
            },
            // A continuation of the previous record: judged as a warning, to be safe.
            None => (4, line),
        };
        // With CONFIG_PRINTK_TIME (the debug kernel) each record starts with `[ 12.345] `.
        let text = match text
            .strip_prefix('[')
            .and_then(|rest| rest.split_once("] "))
        {
            Some((time, rest)) if time.trim().parse::<f64>().is_ok() => rest,
            _ => text,
        };
        if text.contains(" invoked oom-killer: ") {
            in_oom_report = true;
            continue;
        }
        if in_oom_report {
            if let Some((_, killed)) = text.split_once("ut of memory: Killed process ") {
                in_oom_report = false;
                // `56 (memhog) total-vm:…`: the name between the parentheses.
                victim = killed
                    .split_once('(')
                    .and_then(|(_, rest)| rest.split_once(')'))
                    .map(|(name, _)| name.to_string());
            }
            continue;
        }
        if in_victim_report {
            in_victim_report = !text.trim_end().ends_with(" pages reserved");
            continue;
        }
        if let Some(name) = &victim {
            if text.starts_with(&format!("{name}: page allocation failure: ")) {
                in_victim_report = true;
                continue;
            }
        }
        // kswapd's own allocation failing while it swaps to zram (zsmalloc's pages, taken
        // from the reserves with __GFP_HIGH) is how memory running out looks there, as the
        // OOM killer's report is: a memory report, not a kernel bug.
        if text
            .split_once(": page allocation failure: ")
            .and_then(|(task, _)| task.strip_prefix("kswapd"))
            .is_some_and(|node| !node.is_empty() && node.bytes().all(|b| b.is_ascii_digit()))
        {
            in_victim_report = true;
            continue;
        }
        if level <= 4 && SPLATS.iter().any(|splat| text.contains(splat)) {
            splats.push(line);
        }
    }
    splats
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

/// Runs a harness command in the guest (not a scenario step), in a subshell with stdin
/// from /dev/null, and returns its output, kept out of the transcript so that the console
/// scan judges only the console.
fn harness_command(
    session: &mut rexpect::session::PtySession,
    name: &str,
    command: &str,
    timeout: Duration,
) -> Result<String> {
    shell_command(
        session,
        name,
        &format!("( {command}\n) </dev/null 2>&1"),
        timeout,
    )
}

/// As [`harness_command`], but `command` runs in the console's shell itself.
fn shell_command(
    session: &mut rexpect::session::PtySession,
    name: &str,
    command: &str,
    timeout: Duration,
) -> Result<String> {
    let marker = format!("@@MN-{name}@@");
    session
        .send_line(&format!("{command}; echo \"@@MN-{name}\"\"@@=$?\""))
        .context("sending a harness command")?;
    let mut output = String::new();
    let (before, _) = expect(session, &format!(r"{marker}=(\d+)"), timeout, &mut output)
        .with_context(|| format!("harness command {name}"))?;
    Ok(before.replace('\r', ""))
}

/// A guest booted in script mode, driven over its serial console.
pub struct Guest {
    session: rexpect::session::PtySession,
}

impl Guest {
    /// Boots `boot` and waits for /init's `memnotify-ready`.
    fn boot(boot: &Boot<'_>, transcript: &mut String) -> Result<Guest> {
        let command = qemu::qemu_command(boot)?;
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
        Ok(Guest { session })
    }

    /// Runs the scenario's steps, checking each one's status and output.
    fn run_steps(&mut self, scenario: &Scenario, transcript: &mut String) -> Result<()> {
        let session = &mut self.session;
        for (index, step) in scenario.steps.iter().enumerate() {
            let timeout = Duration::from_secs(step.timeout.unwrap_or(30));
            // The marker is split in the command text so only its output can match.
            let marker = format!("@@MN-RC-{index}@@");
            let sent = format!(
                "( . {}\n{}\n) </dev/null 2>&1; echo \"@@MN-RC-{index}\"\"@@=$?\"",
                image::SCENARIO_LIB,
                step.run.trim_end()
            );
            // Every line of the step's text is marked, so the splat scan can tell the
            // scenario's own words (a comment naming KASAN) from the guest's console.
            let _ = writeln!(transcript, "\n>>> step {}:", index + 1);
            for line in step.run.trim_end().lines() {
                let _ = writeln!(transcript, "{STEP_MARK}{line}");
            }
            session.send_line(&sent).context("sending a step")?;
            let (output, matched) =
                expect(session, &format!(r"{marker}=(\d+)"), timeout, transcript)
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
        Ok(())
    }

    /// On a debug kernel kmemleak's report, then the kernel log, read and cleared in one
    /// call, so a shared guest's next scenario starts with an empty log and no record falls
    /// between two scenarios.
    fn after_steps(&mut self, cell: Cell) -> Result<AfterSteps> {
        let session = &mut self.session;
        let mut leaks = None;
        if cell.debug {
            // kmemleak ignores objects younger than 5 s, so the last step's allocations
            // wait; then two scans a little apart, as its documentation suggests.
            let scan = "sleep 5; echo scan > /sys/kernel/debug/kmemleak; sleep 2; \
                        echo scan > /sys/kernel/debug/kmemleak; cat /sys/kernel/debug/kmemleak";
            leaks = Some(harness_command(
                session,
                "LEAKS",
                scan,
                Duration::from_secs(300),
            )?);
        }
        let kernel_log = harness_command(session, "KLOG", "dmesg -r -c", Duration::from_secs(60))?;
        Ok(AfterSteps { kernel_log, leaks })
    }

    /// Before a scenario in a shared guest: the state a fresh boot would give it. The
    /// first scenario after the boot keeps the boot's kernel log, which is judged with it.
    fn prepare(&mut self, scenario: &Scenario, first: bool) -> Result<()> {
        let mut command = String::from(
            "set -e; rm -rf /tmp/* /run/* /var/log/*; sync; echo 3 > /proc/sys/vm/drop_caches; \
             if grep -q '^memnotify ' /proc/modules; then echo 'memnotify is loaded'; exit 1; fi",
        );
        if !first {
            // The previous scenario was judged on these; kmemleak's `clear` marks the
            // reports made so far as seen. (Its kernel log was cleared as it was read.)
            command.push_str(
                "; if [ -e /sys/kernel/debug/kmemleak ]; then \
                 echo clear > /sys/kernel/debug/kmemleak; fi",
            );
        }
        if scenario.module == ModuleState::Loaded {
            command.push_str("; insmod /lib/modules/memnotify.ko");
        }
        let output = harness_command(
            &mut self.session,
            "PREPARE",
            &format!("{command}; echo prepared"),
            Duration::from_secs(60),
        )?;
        if !output.lines().any(|line| line.trim() == "prepared") {
            bail!(
                "preparing the shared guest for the scenario failed:\n{}",
                tail(&output)
            );
        }
        Ok(())
    }

    /// After a scenario in a shared guest: every process it left is killed (from the
    /// console's shell itself, which `kill -1` spares, as it spares init), and the module
    /// is unloaded once its last file is closed.
    fn teardown(&mut self) -> Result<()> {
        // Not in a subshell: `kill -1` would take the console's shell with it.
        let command = "kill -9 -1 2>/dev/null; wait; n=0; \
             while grep -q '^memnotify ' /proc/modules && [ $n -lt 100 ]; do \
             rmmod memnotify 2>/dev/null || { n=$((n + 1)); sleep 0.2; }; done; \
             if grep -q '^memnotify ' /proc/modules; then \
             echo \"memnotify still loaded: $(grep '^memnotify ' /proc/modules)\"; \
             else echo \"torn\"\" down\"; fi";
        let output = shell_command(
            &mut self.session,
            "TEARDOWN",
            command,
            Duration::from_secs(60),
        )
        .context("tearing the scenario down")?;
        if !output.contains("torn down") {
            bail!("after the steps: {}", tail(&output));
        }
        Ok(())
    }

    /// Powers off; `reboot -f` ends QEMU (-no-reboot) on every architecture.
    fn power_off(mut self, transcript: &mut String) -> Result<()> {
        self.session
            .send_line("sync; reboot -f")
            .context("powering off")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.session.exp_eof() {
                Ok(rest) => {
                    transcript.push_str(&rest);
                    return Ok(());
                }
                Err(rexpect::error::Error::Timeout { .. }) if Instant::now() < deadline => continue,
                Err(rexpect::error::Error::Timeout { .. }) => {
                    let _ = self.session.process_mut().exit();
                    bail!("the guest did not power off within a minute");
                }
                // The pty reports EIO once QEMU has exited: that is the end of the console.
                Err(_) => return Ok(()),
            }
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").chars().take(60).collect()
}

fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines.len().saturating_sub(15);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_splats_judge_warnings_and_worse_outside_oom_reports() {
        let log = "\
<6>[    0.100000] kmemleak: Kernel memory leak detector initialized
<4>[    5.000000] memhog invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE), order=0
<4>[    5.000001] Call Trace:
<4>[    5.000002]  dump_stack_lvl+0x5d/0x80
<3>[    5.100000] Out of memory: Killed process 56 (memhog) total-vm:411072kB
<4>[    6.000000] WARNING: CPU: 0 PID: 1 at mm/slub.c:1 foo+0x1/0x2
<4>[    6.000001] Call Trace:
<6>[    7.000000] BUG: an informational line that mentions BUG:
<12>[   8.000000] BUG: facility bits are ignored";
        let splats = log_splats(log);
        assert_eq!(
            splats,
            [
                "<4>[    6.000000] WARNING: CPU: 0 PID: 1 at mm/slub.c:1 foo+0x1/0x2",
                "<4>[    6.000001] Call Trace:",
                "<12>[   8.000000] BUG: facility bits are ignored",
            ]
        );
    }

    #[test]
    fn the_victims_allocation_failure_is_part_of_the_oom_report() {
        let log = "\
<4>memhog invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE), order=0
<4>Call Trace:
<3>Out of memory: Killed process 56 (memhog) total-vm:411072kB, anon-rss:228352kB
<4>memhog: page allocation failure: order:0, mode:0x140dca(GFP_HIGHUSER_MOVABLE)
<4>Call Trace:
<4>3480 pages reserved
<4>Call Trace:
<4>sh: page allocation failure: order:0, mode:0x140dca(GFP_HIGHUSER_MOVABLE)
<4>Call Trace:";
        assert_eq!(
            log_splats(log),
            ["<4>Call Trace:", "<4>Call Trace:"],
            "a trace after the report, and another task's allocation failure, count"
        );
    }

    #[test]
    fn timestamps_do_not_hide_the_victims_report() {
        let log = "\
<4>[   41.72] memhog invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE), order=0
<4>[   41.72] Call Trace:
<3>[   41.73] Out of memory: Killed process 73 (memhog) total-vm:411072kB
<4>[   41.73] memhog: page allocation failure: order:0, mode:0x140dca(GFP_HIGHUSER_MOVABLE)
<4>[   41.73] Call Trace:
<4>[   41.74] 25992 pages reserved
<4>[   50.00] WARNING: CPU: 0 PID: 1 at x";
        assert_eq!(
            log_splats(log),
            ["<4>[   50.00] WARNING: CPU: 0 PID: 1 at x"]
        );
    }

    #[test]
    fn kswapds_allocation_failure_is_a_memory_report() {
        let log = "\
<4>kswapd0: page allocation failure: order:0, mode:0xc0ce0(GFP_KERNEL|__GFP_HIGH)
<4>Call trace:
<4>3226 pages reserved
<4>Call trace:
<4>kswapd_helper: page allocation failure: order:0
<4>Call trace:";
        assert_eq!(
            log_splats(log),
            ["<4>Call trace:", "<4>Call trace:"],
            "a trace after the report, and another task's failure, count"
        );
    }

    #[test]
    fn an_unfinished_oom_report_hides_nothing_before_it() {
        let log = "<4>WARNING: before\n<4>x invoked oom-killer: gfp\n<4>Call Trace:";
        assert_eq!(log_splats(log), ["<4>WARNING: before"]);
    }
}

#[cfg(test)]
mod selection_tests {
    use super::*;

    fn scenarios(names: &[&str]) -> Vec<Scenario> {
        let text: String = names
            .iter()
            .map(|name| format!("- name: {name}\n  description: d\n  steps: [{{run: 'true'}}]\n"))
            .collect();
        parse(&text, Path::new("test.yaml")).expect("valid scenarios")
    }

    #[test]
    fn the_projects_scenarios_load() {
        let all = load_all().unwrap();
        assert!(all
            .iter()
            .any(|scenario| scenario.name == "reliability-races-privilege"));
    }

    #[test]
    fn fixed_waits_are_found_and_windows_are_not() {
        assert_eq!(fixed_wait("a &\n  sleep 1\nb"), Some("sleep 1"));
        assert_eq!(
            fixed_wait("x reload && sleep 1 && cat log"),
            Some("x reload && sleep 1 && cat log")
        );
        assert_eq!(
            fixed_wait("sleep 2 # let it settle"),
            Some("sleep 2 # let it settle")
        );
        for fine in [
            "until grep -q armed /tmp/p; do sleep 0.1; done",
            "sleep 300 &",
            "e1=$(cat e); sleep 3; e2=$(cat e)",
            "( sleep 45; kill -KILL $hog ) 2>/dev/null &",
            "wait_for '[ -e /tmp/armed ]' 30",
        ] {
            assert_eq!(fixed_wait(fine), None, "{fine}");
        }
    }

    #[test]
    fn names_and_prefixes_select() {
        let all = scenarios(&["boot", "module-a", "module-b", "userspace-a"]);
        let selection = Selection::parse("boot, module-*", &all).expect("valid selection");
        let selected: Vec<&str> = all
            .iter()
            .filter(|scenario| selection.selects(&scenario.name))
            .map(|scenario| scenario.name.as_str())
            .collect();
        assert_eq!(selected, ["boot", "module-a", "module-b"]);
        let without = Selection::parse("module-*,!module-b", &all).expect("valid selection");
        assert!(without.selects("module-a") && !without.selects("module-b"));
        assert!(!without.selects("boot"));
        assert!(Selection::parse("!nothing", &all).is_err());
        assert!(Selection::all().selects("userspace-a"));
    }

    #[test]
    fn a_pattern_selecting_nothing_is_an_error() {
        let all = scenarios(&["boot", "module-a"]);
        assert!(Selection::parse("modul", &all).is_err());
        assert!(Selection::parse("boot,nothing-*", &all).is_err());
        assert!(Selection::parse(" , ", &all).is_err());
        assert!(Selection::parse("boot*", &all).is_ok());
    }
}

//! `cargo xtask bench`: boots a cell with `mn-bench`, which measures memnotify against a
//! /proc/meminfo poller, PSI and Debian's earlyoom in the same guest, and turns its JSON
//! report into a table and `target/bench/<cell>.json` (plus a Markdown table, `.md`).
//!
//! earlyoom is Debian's package for the guest's architecture, unpacked into the cache
//! (never installed on the host, where it would start a service) and put under /extra
//! with the shared libraries and the dynamic loader it needs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::debian;
use crate::image;
use crate::qemu::{self, Boot, Mode};
use crate::util::target_dir;
use crate::{Arch, Cell};

/// The marker of the report's console line and the figures every report carries, in
/// table order: the guest's own definitions (mn-bench), so the two cannot drift.
#[path = "../../userspace/mn-bench/src/contract.rs"]
mod contract;
use contract::{MARKER, REQUIRED};

/// Ratios the issue's aims are stated in: (name, numerator, denominator, aim).
const RATIOS: &[(&str, &str, &str, &str)] = &[
    (
        "eval_10000_over_eval_1",
        "eval_ns_10000",
        "eval_ns_1",
        "within 2",
    ),
    (
        "meminfo_read_over_eval_1",
        "meminfo_read_ns",
        "eval_ns_1",
        "far above 1",
    ),
    (
        "overshoot_poll_100ms_over_memnotify",
        "overshoot_kib_poll_100ms",
        "overshoot_kib_memnotify",
        "several",
    ),
    (
        "overshoot_earlyoom_over_memnotify",
        "overshoot_kib_earlyoom",
        "overshoot_kib_memnotify",
        "several",
    ),
    (
        "earlyoom_rss_over_daemon_rss",
        "earlyoom_rss_kib",
        "daemon_rss_kib",
        "above 1",
    ),
];

/// earlyoom and what it needs, ready to go under /extra.
struct Bundle {
    /// The directory passed as `--extra`.
    extra: PathBuf,
    /// The dynamic loader's path in the guest (the ELF interpreter).
    interpreter: String,
}

const GUEST_DIR: &str = "/extra/earlyoom";

/// Unpacks Debian's earlyoom for `arch` into the cache (once).
fn earlyoom_binary(arch: Arch) -> Result<PathBuf> {
    let binary = debian::unpack(arch, "earlyoom")?.join("usr/bin/earlyoom");
    if !binary.exists() {
        bail!("the earlyoom package has no usr/bin/earlyoom");
    }
    Ok(binary)
}

/// Copies earlyoom, its libraries (transitively) and its loader into a fresh extra dir.
fn earlyoom_bundle(arch: Arch) -> Result<Bundle> {
    let binary = earlyoom_binary(arch)?;
    let extra = target_dir().join(format!("bench/extra-{}", arch.name()));
    if extra.exists() {
        std::fs::remove_dir_all(&extra)?;
    }
    std::fs::create_dir_all(extra.join("earlyoom"))?;
    std::fs::copy(&binary, extra.join("earlyoom/earlyoom"))?;
    let interpreter = debian::bundle_libraries(arch, &[binary], &[], &extra.join("earlyoom/lib"))?;
    Ok(Bundle { extra, interpreter })
}

/// Single-quotes a word for the guest's shell.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The guest command: make the loader reachable at its ELF path, then run mn-bench
/// (with `args`, e.g. `--quick`).
fn guest_command(bundle: &std::result::Result<Bundle, String>, args: &[String]) -> String {
    let args: String = args.iter().map(|arg| format!(" {}", quote(arg))).collect();
    let command = match bundle {
        Ok(bundle) => {
            let loader_dir = Path::new(&bundle.interpreter)
                .parent()
                .map_or("/".to_string(), |dir| dir.display().to_string());
            let loader_name = Path::new(&bundle.interpreter)
                .file_name()
                .map_or(String::new(), |name| name.to_string_lossy().into_owned());
            format!(
                "mkdir -p {dir} && ln -sf {GUEST_DIR}/lib/{loader_name} {interp} && \
                 mn-bench --earlyoom {GUEST_DIR}/earlyoom --library-path {GUEST_DIR}/lib",
                dir = quote(&loader_dir),
                interp = quote(&bundle.interpreter),
            )
        }
        Err(reason) => format!("mn-bench --no-earlyoom {}", quote(reason)),
    };
    command + &args
}

/// The report in the console text: the JSON after the last marker.
fn find_report(console: &str) -> Result<Value> {
    let line = console
        .lines()
        .filter_map(|line| line.find(MARKER).map(|at| &line[at + MARKER.len()..]))
        .next_back()
        .context("the guest printed no report (no MN-BENCH-JSON line)")?;
    let report: Value = serde_json::from_str(line.trim())
        .context("the guest's report is not valid JSON (console noise inside the line?)")?;
    if !report["figures"].is_array() || !report["meta"].is_object() {
        bail!("the guest's report has no figures or meta");
    }
    Ok(report)
}

/// A figure's value as a float, if measured.
fn value_of(figures: &[Value], key: &str) -> Option<f64> {
    figures
        .iter()
        .find(|figure| figure["key"] == key)
        .and_then(|figure| figure["value"].as_f64())
}

/// The results file: the issue's keys at the top level (number or null), the ratios,
/// the guest's description and every figure with its trials and notes.
fn assemble(cell: Cell, report: &Value, host: Value) -> Result<Value> {
    let figures = report["figures"].as_array().context("figures")?;
    let mut out = Map::new();
    out.insert("cell".into(), json!(cell.name()));
    out.insert("arch".into(), json!(cell.arch.name()));
    out.insert("swap".into(), json!(cell.swap_name()));
    let mut missing = Vec::new();
    for key in REQUIRED {
        match figures.iter().find(|figure| figure["key"] == *key) {
            Some(figure) => {
                out.insert((*key).into(), figure["value"].clone());
            }
            None => missing.push(*key),
        }
    }
    if !missing.is_empty() {
        bail!("the guest's report lacks {}", missing.join(", "));
    }
    let mut ratios = Map::new();
    for (name, numerator, denominator, _) in RATIOS {
        let ratio = match (value_of(figures, numerator), value_of(figures, denominator)) {
            (Some(n), Some(d)) if d > 0.0 => json!((n / d * 100.0).round() / 100.0),
            _ => Value::Null,
        };
        ratios.insert((*name).into(), ratio);
    }
    out.insert("ratios".into(), Value::Object(ratios));
    out.insert("guest".into(), report["meta"].clone());
    out.insert("host".into(), host);
    out.insert("figures".into(), Value::Array(figures.clone()));
    Ok(Value::Object(out))
}

fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Rows of (figure, value, unit, trials, notes), the required figures first.
fn rows(results: &Value) -> Vec<[String; 5]> {
    let figures = results["figures"].as_array().cloned().unwrap_or_default();
    let rank = |figure: &Value| {
        REQUIRED
            .iter()
            .position(|key| figure["key"] == *key)
            .unwrap_or(REQUIRED.len())
    };
    let mut sorted = figures;
    sorted.sort_by_key(rank);
    let mut rows: Vec<[String; 5]> = sorted
        .iter()
        .map(|figure| {
            [
                cell_text(&figure["key"]),
                cell_text(&figure["value"]),
                cell_text(&figure["unit"]),
                cell_text(&figure["trials"]),
                cell_text(&figure["note"]),
            ]
        })
        .collect();
    for (name, numerator, denominator, aim) in RATIOS {
        rows.push([
            (*name).to_string(),
            cell_text(&results["ratios"][*name]),
            "ratio".to_string(),
            String::new(),
            format!("{numerator} / {denominator} (aim: {aim})"),
        ]);
    }
    rows
}

/// The table for the terminal: aligned columns, notes last.
fn table(results: &Value) -> String {
    let rows = rows(results);
    let header = ["figure", "value", "unit", "trials", "notes"].map(str::to_string);
    let widths: Vec<usize> = (0..4)
        .map(|column| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let line = format!(
            "{:<w0$}  {:>w1$}  {:<w2$}  {:>w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// The same table in Markdown, for docs/benchmarks.md.
fn markdown(results: &Value) -> String {
    let guest = &results["guest"];
    let mut text = format!(
        "#### {} (kernel {}, {} CPU(s), clocksource {}, MemTotal {} KiB, SwapTotal {} KiB; \
         run took {} s; host load average {} before, {} after; commit {}{})\n\n",
        cell_text(&results["cell"]),
        cell_text(&guest["kernel"]),
        cell_text(&guest["cpus"]),
        cell_text(&guest["clocksource"]),
        cell_text(&guest["mem_total_kib"]),
        cell_text(&guest["swap_total_kib"]),
        cell_text(&guest["duration_s"]),
        cell_text(&results["host"]["loadavg_before"]),
        cell_text(&results["host"]["loadavg_after"]),
        cell_text(&results["host"]["source"]["commit"]),
        match results["host"]["source"]["changed"].as_array() {
            Some(changed) if !changed.is_empty() => format!(
                " with changes in {}",
                changed.iter().map(cell_text).collect::<Vec<_>>().join(", ")
            ),
            _ => String::new(),
        },
    );
    text.push_str(
        "| figure | value | unit | trials | notes |\n| --- | ---: | --- | ---: | --- |\n",
    );
    for row in rows(results) {
        let cells: Vec<String> = row.iter().map(|cell| cell.replace('|', "\\|")).collect();
        text.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    text
}

/// The host's TSC rate in kHz, measured against the monotonic clock over 200 ms.
#[cfg(target_arch = "x86_64")]
fn host_tsc_khz() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64.
    let read = || unsafe { core::arch::x86_64::_rdtsc() };
    let (start, ticks) = (Instant::now(), read());
    std::thread::sleep(Duration::from_millis(200));
    let (elapsed, ticks) = (start.elapsed(), read() - ticks);
    // Round to whole MHz: the measurement is good to well under that.
    (ticks as f64 / elapsed.as_secs_f64() / 1e6).round() as u64 * 1000
}

/// Kernel arguments the benchmark adds. The x86_64 test kernel has no ACPI, so it finds
/// no HPET or PM timer to calibrate the TSC against, marks it unstable and keeps the
/// jiffies clock (4 ms steps), which would make every time figure meaningless. Under TCG
/// the guest's TSC counts at the host's rate, so the host's rate is given to it.
fn kernel_args(arch: Arch) -> Option<String> {
    match arch {
        #[cfg(target_arch = "x86_64")]
        Arch::X86_64 => Some(format!("tsc_early_khz={} tsc=reliable", host_tsc_khz())),
        _ => None,
    }
}

/// `qemu` with `extra` appended to its `-append` argument.
fn with_kernel_args(qemu: Command, extra: &str) -> Command {
    let mut command = Command::new(qemu.get_program());
    let mut append_next = false;
    for arg in qemu.get_args() {
        if append_next {
            command.arg(format!("{} {extra}", arg.to_string_lossy()));
        } else {
            command.arg(arg);
        }
        append_next = arg == "-append";
    }
    command
}

/// Boots `image` running its command and returns the console text.
fn boot(
    cell: Cell,
    image: &image::Image,
    mem: &str,
    kernel_args: Option<&str>,
    timeout: Duration,
) -> Result<String> {
    let boot = Boot {
        cell,
        image,
        mem,
        mode: Mode::Command,
        load_module: true,
    };
    let mut qemu = qemu::qemu_command(&boot)?;
    if let Some(extra) = kernel_args {
        eprintln!("==> kernel arguments added for the benchmark: {extra}");
        qemu = with_kernel_args(qemu, extra);
    }
    let log_path = target_dir().join(format!("logs/bench-{}.log", cell.name()));
    eprintln!(
        "==> booting {cell} with {mem} to run mn-bench (console: {})",
        log_path.display()
    );
    let mut shown = 0;
    let console = qemu::capture_console(qemu, &log_path, timeout, |_, console| {
        // Show the benchmark's progress lines as they complete.
        while let Some(end) = console[shown..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&console[shown..shown + end]);
            let line = line.trim_end();
            if line.starts_with("mn-bench:") || line.contains("FAILED") {
                eprintln!("    {line}");
            }
            shown += end + 1;
        }
        Ok(())
    })?;
    Ok(String::from_utf8_lossy(&console).into_owned())
}

/// The commit the module and userspace were built from, and which of their files differed
/// from it (a run may measure work in progress).
fn source_state() -> Value {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(crate::project_root())
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| {
                String::from_utf8_lossy(&output.stdout)
                    .trim_end()
                    .to_string()
            })
    };
    let changed: Vec<String> = git(&["status", "--porcelain", "--", "kernel-module", "userspace"])
        .unwrap_or_default()
        .lines()
        .map(|line| line.get(3..).unwrap_or(line).to_string())
        .collect();
    json!({ "commit": git(&["rev-parse", "--short", "HEAD"]), "changed": changed })
}

/// The host's 1-minute load average: other work on the host slows the emulated guest.
fn loadavg() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next().map(str::to_string)
}

/// `cargo xtask bench --arch A --swap S [--mem M] [--timeout S] [-- MN-BENCH-ARGS]`.
pub fn bench(cell: Cell, mem: Option<&str>, timeout: Option<u64>, args: &[String]) -> Result<()> {
    let bundle = earlyoom_bundle(cell.arch).map_err(|error| {
        let reason = format!("earlyoom could not be prepared on the host: {error:#}");
        eprintln!("==> {reason}");
        reason
    });
    let empty = target_dir().join("bench/extra-none");
    std::fs::create_dir_all(&empty)?;
    let extra = bundle
        .as_ref()
        .map_or(empty.as_path(), |b| b.extra.as_path());
    let command = guest_command(&bundle, args);
    let image = image::build(cell, Some(extra), Some(&command))?;
    let loadavg_before = loadavg();
    let kernel_args = kernel_args(cell.arch);
    let console = boot(
        cell,
        &image,
        mem.unwrap_or("512M"),
        kernel_args.as_deref(),
        Duration::from_secs(timeout.unwrap_or(3600)),
    )?;
    let report = find_report(&console).with_context(|| {
        format!(
            "console log: {}",
            target_dir()
                .join(format!("logs/bench-{}.log", cell.name()))
                .display()
        )
    })?;
    let host = json!({
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg(),
        "kernel_args": kernel_args,
        "source": source_state(),
    });
    let results = assemble(cell, &report, host)?;
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let json_path = dir.join(format!("{}.json", cell.name()));
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)? + "\n")?;
    let md_path = dir.join(format!("{}.md", cell.name()));
    std::fs::write(&md_path, markdown(&results))?;
    println!("\n{}", table(&results));
    println!("written: {} and {}", json_path.display(), md_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Series;

    fn report_with(keys: &[&str]) -> Value {
        let figures: Vec<Value> = keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                json!({"key": key, "value": (index + 1) as f64 * 10.0, "unit": "ns",
                       "trials": 5, "note": "n"})
            })
            .collect();
        json!({"meta": {"kernel": "6.12.57 x86_64", "cpus": 2}, "figures": figures})
    }

    #[test]
    fn finds_the_last_report_among_console_noise() {
        let console = format!(
            "booting\r\n{MARKER}{{\"meta\":{{}},\"figures\":[]}}\r\n[  1.0] random: crng\r\n\
             mn-bench: -- idle\r\n  {MARKER}{{\"meta\":{{\"a\":1}},\"figures\":[]}}\r\nmemnotify-exit-status=0\r\n"
        );
        let report = find_report(&console).unwrap();
        assert_eq!(report["meta"]["a"], 1);
    }

    #[test]
    fn a_missing_or_broken_report_is_an_error() {
        assert!(find_report("no report here\n").is_err());
        assert!(find_report(&format!("{MARKER}{{\"meta\":{{}},\"figu")).is_err());
        assert!(find_report(&format!("{MARKER}{{\"x\":1}}")).is_err());
    }

    #[test]
    fn assemble_puts_required_keys_on_top_with_nulls_and_ratios() {
        let mut report = report_with(REQUIRED);
        let figures = report["figures"].as_array_mut().unwrap();
        // overshoot_kib_psi unmeasured.
        figures[11]["value"] = Value::Null;
        figures[11]["note"] = json!("PSI never fired");
        let cell = Cell::new(Arch::X86_64, false, Series::V6_12);
        let host = json!({"loadavg_before": "0.50",
                          "source": {"commit": "abc1234", "changed": ["kernel-module/memnotify.rs"]}});
        let results = assemble(cell, &report, host).unwrap();
        assert_eq!(results["cell"], "x86_64-swapoff-6.12");
        assert_eq!(results["eval_ns_1"], 10.0);
        assert_eq!(results["eval_ns_10000"], 20.0);
        assert_eq!(results["overshoot_kib_psi"], Value::Null);
        assert_eq!(results["ratios"]["eval_10000_over_eval_1"], 2.0);
        assert_eq!(results["ratios"]["meminfo_read_over_eval_1"], 3.0);
        // poll (110) over memnotify (100).
        assert_eq!(
            results["ratios"]["overshoot_poll_100ms_over_memnotify"],
            1.1
        );
        assert_eq!(results["guest"]["cpus"], 2);
        for key in REQUIRED {
            assert!(results.get(*key).is_some(), "{key}");
        }
    }

    #[test]
    fn assemble_refuses_a_report_without_a_required_key() {
        let report = report_with(&REQUIRED[1..]);
        let cell = Cell::new(Arch::Arm64, true, Series::V6_12);
        let error = assemble(cell, &report, Value::Null)
            .unwrap_err()
            .to_string();
        assert!(error.contains("eval_ns_1"), "{error}");
    }

    #[test]
    fn ratios_with_a_null_or_zero_side_are_null() {
        let mut report = report_with(REQUIRED);
        let figures = report["figures"].as_array_mut().unwrap();
        figures[0]["value"] = json!(0);
        figures[12]["value"] = Value::Null;
        let cell = Cell::new(Arch::X86_64, true, Series::V6_12);
        let host = json!({"loadavg_before": "0.50",
                          "source": {"commit": "abc1234", "changed": ["kernel-module/memnotify.rs"]}});
        let results = assemble(cell, &report, host).unwrap();
        assert_eq!(results["ratios"]["eval_10000_over_eval_1"], Value::Null);
        assert_eq!(
            results["ratios"]["overshoot_earlyoom_over_memnotify"],
            Value::Null
        );
    }

    #[test]
    fn tables_list_required_figures_first_then_extras_and_ratios() {
        let mut report = report_with(REQUIRED);
        let figures = report["figures"].as_array_mut().unwrap();
        figures.insert(
            0,
            json!({"key": "bytes_per_open_file", "value": 900, "unit": "bytes", "trials": 3, "note": "a|b"}),
        );
        let cell = Cell::new(Arch::X86_64, false, Series::V6_12);
        let host = json!({"loadavg_before": "0.50",
                          "source": {"commit": "abc1234", "changed": ["kernel-module/memnotify.rs"]}});
        let results = assemble(cell, &report, host).unwrap();
        let text = table(&results);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("figure"));
        assert!(lines[1].starts_with("eval_ns_1 "));
        assert!(lines[REQUIRED.len() + 1].starts_with("bytes_per_open_file"));
        assert!(lines
            .last()
            .unwrap()
            .starts_with("earlyoom_rss_over_daemon_rss"));
        let md = markdown(&results);
        assert!(md.contains("| bytes_per_open_file | 900 | bytes | 3 | a\\|b |"));
        assert!(md.starts_with("#### x86_64-swapoff-6.12 (kernel 6.12.57 x86_64, 2 CPU(s)"));
        assert!(md.contains("host load average 0.50 before"));
        assert!(md.contains("commit abc1234 with changes in kernel-module/memnotify.rs)"));
    }

    #[test]
    fn kernel_args_are_appended_to_the_command_line_only() {
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args([
            "-m",
            "512M",
            "-append",
            "console=ttyS0 mn_mode=cmd",
            "-drive",
            "x",
        ]);
        let qemu = with_kernel_args(qemu, "tsc=reliable");
        let args: Vec<String> = qemu
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-m",
                "512M",
                "-append",
                "console=ttyS0 mn_mode=cmd tsc=reliable",
                "-drive",
                "x"
            ]
        );
        assert_eq!(qemu.get_program(), "qemu-system-x86_64");
    }

    #[test]
    fn guest_command_links_the_loader_or_says_why_not() {
        let bundle = Ok(Bundle {
            extra: PathBuf::from("/x"),
            interpreter: "/lib64/ld-linux-x86-64.so.2".to_string(),
        });
        assert_eq!(
            guest_command(&bundle, &[]),
            "mkdir -p '/lib64' && ln -sf /extra/earlyoom/lib/ld-linux-x86-64.so.2 \
             '/lib64/ld-linux-x86-64.so.2' && mn-bench --earlyoom /extra/earlyoom/earlyoom \
             --library-path /extra/earlyoom/lib"
        );
        assert_eq!(
            guest_command(
                &Err("no network: it's down".to_string()),
                &["--quick".to_string()]
            ),
            r"mn-bench --no-earlyoom 'no network: it'\''s down' '--quick'"
        );
    }
}

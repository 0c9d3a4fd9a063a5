//! `mn-bench`: measures memnotify inside a test guest against the alternatives (a
//! `/proc/meminfo` poller, PSI, earlyoom) and prints one JSON report behind a marker
//! line for `cargo xtask bench`.
//!
//! Every figure is measured here, in repeated trials summarised by medians; one that
//! cannot be measured is reported `null` with the reason.

mod contract;
mod cost;
mod device;
mod earlyoom;
mod hog;
mod hoglog;
mod idle;
mod meminfo;
mod memory;
mod overshoot;
mod report;
mod stats;
mod sys;
mod wake;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Map};

use earlyoom::Earlyoom;
use report::Figure;

/// How many files the "many clients" figures open.
pub const MANY: usize = 10_000;

const USAGE: &str = "\
usage: mn-bench [--quick] [--earlyoom PATH [--library-path DIR] | --no-earlyoom REASON]
       mn-bench hog --rate BYTES_PER_S --chunk BYTES --limit BYTES

  Runs every benchmark in this guest (as root, with memnotify.ko loaded) and prints
  progress lines, then one line: MN-BENCH-JSON {...}.
  --quick            few trials, for trying the harness out (figures are not reliable)
  --earlyoom PATH    Debian's earlyoom binary; --library-path is its LD_LIBRARY_PATH
  --no-earlyoom WHY  no earlyoom: its figures are null with this reason
  hog                the load generator the overshoot trials start (internal)
";

/// Trial counts.
struct Counts {
    idle_windows: usize,
    idle_window: Duration,
    meminfo_samples: usize,
    meminfo_trials: usize,
    meminfo_reads: usize,
    eval_samples: usize,
    slab_trials: usize,
    wake_trials: usize,
    wake_all_trials: usize,
    overshoot_trials: usize,
    earlyoom_trials: usize,
    rss_trials: usize,
}

const FULL: Counts = Counts {
    idle_windows: 3,
    idle_window: Duration::from_secs(3),
    meminfo_samples: 100,
    meminfo_trials: 15,
    meminfo_reads: 200,
    eval_samples: 100,
    slab_trials: 3,
    wake_trials: 200,
    wake_all_trials: 5,
    overshoot_trials: 15,
    earlyoom_trials: 15,
    rss_trials: 3,
};

const QUICK: Counts = Counts {
    idle_windows: 1,
    idle_window: Duration::from_secs(1),
    meminfo_samples: 10,
    meminfo_trials: 3,
    meminfo_reads: 20,
    eval_samples: 10,
    slab_trials: 1,
    wake_trials: 10,
    wake_all_trials: 1,
    overshoot_trials: 1,
    earlyoom_trials: 1,
    rss_trials: 1,
};

struct Options {
    quick: bool,
    earlyoom: Option<Earlyoom>,
    earlyoom_missing: String,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        earlyoom: None,
        earlyoom_missing: "no earlyoom binary was given (--earlyoom)".to_string(),
    };
    let mut library_path = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--earlyoom" => {
                options.earlyoom = Some(Earlyoom {
                    binary: value()?,
                    library_path: None,
                })
            }
            "--library-path" => library_path = Some(value()?),
            "--no-earlyoom" => options.earlyoom_missing = value()?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(earlyoom) = &mut options.earlyoom {
        earlyoom.library_path = library_path;
    }
    Ok(options)
}

/// Prints each figure as it is measured, so a slow guest shows progress.
fn show(figures: &[Figure]) {
    let mut out = std::io::stdout().lock();
    for figure in figures {
        let value = figure.value.map_or("null".to_string(), |value| {
            report::number(value, figure.unit).to_string()
        });
        let _ = writeln!(
            out,
            "mn-bench: {} = {value} {} ({} trials) {}",
            figure.key, figure.unit, figure.trials, figure.note
        );
    }
    let _ = out.flush();
}

fn step(name: &str) {
    println!("mn-bench: -- {name}");
    let _ = std::io::stdout().flush();
}

fn meta(options: &Options, counts: &Counts) -> Map<String, serde_json::Value> {
    let meminfo = std::fs::read("/proc/meminfo").unwrap_or_default();
    let param = |name| device::param(name).ok();
    let mut meta = Map::new();
    meta.insert("kernel".into(), json!(sys::uname()));
    meta.insert("arch".into(), json!(std::env::consts::ARCH));
    meta.insert(
        "cpus".into(),
        json!(std::thread::available_parallelism().map_or(0, |n| n.get())),
    );
    meta.insert("page_size".into(), json!(rustix::param::page_size()));
    meta.insert(
        "clocksource".into(),
        json!(std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource"
        )
        .map(|text| text.trim().to_string())
        .ok()),
    );
    meta.insert(
        "mem_total_kib".into(),
        json!(meminfo::field_kib(&meminfo, "MemTotal")),
    );
    meta.insert(
        "swap_total_kib".into(),
        json!(meminfo::field_kib(&meminfo, "SwapTotal").unwrap_or(0)),
    );
    meta.insert("fast_ms".into(), json!(param("fast_ms")));
    meta.insert("slow_ms".into(), json!(param("slow_ms")));
    meta.insert("quick".into(), json!(options.quick));
    meta.insert(
        "load".into(),
        json!({
            "rate_bytes_per_s": overshoot::PLAN.rate,
            "chunk_bytes": overshoot::PLAN.chunk,
            "threshold_below_start_bytes": overshoot::PLAN.distance,
            "stop_beyond_threshold_bytes": overshoot::PLAN.beyond,
        }),
    );
    meta.insert(
        "trials".into(),
        json!({
            "idle_windows": counts.idle_windows,
            "idle_window_s": counts.idle_window.as_secs_f64(),
            "meminfo": [counts.meminfo_samples, counts.meminfo_trials, counts.meminfo_reads],
            "eval_samples": counts.eval_samples,
            "slab": counts.slab_trials,
            "wake": counts.wake_trials,
            "wake_all": counts.wake_all_trials,
            "overshoot": counts.overshoot_trials,
            "overshoot_earlyoom": counts.earlyoom_trials,
            "rss": counts.rss_trials,
        }),
    );
    meta.insert(
        "earlyoom".into(),
        match &options.earlyoom {
            Some(earlyoom) => json!(earlyoom.binary),
            None => json!(null),
        },
    );
    meta
}

fn run(options: &Options) -> Vec<Figure> {
    let counts = if options.quick { &QUICK } else { &FULL };
    let mut figures = Vec::new();
    let mut add = |new: Vec<Figure>| {
        show(&new);
        figures.extend(new);
    };
    step("idle");
    add(idle::idle(counts.idle_windows, counts.idle_window));
    step("meminfo read");
    add(cost::meminfo_read(
        counts.meminfo_samples,
        counts.meminfo_trials,
        counts.meminfo_reads,
    ));
    step("evaluation cost");
    let (cost, files) = cost::evaluation(counts.eval_samples);
    add(cost);
    step("wake-up of 10,000 files");
    add(wake::wake_all(&files, counts.wake_all_trials));
    drop(files);
    step("kernel memory per file");
    add(memory::bytes_per_client(counts.slab_trials));
    step("wake-up latency");
    add(wake::latency(counts.wake_trials));
    step("overshoot");
    add(overshoot::overshoot(
        &overshoot::PLAN,
        counts.overshoot_trials,
        counts.earlyoom_trials,
        options.earlyoom.as_ref(),
        &options.earlyoom_missing,
    ));
    step("resident memory");
    add(vec![
        memory::daemon_rss(counts.rss_trials),
        memory::earlyoom_rss(
            counts.rss_trials,
            options.earlyoom.as_ref(),
            &options.earlyoom_missing,
        ),
    ]);
    figures
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("hog") {
        return match hog::parse_args(&args[1..]).and_then(|args| hog::run(&args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("mn-bench hog: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let options = match parse_options(&args) {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("mn-bench: {message}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The load generators must never take the benchmark down with them.
    if let Err(error) = sys::set_oom_score_adj(-1000) {
        eprintln!("mn-bench: warning: {error}");
    }
    let started = Instant::now();
    let counts = if options.quick { &QUICK } else { &FULL };
    let mut meta = meta(&options, counts);
    let mut figures = run(&options);
    report::complete(&mut figures);
    meta.insert("duration_s".into(), json!(started.elapsed().as_secs()));
    println!("{}", report::line(&report::to_json(meta, &figures)));
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| word.to_string()).collect()
    }

    #[test]
    fn options_with_earlyoom() {
        let options = parse_options(&strings(&[
            "--earlyoom",
            "/extra/earlyoom/earlyoom",
            "--library-path",
            "/extra/earlyoom/lib",
            "--quick",
        ]))
        .unwrap();
        assert!(options.quick);
        let earlyoom = options.earlyoom.unwrap();
        assert_eq!(earlyoom.binary, "/extra/earlyoom/earlyoom");
        assert_eq!(
            earlyoom.library_path.as_deref(),
            Some("/extra/earlyoom/lib")
        );
    }

    #[test]
    fn options_without_earlyoom_keep_the_reason() {
        let options = parse_options(&strings(&["--no-earlyoom", "no arm64 package"])).unwrap();
        assert!(options.earlyoom.is_none());
        assert_eq!(options.earlyoom_missing, "no arm64 package");
        assert!(!options.quick);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse_options(&strings(&["--earlyoom"])).is_err());
        assert!(parse_options(&strings(&["--fast"])).is_err());
        assert!(parse_options(&strings(&["--help"])).is_err());
    }
}

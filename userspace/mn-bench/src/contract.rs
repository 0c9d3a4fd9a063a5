//! What the guest's report and its reader on the host (`cargo xtask bench`) must agree
//! on: the marker of the console line and the figures every report carries.
//!
//! Plain constants with no imports, so the host can compile this same file into xtask
//! with `#[path]` rather than keep a copy that could drift.

/// Starts the console line that carries the JSON report.
pub const MARKER: &str = "MN-BENCH-JSON ";

/// The figures issue 7 asks for, in table order; each one is in every report, measured
/// or `null` with the reason.
pub const REQUIRED: &[&str] = &[
    "eval_ns_1",
    "eval_ns_10000",
    "meminfo_read_ns",
    "wake_latency_us_p50",
    "wake_latency_us_p99",
    "wake_all_10000_us",
    "bytes_per_client",
    "idle_wakeups_per_s_no_clients",
    "idle_wakeups_per_s_far",
    "overshoot_kib_memnotify",
    "overshoot_kib_poll_100ms",
    "overshoot_kib_psi",
    "overshoot_kib_earlyoom",
    "daemon_rss_kib",
    "earlyoom_rss_kib",
];

//! `mn-bench hog`: the load generator of the overshoot trials, a child process so that
//! earlyoom can kill it. It touches anonymous memory in fixed chunks at a fixed rate and
//! logs when each chunk was touched (see [`crate::hoglog`]).
//!
//! Handshake on stdin/stdout: it prints `ready` once its memory is reserved, starts on
//! the first line read from stdin, and prints its log when it reaches the limit or a
//! SIGTERM arrives.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::hoglog;
use crate::sys::{self, Region};

/// Monotonic time of the first SIGTERM (0: none yet).
static TERM_NS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_term(_signal: libc::c_int) {
    // clock_gettime is async-signal-safe.
    let now = sys::now_ns();
    let _ = TERM_NS.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
}

fn terminated() -> bool {
    TERM_NS.load(Ordering::SeqCst) != 0
}

pub struct HogArgs {
    pub rate: u64,
    pub chunk: u64,
    pub limit: u64,
}

pub fn parse_args(args: &[String]) -> Result<HogArgs, String> {
    let mut rate = None;
    let mut chunk = None;
    let mut limit = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let slot = match arg.as_str() {
            "--rate" => &mut rate,
            "--chunk" => &mut chunk,
            "--limit" => &mut limit,
            other => return Err(format!("hog: unknown argument {other:?}")),
        };
        let value: u64 = iter
            .next()
            .and_then(|value| value.parse().ok())
            .filter(|&value| value > 0)
            .ok_or_else(|| format!("hog: {arg} needs a positive number of bytes"))?;
        *slot = Some(value);
    }
    Ok(HogArgs {
        rate: rate.ok_or("hog: --rate is required")?,
        chunk: chunk.ok_or("hog: --chunk is required")?,
        limit: limit.ok_or("hog: --limit is required")?,
    })
}

pub fn run(args: &HogArgs) -> Result<(), String> {
    // Be the first victim of earlyoom and of the kernel's OOM killer alike.
    sys::set_oom_score_adj(1000).map_err(|error| error.to_string())?;
    // rustix has no signal handlers outside its unstable `runtime` API, so this one call
    // stays on libc.
    // SAFETY: the handler only reads the clock and stores to an atomic.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_term as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
    let limit = usize::try_from(args.limit).map_err(|_| "hog: --limit too large")?;
    let mut region = Region::reserve(limit).map_err(|error| error.to_string())?;
    let chunks = args.limit.div_ceil(args.chunk) as usize;
    let mut log: Vec<(u64, u64, u64)> = Vec::with_capacity(chunks);

    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").map_err(|error| error.to_string())?;
    out.flush().map_err(|error| error.to_string())?;
    let mut go = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut go)
        .map_err(|error| error.to_string())?;

    let start = sys::now_ns();
    let mut done = 0u64;
    while done < args.limit && !terminated() {
        let next = (done + args.chunk).min(args.limit);
        let chunk_start = sys::now_ns();
        region.touch(done as usize, next as usize);
        log.push((chunk_start, sys::now_ns(), next));
        done = next;
        // Chunk n starts n * chunk / rate after the start, whatever the touching took.
        let due = start + (done as u128 * 1_000_000_000 / args.rate as u128) as u64;
        while !terminated() {
            let now = sys::now_ns();
            if now >= due {
                break;
            }
            std::thread::sleep(Duration::from_nanos((due - now).min(2_000_000)));
        }
    }
    for &(chunk_start, chunk_end, total) in &log {
        writeln!(out, "{}", hoglog::chunk_line(chunk_start, chunk_end, total))
            .map_err(|error| error.to_string())?;
    }
    let term = TERM_NS.load(Ordering::SeqCst);
    if term != 0 {
        writeln!(out, "{}", hoglog::term_line(term)).map_err(|error| error.to_string())?;
    }
    writeln!(out, "{}", hoglog::done_line(done)).map_err(|error| error.to_string())?;
    out.flush().map_err(|error| error.to_string())?;
    drop(region);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| word.to_string()).collect()
    }

    #[test]
    fn parses_all_three() {
        let args = parse_args(&strings(&[
            "--rate", "67108864", "--chunk", "1048576", "--limit", "8",
        ]))
        .unwrap();
        assert_eq!((args.rate, args.chunk, args.limit), (67108864, 1048576, 8));
    }

    #[test]
    fn rejects_missing_zero_and_unknown() {
        assert!(parse_args(&strings(&["--rate", "1", "--chunk", "1"])).is_err());
        assert!(parse_args(&strings(&["--rate", "0", "--chunk", "1", "--limit", "1"])).is_err());
        assert!(parse_args(&strings(&["--rate", "x", "--chunk", "1", "--limit", "1"])).is_err());
        assert!(parse_args(&strings(&["--speed", "1"])).is_err());
        assert!(parse_args(&strings(&["--rate"])).is_err());
    }
}

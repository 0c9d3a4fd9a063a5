//! What the load generator (`mn-bench hog`) reports: when it touched each chunk, and
//! when a SIGTERM reached it. From that log, how much it had allocated at any moment,
//! which is what overshoot is measured in.
//!
//! Lines, in order: `chunk START_NS END_NS TOTAL_BYTES` per chunk (monotonic ns; total
//! after the chunk), `term T_NS` if a SIGTERM arrived, and `done TOTAL_BYTES` last.

/// One chunk: `[before, after)` bytes were touched between `start_ns` and `end_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub start_ns: u64,
    pub end_ns: u64,
    pub before: u64,
    pub after: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HogLog {
    pub chunks: Vec<Chunk>,
    /// When SIGTERM arrived (earlyoom's kill), if it did.
    pub term_ns: Option<u64>,
}

pub fn chunk_line(start_ns: u64, end_ns: u64, total: u64) -> String {
    format!("chunk {start_ns} {end_ns} {total}")
}

pub fn term_line(term_ns: u64) -> String {
    format!("term {term_ns}")
}

pub fn done_line(total: u64) -> String {
    format!("done {total}")
}

/// Parses a whole log; it must end with `done` and its chunks must be in order.
pub fn parse(text: &str) -> Result<HogLog, String> {
    let mut log = HogLog::default();
    let mut done = None;
    for (index, line) in text.lines().enumerate() {
        let bad = || format!("hog log line {}: {line:?}", index + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        let numbers: Vec<u64> = words
            .iter()
            .skip(1)
            .map(|word| word.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        if done.is_some() {
            return Err(format!("{}: after done", bad()));
        }
        match (words.first().copied(), numbers.as_slice()) {
            (Some("chunk"), &[start_ns, end_ns, after]) => {
                let before = log.chunks.last().map_or(0, |chunk| chunk.after);
                let previous_end = log.chunks.last().map_or(0, |chunk| chunk.end_ns);
                if end_ns < start_ns || start_ns < previous_end || after < before {
                    return Err(format!("{}: out of order", bad()));
                }
                log.chunks.push(Chunk {
                    start_ns,
                    end_ns,
                    before,
                    after,
                });
            }
            (Some("term"), &[term_ns]) if log.term_ns.is_none() => log.term_ns = Some(term_ns),
            (Some("done"), &[total]) => done = Some(total),
            (None, _) => {}
            _ => return Err(bad()),
        }
    }
    let total = done.ok_or("hog log without a done line")?;
    if total != log.total() {
        return Err(format!(
            "hog log: done says {total} bytes, the chunks {}",
            log.total()
        ));
    }
    Ok(log)
}

impl HogLog {
    /// Bytes touched in all.
    pub fn total(&self) -> u64 {
        self.chunks.last().map_or(0, |chunk| chunk.after)
    }

    /// Bytes touched by `t_ns`, assuming an even pace inside a chunk.
    pub fn allocated_at(&self, t_ns: u64) -> u64 {
        let Some(index) = self.chunks.iter().rposition(|chunk| chunk.start_ns <= t_ns) else {
            return 0;
        };
        let chunk = self.chunks[index];
        if t_ns >= chunk.end_ns || chunk.end_ns == chunk.start_ns {
            return chunk.after;
        }
        let done = (t_ns - chunk.start_ns) as u128 * (chunk.after - chunk.before) as u128
            / (chunk.end_ns - chunk.start_ns) as u128;
        chunk.before + done as u64
    }

    /// The average rate from the first chunk's start to the last one's end, bytes/s.
    pub fn rate(&self) -> Option<f64> {
        let first = self.chunks.first()?;
        let last = self.chunks.last()?;
        let elapsed = last.end_ns.checked_sub(first.start_ns)?;
        (elapsed > 0).then(|| (last.after - first.before) as f64 * 1e9 / elapsed as f64)
    }

    /// How far beyond `threshold` bytes the allocation was at `notice_ns`, in KiB
    /// (negative if the notifier noticed before the threshold was reached).
    pub fn overshoot_kib(&self, threshold: u64, notice_ns: u64) -> f64 {
        (self.allocated_at(notice_ns) as f64 - threshold as f64) / 1024.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn sample() -> HogLog {
        let text = [
            chunk_line(1_000, 2_000, MIB),
            chunk_line(3_000, 5_000, 2 * MIB),
            chunk_line(6_000, 6_000, 3 * MIB),
            term_line(6_500),
            done_line(3 * MIB),
        ]
        .join("\n");
        parse(&text).unwrap()
    }

    #[test]
    fn parses_chunks_and_term() {
        let log = sample();
        assert_eq!(log.chunks.len(), 3);
        assert_eq!(
            log.chunks[1],
            Chunk {
                start_ns: 3_000,
                end_ns: 5_000,
                before: MIB,
                after: 2 * MIB
            }
        );
        assert_eq!(log.term_ns, Some(6_500));
        assert_eq!(log.total(), 3 * MIB);
    }

    #[test]
    fn allocated_at_interpolates_inside_chunks_and_holds_between() {
        let log = sample();
        assert_eq!(log.allocated_at(0), 0);
        assert_eq!(log.allocated_at(1_000), 0);
        assert_eq!(log.allocated_at(1_500), MIB / 2);
        assert_eq!(log.allocated_at(2_500), MIB);
        assert_eq!(log.allocated_at(4_000), MIB + MIB / 2);
        assert_eq!(log.allocated_at(5_999), 2 * MIB);
        // A chunk that took no time counts whole from its start.
        assert_eq!(log.allocated_at(6_000), 3 * MIB);
        assert_eq!(log.allocated_at(u64::MAX), 3 * MIB);
    }

    #[test]
    fn overshoot_is_relative_to_the_threshold() {
        let log = sample();
        assert_eq!(log.overshoot_kib(MIB, 4_000), 512.0);
        assert_eq!(log.overshoot_kib(2 * MIB, 1_500), -1536.0);
    }

    #[test]
    fn rate_over_the_whole_run() {
        let log = sample();
        // 3 MiB in 5 µs.
        assert_eq!(log.rate(), Some(3.0 * MIB as f64 / 5e-6));
        assert_eq!(HogLog::default().rate(), None);
    }

    #[test]
    fn rejects_bad_logs() {
        assert!(parse("chunk 1 2 3").is_err(), "no done line");
        assert!(parse("chunk 1 2 3\ndone 4").is_err(), "total mismatch");
        assert!(
            parse("chunk 5 4 3\ndone 3").is_err(),
            "ends before it starts"
        );
        assert!(
            parse("chunk 1 2 8\nchunk 1 3 9\ndone 9").is_err(),
            "overlap"
        );
        assert!(
            parse("chunk 1 2 8\nchunk 3 4 7\ndone 7").is_err(),
            "shrinks"
        );
        assert!(parse("chunk 1 2 x\ndone 0").is_err(), "not a number");
        assert!(parse("mystery 1\ndone 0").is_err(), "unknown line");
        assert!(parse("term 1\nterm 2\ndone 0").is_err(), "two terms");
        assert!(parse("done 0\nchunk 1 2 3").is_err(), "after done");
        assert_eq!(parse("\ndone 0\n").unwrap(), HogLog::default());
    }
}

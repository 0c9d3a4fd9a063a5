//! A bounded log rate: at most `burst` messages per `period` (pure).

/// Counts messages in fixed windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    burst: u32,
    period_ms: u64,
    window_start_ms: u64,
    sent: u32,
    suppressed: u64,
}

/// What to do with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it; `suppressed` messages were dropped before it (report them first).
    Send {
        /// Messages dropped since the last one sent.
        suppressed: u64,
    },
    /// Drop it.
    Drop,
}

impl RateLimit {
    /// A limit of `burst` messages per `period_ms`.
    pub fn new(burst: u32, period_ms: u64) -> RateLimit {
        RateLimit {
            burst: burst.max(1),
            period_ms: period_ms.max(1),
            window_start_ms: 0,
            sent: 0,
            suppressed: 0,
        }
    }

    /// Decides about a message at `now_ms`.
    pub fn check(&mut self, now_ms: u64) -> Verdict {
        if self.sent == 0 || now_ms.saturating_sub(self.window_start_ms) >= self.period_ms {
            self.window_start_ms = now_ms;
            self.sent = 0;
        }
        if self.sent >= self.burst {
            self.suppressed += 1;
            return Verdict::Drop;
        }
        self.sent += 1;
        let suppressed = std::mem::take(&mut self.suppressed);
        Verdict::Send { suppressed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bursts_then_drops_then_reports() {
        let mut limit = RateLimit::new(2, 1000);
        assert_eq!(limit.check(0), Verdict::Send { suppressed: 0 });
        assert_eq!(limit.check(10), Verdict::Send { suppressed: 0 });
        assert_eq!(limit.check(20), Verdict::Drop);
        assert_eq!(limit.check(30), Verdict::Drop);
        assert_eq!(limit.check(1000), Verdict::Send { suppressed: 2 });
        assert_eq!(limit.check(1001), Verdict::Send { suppressed: 0 });
    }

    proptest! {
        #[test]
        fn never_more_than_burst_per_window(
            burst in 1u32..10,
            gaps in proptest::collection::vec(0u64..300, 1..200),
        ) {
            let period = 1000;
            let mut limit = RateLimit::new(burst, period);
            let mut now = 0;
            let mut sent_times = Vec::new();
            let mut dropped = 0u64;
            let mut reported = 0u64;
            for gap in gaps {
                now += gap;
                match limit.check(now) {
                    Verdict::Send { suppressed } => {
                        sent_times.push(now);
                        reported += suppressed;
                    }
                    Verdict::Drop => dropped += 1,
                }
            }
            // Fixed windows: any period holds at most two windows' worth.
            for (index, &start) in sent_times.iter().enumerate() {
                let in_period = sent_times[index..].iter().take_while(|&&t| t < start + period).count();
                prop_assert!(in_period <= 2 * burst as usize);
            }
            prop_assert!(reported <= dropped);
        }
    }
}

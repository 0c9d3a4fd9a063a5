//! Default low-memory levels for files that never wrote thresholds.
//!
//! A file opened just to `poll()` (the `/dev/mem_notify` usage) gets events when
//! `available` enters or leaves the module's default levels, at most one per
//! rate-limit interval per file, so a thrashing system cannot flood it.

/// A default level, from best to worst.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, Default)]
pub enum Level {
    /// Enough memory.
    #[default]
    Normal = 0,
    /// `available` is under the low level.
    Low = 1,
    /// `available` is under the critical level.
    Critical = 2,
}

impl Level {
    /// The level's number on the read line.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The level's name.
    pub const fn name(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Low => "low",
            Level::Critical => "critical",
        }
    }
}

/// The default levels, in pages of `available`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Levels {
    /// Below this, the level is at least [`Level::Low`] (0 disables).
    pub low: u64,
    /// Below this, the level is [`Level::Critical`] (0 disables).
    pub critical: u64,
    /// A level is left only once `available` is this far above its bound.
    pub hysteresis: u64,
}

/// The module's default for `default_low_pct`.
pub const DEFAULT_LOW_PCT: u64 = 10;
/// The module's default for `default_critical_pct`.
pub const DEFAULT_CRITICAL_PCT: u64 = 5;

impl Levels {
    /// Levels at percentages of RAM (clamped to 100), as the module computes its default
    /// levels; a level is left only about 1% of RAM (1/128) above its bound.
    pub fn from_percent(total_pages: u64, low_pct: u64, critical_pct: u64) -> Levels {
        let share = |pct: u64| super::number::mul_div(total_pages, pct.min(100), 100);
        Levels {
            low: share(low_pct),
            critical: share(critical_pct),
            hysteresis: total_pages >> 7,
        }
    }

    /// The level for `available`, given the level at the previous evaluation.
    pub fn level(&self, available: u64, previous: Level) -> Level {
        let under = |bound: u64, level: Level| {
            if bound == 0 {
                return false;
            }
            // Staying in a level needs only to stay under bound + hysteresis.
            let limit = if previous >= level {
                bound.saturating_add(self.hysteresis)
            } else {
                bound
            };
            available < limit
        };
        if under(self.critical, Level::Critical) {
            Level::Critical
        } else if under(self.low, Level::Low) {
            Level::Low
        } else {
            Level::Normal
        }
    }
}

/// What a file without thresholds has been told.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DefaultClient {
    /// The level this file was last told about (or found at open).
    pub delivered: Level,
    /// When that was, in monotonic nanoseconds (0: never).
    pub last_event_ns: u64,
}

impl DefaultClient {
    /// A file opened while the level was `level`: no event for the level it starts in.
    pub const fn new(level: Level) -> DefaultClient {
        DefaultClient {
            delivered: level,
            last_event_ns: 0,
        }
    }

    /// Whether this file must be told about `level` now; records the delivery if so.
    pub fn offer(&mut self, level: Level, now_ns: u64, min_interval_ns: u64) -> bool {
        if level == self.delivered {
            return false;
        }
        if self.last_event_ns != 0 && now_ns.saturating_sub(self.last_event_ns) < min_interval_ns {
            return false;
        }
        self.delivered = level;
        self.last_event_ns = now_ns.max(1);
        true
    }

    /// Whether a change of level is waiting for the rate limit.
    pub fn lagging(&self, level: Level) -> bool {
        self.delivered != level
    }
}

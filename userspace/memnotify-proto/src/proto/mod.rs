//! Root of the shared protocol code (also what the kernel module includes, as `proto/mod.rs`).

pub mod amount;
pub mod figures;
pub mod flags;
pub mod kick;
pub mod levels;
pub mod line;
pub mod number;
pub mod sampling;
pub mod thresholds;
pub mod watch;

pub use amount::{Amount, ByteUnit, AMOUNT_TEXT_MAX};
pub use figures::{Counters, Figure, Figures, FIGURE_COUNT};
pub use flags::FileFlags;
pub use kick::{KickFlag, Timer};
pub use levels::{DefaultClient, Level, Levels, DEFAULT_CRITICAL_PCT, DEFAULT_LOW_PCT};
pub use line::{format_line, parse_line, LineError, LineWriter, Snapshot, LINE_BUF, LINE_MAX};
pub use number::div_u64;
pub use sampling::{next_interval_ms, speed_pages_per_s, Observation, Sampling};
pub use thresholds::{parse_thresholds, parse_value, ParseError, Thresholds, Units, WRITE_MAX};
pub use watch::{arming_figures, Crossings, SingleWatch, Trigger, Watch, WATCH_PAGES_MAX};

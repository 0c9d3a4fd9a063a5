//! The write side of the device: `key value` pairs that set a file's thresholds.
//!
//! A write is all or nothing: the parser either returns a complete [`Thresholds`]
//! or an error, and the caller changes nothing on error.

use super::amount::Amount;
use super::figures::{Figure, FIGURE_COUNT};

/// The largest write the device accepts, in bytes.
pub const WRITE_MAX: usize = 256;

/// What a unit suffix is relative to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Units {
    /// `log2(PAGE_SIZE)`: `K`/`M`/`G` values are bytes rounded up to whole pages.
    pub page_shift: u32,
    /// Total RAM in pages: `%` values are a share of it.
    pub total_pages: u64,
}

/// Why a write was rejected. Every variant maps to `EINVAL` in the kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParseError {
    /// Nothing but white space.
    Empty,
    /// More than [`WRITE_MAX`] bytes.
    TooLong,
    /// A key that is neither a figure nor `hysteresis`.
    UnknownKey,
    /// A key at the end with no value after it.
    MissingValue,
    /// A value that is not a number of the accepted forms.
    BadNumber,
    /// A value too large to represent, or a percentage over 100.
    Overflow,
    /// The same key twice in one write.
    DuplicateKey,
    /// A byte that has no place in the protocol (a NUL inside the text, a control byte).
    BadByte,
}

impl ParseError {
    /// A short explanation, for logs and userspace messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            ParseError::Empty => "empty threshold write",
            ParseError::TooLong => "write longer than 256 bytes",
            ParseError::UnknownKey => "unknown key",
            ParseError::MissingValue => "key without a value",
            ParseError::BadNumber => "value is not a number",
            ParseError::Overflow => "value out of range",
            ParseError::DuplicateKey => "key given twice",
            ParseError::BadByte => "unexpected byte",
        }
    }
}

/// The thresholds of one file. A threshold of 0 is disabled.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Thresholds {
    /// Threshold per figure, indexed by [`Figure::index`], in pages.
    pub values: [u64; FIGURE_COUNT],
    /// How far (in pages) a figure must fall back below a threshold it crossed
    /// upwards before it counts as below again.
    pub hysteresis: u64,
}

impl Thresholds {
    /// The threshold on `figure`, if armed.
    pub const fn get(&self, figure: Figure) -> Option<u64> {
        match self.values[figure.index()] {
            0 => None,
            value => Some(value),
        }
    }

    /// Whether any threshold is armed.
    pub fn any(&self) -> bool {
        self.values.iter().any(|&value| value != 0)
    }
}

const HYSTERESIS: &[u8] = b"hysteresis";

/// Parses one write, e.g. `used 5000`, `active 8000 used 16000`,
/// `available 10% hysteresis 4M`.
///
/// Values are [`Amount`]s: pages (decimal or `0x` hex), bytes with a `K`/`M`/`G`
/// suffix (rounded up to whole pages) or a percentage of total RAM with `%`
/// (rounded down, but never to 0 pages unless it is `0%`: only 0 disables a threshold).
/// Trailing white space and NUL bytes (C strings written with their terminator)
/// are ignored.
pub fn parse_thresholds(input: &[u8], units: Units) -> Result<Thresholds, ParseError> {
    if input.len() > WRITE_MAX {
        return Err(ParseError::TooLong);
    }
    let mut end = input.len();
    while end > 0 && (input[end - 1] == 0 || input[end - 1].is_ascii_whitespace()) {
        end -= 1;
    }
    let text = &input[..end];
    if text
        .iter()
        .any(|&byte| !(byte.is_ascii_graphic() || byte.is_ascii_whitespace()))
    {
        return Err(ParseError::BadByte);
    }

    let mut thresholds = Thresholds::default();
    let mut seen = [false; FIGURE_COUNT + 1];
    let mut tokens = text
        .split(|byte| byte.is_ascii_whitespace())
        .filter(|token| !token.is_empty());
    let mut pairs = 0;
    while let Some(key) = tokens.next() {
        let slot = if key == HYSTERESIS {
            FIGURE_COUNT
        } else {
            Figure::from_name(key)
                .ok_or(ParseError::UnknownKey)?
                .index()
        };
        let value = parse_value(tokens.next().ok_or(ParseError::MissingValue)?, units)?;
        if seen[slot] {
            return Err(ParseError::DuplicateKey);
        }
        seen[slot] = true;
        if slot == FIGURE_COUNT {
            thresholds.hysteresis = value;
        } else {
            thresholds.values[slot] = value;
        }
        pairs += 1;
    }
    if pairs == 0 {
        return Err(ParseError::Empty);
    }
    Ok(thresholds)
}

/// Parses one value into pages: [`Amount::parse`] resolved with `units`.
pub fn parse_value(token: &[u8], units: Units) -> Result<u64, ParseError> {
    Amount::parse(token).map(|amount| amount.pages(units))
}

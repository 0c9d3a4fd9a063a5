//! The read side of the device: one line of `key value` pairs ending in `\n`.
//!
//! `used N active N total N` come first, in the order existing memnotify clients
//! parse, then the other figures, then `seq` (events delivered to this file so
//! far), `time` (monotonic nanoseconds: on a read that consumes an event, of the
//! evaluation that delivered it; otherwise of the sample the figures come from) and
//! `level` (the default level: 0 normal, 1 low, 2 critical). The figures of an event
//! read are the latest evaluation's, which is the delivering one unless another ran
//! before the read.

use super::figures::{Figure, Figures};

/// The longest line the device returns, newline included.
pub const LINE_MAX: usize = 255;

/// A buffer that always holds a whole line.
pub const LINE_BUF: usize = 256;

/// Page counts are clamped to 15 digits so that the line fits [`LINE_MAX`]
/// whatever the figures (that is still 4 EiB of 4 KiB pages).
const PAGES_CLAMP: u64 = 999_999_999_999_999;

/// What one read returns.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Snapshot {
    /// The figures, in pages.
    pub figures: Figures,
    /// How many events this file has been sent.
    pub seq: u64,
    /// Monotonic time of the evaluation that sampled the figures, in nanoseconds.
    pub time_ns: u64,
    /// The default level at that evaluation.
    pub level: u8,
}

/// Appends text and decimal numbers to a byte buffer, truncating silently at its end.
pub struct LineWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> LineWriter<'a> {
    /// A writer that fills `buf` from the start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        LineWriter { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends bytes, as many as fit.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        let room = self.buf.len() - self.len;
        let take = bytes.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
    }

    /// Appends a string, as much as fits.
    pub fn push_str(&mut self, text: &str) {
        self.push_bytes(text.as_bytes());
    }

    /// Appends a number in decimal.
    pub fn push_u64(&mut self, mut value: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            // `% 10` and `/ 10` by a constant compile to multiplications, except on
            // 32-bit targets where `u64` division is a libcall, hence the by-hand split.
            let (quotient, digit) = div10(value);
            digits[start] = b'0' + digit;
            value = quotient;
            if value == 0 {
                break;
            }
        }
        self.push_bytes(&digits[start..]);
    }

    /// Appends ` key value`, or `key value` at the start of the line.
    pub fn push_pair(&mut self, key: &str, value: u64) {
        if self.len != 0 {
            self.push_bytes(b" ");
        }
        self.push_str(key);
        self.push_bytes(b" ");
        self.push_u64(value);
    }
}

/// `(value / 10, value % 10)` with shifts and adds only.
fn div10(value: u64) -> (u64, u8) {
    // Hacker's Delight 10-4: an estimate that is off by at most one, then corrected.
    let mut q = (value >> 1) + (value >> 2);
    q += q >> 4;
    q += q >> 8;
    q += q >> 16;
    q += q >> 32;
    q >>= 3;
    let mut r = value - ((q << 3) + (q << 1));
    if r > 9 {
        q += 1;
        r -= 10;
    }
    (q, r as u8)
}

/// Formats the line for `snapshot` into `buf` and returns its length (at most [`LINE_MAX`]).
pub fn format_line(snapshot: &Snapshot, buf: &mut [u8; LINE_BUF]) -> usize {
    let mut writer = LineWriter::new(&mut buf[..LINE_MAX]);
    for figure in Figure::ALL {
        writer.push_pair(figure.name(), snapshot.figures.get(figure).min(PAGES_CLAMP));
    }
    writer.push_pair("seq", snapshot.seq);
    writer.push_pair("time", snapshot.time_ns);
    writer.push_pair("level", u64::from(snapshot.level));
    writer.push_bytes(b"\n");
    writer.len()
}

/// Why a line could not be parsed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LineError {
    /// A key without a value, or a value that is not a decimal number.
    Malformed,
    /// One of `used`, `active`, `total` is missing.
    MissingFigure,
}

/// Parses a line read from the device.
///
/// Unknown keys are skipped (newer modules may add figures); `used`, `active`
/// and `total` are required, the rest default to 0 (older modules).
pub fn parse_line(line: &[u8]) -> Result<Snapshot, LineError> {
    let mut snapshot = Snapshot::default();
    let mut required = 0u8;
    let mut tokens = line
        .split(|byte| byte.is_ascii_whitespace() || *byte == 0)
        .filter(|token| !token.is_empty());
    while let Some(key) = tokens.next() {
        let value = tokens.next().ok_or(LineError::Malformed)?;
        let value = parse_decimal(value).ok_or(LineError::Malformed)?;
        if let Some(figure) = Figure::from_name(key) {
            snapshot.figures.set(figure, value);
            if figure.index() < 3 {
                required |= 1 << figure.index();
            }
            continue;
        }
        match key {
            b"seq" => snapshot.seq = value,
            b"time" => snapshot.time_ns = value,
            b"level" => snapshot.level = value.min(u64::from(u8::MAX)) as u8,
            _ => {}
        }
    }
    if required != 0b111 {
        return Err(LineError::MissingFigure);
    }
    Ok(snapshot)
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &byte| {
        if !byte.is_ascii_digit() {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
    })
}

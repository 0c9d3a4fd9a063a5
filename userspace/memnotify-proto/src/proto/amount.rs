//! An amount of memory as the protocol writes it: pages, bytes with a unit, or a
//! percentage of RAM.
//!
//! This is the one place that knows the syntax (`5000`, `0x100`, `64M`, `10%`) and
//! how each form becomes pages. The device's threshold parser, the client
//! library's writer and memnotifyd's configuration all go through it.
//!
//! No `u64` division anywhere (32-bit ARM kernels have no `__aeabi_uldivmod`):
//! units are shifts, a percentage goes through [`mul_div`], and [`Display`]
//! formats with the by-hand decimal writer of the read line.

use core::cmp::Ordering;
use core::fmt;

use super::line::LineWriter;
use super::number::mul_div;
use super::thresholds::{ParseError, Units};

/// A byte unit suffix: `K`, `M` or `G` (binary: KiB, MiB, GiB).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ByteUnit {
    /// `K`: 2^10 bytes.
    Kib,
    /// `M`: 2^20 bytes.
    Mib,
    /// `G`: 2^30 bytes.
    Gib,
}

impl ByteUnit {
    /// Every unit, smallest first.
    pub const ALL: [ByteUnit; 3] = [ByteUnit::Kib, ByteUnit::Mib, ByteUnit::Gib];

    /// `log2` of the unit in bytes.
    pub const fn shift(self) -> u32 {
        match self {
            ByteUnit::Kib => 10,
            ByteUnit::Mib => 20,
            ByteUnit::Gib => 30,
        }
    }

    /// The suffix as written by [`Amount`]'s `Display` (parsing also takes lowercase).
    pub const fn suffix(self) -> u8 {
        match self {
            ByteUnit::Kib => b'K',
            ByteUnit::Mib => b'M',
            ByteUnit::Gib => b'G',
        }
    }

    const fn from_suffix(byte: u8) -> Option<ByteUnit> {
        match byte {
            b'K' | b'k' => Some(ByteUnit::Kib),
            b'M' | b'm' => Some(ByteUnit::Mib),
            b'G' | b'g' => Some(ByteUnit::Gib),
            _ => None,
        }
    }
}

/// An amount of memory as written, before it is resolved against a machine.
///
/// [`Amount::parse`] only returns amounts whose byte count fits a `u64` and whose
/// percentage is at most 100; amounts built by hand outside that range saturate
/// when converted.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Amount {
    /// Pages (`5000`, `0x1388`).
    Pages(u64),
    /// `count` units of bytes (`64M`), rounded up to whole pages.
    Bytes(u64, ByteUnit),
    /// A percentage of total RAM (`10%`), 0 to 100.
    Percent(u8),
}

impl Amount {
    /// Parses one value: pages in decimal or `0x` hex, bytes with a `K`/`M`/`G`
    /// suffix, or a percentage with `%`. No white space is accepted.
    pub fn parse(token: &[u8]) -> Result<Amount, ParseError> {
        let Some((&last, body)) = token.split_last() else {
            return Err(ParseError::BadNumber);
        };
        if last == b'%' {
            let number = parse_number(body)?;
            return match u8::try_from(number) {
                Ok(percent) if percent <= 100 => Ok(Amount::Percent(percent)),
                _ => Err(ParseError::Overflow),
            };
        }
        if let Some(unit) = ByteUnit::from_suffix(last) {
            let count = parse_number(body)?;
            if count.leading_zeros() < unit.shift() {
                return Err(ParseError::Overflow);
            }
            return Ok(Amount::Bytes(count, unit));
        }
        parse_number(token).map(Amount::Pages)
    }

    /// The amount in bytes when it is not relative to RAM (saturating).
    pub fn bytes(self, page_shift: u32) -> Option<u64> {
        match self {
            Amount::Pages(pages) => Some(shl_saturating(pages, page_shift)),
            Amount::Bytes(count, unit) => Some(shl_saturating(count, unit.shift())),
            Amount::Percent(_) => None,
        }
    }

    /// The amount in pages on a machine with `units`: bytes rounded up to whole
    /// pages, a percentage of `units.total_pages` rounded down but never to 0
    /// unless it is `0%` (only 0 disables a threshold).
    pub fn pages(self, units: Units) -> u64 {
        match self {
            Amount::Pages(pages) => pages,
            Amount::Bytes(count, unit) => {
                bytes_to_pages(shl_saturating(count, unit.shift()), units.page_shift)
            }
            Amount::Percent(percent) => {
                let pages = mul_div(units.total_pages, u64::from(percent), 100);
                // A small share of a small RAM must not round down to 0, which disables.
                if pages == 0 && percent != 0 && units.total_pages != 0 {
                    1
                } else {
                    pages
                }
            }
        }
    }

    /// Whether this is 0 in any form (a disabled threshold).
    pub const fn is_zero(self) -> bool {
        matches!(
            self,
            Amount::Pages(0) | Amount::Bytes(0, _) | Amount::Percent(0)
        )
    }

    /// Orders two amounts of the same kind (both pages, both bytes, both
    /// percentages) without knowing the machine; `None` across kinds.
    pub fn cmp_same_kind(self, other: Amount) -> Option<Ordering> {
        match (self, other) {
            (Amount::Pages(a), Amount::Pages(b)) => Some(a.cmp(&b)),
            (Amount::Percent(a), Amount::Percent(b)) => Some(a.cmp(&b)),
            (Amount::Bytes(..), Amount::Bytes(..)) => Some(self.bytes(0).cmp(&other.bytes(0))),
            _ => None,
        }
    }

    /// Writes the amount in the syntax [`Amount::parse`] reads back (decimal
    /// pages, `64M`, `10%`); returns the length, at most [`AMOUNT_TEXT_MAX`].
    pub fn format(self, buf: &mut [u8; AMOUNT_TEXT_MAX]) -> usize {
        let mut writer = LineWriter::new(buf);
        match self {
            Amount::Pages(pages) => writer.push_u64(pages),
            Amount::Bytes(count, unit) => {
                writer.push_u64(count);
                writer.push_bytes(&[unit.suffix()]);
            }
            Amount::Percent(percent) => {
                writer.push_u64(u64::from(percent));
                writer.push_bytes(b"%");
            }
        }
        writer.len()
    }
}

/// The longest text [`Amount::format`] writes: 20 digits and a suffix.
pub const AMOUNT_TEXT_MAX: usize = 21;

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; AMOUNT_TEXT_MAX];
        let len = self.format(&mut buf);
        // Digits and an ASCII suffix only.
        f.write_str(core::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
    }
}

fn shl_saturating(value: u64, shift: u32) -> u64 {
    if value.leading_zeros() < shift {
        u64::MAX
    } else {
        value << shift
    }
}

/// `bytes` in whole pages, rounded up, without overflow for any `page_shift`.
fn bytes_to_pages(bytes: u64, page_shift: u32) -> u64 {
    let whole = bytes.checked_shr(page_shift).unwrap_or(0);
    let page_mask = 1u64
        .checked_shl(page_shift)
        .map_or(u64::MAX, |page_size| page_size - 1);
    whole + u64::from(bytes & page_mask != 0)
}

fn parse_number(digits: &[u8]) -> Result<u64, ParseError> {
    let (digits, radix) = match digits {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (digits, 10),
    };
    if digits.is_empty() {
        return Err(ParseError::BadNumber);
    }
    let mut value: u64 = 0;
    for &byte in digits {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' if radix == 16 => byte - b'a' + 10,
            b'A'..=b'F' if radix == 16 => byte - b'A' + 10,
            _ => return Err(ParseError::BadNumber),
        };
        value = value
            .checked_mul(radix)
            .and_then(|value| value.checked_add(u64::from(digit)))
            .ok_or(ParseError::Overflow)?;
    }
    Ok(value)
}

//! `parse_thresholds` on any bytes with any units: the kernel runs it on every write (with
//! overflow checks on), so it must never panic; it rejects what is over `WRITE_MAX`, ignores
//! trailing white space and NULs, and what it accepts reads back the same when written out
//! again in plain pages.
#![no_main]

use std::fmt::Write as _;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use memnotify_proto::{parse_thresholds, Figure, ParseError, Thresholds, Units, WRITE_MAX};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    page_shift: u8,
    total_pages: u64,
    text: &'a [u8],
}

/// The thresholds as a write in pages: every armed figure, then the hysteresis.
fn canonical(thresholds: &Thresholds) -> String {
    let mut text = String::new();
    for figure in Figure::ALL {
        if let Some(value) = thresholds.get(figure) {
            let _ = write!(text, "{} {value} ", figure.name());
        }
    }
    let _ = write!(text, "hysteresis {}", thresholds.hysteresis);
    text
}

fuzz_target!(|input: Input<'_>| {
    let units = Units {
        page_shift: u32::from(input.page_shift),
        total_pages: input.total_pages,
    };
    let result = parse_thresholds(input.text, units);
    if input.text.len() > WRITE_MAX {
        assert_eq!(result, Err(ParseError::TooLong));
        return;
    }
    // A C string written with its terminator, or a line with its newline, means the same.
    if input.text.len() < WRITE_MAX {
        for tail in [b"\0", b"\n"] {
            let mut longer = input.text.to_vec();
            longer.extend_from_slice(tail);
            assert_eq!(parse_thresholds(&longer, units), result, "with {tail:?}");
        }
    }
    let Ok(thresholds) = result else {
        return;
    };
    let again = canonical(&thresholds);
    if again.len() <= WRITE_MAX {
        let parsed = parse_thresholds(again.as_bytes(), units);
        // Every key of `again` is explicit, so only `hysteresis 0` can differ from a missing one.
        assert_eq!(parsed, Ok(thresholds), "{again:?}");
    }
});

//! The threshold write parser.

use memnotify_proto::{parse_thresholds, Figure, ParseError, Thresholds, Units, WRITE_MAX};
use proptest::prelude::*;

/// 1 GiB of 4 KiB pages.
const UNITS_4K: Units = Units {
    page_shift: 12,
    total_pages: 262_144,
};

/// 1 GiB of 64 KiB pages.
const UNITS_64K: Units = Units {
    page_shift: 16,
    total_pages: 16_384,
};

fn parse(text: &str) -> Result<Thresholds, ParseError> {
    parse_thresholds(text.as_bytes(), UNITS_4K)
}

/// The threshold on `figure` after parsing `text`, 0 when disabled.
fn value_of(text: &str, figure: Figure, units: Units) -> u64 {
    let thresholds = parse_thresholds(text.as_bytes(), units).expect(text);
    thresholds.values[figure.index()]
}

fn only(figure: Figure, value: u64) -> Thresholds {
    let mut thresholds = Thresholds::default();
    thresholds.values[figure.index()] = value;
    thresholds
}

#[test]
fn documented_examples() {
    assert_eq!(parse("used 5000"), Ok(only(Figure::Used, 5000)));

    let mut expected = only(Figure::Used, 16_000);
    expected.values[Figure::Active.index()] = 8000;
    assert_eq!(parse("active 8000 used 16000"), Ok(expected));

    // 10% of 262144 pages is 26214.4 pages; 4 MiB is 1024 pages of 4 KiB.
    let mut expected = only(Figure::Available, 26_214);
    expected.hysteresis = 1024;
    assert_eq!(parse("available 10% hysteresis 4M"), Ok(expected));

    // With 64 KiB pages 4 MiB is 64 pages and 10% of 16384 pages is 1638.4.
    let mut expected = only(Figure::Available, 1638);
    expected.hysteresis = 64;
    assert_eq!(
        parse_thresholds(b"available 10% hysteresis 4M", UNITS_64K),
        Ok(expected)
    );
}

#[test]
fn every_figure_is_a_key() {
    for figure in Figure::ALL {
        let text = format!("{} 42", figure.name());
        assert_eq!(parse(&text), Ok(only(figure, 42)), "{text}");
    }
    let all = "used 1 active 2 total 3 free 4 available 5 swap_total 6 swap_free 7 hysteresis 8";
    let parsed = parse(all).unwrap();
    assert_eq!(parsed.values, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(parsed.hysteresis, 8);
}

#[test]
fn plain_values_are_pages() {
    assert_eq!(value_of("free 123", Figure::Free, UNITS_4K), 123);
    assert_eq!(value_of("free 123", Figure::Free, UNITS_64K), 123);
    assert_eq!(value_of("free 007", Figure::Free, UNITS_4K), 7);
}

#[test]
fn hex_values() {
    assert_eq!(value_of("used 0x10", Figure::Used, UNITS_4K), 16);
    assert_eq!(value_of("used 0X1f", Figure::Used, UNITS_4K), 31);
    assert_eq!(value_of("used 0xABCdef", Figure::Used, UNITS_4K), 0xab_cdef);
    assert_eq!(
        value_of("used 0xffffffffffffffff", Figure::Used, UNITS_4K),
        u64::MAX
    );
    assert_eq!(parse("used 0x"), Err(ParseError::BadNumber));
    assert_eq!(parse("used 0xg"), Err(ParseError::BadNumber));
    assert_eq!(parse("used 0x-1"), Err(ParseError::BadNumber));
    // Hex digits are only valid after 0x.
    assert_eq!(parse("used 1f"), Err(ParseError::BadNumber));
    assert_eq!(parse("used 12a"), Err(ParseError::BadNumber));
}

#[test]
fn byte_suffixes_round_up_to_4k_pages() {
    let pages = |value: &str| value_of(&format!("used {value}"), Figure::Used, UNITS_4K);
    assert_eq!(pages("0K"), 0);
    assert_eq!(pages("1K"), 1);
    assert_eq!(pages("4K"), 1);
    assert_eq!(pages("5K"), 2);
    assert_eq!(pages("8K"), 2);
    assert_eq!(pages("1M"), 256);
    assert_eq!(pages("4M"), 1024);
    assert_eq!(pages("1G"), 262_144);
    assert_eq!(pages("3G"), 786_432);
    assert_eq!(pages("0x10K"), 4);
}

#[test]
fn byte_suffixes_round_up_to_64k_pages() {
    let pages = |value: &str| value_of(&format!("used {value}"), Figure::Used, UNITS_64K);
    assert_eq!(pages("1K"), 1);
    assert_eq!(pages("64K"), 1);
    assert_eq!(pages("65K"), 2);
    assert_eq!(pages("128K"), 2);
    assert_eq!(pages("1M"), 16);
    assert_eq!(pages("1G"), 16_384);
}

#[test]
fn percentages_of_total() {
    let pages = |value: &str| value_of(&format!("available {value}"), Figure::Available, UNITS_4K);
    assert_eq!(pages("0%"), 0);
    assert_eq!(pages("1%"), 2621);
    assert_eq!(pages("50%"), 131_072);
    assert_eq!(pages("100%"), 262_144);
    assert_eq!(parse("available 101%"), Err(ParseError::Overflow));
    assert_eq!(parse("available 1000%"), Err(ParseError::Overflow));
    assert_eq!(parse("available %"), Err(ParseError::BadNumber));
    assert_eq!(
        parse("available 0x64%"),
        Ok(only(Figure::Available, 262_144))
    );

    let odd = Units {
        page_shift: 12,
        total_pages: 1001,
    };
    assert_eq!(value_of("available 10%", Figure::Available, odd), 100);
    assert_eq!(value_of("available 100%", Figure::Available, odd), 1001);
}

#[test]
fn a_nonzero_percentage_never_disables_the_threshold() {
    // 1% of 50 pages rounds down to 0 pages, which would silently disarm it.
    let tiny = Units {
        page_shift: 12,
        total_pages: 50,
    };
    assert_eq!(value_of("available 1%", Figure::Available, tiny), 1);
    assert_eq!(value_of("available 0%", Figure::Available, tiny), 0);
    assert_eq!(value_of("available 2%", Figure::Available, tiny), 1);
    assert_eq!(value_of("available 4%", Figure::Available, tiny), 2);
}

#[test]
fn percentages_of_huge_totals_are_exact() {
    let huge = Units {
        page_shift: 12,
        total_pages: u64::MAX,
    };
    assert_eq!(value_of("used 100%", Figure::Used, huge), u64::MAX);
    assert_eq!(
        value_of("used 99%", Figure::Used, huge),
        (u128::from(u64::MAX) * 99 / 100) as u64
    );
}

#[test]
fn zero_disables() {
    let parsed = parse("used 0").unwrap();
    assert_eq!(parsed.get(Figure::Used), None);
    assert!(!parsed.any());

    let parsed = parse("used 0 free 10").unwrap();
    assert_eq!(parsed.get(Figure::Used), None);
    assert_eq!(parsed.get(Figure::Free), Some(10));
    assert!(parsed.any());
}

#[test]
fn hysteresis_key() {
    let parsed = parse("used 100 hysteresis 5").unwrap();
    assert_eq!(parsed.get(Figure::Used), Some(100));
    assert_eq!(parsed.hysteresis, 5);

    assert_eq!(parse("hysteresis 1M used 100").unwrap().hysteresis, 256);
    assert_eq!(parse("hysteresis 1% used 100").unwrap().hysteresis, 2621);

    // Hysteresis alone is a valid write: it arms nothing.
    let parsed = parse("hysteresis 5").unwrap();
    assert!(!parsed.any());
    assert_eq!(parsed.hysteresis, 5);
}

#[test]
fn duplicate_keys() {
    assert_eq!(parse("used 1 used 2"), Err(ParseError::DuplicateKey));
    assert_eq!(parse("used 1 free 3 used 1"), Err(ParseError::DuplicateKey));
    assert_eq!(
        parse("hysteresis 1 used 5 hysteresis 2"),
        Err(ParseError::DuplicateKey)
    );
    // Zero still counts as given.
    assert_eq!(parse("used 0 used 0"), Err(ParseError::DuplicateKey));
}

#[test]
fn unknown_keys() {
    for text in [
        "foo 1",
        "Used 1",
        "USED 1",
        "seq 1",
        "level 1",
        "used 1 swap 2",
        "5 used",
    ] {
        assert_eq!(parse(text), Err(ParseError::UnknownKey), "{text}");
    }
}

#[test]
fn missing_values() {
    assert_eq!(parse("used"), Err(ParseError::MissingValue));
    assert_eq!(parse("used 1 free"), Err(ParseError::MissingValue));
    assert_eq!(parse("hysteresis\n"), Err(ParseError::MissingValue));
    // A key where the value should be is a bad number, not a missing value.
    assert_eq!(parse("used free 1"), Err(ParseError::BadNumber));
}

#[test]
fn empty_writes() {
    for text in ["", " ", "\n", " \t\r\n ", "\0", "\0\0\0", " \n\0\0"] {
        assert_eq!(parse(text), Err(ParseError::Empty), "{text:?}");
    }
    assert_eq!(parse(&" ".repeat(WRITE_MAX)), Err(ParseError::Empty));
}

#[test]
fn length_limit() {
    assert_eq!(WRITE_MAX, 256);
    let padded = |len: usize| {
        let mut text = String::from("used 5");
        text.push_str(&" ".repeat(len - text.len()));
        text
    };
    assert_eq!(parse(&padded(256)), Ok(only(Figure::Used, 5)));
    assert_eq!(parse(&padded(257)), Err(ParseError::TooLong));

    // Exactly 256 bytes of real content.
    let exact = format!("used {}5", "0".repeat(250));
    assert_eq!(exact.len(), 256);
    assert_eq!(parse(&exact), Ok(only(Figure::Used, 5)));

    // Trailing NULs count towards the limit.
    let mut nuls = b"used 5".to_vec();
    nuls.resize(257, 0);
    assert_eq!(parse_thresholds(&nuls, UNITS_4K), Err(ParseError::TooLong));
    nuls.truncate(256);
    assert_eq!(parse_thresholds(&nuls, UNITS_4K), Ok(only(Figure::Used, 5)));
}

#[test]
fn trailing_newline_and_nuls_are_accepted() {
    for text in [
        "used 5\n",
        "used 5\0",
        "used 5\n\0",
        "used 5 \n\0\0\0",
        "  used\t5\r\n",
    ] {
        assert_eq!(parse(text), Ok(only(Figure::Used, 5)), "{text:?}");
    }
    assert_eq!(
        parse("used 5\nfree 6\n"),
        Ok(Thresholds {
            values: [5, 0, 0, 6, 0, 0, 0],
            hysteresis: 0
        })
    );
}

#[test]
fn bad_bytes() {
    for text in [
        "used\x005",
        "used 5\0 free 6",
        "\0used 5",
        "used 5\x01",
        "used\x0b5",
        "used 5\x7f",
    ] {
        assert_eq!(parse(text), Err(ParseError::BadByte), "{text:?}");
    }
    assert_eq!(
        parse_thresholds(b"used 5\xff", UNITS_4K),
        Err(ParseError::BadByte)
    );
    assert_eq!(
        parse_thresholds("used 5é".as_bytes(), UNITS_4K),
        Err(ParseError::BadByte)
    );
}

#[test]
fn huge_numbers_overflow() {
    assert_eq!(
        value_of("used 18446744073709551615", Figure::Used, UNITS_4K),
        u64::MAX
    );
    for text in [
        "used 18446744073709551616",
        "used 99999999999999999999999999",
        "used 0x10000000000000000",
        "used 17179869184G",
        "used 17592186044416M",
        "used 18014398509481984K",
        "used 18446744073709551615K",
        "used 18446744073709551616%",
        "used 101%",
    ] {
        assert_eq!(parse(text), Err(ParseError::Overflow), "{text}");
    }
}

#[test]
fn the_largest_byte_values_still_fit() {
    // (2^34 - 1) GiB and (2^54 - 1) KiB are just under 2^64 bytes.
    assert_eq!(
        value_of("used 17179869183G", Figure::Used, UNITS_4K),
        ((1u64 << 34) - 1) << 18
    );
    assert_eq!(
        value_of("used 18014398509481983K", Figure::Used, UNITS_4K),
        1 << 52
    );
    assert_eq!(
        value_of("used 18014398509481983K", Figure::Used, UNITS_64K),
        1 << 48
    );
}

#[test]
fn negative_and_signed_numbers_are_bad() {
    for text in [
        "used -5", "used -0", "used +5", "used -5K", "used -5%", "used 5.0", "used 1e3",
    ] {
        assert_eq!(parse(text), Err(ParseError::BadNumber), "{text}");
    }
}

#[test]
fn odd_page_shifts_do_not_panic() {
    for page_shift in [0, 1, 30, 63, 64, 65, u32::MAX] {
        let units = Units {
            page_shift,
            total_pages: 1000,
        };
        let _ = parse_thresholds(b"used 1K free 1G hysteresis 5M", units);
        let _ = parse_thresholds(b"used 17179869183G", units);
    }
    let bytes = Units {
        page_shift: 0,
        total_pages: 1000,
    };
    assert_eq!(value_of("used 1K", Figure::Used, bytes), 1024);
}

#[test]
fn errors_explain_themselves() {
    for error in [
        ParseError::Empty,
        ParseError::TooLong,
        ParseError::UnknownKey,
        ParseError::MissingValue,
        ParseError::BadNumber,
        ParseError::Overflow,
        ParseError::DuplicateKey,
        ParseError::BadByte,
    ] {
        assert!(!error.as_str().is_empty());
    }
    assert_eq!(ParseError::TooLong.as_str(), "write longer than 256 bytes");
}

#[test]
fn thresholds_accessors() {
    let thresholds = only(Figure::SwapFree, 9);
    assert_eq!(thresholds.get(Figure::SwapFree), Some(9));
    assert_eq!(thresholds.get(Figure::Used), None);
    assert!(thresholds.any());
    assert!(!Thresholds::default().any());
}

// --- A reference parser written independently, on `std` and `u128`. ---

fn model(input: &[u8], units: Units) -> Result<Thresholds, ParseError> {
    if input.len() > 256 {
        return Err(ParseError::TooLong);
    }
    let text: &[u8] = {
        let keep = input
            .iter()
            .rposition(|&b| b != 0 && !b.is_ascii_whitespace())
            .map_or(0, |last| last + 1);
        &input[..keep]
    };
    if text
        .iter()
        .any(|&b| !(b.is_ascii_whitespace() || (b'!'..=b'~').contains(&b)))
    {
        return Err(ParseError::BadByte);
    }
    let text = std::str::from_utf8(text).expect("ASCII");
    let tokens: Vec<&str> = text.split_ascii_whitespace().collect();
    if tokens.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut result = Thresholds::default();
    let mut given = std::collections::HashSet::new();
    for pair in tokens.chunks(2) {
        let key = pair[0];
        if key != "hysteresis" && Figure::ALL.iter().all(|f| f.name() != key) {
            return Err(ParseError::UnknownKey);
        }
        let value = model_value(pair.get(1).ok_or(ParseError::MissingValue)?, units)?;
        if !given.insert(key) {
            return Err(ParseError::DuplicateKey);
        }
        match Figure::ALL.iter().find(|f| f.name() == key) {
            Some(figure) => result.values[figure.index()] = value,
            None => result.hysteresis = value,
        }
    }
    Ok(result)
}

fn model_value(token: &str, units: Units) -> Result<u64, ParseError> {
    let (number, suffix) = match token.char_indices().last() {
        Some((at, unit @ ('K' | 'k' | 'M' | 'm' | 'G' | 'g' | '%'))) => (&token[..at], Some(unit)),
        _ => (token, None),
    };
    let (digits, radix) = match number.get(..2) {
        Some("0x" | "0X") => (&number[2..], 16),
        _ => (number, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(ParseError::BadNumber);
    }
    // Digits only, so the only possible error is a value too large for u128.
    let number = u128::from_str_radix(digits, radix).unwrap_or(u128::MAX);
    let number = u64::try_from(number).map_err(|_| ParseError::Overflow)?;
    let pages: u128 = match suffix {
        None => u128::from(number),
        Some('%') => {
            if number > 100 {
                return Err(ParseError::Overflow);
            }
            let share = u128::from(units.total_pages) * u128::from(number) / 100;
            if number > 0 && units.total_pages > 0 {
                share.max(1)
            } else {
                share
            }
        }
        Some(unit) => {
            let shift = match unit {
                'K' | 'k' => 10,
                'M' | 'm' => 20,
                _ => 30,
            };
            let bytes = u128::from(number) << shift;
            if bytes > u128::from(u64::MAX) {
                return Err(ParseError::Overflow);
            }
            let page = 1u128 << units.page_shift;
            bytes.div_ceil(page)
        }
    };
    u64::try_from(pages).map_err(|_| ParseError::Overflow)
}

fn key_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "used", "active", "total", "free", "available", "swap_total", "swap_free", "hysteresis",
        ])
        .prop_map(String::from),
        1 => "[a-z_]{1,12}",
    ]
}

fn value_strategy() -> impl Strategy<Value = String> {
    let suffix = prop::sample::select(vec!["", "", "K", "M", "G", "k", "m", "g", "%"]);
    let number = prop_oneof![
        (0u64..200).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!("0x{n:x}")),
        (0u64..200).prop_map(|n| format!("0X{n:X}")),
        "[0-9]{18,22}",
        "-?[0-9a-fx+]{0,4}",
    ];
    prop_oneof![
        9 => (number, suffix).prop_map(|(number, suffix)| format!("{number}{suffix}")),
        1 => "[ -~]{0,6}",
    ]
}

fn write_strategy() -> impl Strategy<Value = Vec<u8>> {
    let pair = (key_strategy(), value_strategy(), prop::bool::weighted(0.05));
    let separator = prop::sample::select(vec![" ", "  ", "\t", "\n", " \n"]);
    (
        prop::collection::vec((pair, separator), 0..6),
        prop::sample::select(vec!["", "\n", "\0", "\n\0\0", " ", "\0x"]),
    )
        .prop_map(|(pairs, tail)| {
            let mut text = String::new();
            for ((key, value, drop_value), separator) in pairs {
                text.push_str(&key);
                if !drop_value {
                    text.push(' ');
                    text.push_str(&value);
                }
                text.push_str(separator);
            }
            text.push_str(tail);
            text.into_bytes()
        })
}

fn units_strategy() -> impl Strategy<Value = Units> {
    (
        prop::sample::select(vec![12u32, 14, 16]),
        prop_oneof![0u64..1000, 1000u64..(1 << 40), any::<u64>()],
    )
        .prop_map(|(page_shift, total_pages)| Units {
            page_shift,
            total_pages,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic_and_match_the_model(
        input in prop::collection::vec(any::<u8>(), 0..300),
        units in units_strategy(),
    ) {
        prop_assert_eq!(parse_thresholds(&input, units), model(&input, units));
    }

    #[test]
    fn arbitrary_units_never_panic(
        input in write_strategy(),
        page_shift in any::<u32>(),
        total_pages in any::<u64>(),
    ) {
        let _ = parse_thresholds(&input, Units { page_shift, total_pages });
    }

    #[test]
    fn well_formed_writes_match_the_model(input in write_strategy(), units in units_strategy()) {
        prop_assert_eq!(parse_thresholds(&input, units), model(&input, units));
    }

    #[test]
    fn accepted_writes_hold_what_was_written(
        values in prop::collection::vec(prop::option::of(0u64..1_000_000), 7),
        hysteresis in prop::option::of(0u64..1_000_000),
    ) {
        let mut text = String::new();
        for (figure, value) in Figure::ALL.iter().zip(&values) {
            if let Some(value) = value {
                text.push_str(&format!("{} {} ", figure.name(), value));
            }
        }
        if let Some(hysteresis) = hysteresis {
            text.push_str(&format!("hysteresis {hysteresis}"));
        }
        let parsed = parse_thresholds(text.as_bytes(), UNITS_4K);
        if values.iter().all(Option::is_none) && hysteresis.is_none() {
            prop_assert_eq!(parsed, Err(ParseError::Empty));
        } else {
            let parsed = parsed.unwrap();
            for (figure, value) in Figure::ALL.iter().zip(&values) {
                prop_assert_eq!(parsed.values[figure.index()], value.unwrap_or(0));
            }
            prop_assert_eq!(parsed.hysteresis, hysteresis.unwrap_or(0));
        }
    }
}

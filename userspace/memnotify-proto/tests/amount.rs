//! The one amount type: parse, format and conversions.

use std::cmp::Ordering;

use memnotify_proto::{parse_value, Amount, ByteUnit, ParseError, Units, AMOUNT_TEXT_MAX};
use proptest::prelude::*;

fn parse(text: &str) -> Result<Amount, ParseError> {
    Amount::parse(text.as_bytes())
}

fn unit() -> impl Strategy<Value = ByteUnit> {
    prop::sample::select(ByteUnit::ALL.to_vec())
}

/// Every amount [`Amount::parse`] can return.
fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        any::<u64>().prop_map(Amount::Pages),
        (unit(), any::<u64>()).prop_map(|(unit, count)| Amount::Bytes(count >> unit.shift(), unit)),
        (0u8..=100).prop_map(Amount::Percent),
    ]
}

fn units() -> impl Strategy<Value = Units> {
    (10u32..=16, any::<u64>()).prop_map(|(page_shift, total_pages)| Units {
        page_shift,
        total_pages,
    })
}

#[test]
fn the_documented_forms() {
    assert_eq!(parse("5000"), Ok(Amount::Pages(5000)));
    assert_eq!(parse("0x100"), Ok(Amount::Pages(256)));
    assert_eq!(parse("64M"), Ok(Amount::Bytes(64, ByteUnit::Mib)));
    assert_eq!(parse("4k"), Ok(Amount::Bytes(4, ByteUnit::Kib)));
    assert_eq!(parse("1g"), Ok(Amount::Bytes(1, ByteUnit::Gib)));
    assert_eq!(parse("10%"), Ok(Amount::Percent(10)));
    assert_eq!(Amount::Bytes(64, ByteUnit::Mib).to_string(), "64M");
    assert_eq!(Amount::Percent(7).to_string(), "7%");
    assert_eq!(Amount::Pages(u64::MAX).to_string(), "18446744073709551615");
}

#[test]
fn rejections() {
    for (text, error) in [
        ("", ParseError::BadNumber),
        ("%", ParseError::BadNumber),
        ("M", ParseError::BadNumber),
        ("0x", ParseError::BadNumber),
        ("1f", ParseError::BadNumber),
        (" 1", ParseError::BadNumber),
        ("1.5M", ParseError::BadNumber),
        ("-1", ParseError::BadNumber),
        ("101%", ParseError::Overflow),
        ("256%", ParseError::Overflow),
        ("18446744073709551616", ParseError::Overflow),
        ("17179869184G", ParseError::Overflow),
    ] {
        assert_eq!(parse(text), Err(error), "{text:?}");
    }
    // The largest byte counts that still fit.
    assert_eq!(
        parse("17179869183G").unwrap().bytes(12),
        Some(u64::MAX - ((1 << 30) - 1))
    );
}

#[test]
fn conversions_on_a_small_machine() {
    let units = Units {
        page_shift: 12,
        total_pages: 65536,
    };
    assert_eq!(parse("10%").unwrap().pages(units), 6553);
    assert_eq!(parse("64M").unwrap().pages(units), 16384);
    assert_eq!(parse("1K").unwrap().pages(units), 1, "rounded up");
    assert_eq!(parse("0%").unwrap().pages(units), 0);
    let tiny = Units {
        page_shift: 12,
        total_pages: 10,
    };
    assert_eq!(parse("1%").unwrap().pages(tiny), 1, "never rounded to 0");
    assert_eq!(Amount::Percent(5).bytes(12), None);
    assert_eq!(Amount::Pages(3).bytes(16), Some(3 << 16));
}

#[test]
fn same_kind_comparison() {
    let cmp = |a: &str, b: &str| parse(a).unwrap().cmp_same_kind(parse(b).unwrap());
    assert_eq!(cmp("1G", "1024M"), Some(Ordering::Equal));
    assert_eq!(cmp("1M", "1023K"), Some(Ordering::Greater));
    assert_eq!(cmp("5%", "10%"), Some(Ordering::Less));
    assert_eq!(cmp("100", "0x64"), Some(Ordering::Equal));
    assert_eq!(cmp("100", "1M"), None);
    assert_eq!(cmp("10%", "1M"), None);
}

proptest! {
    #[test]
    fn format_parses_back(amount in amount()) {
        let mut buf = [0u8; AMOUNT_TEXT_MAX];
        let len = amount.format(&mut buf);
        prop_assert_eq!(Amount::parse(&buf[..len]), Ok(amount));
        prop_assert_eq!(amount.to_string().into_bytes(), buf[..len].to_vec());
    }

    #[test]
    fn parse_is_stable_through_format(text in "(0x)?[0-9a-fA-F]{1,18}[kKmMgG%]?") {
        if let Ok(amount) = parse(&text) {
            prop_assert_eq!(parse(&amount.to_string()), Ok(amount));
        }
    }

    #[test]
    fn pages_stay_pages(pages in any::<u64>(), units in units()) {
        prop_assert_eq!(Amount::Pages(pages).pages(units), pages);
    }

    #[test]
    fn bytes_round_up_to_pages(amount in amount(), units in units()) {
        if let Amount::Bytes(count, unit) = amount {
            let bytes = u128::from(count) << unit.shift();
            let page = 1u128 << units.page_shift;
            let expected = bytes.div_ceil(page);
            prop_assert_eq!(u128::from(amount.pages(units)), expected);
            prop_assert_eq!(amount.bytes(units.page_shift).map(u128::from), Some(bytes));
        }
    }

    #[test]
    fn percent_is_a_share_of_ram(percent in 0u8..=100, units in units()) {
        let exact = u128::from(units.total_pages) * u128::from(percent) / 100;
        let expected = if exact == 0 && percent != 0 && units.total_pages != 0 { 1 } else { exact };
        prop_assert_eq!(u128::from(Amount::Percent(percent).pages(units)), expected);
    }

    #[test]
    fn same_kind_order_agrees_with_pages(a in amount(), b in amount(), units in units()) {
        if let Some(order) = a.cmp_same_kind(b) {
            let (pa, pb) = (a.pages(units), b.pages(units));
            match order {
                Ordering::Less => prop_assert!(pa <= pb),
                Ordering::Equal => prop_assert_eq!(pa, pb),
                Ordering::Greater => prop_assert!(pa >= pb),
            }
        }
    }

    #[test]
    fn the_device_parser_resolves_amounts(amount in amount(), units in units()) {
        let text = amount.to_string();
        prop_assert_eq!(parse_value(text.as_bytes(), units), Ok(amount.pages(units)));
    }
}

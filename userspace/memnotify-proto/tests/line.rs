//! The read line: format, parse, and the two together.

use memnotify_proto::{
    format_line, parse_line, Figure, Figures, LineError, LineWriter, Snapshot, LINE_BUF, LINE_MAX,
};
use proptest::prelude::*;

const PAGES_CLAMP: u64 = 999_999_999_999_999;

fn snapshot(values: [u64; 7], seq: u64, time_ns: u64, level: u8) -> Snapshot {
    Snapshot {
        figures: Figures { values },
        seq,
        time_ns,
        level,
    }
}

fn line_of(snapshot: &Snapshot) -> String {
    let mut buf = [0u8; LINE_BUF];
    let len = format_line(snapshot, &mut buf);
    assert!(len <= LINE_MAX, "{len} bytes");
    String::from_utf8(buf[..len].to_vec()).unwrap()
}

#[test]
fn known_snapshot_formats_exactly() {
    let known = snapshot([1000, 2000, 262_144, 3000, 50_000, 0, 0], 3, 123_456_789, 1);
    assert_eq!(
        line_of(&known),
        "used 1000 active 2000 total 262144 free 3000 available 50000 \
         swap_total 0 swap_free 0 seq 3 time 123456789 level 1\n"
    );
    let zeros = Snapshot::default();
    assert_eq!(
        line_of(&zeros),
        "used 0 active 0 total 0 free 0 available 0 swap_total 0 swap_free 0 seq 0 time 0 level 0\n"
    );
}

#[test]
fn fields_come_in_the_documented_order() {
    let line = line_of(&snapshot([11, 22, 33, 44, 55, 66, 77], 88, 99, 2));
    assert!(line.starts_with("used 11 active 22 total 33 "), "{line}");
    let keys: Vec<&str> = line.split_whitespace().step_by(2).collect();
    assert_eq!(
        keys,
        [
            "used",
            "active",
            "total",
            "free",
            "available",
            "swap_total",
            "swap_free",
            "seq",
            "time",
            "level"
        ]
    );
    assert!(line.ends_with('\n'));
    assert_eq!(line.matches('\n').count(), 1);
}

#[test]
fn largest_values_fit_the_line() {
    let huge = snapshot([u64::MAX; 7], u64::MAX, u64::MAX, u8::MAX);
    let line = line_of(&huge);
    assert!(line.len() <= LINE_MAX);
    assert!(line.ends_with('\n'));
    assert_eq!(
        line,
        "used 999999999999999 active 999999999999999 total 999999999999999 \
         free 999999999999999 available 999999999999999 swap_total 999999999999999 \
         swap_free 999999999999999 seq 18446744073709551615 \
         time 18446744073709551615 level 255\n"
    );
    let parsed = parse_line(line.as_bytes()).unwrap();
    assert_eq!(parsed.figures.values, [PAGES_CLAMP; 7]);
    assert_eq!(parsed.seq, u64::MAX);
    assert_eq!(parsed.time_ns, u64::MAX);
    assert_eq!(parsed.level, u8::MAX);
}

#[test]
fn page_counts_are_clamped_at_fifteen_digits() {
    let line = line_of(&snapshot(
        [PAGES_CLAMP, PAGES_CLAMP + 1, 0, 0, 0, 0, 0],
        0,
        0,
        0,
    ));
    assert!(line.starts_with("used 999999999999999 active 999999999999999 total 0 "));
}

#[test]
fn line_writer_writes_decimal_numbers() {
    let mut values = vec![0, 1, 9, 10, 11, 99, 100, 101, u64::MAX, u64::MAX - 1];
    let mut power = 1u64;
    while let Some(next) = power.checked_mul(10) {
        values.extend([next - 1, next, next + 1]);
        power = next;
    }
    for value in values {
        let mut buf = [0u8; 32];
        let mut writer = LineWriter::new(&mut buf);
        writer.push_u64(value);
        let len = writer.len();
        assert_eq!(&buf[..len], value.to_string().as_bytes());
    }
}

#[test]
fn line_writer_truncates_at_the_end_of_its_buffer() {
    let mut buf = [0u8; 8];
    let mut writer = LineWriter::new(&mut buf);
    assert!(writer.is_empty());
    writer.push_pair("used", 12);
    assert_eq!(writer.len(), 7);
    writer.push_pair("free", 34);
    assert_eq!(writer.len(), 8);
    writer.push_u64(u64::MAX);
    writer.push_str("more");
    assert_eq!(writer.len(), 8);
    assert!(!writer.is_empty());
    assert_eq!(&buf, b"used 12 ");

    let mut empty: [u8; 0] = [];
    let mut writer = LineWriter::new(&mut empty);
    writer.push_pair("used", 1);
    assert!(writer.is_empty());
}

#[test]
fn parse_line_round_trips_a_known_line() {
    let known = snapshot(
        [1000, 2000, 262_144, 3000, 50_000, 10, 5],
        3,
        123_456_789,
        2,
    );
    assert_eq!(parse_line(line_of(&known).as_bytes()), Ok(known));
}

#[test]
fn parse_line_skips_unknown_keys() {
    let parsed =
        parse_line(b"used 1 shmem 99 active 2 total 3 free 4 pressure 7 seq 5 new_thing 0\n")
            .unwrap();
    assert_eq!(parsed.figures.values, [1, 2, 3, 4, 0, 0, 0]);
    assert_eq!(parsed.seq, 5);
}

#[test]
fn parse_line_requires_used_active_total() {
    assert_eq!(parse_line(b""), Err(LineError::MissingFigure));
    assert_eq!(parse_line(b"\n"), Err(LineError::MissingFigure));
    assert_eq!(
        parse_line(b"active 2 total 3\n"),
        Err(LineError::MissingFigure)
    );
    assert_eq!(
        parse_line(b"used 1 total 3\n"),
        Err(LineError::MissingFigure)
    );
    assert_eq!(
        parse_line(b"used 1 active 2\n"),
        Err(LineError::MissingFigure)
    );
    assert_eq!(
        parse_line(b"free 1 available 2 swap_total 3 swap_free 4 seq 1 time 2 level 0\n"),
        Err(LineError::MissingFigure)
    );
}

#[test]
fn parse_line_accepts_the_old_three_field_format() {
    let parsed = parse_line(b"used 100 active 200 total 300\n").unwrap();
    assert_eq!(parsed, snapshot([100, 200, 300, 0, 0, 0, 0], 0, 0, 0));
    // Any order, without a newline, with the NULs of a zeroed read buffer after it.
    let parsed = parse_line(b"total 300 used 100 active 200\0\0\0\0").unwrap();
    assert_eq!(parsed.figures.get(Figure::Total), 300);
}

#[test]
fn parse_line_rejects_malformed_lines() {
    for line in [
        &b"used 1 active 2 total"[..],
        b"used x active 2 total 3",
        b"used -1 active 2 total 3",
        b"used 0x10 active 2 total 3",
        b"used 18446744073709551616 active 2 total 3",
        b"used 1 active 2 total 3 foo bar",
        b"used 1 active 2 total 3 seq",
    ] {
        assert_eq!(
            parse_line(line),
            Err(LineError::Malformed),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn parse_line_clamps_the_level() {
    let parsed = parse_line(b"used 1 active 2 total 3 level 300").unwrap();
    assert_eq!(parsed.level, 255);
}

fn snapshot_strategy() -> impl Strategy<Value = Snapshot> {
    let value = prop_oneof![
        0u64..1_000_000,
        any::<u64>(),
        Just(u64::MAX),
        Just(PAGES_CLAMP)
    ];
    (
        prop::array::uniform7(value),
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
    )
        .prop_map(|(values, seq, time_ns, level)| snapshot(values, seq, time_ns, level))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn format_then_parse_gives_the_clamped_snapshot(original in snapshot_strategy()) {
        let mut buf = [0u8; LINE_BUF];
        let len = format_line(&original, &mut buf);
        prop_assert!(len <= LINE_MAX);
        prop_assert_eq!(buf[len - 1], b'\n');
        prop_assert!(buf[..len - 1].iter().all(|&b| b == b' ' || b.is_ascii_alphanumeric() || b == b'_'));
        let mut expected = original;
        for value in &mut expected.figures.values {
            *value = (*value).min(PAGES_CLAMP);
        }
        prop_assert_eq!(parse_line(&buf[..len]), Ok(expected));
    }

    #[test]
    fn push_u64_writes_decimal(value in any::<u64>()) {
        let mut buf = [0u8; 20];
        let mut writer = LineWriter::new(&mut buf);
        writer.push_u64(value);
        let len = writer.len();
        let expected = value.to_string();
        prop_assert_eq!(&buf[..len], expected.as_bytes());
    }

    #[test]
    fn parse_line_never_panics(line in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_line(&line);
    }

    #[test]
    fn parse_line_never_panics_on_near_lines(
        words in prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec!["used", "active", "total", "free", "seq", "level", "x"])
                    .prop_map(String::from),
                "[0-9]{1,25}",
            ],
            0..24,
        )
    ) {
        let _ = parse_line(words.join(" ").as_bytes());
    }
}

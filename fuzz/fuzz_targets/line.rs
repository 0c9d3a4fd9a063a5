//! The read line: `format_line` of any snapshot fits `LINE_MAX`, is one line, and
//! `parse_line` gives the snapshot back (page counts clamped to 15 digits); `parse_line`
//! of any bytes never panics and what it accepts survives a format/parse round trip;
//! `LineWriter` never writes past a buffer of any size.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use memnotify_proto::{
    format_line, parse_line, Figure, Figures, LineWriter, Snapshot, FIGURE_COUNT, LINE_BUF,
    LINE_MAX,
};

/// `format_line` clamps page counts to 15 digits (line.rs: `PAGES_CLAMP`).
const PAGES_CLAMP: u64 = 999_999_999_999_999;

#[derive(Arbitrary, Debug)]
enum Piece<'a> {
    Bytes(&'a [u8]),
    Number(u64),
    Pair(&'a str, u64),
}

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Snapshot {
        values: [u64; FIGURE_COUNT],
        seq: u64,
        time_ns: u64,
        level: u8,
    },
    Bytes(&'a [u8]),
    Writer {
        size: u8,
        pieces: Vec<Piece<'a>>,
    },
}

fn clamped(mut snapshot: Snapshot) -> Snapshot {
    for figure in Figure::ALL {
        let value = snapshot.figures.get(figure);
        snapshot.figures.set(figure, value.min(PAGES_CLAMP));
    }
    snapshot
}

/// Formats `snapshot`, checks the line's shape and parses it back.
fn round_trip(snapshot: &Snapshot) -> Snapshot {
    let mut buf = [0u8; LINE_BUF];
    let len = format_line(snapshot, &mut buf);
    assert!(len <= LINE_MAX, "{len} bytes");
    let line = &buf[..len];
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(line.iter().filter(|&&byte| byte == b'\n').count(), 1);
    assert!(line.starts_with(b"used "));
    parse_line(line).expect("a formatted line parses")
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Snapshot {
        values,
        seq,
        time_ns,
        level,
    } => {
        let snapshot = Snapshot {
            figures: Figures { values },
            seq,
            time_ns,
            level,
        };
        assert_eq!(round_trip(&snapshot), clamped(snapshot));
    }
    Input::Bytes(bytes) => {
        if let Ok(snapshot) = parse_line(bytes) {
            assert_eq!(round_trip(&snapshot), clamped(snapshot));
        }
    }
    Input::Writer { size, pieces } => {
        let mut buf = vec![0u8; usize::from(size)];
        let mut writer = LineWriter::new(&mut buf);
        let mut before = 0;
        for piece in pieces {
            match piece {
                Piece::Bytes(bytes) => writer.push_bytes(bytes),
                Piece::Number(number) => writer.push_u64(number),
                Piece::Pair(key, value) => writer.push_pair(key, value),
            }
            assert!(writer.len() >= before && writer.len() <= usize::from(size));
            before = writer.len();
        }
        assert_eq!(writer.is_empty(), before == 0);
    }
});

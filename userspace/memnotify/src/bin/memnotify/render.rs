//! What the CLI prints (pure: values in, text out).

use memnotify::format::{pages_to_mib, utc_timestamp};
use memnotify::{Crossing, Figure, Level, Snapshot};
use serde_json::{json, Map, Value};

pub fn level_name(level: u8) -> &'static str {
    match level {
        0 => Level::Normal.name(),
        1 => Level::Low.name(),
        _ => Level::Critical.name(),
    }
}

/// The `status` table.
pub fn status_table(backend: &str, snapshot: &Snapshot, page_shift: u32) -> String {
    let mut text = format!(
        "backend    {backend}\npage size  {} bytes\n{:<11}{:>14}{:>12}\n",
        1u64 << page_shift,
        "figure",
        "pages",
        "MiB"
    );
    for figure in Figure::ALL {
        let pages = snapshot.figures.get(figure);
        text.push_str(&format!(
            "{:<11}{:>14}{:>12.1}\n",
            figure.name(),
            pages,
            pages_to_mib(pages, page_shift)
        ));
    }
    text.push_str(&format!("level      {}\n", level_name(snapshot.level)));
    text
}

/// The `status --json` object.
pub fn status_json(backend: &str, snapshot: &Snapshot, page_shift: u32) -> Value {
    let mut object = Map::new();
    object.insert("backend".into(), json!(backend));
    object.insert("page_size".into(), json!(1u64 << page_shift));
    for figure in Figure::ALL {
        object.insert(figure.name().into(), json!(snapshot.figures.get(figure)));
    }
    object.insert("level".into(), json!(level_name(snapshot.level)));
    object.insert("time_ns".into(), json!(snapshot.time_ns));
    Value::Object(object)
}

/// One `watch` line.
pub fn crossing_line(unix_ms: u64, crossing: &Crossing, page_shift: u32) -> String {
    format!(
        "{} {} {} {} pages ({:.1} MiB), threshold {}",
        utc_timestamp(unix_ms),
        crossing.figure.name(),
        crossing.direction,
        crossing.value,
        pages_to_mib(crossing.value, page_shift),
        crossing.threshold
    )
}

/// One `watch --json` line.
pub fn crossing_json(unix_ms: u64, snapshot: &Snapshot, crossing: &Crossing) -> Value {
    json!({
        "time": utc_timestamp(unix_ms),
        "time_ns": snapshot.time_ns,
        "figure": crossing.figure.name(),
        "direction": crossing.direction.name(),
        "value": crossing.value,
        "threshold": crossing.threshold,
        "seq": snapshot.seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use memnotify::Direction;

    fn snapshot() -> Snapshot {
        let mut snapshot = Snapshot::default();
        for (index, figure) in Figure::ALL.into_iter().enumerate() {
            snapshot.figures.set(figure, 256 * (index as u64 + 1));
        }
        snapshot.level = 1;
        snapshot
    }

    #[test]
    fn table_has_pages_and_mib() {
        let table = status_table("device", &snapshot(), 12);
        assert!(
            table.contains("used                  256         1.0\n"),
            "{table}"
        );
        assert!(
            table.contains("swap_free            1792         7.0\n"),
            "{table}"
        );
        assert!(table.ends_with("level      low\n"));
    }

    #[test]
    fn json_has_every_figure() {
        let value = status_json("psi", &snapshot(), 12);
        assert_eq!(value["available"], 1280);
        assert_eq!(value["page_size"], 4096);
        assert_eq!(value["level"], "low");
        assert_eq!(value["backend"], "psi");
    }

    #[test]
    fn crossing_lines() {
        let crossing = Crossing {
            figure: Figure::Used,
            direction: Direction::Up,
            value: 512,
            threshold: 500,
        };
        assert_eq!(
            crossing_line(0, &crossing, 12),
            "1970-01-01T00:00:00.000Z used up 512 pages (2.0 MiB), threshold 500"
        );
        let value = crossing_json(0, &snapshot(), &crossing);
        assert_eq!(value["direction"], "up");
        assert_eq!(value["figure"], "used");
        assert_eq!(value["threshold"], 500);
    }
}

//! The JSON lines published on the socket, formatted into a fixed buffer
//! (no allocation when a level changes).
//!
//! Level names are restricted to `[a-z0-9_-]` by the configuration, so nothing
//! here needs escaping.

use memnotify_proto::{Figure, Figures, LineWriter};

/// Room for the longest line (all figures at 20 digits, 32-byte names).
pub const JSON_BUF: usize = 512;

/// What one line says.
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    /// `change` (published on a level change) or `state` (the answer to `query`).
    pub event: &'static str,
    /// The level now.
    pub level: &'a str,
    /// The level before the last change.
    pub previous: &'a str,
    /// The level's index: 0 normal, then the configured levels in order.
    pub severity: usize,
    /// Monotonic time of the sample, in nanoseconds.
    pub time_ns: u64,
    /// The figures of that sample, in pages.
    pub figures: &'a Figures,
    /// Bytes per page.
    pub page_size: u64,
    /// `device` or `psi`.
    pub backend: &'static str,
    /// Whether actions are only logged.
    pub dry_run: bool,
}

fn string(writer: &mut LineWriter<'_>, key: &str, value: &str) {
    writer.push_str(",\"");
    writer.push_str(key);
    writer.push_str("\":\"");
    writer.push_str(value);
    writer.push_str("\"");
}

fn number(writer: &mut LineWriter<'_>, key: &str, value: u64) {
    writer.push_str(",\"");
    writer.push_str(key);
    writer.push_str("\":");
    writer.push_u64(value);
}

/// Formats `report` as one JSON object and a newline; returns the length.
pub fn format(report: &Report<'_>, buf: &mut [u8; JSON_BUF]) -> usize {
    let mut writer = LineWriter::new(&mut buf[..]);
    writer.push_str("{\"event\":\"");
    writer.push_str(report.event);
    writer.push_str("\"");
    string(&mut writer, "level", report.level);
    string(&mut writer, "previous", report.previous);
    number(&mut writer, "severity", report.severity as u64);
    number(&mut writer, "time_ns", report.time_ns);
    for figure in Figure::ALL {
        number(&mut writer, figure.name(), report.figures.get(figure));
    }
    number(&mut writer, "page_size", report.page_size);
    string(&mut writer, "backend", report.backend);
    writer.push_str(",\"dry_run\":");
    writer.push_str(if report.dry_run { "true" } else { "false" });
    writer.push_str("}\n");
    writer.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(report: &Report<'_>) -> serde_json::Value {
        let mut buf = [0u8; JSON_BUF];
        let len = format(report, &mut buf);
        assert_eq!(buf[len - 1], b'\n');
        assert!(!buf[..len - 1].contains(&b'\n'));
        serde_json::from_slice(&buf[..len - 1]).expect("valid JSON")
    }

    #[test]
    fn a_change_line() {
        let mut figures = Figures::default();
        figures.set(Figure::Available, 1234);
        figures.set(Figure::Total, 65536);
        let value = parse(&Report {
            event: "change",
            level: "critical",
            previous: "warning",
            severity: 2,
            time_ns: 99,
            figures: &figures,
            page_size: 4096,
            backend: "device",
            dry_run: true,
        });
        assert_eq!(value["event"], "change");
        assert_eq!(value["level"], "critical");
        assert_eq!(value["previous"], "warning");
        assert_eq!(value["severity"], 2);
        assert_eq!(value["available"], 1234);
        assert_eq!(value["total"], 65536);
        assert_eq!(value["swap_free"], 0);
        assert_eq!(value["dry_run"], true);
    }

    proptest! {
        #[test]
        fn always_one_valid_line(
            values in proptest::array::uniform7(any::<u64>()),
            time_ns in any::<u64>(),
            level in "[a-z0-9_-]{1,32}",
            previous in "[a-z0-9_-]{1,32}",
        ) {
            let figures = Figures { values };
            let value = parse(&Report {
                event: "state",
                level: &level,
                previous: &previous,
                severity: 7,
                time_ns,
                figures: &figures,
                page_size: 65536,
                backend: "psi",
                dry_run: false,
            });
            prop_assert_eq!(value["level"].as_str(), Some(level.as_str()));
            prop_assert_eq!(value["time_ns"].as_u64(), Some(time_ns));
            prop_assert_eq!(value["used"].as_u64(), Some(values[0]));
            prop_assert_eq!(value["swap_free"].as_u64(), Some(values[6]));
        }
    }
}

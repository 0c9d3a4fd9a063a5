//! Small formatting helpers shared by the tools.

use memnotify_proto::Figure;

/// `pages` in MiB given `log2(PAGE_SIZE)`.
pub fn pages_to_mib(pages: u64, page_shift: u32) -> f64 {
    (pages as f64) * f64::from(1u32 << page_shift.min(31)) / (1024.0 * 1024.0)
}

/// A wall-clock time as ISO 8601 UTC with milliseconds, e.g. `2026-01-02T03:04:05.678Z`.
///
/// Done by hand: the static binaries must not depend on the C library's time zone machinery.
pub fn utc_timestamp(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The figures in the order `status` shows them.
pub const STATUS_ORDER: [Figure; 7] = Figure::ALL;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_timestamp(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc_timestamp(1_767_323_045_678), "2026-01-02T03:04:05.678Z");
    }

    #[test]
    fn mib() {
        assert_eq!(pages_to_mib(256, 12), 1.0);
        assert_eq!(pages_to_mib(16, 16), 1.0);
    }
}

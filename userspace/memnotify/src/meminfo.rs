//! `/proc/meminfo` to the module's counters, so both backends report the same figures.

use memnotify_proto::{Counters, Figures};

use crate::error::Error;

/// Parses `/proc/meminfo` text into the module's counters, in pages.
///
/// `/proc/meminfo` shows pages shifted by `PAGE_SHIFT - 10`, so the conversion
/// back is exact. Its `Cached` is `NR_FILE_PAGES - SwapCached - Buffers`, hence
/// `file_pages = Cached + Buffers + SwapCached`. Swap lines are absent without
/// `CONFIG_SWAP` and count as 0.
pub fn parse(text: &[u8], page_shift: u32) -> Result<Counters, Error> {
    let mut total = None;
    let mut free = None;
    let mut available = None;
    let mut buffers = 0;
    let mut cached = 0;
    let mut swap_cached = 0;
    let mut active_anon = 0;
    let mut active_file = 0;
    let mut swap_total = 0;
    let mut swap_free = 0;
    let shift = page_shift.saturating_sub(10);
    for line in text.split(|&byte| byte == b'\n') {
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            continue;
        };
        let (key, rest) = (&line[..colon], &line[colon + 1..]);
        let Some(kib) = first_number(rest) else {
            continue;
        };
        let pages = kib >> shift;
        match key {
            b"MemTotal" => total = Some(pages),
            b"MemFree" => free = Some(pages),
            b"MemAvailable" => available = Some(pages),
            b"Buffers" => buffers = pages,
            b"Cached" => cached = pages,
            b"SwapCached" => swap_cached = pages,
            b"Active(anon)" => active_anon = pages,
            b"Active(file)" => active_file = pages,
            b"SwapTotal" => swap_total = pages,
            b"SwapFree" => swap_free = pages,
            _ => {}
        }
    }
    Ok(Counters {
        total_ram: total.ok_or(Error::Meminfo("MemTotal"))?,
        free_ram: free.ok_or(Error::Meminfo("MemFree"))?,
        file_pages: cached + buffers + swap_cached,
        active_anon,
        active_file,
        available: available.ok_or(Error::Meminfo("MemAvailable"))?,
        swap_total,
        swap_free,
    })
}

/// Parses `/proc/meminfo` text straight into figures.
pub fn figures(text: &[u8], page_shift: u32) -> Result<Figures, Error> {
    Ok(Figures::from_counters(&parse(text, page_shift)?))
}

fn first_number(text: &[u8]) -> Option<u64> {
    let start = text.iter().position(u8::is_ascii_digit)?;
    let digits = &text[start..];
    let end = digits
        .iter()
        .position(|byte| !byte.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].iter().try_fold(0u64, |value, &byte| {
        value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use memnotify_proto::Figure;

    const SAMPLE: &str = "MemTotal:         262144 kB
MemFree:          100000 kB
MemAvailable:     180000 kB
Buffers:            4000 kB
Cached:            60000 kB
SwapCached:          400 kB
Active:            50000 kB
Inactive:          40000 kB
Active(anon):      30000 kB
Inactive(anon):     1000 kB
Active(file):      20000 kB
SwapTotal:        131072 kB
SwapFree:         130000 kB
";

    #[test]
    fn converts_kib_to_pages_exactly() {
        let counters = parse(SAMPLE.as_bytes(), 12).unwrap();
        assert_eq!(counters.total_ram, 65536);
        assert_eq!(counters.free_ram, 25000);
        assert_eq!(counters.available, 45000);
        assert_eq!(counters.file_pages, (60000 + 4000 + 400) / 4);
        assert_eq!(counters.active_anon, 7500);
        assert_eq!(counters.active_file, 5000);
        assert_eq!(counters.swap_total, 32768);
        assert_eq!(counters.swap_free, 32500);
    }

    #[test]
    fn used_follows_the_umm_formula() {
        let figures = figures(SAMPLE.as_bytes(), 12).unwrap();
        // MemTotal - MemFree - Buffers - Cached - SwapCached + SwapTotal - SwapFree, in pages.
        let kib: u64 = 262144 - 100000 - 4000 - 60000 - 400 + (131072 - 130000);
        assert_eq!(figures.get(Figure::Used), kib / 4);
        assert_eq!(figures.get(Figure::Active), 12500);
    }

    #[test]
    fn swapless_kernels_have_no_swap_lines() {
        let text: String = SAMPLE
            .lines()
            .filter(|line| !line.starts_with("Swap"))
            .map(|line| format!("{line}\n"))
            .collect();
        let counters = parse(text.as_bytes(), 12).unwrap();
        assert_eq!((counters.swap_total, counters.swap_free), (0, 0));
    }

    #[test]
    fn missing_fields_are_named() {
        let error = parse(b"MemFree: 1 kB\nMemAvailable: 2 kB\n", 12).unwrap_err();
        assert_eq!(error.to_string(), "/proc/meminfo has no MemTotal line");
    }

    #[test]
    fn large_pages() {
        let counters = parse(SAMPLE.as_bytes(), 16).unwrap();
        assert_eq!(counters.total_ram, 262144 / 64);
    }
}

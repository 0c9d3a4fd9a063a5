//! Fields of `/proc/meminfo` and `/proc/PID/status`, in KiB.

/// The value of `key` (e.g. `MemAvailable`, `VmRSS`) in KiB, if the text has it.
pub fn field_kib(text: &[u8], key: &str) -> Option<u64> {
    text.split(|&byte| byte == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key.as_bytes())?.strip_prefix(b":")?;
        let digits: Vec<u8> = rest
            .iter()
            .copied()
            .skip_while(|byte| *byte == b' ' || *byte == b'\t')
            .take_while(u8::is_ascii_digit)
            .collect();
        std::str::from_utf8(&digits).ok()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"MemTotal:         481744 kB\n\
MemFree:          443092 kB\n\
MemAvailable:     432288 kB\n\
Slab:               9876 kB\n\
SReclaimable:       1234 kB\n\
SUnreclaim:         8642 kB\n\
HugePages_Total:       0\n";

    #[test]
    fn finds_fields() {
        assert_eq!(field_kib(SAMPLE, "MemTotal"), Some(481744));
        assert_eq!(field_kib(SAMPLE, "MemAvailable"), Some(432288));
        assert_eq!(field_kib(SAMPLE, "SUnreclaim"), Some(8642));
        assert_eq!(field_kib(SAMPLE, "HugePages_Total"), Some(0));
    }

    #[test]
    fn reads_status_lines_with_tabs() {
        let status = b"Name:\tmemnotifyd\nVmPeak:\t    3000 kB\nVmRSS:\t    1844 kB\n";
        assert_eq!(field_kib(status, "VmRSS"), Some(1844));
        assert_eq!(field_kib(status, "Name"), None);
    }

    #[test]
    fn needs_the_whole_key() {
        // "Mem" is a prefix of several keys but not a key.
        assert_eq!(field_kib(SAMPLE, "Mem"), None);
        assert_eq!(field_kib(SAMPLE, "Reclaimable"), None);
        assert_eq!(field_kib(SAMPLE, "SwapTotal"), None);
        assert_eq!(field_kib(b"MemFree: lots kB\n", "MemFree"), None);
    }
}

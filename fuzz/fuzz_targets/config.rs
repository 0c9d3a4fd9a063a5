//! memnotifyd's configuration parser on any text: it returns a configuration or a
//! `line:column: reason` error, never panics, and what it accepts resolves to pages for any
//! page size and base (the daemon does that on every start and reload).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memnotifyd::config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(text) {
        Ok(config) => {
            for level in &config.levels {
                for bound in level.bounds() {
                    for (page_shift, total_pages) in [(12, 65_536), (16, 1), (0, u64::MAX), (63, 0)] {
                        let units = memnotify_proto::Units {
                            page_shift,
                            total_pages,
                        };
                        let _ = bound.enter.pages(units);
                        let _ = bound.leave.pages(units);
                    }
                }
            }
            let _ = config.reclaim.amount.pages(memnotify_proto::Units {
                page_shift: 12,
                total_pages: 1 << 20,
            });
        }
        Err(error) => {
            assert!(!error.reason.is_empty());
            if let Some(line) = error.line {
                assert!(line >= 1, "lines are 1-based");
            }
            if let Some(column) = error.column {
                assert!(column >= 1, "columns are 1-based");
            }
        }
    }
    let _ = config::parse_duration(text);
});

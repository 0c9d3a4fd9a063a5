//! What memhog was asked to do (pure: parsing and pacing).

use std::ffi::OsString;
use std::time::Duration;

pub const USAGE: &str = "\
usage: memhog --limit SIZE [--rate SIZE/s] [--hold DURATION] [--step [--chunk SIZE]]
              [--content sparse|mixed]
       memhog --page-cache FILE --size SIZE [--rate SIZE/s] [--hold DURATION] [--keep]

  --limit SIZE        allocate (mmap) and touch this much anonymous memory
  --rate SIZE/s       at this rate (default: as fast as possible), e.g. 16M/s
  --hold DURATION     keep it this long before releasing (default 0; 'forever'
                      holds until SIGINT/SIGTERM), e.g. 5s, 500ms, 2m
  --step              wait for a line on stdin before each chunk, and before
                      releasing at the end; end of input releases and exits
  --chunk SIZE        the step size with --step (default 16M)
  --content KIND      what the anonymous pages hold: 'sparse' (default) writes one
                      byte per page, which compressed swap (zram) stores in a few
                      bytes; 'mixed' fills half of each page with pseudo-random
                      bytes, so it compresses about 2:1, like an application's heap
  --page-cache FILE   fill the page cache: write SIZE bytes to FILE and read
                      them back (FILE must be on a disk-backed file system; on
                      tmpfs the data is shared memory, not page cache)
  --size SIZE         how much to write with --page-cache
  --keep              leave FILE behind (default: remove it at exit)

SIZE is bytes with an optional K, M or G suffix (powers of 1024).
Progress goes to stdout, one line at a time: 'memhog: allocated 32 MiB'.
SIGINT or SIGTERM releases the memory and exits with 128 + the signal number.
";

/// How long to hold the memory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hold {
    /// This long.
    For(Duration),
    /// Until a signal.
    Forever,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Anonymous memory.
    Anonymous { limit: u64 },
    /// Step by step from stdin.
    Step { limit: u64, chunk: u64 },
    /// Page cache through a file.
    PageCache {
        path: std::path::PathBuf,
        size: u64,
        keep: bool,
    },
}

/// What the anonymous pages hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Content {
    /// One byte per page (cheap; compresses to almost nothing).
    #[default]
    Sparse,
    /// Half of each page pseudo-random, half zero (compresses about 2:1).
    Mixed,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Plan {
    pub mode: Mode,
    /// Bytes per second (None: as fast as possible).
    pub rate: Option<u64>,
    pub hold: Hold,
    pub content: Content,
}

/// `16M`, `4096`, `1G`, `512K` in bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, shift) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 10),
        Some(b'M' | b'm') => (&text[..text.len() - 1], 20),
        Some(b'G' | b'g') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size (e.g. 4096, 512K, 16M, 1G)"))?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// `16M/s` (or `16M`) in bytes per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let size = text.strip_suffix("/s").unwrap_or(text);
    let rate = parse_size(size)?;
    if rate == 0 {
        return Err("the rate must be more than 0".into());
    }
    Ok(rate)
}

/// `5s`, `500ms`, `2m`, `3` (seconds), `forever`.
pub fn parse_hold(text: &str) -> Result<Hold, String> {
    if text == "forever" {
        return Ok(Hold::Forever);
    }
    let bad = || format!("'{text}' is not a duration (e.g. 5s, 500ms, 2m, forever)");
    let (digits, millis_per_unit) = if let Some(digits) = text.strip_suffix("ms") {
        (digits, 1)
    } else if let Some(digits) = text.strip_suffix('s') {
        (digits, 1000)
    } else if let Some(digits) = text.strip_suffix('m') {
        (digits, 60_000)
    } else {
        (text, 1000)
    };
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let millis = number.checked_mul(millis_per_unit).ok_or_else(bad)?;
    Ok(Hold::For(Duration::from_millis(millis)))
}

fn text(value: OsString, what: &str) -> Result<String, String> {
    value
        .into_string()
        .map_err(|_| format!("{what}: not valid UTF-8"))
}

/// Parses the arguments after the program name; `Ok(None)` means `--help`.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Option<Plan>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut limit = None;
    let mut rate = None;
    let mut hold = Hold::For(Duration::ZERO);
    let mut step = false;
    let mut chunk = None;
    let mut page_cache = None;
    let mut size = None;
    let mut keep = false;
    let mut content = None;
    macro_rules! value {
        ($what:expr) => {
            text(parser.value().map_err(|error| error.to_string())?, $what)?
        };
    }
    while let Some(arg) = parser.next().map_err(|error| error.to_string())? {
        match arg {
            Long("limit") => limit = Some(parse_size(&value!("--limit"))?),
            Long("rate") => rate = Some(parse_rate(&value!("--rate"))?),
            Long("hold") => hold = parse_hold(&value!("--hold"))?,
            Long("step") => step = true,
            Long("chunk") => chunk = Some(parse_size(&value!("--chunk"))?),
            Long("page-cache") => {
                page_cache = Some(std::path::PathBuf::from(value!("--page-cache")))
            }
            Long("size") => size = Some(parse_size(&value!("--size"))?),
            Long("keep") => keep = true,
            Long("content") => {
                content = Some(match value!("--content").as_str() {
                    "sparse" => Content::Sparse,
                    "mixed" => Content::Mixed,
                    other => return Err(format!("--content: '{other}' is not sparse or mixed")),
                })
            }
            Long("help") | Short('h') => return Ok(None),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    let mode = match (page_cache, limit) {
        (Some(_), Some(_)) => return Err("--page-cache and --limit exclude each other".into()),
        (Some(path), None) => {
            if step || chunk.is_some() {
                return Err("--step and --chunk do not apply to --page-cache".into());
            }
            if content.is_some() {
                return Err("--content applies to --limit only".into());
            }
            let size = size.ok_or("--page-cache needs --size")?;
            if size == 0 {
                return Err("--size must be more than 0".into());
            }
            Mode::PageCache { path, size, keep }
        }
        (None, Some(limit)) => {
            if size.is_some() || keep {
                return Err("--size and --keep apply to --page-cache only".into());
            }
            if limit == 0 {
                return Err("--limit must be more than 0".into());
            }
            if step {
                let chunk = chunk.unwrap_or(16 << 20);
                if chunk == 0 {
                    return Err("--chunk must be more than 0".into());
                }
                Mode::Step { limit, chunk }
            } else if chunk.is_some() {
                return Err("--chunk applies to --step only".into());
            } else {
                Mode::Anonymous { limit }
            }
        }
        (None, None) => {
            return Err("say how much: --limit SIZE, or --page-cache FILE --size SIZE".into())
        }
    };
    Ok(Some(Plan {
        mode,
        rate,
        hold,
        content: content.unwrap_or_default(),
    }))
}

/// When `done` bytes should have been reached, at `rate` bytes per second.
pub fn due(done: u64, rate: Option<u64>) -> Duration {
    match rate {
        None => Duration::ZERO,
        Some(rate) => {
            Duration::from_nanos((u128::from(done) * 1_000_000_000 / u128::from(rate)) as u64)
        }
    }
}

/// How many bytes to touch between two looks at the clock: a 20th of a second's
/// worth, whole pages, at least one page, at most 4 MiB.
pub fn pace_chunk(rate: Option<u64>, page_size: u64) -> u64 {
    let wanted = rate.map_or(4 << 20, |rate| rate / 20);
    let pages = (wanted / page_size).max(1);
    (pages * page_size).min(4 << 20).max(page_size)
}

/// Whether a progress line is due after growing from `before` to `after` bytes:
/// one per 8 MiB, and one at the end.
pub fn report_due(before: u64, after: u64, end: u64) -> bool {
    const EVERY: u64 = 8 << 20;
    after == end || before / EVERY != after / EVERY
}

pub fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Option<Plan>, String> {
        parse(text.split_whitespace().map(OsString::from))
    }

    #[test]
    fn sizes_rates_and_durations() {
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("16X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999G").is_err());
        assert_eq!(parse_rate("16M/s").unwrap(), 16 << 20);
        assert!(parse_rate("0/s").is_err());
        assert_eq!(parse_hold("5s").unwrap(), Hold::For(Duration::from_secs(5)));
        assert_eq!(
            parse_hold("250ms").unwrap(),
            Hold::For(Duration::from_millis(250))
        );
        assert_eq!(
            parse_hold("2m").unwrap(),
            Hold::For(Duration::from_secs(120))
        );
        assert_eq!(parse_hold("3").unwrap(), Hold::For(Duration::from_secs(3)));
        assert_eq!(parse_hold("forever").unwrap(), Hold::Forever);
        assert!(parse_hold("soon").is_err());
    }

    #[test]
    fn the_issue_example() {
        let plan = plan("--rate 16M/s --limit 96M --hold 5s").unwrap().unwrap();
        assert_eq!(plan.mode, Mode::Anonymous { limit: 96 << 20 });
        assert_eq!(plan.rate, Some(16 << 20));
        assert_eq!(plan.hold, Hold::For(Duration::from_secs(5)));
    }

    #[test]
    fn modes() {
        assert_eq!(
            plan("--step --limit 64M --chunk 8M").unwrap().unwrap().mode,
            Mode::Step {
                limit: 64 << 20,
                chunk: 8 << 20
            }
        );
        assert_eq!(
            plan("--page-cache /mnt/f --size 32M")
                .unwrap()
                .unwrap()
                .mode,
            Mode::PageCache {
                path: "/mnt/f".into(),
                size: 32 << 20,
                keep: false
            }
        );
        assert_eq!(plan("--help").unwrap(), None);
    }

    #[test]
    fn content() {
        let content = |args| plan(args).unwrap().unwrap().content;
        assert_eq!(content("--limit 8M"), Content::Sparse);
        assert_eq!(content("--limit 8M --content mixed"), Content::Mixed);
        assert_eq!(
            content("--step --limit 8M --content sparse"),
            Content::Sparse
        );
        assert!(plan("--limit 8M --content random").is_err());
        assert!(plan("--page-cache /mnt/f --size 8M --content mixed").is_err());
    }

    #[test]
    fn contradictions_are_refused() {
        for bad in [
            "",
            "--rate 1M/s",
            "--limit 0",
            "--limit 8M --size 8M",
            "--limit 8M --chunk 1M",
            "--page-cache f",
            "--page-cache f --size 1M --limit 1M",
            "--page-cache f --size 1M --step",
            "--limit 8M --bogus",
        ] {
            assert!(plan(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pacing() {
        assert_eq!(due(16 << 20, Some(16 << 20)), Duration::from_secs(1));
        assert_eq!(due(8 << 20, Some(16 << 20)), Duration::from_millis(500));
        assert_eq!(due(1 << 30, None), Duration::ZERO);
        assert_eq!(pace_chunk(Some(16 << 20), 4096), 204 * 4096);
        assert_eq!(pace_chunk(Some(1), 4096), 4096);
        assert_eq!(pace_chunk(None, 4096), 4 << 20);
        assert!(report_due(7 << 20, 8 << 20, 96 << 20));
        assert!(!report_due(1 << 20, 2 << 20, 96 << 20));
        assert!(report_due(1 << 20, 2 << 20, 2 << 20));
    }
}

//! Command line parsing (pure: takes the words, returns what to do).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use memnotify::BackendKind;

pub const USAGE: &str = "\
usage: memnotify [--backend device|psi|auto] <command> [options]

commands:
  status [--json]                  the figures, in pages and MiB
  watch <figure> <value>... [--json] [--count N] [--timeout SECONDS]
                                   set thresholds and print one line per crossing;
                                   figures: used active total free available
                                   swap_total swap_free, and hysteresis; values in
                                   pages, K/M/G bytes or % of RAM (e.g. used 60% available 20M)
  stats [--json]                   the module's statistics
  set-default [--low PCT] [--critical PCT] [--rate-limit MS]
                                   the module's default levels and rate limit
  subscribe [--socket PATH] [--count N] [--timeout SECONDS]
                                   print memnotifyd's level changes (JSON lines)
  query [--socket PATH]            print memnotifyd's current state (one JSON line)
  help                             this text

options:
  --backend device|psi|auto        /dev/memnotify, PSI + /proc/meminfo, or the device
                                   when it exists (default: auto)
  --socket PATH                    memnotifyd's socket (default /run/memnotifyd.sock)
  --version                        print the version
";

#[derive(Debug, PartialEq)]
pub enum Command {
    Help,
    Version,
    Status {
        json: bool,
    },
    Watch {
        thresholds: String,
        json: bool,
        count: Option<u64>,
        timeout: Option<Duration>,
    },
    Stats {
        json: bool,
    },
    SetDefault {
        low_pct: Option<u64>,
        critical_pct: Option<u64>,
        rate_limit_ms: Option<u64>,
    },
    Subscribe {
        socket: PathBuf,
        count: Option<u64>,
        timeout: Option<Duration>,
    },
    Query {
        socket: PathBuf,
    },
}

/// memnotifyd's default socket.
pub const DEFAULT_SOCKET: &str = "/run/memnotifyd.sock";

#[derive(Debug, PartialEq)]
pub struct Invocation {
    pub backend: BackendKind,
    pub command: Command,
}

fn number(value: OsString, what: &str) -> Result<u64, String> {
    let text = value
        .into_string()
        .map_err(|_| format!("{what}: not valid UTF-8"))?;
    text.parse()
        .map_err(|_| format!("{what}: '{text}' is not a whole number"))
}

fn percent(value: OsString, what: &str) -> Result<u64, String> {
    let pct = number(value, what)?;
    if pct > 100 {
        return Err(format!("{what}: {pct} is over 100"));
    }
    Ok(pct)
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut backend = BackendKind::Auto;
    let mut command_name: Option<String> = None;
    let mut words: Vec<String> = Vec::new();
    let mut json = false;
    let mut count = None;
    let mut timeout = None;
    let mut low_pct = None;
    let mut critical_pct = None;
    let mut rate_limit_ms = None;
    let mut socket: Option<PathBuf> = None;
    let mut help = false;
    let mut version = false;
    while let Some(arg) = parser.next().map_err(|error| error.to_string())? {
        match arg {
            Long("backend") | Short('b') => {
                let value = parser.value().map_err(|error| error.to_string())?;
                backend = value.string().map_err(|error| error.to_string())?.parse()?;
            }
            Long("json") => json = true,
            Long("count") | Short('n') => {
                let value = number(parser.value().map_err(|e| e.to_string())?, "--count")?;
                if value == 0 {
                    return Err("--count: must be at least 1".into());
                }
                count = Some(value);
            }
            Long("timeout") => {
                let value = number(parser.value().map_err(|e| e.to_string())?, "--timeout")?;
                timeout = Some(Duration::from_secs(value));
            }
            Long("low") => {
                low_pct = Some(percent(
                    parser.value().map_err(|e| e.to_string())?,
                    "--low",
                )?)
            }
            Long("critical") => {
                critical_pct = Some(percent(
                    parser.value().map_err(|e| e.to_string())?,
                    "--critical",
                )?)
            }
            Long("rate-limit") => {
                rate_limit_ms = Some(number(
                    parser.value().map_err(|e| e.to_string())?,
                    "--rate-limit",
                )?)
            }
            Long("socket") => socket = Some(parser.value().map_err(|e| e.to_string())?.into()),
            Long("help") | Short('h') => help = true,
            Long("version") | Short('V') => version = true,
            Value(value) => {
                let value = value
                    .into_string()
                    .map_err(|_| "arguments must be valid UTF-8".to_string())?;
                if command_name.is_none() {
                    command_name = Some(value);
                } else {
                    words.push(value);
                }
            }
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    if version {
        return Ok(Invocation {
            backend,
            command: Command::Version,
        });
    }
    if help {
        return Ok(Invocation {
            backend,
            command: Command::Help,
        });
    }
    let name = command_name.ok_or("no command given")?;
    let only = |allowed: &[&str]| -> Result<(), String> {
        let given = [
            ("--json", json),
            ("--count", count.is_some()),
            ("--timeout", timeout.is_some()),
            ("--low", low_pct.is_some()),
            ("--critical", critical_pct.is_some()),
            ("--rate-limit", rate_limit_ms.is_some()),
            ("--socket", socket.is_some()),
        ];
        for (option, present) in given {
            if present && !allowed.contains(&option) {
                return Err(format!("{option} does not apply to '{name}'"));
            }
        }
        Ok(())
    };
    let no_words = |words: &[String]| -> Result<(), String> {
        match words.first() {
            Some(word) => Err(format!("'{name}' takes no argument '{word}'")),
            None => Ok(()),
        }
    };
    let command = match name.as_str() {
        "help" => Command::Help,
        "status" => {
            only(&["--json"])?;
            no_words(&words)?;
            Command::Status { json }
        }
        "stats" => {
            only(&["--json"])?;
            no_words(&words)?;
            Command::Stats { json }
        }
        "watch" => {
            only(&["--json", "--count", "--timeout"])?;
            if words.is_empty() {
                return Err("watch needs thresholds, e.g. 'watch used 60% available 20M'".into());
            }
            Command::Watch {
                thresholds: words.join(" "),
                json,
                count,
                timeout,
            }
        }
        "set-default" => {
            only(&["--low", "--critical", "--rate-limit"])?;
            no_words(&words)?;
            if low_pct.is_none() && critical_pct.is_none() && rate_limit_ms.is_none() {
                return Err(
                    "set-default needs at least one of --low, --critical, --rate-limit".into(),
                );
            }
            if let (Some(low), Some(critical)) = (low_pct, critical_pct) {
                if critical > low {
                    return Err(format!(
                        "--critical {critical}% is above --low {low}%: critical must be the lower level"
                    ));
                }
            }
            Command::SetDefault {
                low_pct,
                critical_pct,
                rate_limit_ms,
            }
        }
        "subscribe" => {
            only(&["--socket", "--count", "--timeout"])?;
            no_words(&words)?;
            Command::Subscribe {
                socket: socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
                count,
                timeout,
            }
        }
        "query" => {
            only(&["--socket"])?;
            no_words(&words)?;
            Command::Query {
                socket: socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            }
        }
        other => return Err(format!("unknown command '{other}'")),
    };
    Ok(Invocation { backend, command })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Result<Invocation, String> {
        parse(text.split_whitespace().map(OsString::from))
    }

    #[test]
    fn watch_joins_the_threshold_words() {
        let invocation =
            args("--backend psi watch used 60% available 20M --count 2 --json").unwrap();
        assert_eq!(invocation.backend, BackendKind::Psi);
        assert_eq!(
            invocation.command,
            Command::Watch {
                thresholds: "used 60% available 20M".into(),
                json: true,
                count: Some(2),
                timeout: None,
            }
        );
    }

    #[test]
    fn status_and_stats() {
        assert_eq!(
            args("status").unwrap().command,
            Command::Status { json: false }
        );
        assert_eq!(
            args("stats --json").unwrap().command,
            Command::Stats { json: true }
        );
        assert_eq!(args("status").unwrap().backend, BackendKind::Auto);
    }

    #[test]
    fn set_default_checks_its_values() {
        assert_eq!(
            args("set-default --low 12 --critical 6").unwrap().command,
            Command::SetDefault {
                low_pct: Some(12),
                critical_pct: Some(6),
                rate_limit_ms: None
            }
        );
        assert!(args("set-default").is_err());
        assert!(args("set-default --low 101").is_err());
        assert!(args("set-default --low 5 --critical 10").is_err());
    }

    #[test]
    fn mistakes_are_reported() {
        for bad in [
            "",
            "frobnicate",
            "watch",
            "status extra",
            "status --count 3",
            "watch used 1 --count 0",
            "watch used 1 --count x",
            "--backend nope status",
            "status --bogus",
        ] {
            assert!(args(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn daemon_clients() {
        assert_eq!(
            args("subscribe --count 3 --socket /tmp/s").unwrap().command,
            Command::Subscribe {
                socket: "/tmp/s".into(),
                count: Some(3),
                timeout: None
            }
        );
        assert_eq!(
            args("query").unwrap().command,
            Command::Query {
                socket: DEFAULT_SOCKET.into()
            }
        );
        assert!(args("query --count 1").is_err());
        assert!(args("status --socket /x").is_err());
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(args("watch --help").unwrap().command, Command::Help);
        assert_eq!(args("--version").unwrap().command, Command::Version);
    }
}

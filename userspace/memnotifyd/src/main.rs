//! `memnotifyd`: one small daemon for the whole staged response to low memory.
//!
//! It samples the figures from `/dev/memnotify` (or PSI and `/proc/meminfo`),
//! moves between the configured levels with hysteresis, and on entering a level
//! runs its stages: log, hook, reclaim, and as the last resort kill one victim.
//! Every level change is logged and published on a Unix socket.
//!
//! Protecting itself: it locks its memory (`mlockall`), sets its
//! `oom_score_adj` to -1000, and bounds its log rate. The hot path (wake-up,
//! sample, level evaluation, JSON formatting and publishing) works in buffers
//! allocated at start-up; the actions (spawning a hook, scanning `/proc` for a
//! victim), re-arming the device at a level boundary and a reload allocate a
//! little, which the locked, already-grown heap usually serves without new pages.

mod actions;
#[cfg(test)]
mod alloc_check;
mod daemon;
#[cfg(feature = "dbus")]
mod dbus_service;
mod json;
mod levels;
mod log;
mod monitor;
mod ratelimit;
mod schedule;
mod socket;
mod victim;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use daemon::{Daemon, Settings, StartError};
// The configuration lives in the library (for the fuzzer); `crate::config` names it here.
use memnotifyd::config;

const USAGE: &str = "\
usage: memnotifyd [--config PATH] [--dry-run] [--pidfile PATH] [--syslog]
       memnotifyd --check-config [--config PATH]

  --config PATH     the configuration (default /etc/memnotify/memnotifyd.yaml)
  --check-config    validate the configuration and exit: 0 if it is valid,
                    2 with 'path:line:column: reason' if not
  --dry-run         decide, log and publish, but run no hook, reclaim or kill
  --pidfile PATH    write the daemon's pid there once it is ready (removed at exit)
  --syslog          log to syslog when /dev/log exists (default: stderr)
  --version         print the version

Signals: SIGHUP reloads the configuration (a bad one is rejected and the old
one kept); SIGTERM and SIGINT stop the daemon.
";

#[derive(Debug, PartialEq)]
enum Mode {
    Run,
    Check,
    Help,
    Version,
}

#[derive(Debug, PartialEq)]
struct Args {
    mode: Mode,
    config: PathBuf,
    dry_run: bool,
    pidfile: Option<PathBuf>,
    syslog: bool,
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut parsed = Args {
        mode: Mode::Run,
        config: PathBuf::from(config::DEFAULT_PATH),
        dry_run: false,
        pidfile: None,
        syslog: false,
    };
    let mut check = false;
    while let Some(arg) = parser.next().map_err(|error| error.to_string())? {
        match arg {
            Long("config") | Short('c') => {
                parsed.config = parser.value().map_err(|error| error.to_string())?.into()
            }
            Long("check-config") => check = true,
            Long("dry-run") | Short('n') => parsed.dry_run = true,
            Long("pidfile") => {
                parsed.pidfile = Some(parser.value().map_err(|error| error.to_string())?.into())
            }
            Long("syslog") => parsed.syslog = true,
            Long("help") | Short('h') => parsed.mode = Mode::Help,
            Long("version") | Short('V') => parsed.mode = Mode::Version,
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    if check && parsed.mode == Mode::Run {
        parsed.mode = Mode::Check;
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("memnotifyd: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match args.mode {
        Mode::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Mode::Version => {
            println!("memnotifyd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Mode::Check => match config::load(&args.config) {
            Ok(config) => {
                let names: Vec<&str> = config
                    .levels
                    .iter()
                    .map(|level| level.name.as_str())
                    .collect();
                println!(
                    "{}: OK: levels normal, {}",
                    args.config.display(),
                    names.join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{}", error.display(&args.config));
                ExitCode::from(2)
            }
        },
        Mode::Run => {
            let settings = Settings {
                config_path: args.config,
                dry_run: args.dry_run,
                pidfile: args.pidfile,
                syslog: args.syslog,
            };
            match Daemon::start(settings) {
                Ok(daemon) => match daemon.run() {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(message) => {
                        eprintln!("memnotifyd: {message}");
                        ExitCode::from(1)
                    }
                },
                Err(StartError::Config(message)) => {
                    eprintln!("{message}");
                    ExitCode::from(2)
                }
                Err(StartError::Other(message)) => {
                    eprintln!("memnotifyd: {message}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

#[cfg(test)]
#[global_allocator]
static ALLOCATOR: alloc_check::Counting = alloc_check::Counting;

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Result<Args, String> {
        parse_args(text.split_whitespace().map(OsString::from))
    }

    #[test]
    fn defaults_and_flags() {
        let parsed = args("").unwrap();
        assert_eq!(parsed.mode, Mode::Run);
        assert_eq!(
            parsed.config,
            PathBuf::from("/etc/memnotify/memnotifyd.yaml")
        );
        let parsed = args("--config /tmp/x.yaml --dry-run --pidfile /run/m.pid --syslog").unwrap();
        assert_eq!(parsed.config, PathBuf::from("/tmp/x.yaml"));
        assert!(parsed.dry_run && parsed.syslog);
        assert_eq!(parsed.pidfile, Some(PathBuf::from("/run/m.pid")));
        assert_eq!(args("--check-config").unwrap().mode, Mode::Check);
        assert_eq!(args("--check-config --help").unwrap().mode, Mode::Help);
        assert!(args("--bogus").is_err());
        assert!(args("extra").is_err());
        assert!(args("--config").is_err());
    }
}

//! Logging to stderr or syslog, with a bounded rate and no allocation.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::os::unix::net::UnixDatagram;

use crate::ratelimit::{RateLimit, Verdict};

/// How bad a message is (syslog severities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Something failed.
    Error = 3,
    /// Something is off.
    Warning = 4,
    /// A level change or an action.
    Notice = 5,
    /// Everything else.
    Info = 6,
}

impl Severity {
    fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
        }
    }
}

/// Appends formatted text to a byte buffer, truncating at its end.
struct FixedWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for FixedWriter<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let take = text.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Formats into `buf` and returns the length (truncated to fit).
pub fn format_into(buf: &mut [u8], args: fmt::Arguments<'_>) -> usize {
    let mut writer = FixedWriter { buf, len: 0 };
    let _ = writer.write_fmt(args);
    writer.len
}

/// The daemon's logger.
pub struct Logger {
    /// Messages are dropped (tests).
    discard: bool,
    limit: RateLimit,
    syslog: Option<UnixDatagram>,
    pid: u32,
    buf: [u8; 1024],
    start: std::time::Instant,
}

impl Logger {
    /// A logger allowing `burst` messages per `period_ms`; to syslog when asked and `/dev/log` answers.
    pub fn new(burst: u32, period_ms: u64, syslog: bool) -> Logger {
        let syslog = syslog
            .then(|| {
                let socket = UnixDatagram::unbound().ok()?;
                socket.connect("/dev/log").ok()?;
                Some(socket)
            })
            .flatten();
        Logger {
            discard: false,
            limit: RateLimit::new(burst, period_ms),
            syslog,
            pid: std::process::id(),
            buf: [0; 1024],
            start: std::time::Instant::now(),
        }
    }

    /// A logger that formats but drops everything (tests).
    #[cfg(test)]
    pub fn discard() -> Logger {
        Logger {
            discard: true,
            ..Logger::new(1000, 1000, false)
        }
    }

    /// Changes the rate limit (after a reload).
    pub fn set_limit(&mut self, burst: u32, period_ms: u64) {
        self.limit = RateLimit::new(burst, period_ms);
    }

    /// Logs a message subject to the rate limit.
    pub fn log(&mut self, severity: Severity, args: fmt::Arguments<'_>) {
        let now_ms = self.start.elapsed().as_millis() as u64;
        match self.limit.check(now_ms) {
            Verdict::Drop => {}
            Verdict::Send { suppressed } => {
                if suppressed > 0 {
                    self.emit(
                        Severity::Warning,
                        format_args!("{suppressed} messages suppressed by the log rate limit"),
                    );
                }
                self.emit(severity, args);
            }
        }
    }

    /// Logs a message whatever the rate (start-up, shutdown, reload).
    pub fn always(&mut self, severity: Severity, args: fmt::Arguments<'_>) {
        self.emit(severity, args);
    }

    fn emit(&mut self, severity: Severity, args: fmt::Arguments<'_>) {
        if let Some(socket) = &self.syslog {
            // LOG_DAEMON is facility 3.
            let priority = (3 << 3) | severity as u32;
            let len = format_into(
                &mut self.buf,
                format_args!("<{priority}>memnotifyd[{}]: {args}", self.pid),
            );
            if socket.send(&self.buf[..len]).is_ok() {
                return;
            }
        }
        let len = format_into(
            &mut self.buf,
            format_args!("memnotifyd: {}: {args}\n", severity.name()),
        );
        if len == self.buf.len() {
            self.buf[len - 1] = b'\n';
        }
        if !self.discard {
            let _ = std::io::stderr().write_all(&self.buf[..len]);
        }
    }
}

/// `log!(logger, Severity::Notice, "format", args...)`.
#[macro_export]
macro_rules! log {
    ($logger:expr, $severity:expr, $($arg:tt)*) => {
        $logger.log($severity, format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_truncates_instead_of_allocating() {
        let mut buf = [0u8; 8];
        let len = format_into(&mut buf, format_args!("{}-{}", "abcdef", 12345));
        assert_eq!(&buf[..len], b"abcdef-1");
    }
}

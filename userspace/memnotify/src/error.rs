//! Errors that say what went wrong and what to do about it.

use std::fmt;
use std::io;

use memnotify_proto::{LineError, ParseError};

/// Everything the library can fail with.
#[derive(Debug)]
pub enum Error {
    /// `/dev/memnotify` does not exist: the module is not loaded.
    DeviceMissing {
        /// The path that was tried.
        path: String,
    },
    /// The device exists but this user may not open it.
    DevicePermission {
        /// The path that was tried.
        path: String,
    },
    /// `/proc/pressure/memory` does not exist: the kernel was built without PSI.
    PsiMissing,
    /// PSI is compiled in but switched off on the kernel command line.
    PsiDisabled,
    /// The kernel refused a PSI trigger (bad parameters or missing privilege).
    PsiRejected {
        /// The trigger text, without its NUL byte.
        trigger: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Neither backend could be opened (`auto`).
    NoBackend {
        /// Why the device failed.
        device: Box<Error>,
        /// Why PSI failed.
        psi: Box<Error>,
    },
    /// Threshold text that does not parse.
    Thresholds(ParseError),
    /// The module rejected a threshold write that parsed here (version mismatch?).
    ThresholdsRejected {
        /// The text that was written.
        text: String,
    },
    /// A line from the device that does not parse.
    Line(LineError),
    /// `/proc/meminfo` lacks a field the figures need.
    Meminfo(&'static str),
    /// Bad PSI trigger parameters.
    PsiParameters(&'static str),
    /// Any other I/O error, with what was being done.
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::DeviceMissing { path } => write!(
                f,
                "{path} does not exist: load the module (insmod memnotify.ko or modprobe memnotify), or use the PSI backend"
            ),
            Error::DevicePermission { path } => write!(
                f,
                "{path}: permission denied: run as root, or set the module's dev_mode/dev_gid parameters"
            ),
            Error::PsiMissing => write!(
                f,
                "/proc/pressure/memory does not exist: the kernel lacks CONFIG_PSI; load memnotify.ko instead"
            ),
            Error::PsiDisabled => write!(
                f,
                "/proc/pressure/memory is disabled: boot with psi=1, or load memnotify.ko instead"
            ),
            Error::PsiRejected { trigger, source } => write!(
                f,
                "the kernel rejected the PSI trigger '{trigger}' ({source}): unprivileged users need a window that is a multiple of 2 s"
            ),
            Error::NoBackend { device, psi } => {
                write!(f, "no backend available: device: {device}; PSI: {psi}")
            }
            Error::Thresholds(error) => write!(
                f,
                "bad thresholds: {}: expected 'figure value' pairs (used, active, total, free, available, swap_total, swap_free, hysteresis) with values in pages, K/M/G bytes or % of RAM",
                error.as_str()
            ),
            Error::ThresholdsRejected { text } => write!(
                f,
                "the module rejected thresholds '{text}': is the module older than this tool?"
            ),
            Error::Line(error) => write!(
                f,
                "unexpected line from the device ({error:?}): is the module newer or older than this tool?"
            ),
            Error::Meminfo(field) => write!(f, "/proc/meminfo has no {field} line"),
            Error::PsiParameters(reason) => write!(f, "bad PSI trigger parameters: {reason}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::PsiRejected { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ParseError> for Error {
    fn from(error: ParseError) -> Error {
        Error::Thresholds(error)
    }
}

impl From<LineError> for Error {
    fn from(error: LineError) -> Error {
        Error::Line(error)
    }
}

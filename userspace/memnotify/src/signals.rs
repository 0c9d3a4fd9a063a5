//! Signals as readable file descriptor events (the self-pipe trick), so that a
//! `poll` loop can exit cleanly on SIGINT/SIGTERM or reload on SIGHUP.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use rustix::pipe::PipeFlags;

use crate::error::Error;

static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
static PENDING: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    if (0..64).contains(&signal) {
        PENDING.fetch_or(1 << signal, Ordering::SeqCst);
    }
    let fd = WRITE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 0u8;
        // Only async-signal-safe calls here; a full pipe already wakes the reader.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Delivers the signals it was installed for through a pipe.
pub struct SignalPipe {
    read: OwnedFd,
    _write: OwnedFd,
}

impl SignalPipe {
    /// Installs handlers for `signals` (one pipe per process: install once).
    pub fn install(signals: &[libc::c_int]) -> Result<SignalPipe, Error> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)
            .map_err(|errno| Error::io("creating the signal pipe", errno.into()))?;
        WRITE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        for &signal in signals {
            // SAFETY: a zeroed sigaction is valid; the handler only touches atomics and write(2).
            let result = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut())
            };
            if result != 0 {
                return Err(Error::io(
                    format!("installing a handler for signal {signal}"),
                    std::io::Error::last_os_error(),
                ));
            }
        }
        Ok(SignalPipe {
            read,
            _write: write,
        })
    }

    /// Drains the pipe and returns the signals received since the last call, as a mask by number.
    pub fn take(&self) -> u64 {
        let mut buf = [0u8; 64];
        while matches!(rustix::io::read(&self.read, &mut buf), Ok(n) if n > 0) {}
        PENDING.swap(0, Ordering::SeqCst)
    }

    /// Whether `signal` is in a mask returned by [`SignalPipe::take`].
    pub const fn has(mask: u64, signal: libc::c_int) -> bool {
        signal >= 0 && signal < 64 && mask & (1 << signal) != 0
    }
}

impl AsFd for SignalPipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_signal_shows_up_in_the_mask() {
        let pipe = SignalPipe::install(&[libc::SIGUSR2]).unwrap();
        assert_eq!(pipe.take() & (1 << libc::SIGUSR2), 0);
        unsafe { libc::raise(libc::SIGUSR2) };
        let mask = pipe.take();
        assert!(SignalPipe::has(mask, libc::SIGUSR2));
        assert!(!SignalPipe::has(mask, libc::SIGUSR1));
    }
}

//! `mn_test`: the 2012 memnotify test program, same usage, same output.
//!
//! `mn_test` prints the current line; `mn_test "used 5000"` also sets the
//! threshold(s), waits for a crossing and prints the line that reports it.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use rustix::event::{PollFd, PollFlags};

const DEV: &str = "/dev/memnotify";

/// The C program's `return -1` from main.
fn fail() -> ExitCode {
    ExitCode::from(255)
}

/// `tmp[ret - 1] = 0`: the line without its last byte (the newline).
fn chop(buf: &[u8]) -> String {
    let line = &buf[..buf.len().saturating_sub(1)];
    let end = line
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(line.len());
    String::from_utf8_lossy(&line[..end]).into_owned()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let program = args.first().map_or("mn_test", String::as_str);
    let lim = if args.len() == 2 {
        Some(args[1].as_str())
    } else {
        None
    };
    let mut out = std::io::stdout();
    let mut say = |text: String| {
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    };

    say(format!(
        "{program} -- test for system-wide memory notification/meter {DEV}"
    ));
    if lim == Some("--help") {
        say(format!("usage: {program} [threshold(s)_in_pages]"));
        say(format!("example of threshold(s) available in {DEV}"));
        return fail();
    }

    let mut device = match OpenOptions::new().read(true).write(true).open(DEV) {
        Ok(device) => device,
        Err(_) => {
            say(format!(
                "cannot open device {DEV}, do you have memnotify.ko loaded?"
            ));
            return fail();
        }
    };
    let fd = device.as_raw_fd();
    say(format!("device {DEV} opened successfuly with fd = {fd}"));

    let mut tmp = [0u8; 256];
    let Ok(ret) = device.read(&mut tmp) else {
        say(format!("reading from {DEV} failed"));
        return fail();
    };
    say(format!(
        "read from {DEV} {ret} bytes: '{}'",
        chop(&tmp[..ret])
    ));

    let Some(lim) = lim else {
        return ExitCode::SUCCESS;
    };

    say(format!("establishing threshold '{lim}' and waiting"));
    if device.write(lim.as_bytes()).is_err() {
        say(format!("cannot set threshold '{lim}' for device {DEV}"));
        return fail();
    }

    say(format!(
        "polling for threshold '{lim}' to be changed to up/down"
    ));
    let mut fds = [PollFd::new(&device, PollFlags::IN)];
    let ret = match rustix::event::poll(&mut fds, None) {
        Ok(count) => count as i64,
        Err(_) => -1,
    };
    say(format!("poll({fd}) returned {ret}"));

    let Ok(ret) = device.read(&mut tmp) else {
        say(format!("reading from {DEV} failed"));
        return fail();
    };
    say(format!(
        "--> memory figures reached '{}'",
        chop(&tmp[..ret])
    ));
    ExitCode::SUCCESS
}

//! memhog as a process: progress lines, step mode, page cache, signals.

use std::io::Write;
use std::process::{Command, Stdio};

fn memhog() -> Command {
    Command::new(env!("CARGO_BIN_EXE_memhog"))
}

fn lines(output: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn allocates_holds_and_releases() {
    let output = memhog()
        .args(["--rate", "64M/s", "--limit", "16M", "--hold", "100ms"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines = lines(&output);
    assert!(
        lines.contains(&"memhog: allocated 16 MiB".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"memhog: holding 16 MiB for 100 ms".to_string()));
    assert_eq!(lines.last().unwrap(), "memhog: released 16 MiB");
}

#[test]
fn step_mode_waits_for_lines() {
    let mut child = memhog()
        .args(["--step", "--limit", "8M", "--chunk", "4M"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"\n\n\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let lines = lines(&output);
    assert_eq!(
        lines,
        [
            "memhog: ready: each line on stdin allocates 4 MiB, up to 8 MiB",
            "memhog: allocated 4 MiB",
            "memhog: step: 4 MiB in use",
            "memhog: allocated 8 MiB",
            "memhog: step: 8 MiB in use",
            "memhog: at the limit: the next line releases",
            "memhog: released 8 MiB",
        ]
    );
}

#[test]
fn fills_the_page_cache_through_a_file() {
    let path = std::env::temp_dir().join(format!("memhog-cache-{}", std::process::id()));
    let output = memhog()
        .args(["--page-cache", path.to_str().unwrap(), "--size", "3M"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines = lines(&output);
    assert!(
        lines.contains(&format!("memhog: cached 3 MiB in {}", path.display())),
        "{lines:?}"
    );
    assert!(!path.exists(), "removed without --keep");
}

#[test]
fn sigterm_releases_and_exits_143() {
    let child = memhog()
        .args(["--limit", "4M", "--hold", "forever"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143));
    let lines = lines(&output);
    assert_eq!(
        &lines[lines.len() - 2..],
        ["memhog: released 4 MiB", "memhog: stopped by signal 15"]
    );
}

#[test]
fn bad_arguments_exit_2() {
    let output = memhog().args(["--limit", "lots"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("'lots' is not a size"));
}

//! The CLI and mn_test as processes, on a machine without the module.

use std::process::Command;

fn run(binary: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary).args(args).output().expect("runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn mn_test_help_is_the_2012_text() {
    let binary = env!("CARGO_BIN_EXE_mn_test");
    let (code, stdout, _) = run(binary, &["--help"]);
    assert_eq!(code, 255, "the C program returned -1");
    assert_eq!(
        stdout,
        format!(
            "{binary} -- test for system-wide memory notification/meter /dev/memnotify\n\
             usage: {binary} [threshold(s)_in_pages]\n\
             example of threshold(s) available in /dev/memnotify\n"
        )
    );
}

#[test]
fn usage_errors_exit_2_and_runtime_errors_1() {
    let binary = env!("CARGO_BIN_EXE_memnotify");
    let (code, _, stderr) = run(binary, &["frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown command 'frobnicate'"));
    let (code, _, stderr) = run(
        binary,
        &["query", "--socket", "/nonexistent/memnotifyd.sock"],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("is memnotifyd running?"), "{stderr}");
    let (code, stdout, _) = run(binary, &["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("watch <figure> <value>"));
}

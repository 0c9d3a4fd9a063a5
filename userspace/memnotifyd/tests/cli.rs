//! The daemon's command line, run as a process.

use std::process::Command;

fn memnotifyd(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_memnotifyd"))
        .args(args)
        .output()
        .expect("memnotifyd runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("memnotifyd-cli-{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_shipped_config_checks_out() {
    let dist = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/memnotifyd.yaml");
    let (code, stdout, _) = memnotifyd(&["--check-config", "--config", dist]);
    assert_eq!(code, 0);
    assert!(
        stdout.ends_with(": OK: levels normal, warning, critical\n"),
        "{stdout}"
    );
}

#[test]
fn a_bad_config_exits_2_with_path_line_and_reason() {
    let path = temp_config(
        "bad",
        "levels:\n  - name: warning\n    enter: { available: 10% }\n    leave: { available: 5% }\n",
    );
    let shown = path.display().to_string();
    for args in [
        vec!["--check-config", "--config", &shown],
        // Starting with it fails the same way, before anything is opened.
        vec!["--config", &shown],
    ] {
        let (code, stdout, stderr) = memnotifyd(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(stdout.is_empty());
        assert_eq!(
            stderr,
            format!("{shown}:2:3: levels: level 'warning': leave available 5% must be at least enter available 10%, or the level could never be left\n")
        );
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_missing_config_is_named() {
    let (code, _, stderr) = memnotifyd(&["--check-config", "--config", "/nonexistent/m.yaml"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("/nonexistent/m.yaml: cannot read: "),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, stderr) = memnotifyd(&["--frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("usage: memnotifyd"), "{stderr}");
    let (code, stdout, _) = memnotifyd(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--check-config"));
}

//! Debian's earlyoom, run from the bundle `cargo xtask bench` puts under /extra with its
//! shared libraries.

use std::process::Command;

/// Where the earlyoom binary is and where its libraries are.
#[derive(Clone, Debug)]
pub struct Earlyoom {
    pub binary: String,
    pub library_path: Option<String>,
}

/// earlyoom's options for a SIGTERM threshold of `threshold_kib` of MemAvailable: `-M`
/// is that threshold in KiB, `-s 100,100` makes swap irrelevant (free swap is always
/// at or below 100%), `-r 0` turns off the periodic report, `-p` raises its priority.
pub fn options(threshold_kib: u64) -> Vec<String> {
    [
        "-M",
        &threshold_kib.to_string(),
        "-s",
        "100,100",
        "-r",
        "0",
        "-p",
    ]
    .iter()
    .map(|word| word.to_string())
    .collect()
}

impl Earlyoom {
    pub fn command(&self, threshold_kib: u64) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(options(threshold_kib));
        if let Some(path) = &self.library_path {
            command.env("LD_LIBRARY_PATH", path);
        }
        command
    }
}

/// Whether earlyoom's output says it sent SIGTERM to `pid`.
pub fn killed(output: &str, pid: u32) -> bool {
    let wanted = format!("sending SIGTERM to process {pid} ");
    output.lines().any(|line| line.contains(&wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_state_the_threshold() {
        assert_eq!(options(123456).join(" "), "-M 123456 -s 100,100 -r 0 -p");
    }

    #[test]
    fn recognises_its_victim() {
        let output = "earlyoom v1.7\nlow memory! at or below SIGTERM limit: mem 75.00%, swap 100.00%\n\
                      sending SIGTERM to process 412 uid 0 \"mn-bench\": badness 1062, VmRSS 66 MiB\n";
        assert!(killed(output, 412));
        assert!(!killed(output, 41));
        assert!(!killed(output, 4120));
    }
}

//! Choosing whom to kill, from a `/proc`-like directory (tests use a fake one).

use std::path::Path;

use crate::config::{KillConfig, Pattern};

/// `PF_KTHREAD` in `/proc/PID/stat`'s flags.
const PF_KTHREAD: u64 = 0x0020_0000;
/// A preference weighs more than any `oom_score` (0 to 2000).
const PREFERENCE: i64 = 3000;

/// A process that may be killed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Its pid.
    pub pid: i32,
    /// Its `comm`.
    pub comm: String,
    /// The base name of its `argv[0]` (empty when it has none).
    pub program: String,
    /// `/proc/PID/oom_score`.
    pub oom_score: i64,
    /// Resident pages (`stat` field 24).
    pub rss_pages: u64,
    /// Start time in clock ticks after boot: tells a pid apart from a later reuse.
    pub start_time: u64,
}

/// The fields of `/proc/PID/stat` that matter here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// `comm`, between the parentheses.
    pub comm: String,
    /// `R`, `S`, `D`, `Z`...
    pub state: u8,
    /// Parent pid.
    pub ppid: i32,
    /// `PF_*` flags.
    pub flags: u64,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat` (`comm` may hold spaces and parentheses: it ends at the last `)`).
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // fields[0] is field 3 (state) of proc(5).
    let field = |number: usize| fields.get(number - 3).copied();
    Some(Stat {
        comm,
        state: *field(3)?.as_bytes().first()?,
        ppid: field(4)?.parse().ok()?,
        flags: field(9)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
        rss_pages: field(24)?.parse().ok()?,
    })
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

/// Reads one process; `None` when it is gone or must never be killed:
/// PID 1, the daemon itself, kernel threads, zombies and `oom_score_adj -1000`.
pub fn read_process(proc_root: &Path, pid: i32, self_pid: i32) -> Option<Process> {
    if pid <= 1 || pid == self_pid {
        return None;
    }
    let dir = proc_root.join(pid.to_string());
    let stat = parse_stat(&read(&dir, "stat")?)?;
    if stat.flags & PF_KTHREAD != 0 || pid == 2 || stat.ppid == 2 {
        return None;
    }
    if matches!(stat.state, b'Z' | b'X' | b'x') {
        return None;
    }
    if read(&dir, "oom_score_adj")?.trim().parse::<i64>().ok()? <= -1000 {
        return None;
    }
    let oom_score = read(&dir, "oom_score")?.trim().parse().ok()?;
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|&byte| byte == 0).next().unwrap_or_default();
    let program = String::from_utf8_lossy(argv0)
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    Some(Process {
        pid,
        comm: stat.comm,
        program,
        oom_score,
        rss_pages: stat.rss_pages,
        start_time: stat.start_time,
    })
}

/// Every process that may be killed.
pub fn scan(proc_root: &Path, self_pid: i32) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| read_process(proc_root, pid, self_pid))
        .collect()
}

fn matches(patterns: &[Pattern], process: &Process) -> bool {
    patterns.iter().any(|Pattern(regex)| {
        regex.is_match(&process.comm)
            || (!process.program.is_empty() && regex.is_match(&process.program))
    })
}

/// `oom_score`, raised for preferred names and lowered for avoided ones.
pub fn score(process: &Process, kill: &KillConfig) -> i64 {
    let mut score = process.oom_score;
    if matches(&kill.prefer, process) {
        score += PREFERENCE;
    }
    if matches(&kill.avoid, process) {
        score -= PREFERENCE;
    }
    score
}

/// The process to kill: the highest score, then the most resident memory, then the newest.
pub fn choose<'a>(processes: &'a [Process], kill: &KillConfig) -> Option<&'a Process> {
    processes
        .iter()
        .max_by_key(|process| (score(process, kill), process.rss_pages, process.start_time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    struct FakeProc {
        root: PathBuf,
    }

    impl FakeProc {
        fn new(name: &str) -> FakeProc {
            let root =
                std::env::temp_dir().join(format!("memnotifyd-proc-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            // Things that are not processes.
            std::fs::create_dir_all(root.join("sys")).unwrap();
            std::fs::write(root.join("meminfo"), "MemTotal: 1 kB\n").unwrap();
            FakeProc { root }
        }

        #[allow(clippy::too_many_arguments)]
        fn add(
            &self,
            pid: i32,
            comm: &str,
            argv0: &str,
            state: char,
            ppid: i32,
            flags: u64,
            oom_score: i64,
            adj: i64,
            rss: u64,
        ) {
            let dir = self.root.join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            let stat = format!(
                "{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 {flags} 0 0 0 0 0 0 0 0 20 0 1 0 {start} 1000000 {rss} 18446744073709551615\n",
                start = 100 + pid
            );
            std::fs::write(dir.join("stat"), stat).unwrap();
            std::fs::write(dir.join("oom_score"), format!("{oom_score}\n")).unwrap();
            std::fs::write(dir.join("oom_score_adj"), format!("{adj}\n")).unwrap();
            let mut cmdline = argv0.as_bytes().to_vec();
            if !argv0.is_empty() {
                cmdline.extend_from_slice(b"\0--flag\0");
            }
            std::fs::write(dir.join("cmdline"), cmdline).unwrap();
        }
    }

    impl Drop for FakeProc {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    fn kill(prefer: &[&str], avoid: &[&str]) -> KillConfig {
        let compile = |list: &[&str]| {
            list.iter()
                .map(|text| Pattern(regex_lite::Regex::new(text).unwrap()))
                .collect()
        };
        KillConfig {
            prefer: compile(prefer),
            avoid: compile(avoid),
            grace: Duration::from_secs(1),
        }
    }

    fn world(name: &str) -> FakeProc {
        let fake = FakeProc::new(name);
        fake.add(1, "init", "/sbin/init", 'S', 0, 0x400100, 1900, 0, 500);
        fake.add(2, "kthreadd", "", 'S', 0, 0x208040, 0, 0, 0);
        fake.add(3, "kswapd0", "", 'S', 2, 0x228840, 0, 0, 0);
        fake.add(
            50,
            "memnotifyd",
            "/usr/bin/memnotifyd",
            'S',
            1,
            0x400100,
            1999,
            0,
            300,
        );
        fake.add(60, "sshd", "/usr/sbin/sshd", 'S', 1, 0x400100, 700, 0, 4000);
        fake.add(
            70,
            "memhog",
            "/usr/bin/memhog",
            'R',
            60,
            0x400000,
            600,
            0,
            30000,
        );
        fake.add(
            80,
            "big app",
            "/opt/big app/bin/app",
            'S',
            1,
            0x400000,
            900,
            0,
            50000,
        );
        fake.add(90, "zombie", "", 'Z', 1, 0x400000, 1500, 0, 0);
        fake.add(
            95,
            "protected",
            "/usr/bin/protected",
            'S',
            1,
            0x400000,
            0,
            -1000,
            90000,
        );
        fake
    }

    #[test]
    fn never_init_self_kernel_threads_zombies_or_protected() {
        let fake = world("never");
        let mut pids: Vec<i32> = scan(&fake.root, 50)
            .iter()
            .map(|process| process.pid)
            .collect();
        pids.sort();
        assert_eq!(pids, [60, 70, 80]);
    }

    #[test]
    fn highest_oom_score_by_default() {
        let fake = world("default");
        let processes = scan(&fake.root, 50);
        let victim = choose(&processes, &kill(&[], &[])).unwrap();
        assert_eq!((victim.pid, victim.comm.as_str()), (80, "big app"));
        assert_eq!(victim.program, "app");
    }

    #[test]
    fn prefer_and_avoid_adjust_the_choice() {
        let fake = world("prefer");
        let processes = scan(&fake.root, 50);
        assert_eq!(
            choose(&processes, &kill(&["^memhog$"], &[])).unwrap().pid,
            70
        );
        assert_eq!(choose(&processes, &kill(&[], &["^app$"])).unwrap().pid, 60);
        // Avoided processes are still candidates when nothing else is left.
        let only_avoided: Vec<Process> =
            processes.iter().filter(|p| p.pid == 60).cloned().collect();
        assert_eq!(
            choose(&only_avoided, &kill(&[], &["sshd"])).unwrap().pid,
            60
        );
        assert_eq!(choose(&[], &kill(&[], &[])), None);
    }

    #[test]
    fn stat_with_awkward_comm() {
        let stat = parse_stat(
            "42 (a) b (c)) S 1 42 42 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 777 100 55 1",
        )
        .unwrap();
        assert_eq!(stat.comm, "a) b (c)");
        assert_eq!(stat.state, b'S');
        assert_eq!(stat.ppid, 1);
        assert_eq!(stat.flags, 4_194_304);
        assert_eq!(stat.start_time, 777);
        assert_eq!(stat.rss_pages, 55);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn reads_the_real_proc() {
        let me = std::process::id() as i32;
        // Our own process is visible but never a candidate for ourselves.
        assert!(read_process(Path::new("/proc"), me, me).is_none());
        let process = read_process(Path::new("/proc"), me, -1).expect("this test process");
        assert!(process.rss_pages > 0);
        assert!(!scan(Path::new("/proc"), -1).is_empty());
    }
}

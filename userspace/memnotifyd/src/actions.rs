//! The actions' side effects: hooks, reclaim and kills (the thin I/O shell).
//!
//! These run on level changes and stage timers, not on every sample; spawning
//! a hook and scanning `/proc` allocate a little, under `mlockall`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::config::{KillConfig, ReclaimConfig};
use crate::levels::Totals;
use crate::log;
use crate::log::{Logger, Severity};
use crate::victim;

/// The environment of a hook.
pub struct HookEnv<'a> {
    /// The level now.
    pub level: &'a str,
    /// The level before.
    pub previous: &'a str,
    /// The level's index.
    pub severity: usize,
    /// The figures, in pages.
    pub figures: &'a memnotify::Figures,
    /// Bytes per page.
    pub page_size: u64,
}

/// Hooks that are still running.
pub struct Hooks {
    running: Vec<(Child, u64)>,
    max: usize,
}

impl Hooks {
    /// Room for `max` hooks at once.
    pub fn new(max: usize) -> Hooks {
        Hooks {
            running: Vec::with_capacity(max),
            max,
        }
    }

    /// Runs `command` with `/bin/sh -c`, killed if still running at `deadline_ms`.
    pub fn spawn(
        &mut self,
        command: &str,
        env: &HookEnv<'_>,
        deadline_ms: u64,
        logger: &mut Logger,
    ) {
        if self.running.len() >= self.max {
            log!(
                logger,
                Severity::Warning,
                "hook not run, {} hooks still running: {command}",
                self.max
            );
            return;
        }
        let mut child = Command::new("/bin/sh");
        child
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .env("MEMNOTIFY_LEVEL", env.level)
            .env("MEMNOTIFY_PREVIOUS", env.previous)
            .env("MEMNOTIFY_SEVERITY", env.severity.to_string())
            .env("MEMNOTIFY_PAGE_SIZE", env.page_size.to_string());
        for figure in memnotify::Figure::ALL {
            child.env(
                format!("MEMNOTIFY_{}", figure.name().to_ascii_uppercase()),
                env.figures.get(figure).to_string(),
            );
        }
        match child.spawn() {
            Ok(child) => {
                log!(
                    logger,
                    Severity::Info,
                    "hook started (pid {}): {command}",
                    child.id()
                );
                self.running.push((child, deadline_ms));
            }
            Err(error) => log!(
                logger,
                Severity::Error,
                "hook failed to start: {command}: {error}"
            ),
        }
    }

    /// Collects finished hooks and kills overdue ones.
    pub fn reap(&mut self, now_ms: u64, logger: &mut Logger) {
        let mut index = 0;
        while index < self.running.len() {
            let (child, deadline) = &mut self.running[index];
            match child.try_wait() {
                Ok(Some(status)) => {
                    if status.success() {
                        log!(logger, Severity::Info, "hook (pid {}) finished", child.id());
                    } else {
                        log!(
                            logger,
                            Severity::Warning,
                            "hook (pid {}) failed: {status}",
                            child.id()
                        );
                    }
                    self.running.swap_remove(index);
                    continue;
                }
                Ok(None) if now_ms >= *deadline => {
                    log!(
                        logger,
                        Severity::Warning,
                        "hook (pid {}) overran its timeout: killed",
                        child.id()
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    self.running.swap_remove(index);
                    continue;
                }
                Ok(None) => {}
                Err(error) => {
                    log!(
                        logger,
                        Severity::Error,
                        "waiting for hook (pid {}): {error}",
                        child.id()
                    );
                    self.running.swap_remove(index);
                    continue;
                }
            }
            index += 1;
        }
    }

    /// The earliest hook deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.running.iter().map(|(_, deadline)| *deadline).min()
    }
}

/// Where reclaim writes.
pub struct ReclaimPaths {
    /// `/proc/sys/vm` (tests point it elsewhere).
    pub vm: PathBuf,
}

impl Default for ReclaimPaths {
    fn default() -> Self {
        ReclaimPaths {
            vm: PathBuf::from("/proc/sys/vm"),
        }
    }
}

/// Asks the kernel for memory back: `memory.reclaim` of the configured cgroup,
/// otherwise `drop_caches` and `compact_memory` (the modern `/dev/shrinkmem`).
pub fn reclaim(
    config: &ReclaimConfig,
    paths: &ReclaimPaths,
    totals: Totals,
    dry_run: bool,
    logger: &mut Logger,
) {
    if let Some(cgroup) = &config.cgroup {
        let file = cgroup.join("memory.reclaim");
        if file.exists() {
            let units = memnotify::Units {
                page_shift: totals.page_shift,
                total_pages: totals.ram_pages,
            };
            let bytes = config.amount.pages(units) << totals.page_shift;
            if dry_run {
                log!(
                    logger,
                    Severity::Notice,
                    "dry run: would write {bytes} to {}",
                    file.display()
                );
                return;
            }
            // EAGAIN means less than asked for could be reclaimed: still progress.
            match std::fs::write(&file, bytes.to_string()) {
                Ok(()) => log!(
                    logger,
                    Severity::Notice,
                    "reclaimed {} KiB from {}",
                    bytes >> 10,
                    cgroup.display()
                ),
                Err(error) if error.raw_os_error() == Some(libc::EAGAIN) => log!(
                    logger,
                    Severity::Notice,
                    "reclaimed less than {} KiB from {}",
                    bytes >> 10,
                    cgroup.display()
                ),
                Err(error) => log!(
                    logger,
                    Severity::Error,
                    "writing {}: {error}",
                    file.display()
                ),
            }
            return;
        }
        log!(
            logger,
            Severity::Warning,
            "{} has no memory.reclaim (cgroup v1, or a kernel before 5.19): dropping caches instead",
            cgroup.display()
        );
    }
    let drop_caches = paths.vm.join("drop_caches");
    let compact = paths.vm.join("compact_memory");
    if dry_run {
        log!(
            logger,
            Severity::Notice,
            "dry run: would write {} to {} and 1 to {}",
            config.drop_caches,
            drop_caches.display(),
            compact.display()
        );
        return;
    }
    match std::fs::write(&drop_caches, [b'0' + config.drop_caches]) {
        Ok(()) => log!(
            logger,
            Severity::Notice,
            "dropped caches ({})",
            config.drop_caches
        ),
        Err(error) => log!(
            logger,
            Severity::Error,
            "writing {}: {error}",
            drop_caches.display()
        ),
    }
    if compact.exists() {
        if let Err(error) = std::fs::write(&compact, b"1") {
            log!(
                logger,
                Severity::Error,
                "writing {}: {error}",
                compact.display()
            );
        }
    }
}

/// A victim sent SIGTERM and waiting out its grace period.
pub struct PendingKill {
    pid: i32,
    start_time: u64,
    pidfd: Option<OwnedFd>,
    deadline_ms: u64,
    comm: String,
}

impl PendingKill {
    /// The pidfd (readable once the process has exited), for the poll set.
    pub fn pidfd(&self) -> Option<std::os::fd::RawFd> {
        self.pidfd.as_ref().map(AsRawFd::as_raw_fd)
    }
}

/// Kills at most one victim at a time.
pub struct Killer {
    /// Where processes are listed.
    pub proc_root: PathBuf,
    pending: Option<PendingKill>,
}

/// `process_mrelease(2)`: frees a dying process's memory now instead of when it gets to exit.
fn process_mrelease(pidfd: &OwnedFd) -> Result<(), Errno> {
    // SAFETY: a plain syscall on a valid pidfd, no pointers.
    let result = unsafe { libc::syscall(libc::SYS_process_mrelease, pidfd.as_raw_fd(), 0) };
    if result == 0 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::INVAL))
    }
}

impl Killer {
    /// A killer looking at `proc_root`.
    pub fn new(proc_root: &Path) -> Killer {
        Killer {
            proc_root: proc_root.to_path_buf(),
            pending: None,
        }
    }

    /// The victim in its grace period, if any.
    pub fn pending(&self) -> Option<&PendingKill> {
        self.pending.as_ref()
    }

    /// The end of the grace period, if a victim is waiting.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.as_ref().map(|pending| pending.deadline_ms)
    }

    fn same_process(&self, pid: i32, start_time: u64) -> bool {
        let stat = std::fs::read_to_string(self.proc_root.join(pid.to_string()).join("stat"));
        stat.ok()
            .and_then(|text| victim::parse_stat(&text))
            .is_some_and(|stat| stat.start_time == start_time && !matches!(stat.state, b'Z' | b'X'))
    }

    fn signal(&self, pid: i32, pidfd: Option<&OwnedFd>, signal: Signal) -> Result<(), Errno> {
        match pidfd {
            Some(pidfd) => rustix::process::pidfd_send_signal(pidfd.as_fd(), signal),
            None => {
                let pid = Pid::from_raw(pid).ok_or(Errno::SRCH)?;
                rustix::process::kill_process(pid, signal)
            }
        }
    }

    /// Scans the processes and chooses a victim without acting, so that the code and
    /// the heap this needs are resident (and locked) before memory runs short.
    pub fn warm_up(&self, config: &KillConfig) {
        let processes = victim::scan(&self.proc_root, std::process::id() as i32);
        let chosen = victim::choose(&processes, config).map(|victim| victim::score(victim, config));
        std::hint::black_box(chosen);
    }

    /// Chooses a victim and sends it SIGTERM (or only logs, in a dry run).
    pub fn kill_one(
        &mut self,
        config: &KillConfig,
        dry_run: bool,
        now_ms: u64,
        logger: &mut Logger,
    ) {
        if let Some(pending) = &self.pending {
            log!(
                logger,
                Severity::Info,
                "kill skipped: pid {} ({}) is still in its grace period",
                pending.pid,
                pending.comm
            );
            return;
        }
        let self_pid = std::process::id() as i32;
        let processes = victim::scan(&self.proc_root, self_pid);
        let Some(victim) = victim::choose(&processes, config) else {
            log!(logger, Severity::Warning, "kill: no process may be killed");
            return;
        };
        let score = victim::score(victim, config);
        if dry_run {
            log!(
                logger,
                Severity::Notice,
                "dry run: would kill pid {} ({}), oom_score {}, score {score}, {} resident pages",
                victim.pid,
                victim.comm,
                victim.oom_score,
                victim.rss_pages
            );
            return;
        }
        let pidfd = Pid::from_raw(victim.pid)
            .and_then(|pid| rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok());
        // The pidfd pins the process; check it is still the one chosen, not a reused pid.
        if !self.same_process(victim.pid, victim.start_time) {
            log!(
                logger,
                Severity::Info,
                "kill: pid {} exited before it could be killed",
                victim.pid
            );
            return;
        }
        match self.signal(victim.pid, pidfd.as_ref(), Signal::TERM) {
            Ok(()) => {
                log!(
                    logger,
                    Severity::Notice,
                    "killing pid {} ({}): SIGTERM, oom_score {}, score {score}, {} resident pages",
                    victim.pid,
                    victim.comm,
                    victim.oom_score,
                    victim.rss_pages
                );
                self.pending = Some(PendingKill {
                    pid: victim.pid,
                    start_time: victim.start_time,
                    pidfd,
                    deadline_ms: now_ms.saturating_add(config.grace.as_millis() as u64),
                    comm: victim.comm.clone(),
                });
            }
            Err(errno) => log!(
                logger,
                Severity::Error,
                "kill: SIGTERM to pid {}: {errno}",
                victim.pid
            ),
        }
    }

    fn exited(&self, pending: &PendingKill) -> bool {
        match &pending.pidfd {
            Some(pidfd) => {
                let mut fds = [rustix::event::PollFd::new(
                    pidfd,
                    rustix::event::PollFlags::IN,
                )];
                let zero = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(1))
            }
            None => !self.same_process(pending.pid, pending.start_time),
        }
    }

    /// Follows up on the victim: forgets it once it is gone, SIGKILLs it after the grace period.
    pub fn follow_up(&mut self, now_ms: u64, logger: &mut Logger) {
        let Some(pending) = &self.pending else {
            return;
        };
        if self.exited(pending) {
            log!(
                logger,
                Severity::Notice,
                "pid {} ({}) exited",
                pending.pid,
                pending.comm
            );
            self.pending = None;
            return;
        }
        if now_ms < pending.deadline_ms {
            return;
        }
        let pending = self.pending.take().expect("checked above");
        match self.signal(pending.pid, pending.pidfd.as_ref(), Signal::KILL) {
            Ok(()) => {
                let released = match &pending.pidfd {
                    Some(pidfd) => match process_mrelease(pidfd) {
                        Ok(()) => "its memory released with process_mrelease",
                        Err(Errno::NOSYS) => "process_mrelease not available",
                        // EINVAL: the process was not exiting yet; it frees its memory itself.
                        Err(_) => "process_mrelease not needed",
                    },
                    None => "no pidfd",
                };
                log!(
                    logger,
                    Severity::Notice,
                    "pid {} ({}) outlived its grace period: SIGKILL, {released}",
                    pending.pid,
                    pending.comm
                );
            }
            Err(Errno::SRCH) => log!(
                logger,
                Severity::Notice,
                "pid {} ({}) exited",
                pending.pid,
                pending.comm
            ),
            Err(errno) => log!(
                logger,
                Severity::Error,
                "kill: SIGKILL to pid {}: {errno}",
                pending.pid
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Amount;

    #[test]
    fn reclaim_without_cgroup_drops_caches_and_compacts() {
        let dir = std::env::temp_dir().join(format!("memnotifyd-vm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("compact_memory"), "").unwrap();
        let config = ReclaimConfig {
            cgroup: None,
            amount: Amount::Percent(5),
            drop_caches: 1,
        };
        let totals = Totals {
            page_shift: 12,
            ram_pages: 1000,
            swap_pages: 0,
        };
        let mut logger = Logger::discard();
        let paths = ReclaimPaths { vm: dir.clone() };
        reclaim(&config, &paths, totals, true, &mut logger);
        assert!(
            !dir.join("drop_caches").exists(),
            "a dry run writes nothing"
        );
        reclaim(&config, &paths, totals, false, &mut logger);
        assert_eq!(
            std::fs::read_to_string(dir.join("drop_caches")).unwrap(),
            "1"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("compact_memory")).unwrap(),
            "1"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reclaim_with_a_cgroup_writes_bytes() {
        let dir = std::env::temp_dir().join(format!("memnotifyd-cg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.reclaim"), "").unwrap();
        let config = ReclaimConfig {
            cgroup: Some(dir.clone()),
            amount: Amount::Percent(10),
            drop_caches: 3,
        };
        let totals = Totals {
            page_shift: 12,
            ram_pages: 1000,
            swap_pages: 0,
        };
        let mut logger = Logger::discard();
        reclaim(
            &config,
            &ReclaimPaths { vm: dir.join("vm") },
            totals,
            false,
            &mut logger,
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.reclaim")).unwrap(),
            "409600"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kills_the_chosen_child_and_escalates_after_grace() {
        // A child that ignores SIGTERM, with a name no other process has (comm
        // comes from the executed link's name), preferred by that name.
        let name = format!("mnv{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("memnotifyd-kill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join(&name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/bin/sleep", &link).unwrap();
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("trap '' TERM; exec {} 30", link.display()))
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let config = KillConfig {
            prefer: vec![crate::config::Pattern(
                regex_lite::Regex::new(&format!("^{name}$")).unwrap(),
            )],
            avoid: Vec::new(),
            grace: std::time::Duration::from_millis(100),
        };
        let mut logger = Logger::discard();
        let mut killer = Killer::new(Path::new("/proc"));
        killer.kill_one(&config, true, 0, &mut logger);
        assert!(killer.pending().is_none(), "a dry run kills nothing");
        assert!(child.try_wait().unwrap().is_none());
        // Never signal anything on this machine but our own child.
        let processes = victim::scan(Path::new("/proc"), std::process::id() as i32);
        let chosen = victim::choose(&processes, &config).map(|victim| victim.pid);
        if chosen != Some(child.id() as i32) {
            let _ = child.kill();
            panic!("the test child was not chosen: {chosen:?}");
        }
        killer.kill_one(&config, false, 0, &mut logger);
        let pending = killer.pending().expect("a victim");
        assert_eq!(pending.pid, child.id() as i32);
        killer.follow_up(50, &mut logger);
        assert!(killer.pending().is_some(), "still in its grace period");
        killer.follow_up(100, &mut logger);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(killer.pending().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

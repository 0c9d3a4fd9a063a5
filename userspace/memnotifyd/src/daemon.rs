//! The event loop: sample, evaluate levels, act, publish.

use std::path::{Path, PathBuf};
use std::time::Instant;

use memnotify::signals::SignalPipe;
use memnotify::{Figure, Options, Snapshot};

use crate::actions::{self, HookEnv, Hooks, Killer, ReclaimPaths};
use crate::config::{self, Action, Config};
use crate::json::{self, Report, JSON_BUF};
use crate::levels::{self, Change, Machine, Totals};
use crate::log;
use crate::log::{Logger, Severity};
use crate::monitor::Monitor;
use crate::schedule::Schedule;
use crate::socket::Publisher;

/// How the daemon was started.
pub struct Settings {
    /// The configuration file.
    pub config_path: PathBuf,
    /// Decide and log, but act on nothing.
    pub dry_run: bool,
    /// Where to write our pid.
    pub pidfile: Option<PathBuf>,
    /// Log to syslog when `/dev/log` exists.
    pub syslog: bool,
}

/// Why the daemon could not start.
pub enum StartError {
    /// The configuration is invalid (exit status 2).
    Config(String),
    /// Anything else (exit status 1).
    Other(String),
}

/// Everything the loop needs, allocated at start-up.
pub struct Daemon {
    settings: Settings,
    config: Config,
    monitor: Monitor,
    machine: Machine,
    totals: Totals,
    schedule: Schedule,
    hooks: Hooks,
    killer: Killer,
    reclaim_paths: ReclaimPaths,
    publisher: Publisher,
    logger: Logger,
    signals: SignalPipe,
    last: Snapshot,
    previous: usize,
    start: Instant,
    next_sample_ms: u64,
    pollfds: Vec<libc::pollfd>,
    /// The system bus thread, when the configuration switches an interface on.
    #[cfg(feature = "dbus")]
    bus: Option<crate::dbus_service::Bus>,
    /// Last, so it is removed after the socket and the bus thread are gone.
    pidfile: Option<PidFile>,
}

/// `--pidfile`: written once the daemon is ready, removed when dropped. As the daemon's
/// last field it goes last, so the file exists exactly while the daemon serves.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: &Path) -> Result<PidFile, StartError> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|error| StartError::Other(format!("pidfile {}: {error}", path.display())))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn level_name(config: &Config, level: usize) -> &str {
    match level {
        0 => "normal",
        _ => &config.levels[level - 1].name,
    }
}

fn mib(pages: u64, page_shift: u32) -> u64 {
    (pages << page_shift) >> 20
}

/// Locks the daemon in memory and exempts it from the OOM killer.
///
/// `MCL_ONFAULT` locks each page when it is first touched instead of making the whole
/// static image resident at once: the code the daemon never runs (the configuration
/// parser's error paths, the formatting of other kinds of messages) stays out of memory,
/// and what it runs stays locked. [`Daemon::start`] touches the paths that run only under
/// pressure (the victim scan) before it returns. Kernels before 4.4 reject the flag:
/// then everything is locked, as before.
fn protect(logger: &mut Logger) {
    use rustix::mm::MlockAllFlags;
    let locked = rustix::mm::mlockall(
        MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT,
    )
    .or_else(|_| rustix::mm::mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE));
    if let Err(errno) = locked {
        logger.always(
            Severity::Warning,
            format_args!("mlockall failed ({errno}): the daemon may be swapped out under pressure"),
        );
    }
    if let Err(error) = std::fs::write("/proc/self/oom_score_adj", "-1000") {
        logger.always(
            Severity::Warning,
            format_args!(
                "cannot set oom_score_adj to -1000 ({error}): the OOM killer may pick the daemon"
            ),
        );
    }
}

impl Daemon {
    /// Loads the configuration, opens the backend and the socket, protects the process.
    pub fn start(settings: Settings) -> Result<Daemon, StartError> {
        let config = config::load(&settings.config_path)
            .map_err(|error| StartError::Config(error.display(&settings.config_path)))?;
        let mut logger = Logger::new(
            config.log.burst,
            config.log.period.as_millis() as u64,
            settings.syslog,
        );
        let options = Options {
            psi_trigger: config.psi,
            ..Options::default()
        };
        let mut monitor = Monitor::open(config.backend, &options)
            .map_err(|error| StartError::Other(error.to_string()))?;
        let last = monitor
            .sample()
            .map_err(|error| StartError::Other(error.to_string()))?;
        let totals = Totals::of(&last.figures, memnotify::page_shift());
        let machine = Machine::new(levels::resolve(&config.levels, totals));
        let publisher = Publisher::bind(
            &config.socket.path,
            config.socket.mode,
            config.socket.limits(),
        )
        .map_err(|error| {
            StartError::Other(format!("socket {}: {error}", config.socket.path.display()))
        })?;
        let signals =
            SignalPipe::install(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD])
                .map_err(|error| StartError::Other(error.to_string()))?;
        protect(&mut logger);
        let most_stages = config
            .levels
            .iter()
            .map(|level| level.stages.len())
            .max()
            .unwrap_or(0);
        let pollfds = Vec::with_capacity(5 + config.socket.max_clients);
        #[cfg(feature = "dbus")]
        let bus = if config.dbus.any() {
            let bus_logger = Logger::new(
                config.log.burst,
                config.log.period.as_millis() as u64,
                settings.syslog,
            );
            Some(
                crate::dbus_service::Bus::start(config.dbus, config.levels.len(), bus_logger)
                    .map_err(|error| StartError::Other(format!("D-Bus thread: {error}")))?,
            )
        } else {
            None
        };
        let mut daemon = Daemon {
            schedule: Schedule::with_capacity(most_stages.max(8)),
            hooks: Hooks::new(8),
            killer: Killer::new(Path::new("/proc")),
            reclaim_paths: ReclaimPaths::default(),
            publisher,
            signals,
            last,
            previous: 0,
            start: Instant::now(),
            next_sample_ms: 0,
            pollfds,
            #[cfg(feature = "dbus")]
            bus,
            pidfile: None,
            settings,
            config,
            monitor,
            machine,
            totals,
            logger,
        };
        daemon.log_start();
        // Under MCL_ONFAULT, fault in (and so lock) the victim scan now rather than
        // when memory is short.
        daemon.killer.warm_up(&daemon.config.kill);
        // Last: the pidfile says the daemon is ready (its socket listens, the bus thread
        // runs), so an init script or a test waits for it rather than for a fixed time.
        daemon.pidfile = daemon
            .settings
            .pidfile
            .as_deref()
            .map(PidFile::write)
            .transpose()?;
        Ok(daemon)
    }

    fn log_start(&mut self) {
        let names: Vec<&str> = self
            .config
            .levels
            .iter()
            .map(|level| level.name.as_str())
            .collect();
        self.logger.always(
            Severity::Notice,
            format_args!(
                "started: backend {}, levels normal, {}; socket {}{}",
                self.monitor.kind(),
                names.join(", "),
                self.publisher.path().display(),
                if self.settings.dry_run {
                    "; dry run: no action is taken"
                } else {
                    ""
                }
            ),
        );
        for level in &self.config.levels {
            for bound in level.bounds() {
                self.logger.always(
                    Severity::Info,
                    format_args!(
                        "level {}: enter at {} {}, leave at {}",
                        level.name,
                        bound.metric.name(),
                        bound.enter,
                        bound.leave
                    ),
                );
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn interval_ms(&self) -> u64 {
        self.config
            .interval
            .unwrap_or_else(|| self.monitor.default_interval())
            .as_millis() as u64
    }

    /// Runs until SIGTERM or SIGINT.
    pub fn run(mut self) -> Result<(), String> {
        self.evaluate();
        loop {
            let now = self.now_ms();
            let deadline = [
                Some(self.next_sample_ms),
                self.schedule.next_due(),
                self.killer.next_deadline(),
                self.hooks.next_deadline(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + 1000);
            let timeout = deadline.saturating_sub(now).min(60_000) as i32;

            self.pollfds.clear();
            let fd = |fd: i32, events: i16| libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            self.pollfds.push(fd(
                std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&self.signals)),
                libc::POLLIN,
            ));
            for (raw, events) in self.monitor.fds() {
                self.pollfds.push(fd(raw, events));
            }
            self.pollfds.push(fd(
                self.killer.pending().and_then(|p| p.pidfd()).unwrap_or(-1),
                libc::POLLIN,
            ));
            for raw in self.publisher.fds() {
                self.pollfds.push(fd(raw, libc::POLLIN));
            }
            // SAFETY: pollfds is a valid array of pollfd of the given length.
            let ready = unsafe {
                libc::poll(
                    self.pollfds.as_mut_ptr(),
                    self.pollfds.len() as libc::nfds_t,
                    timeout,
                )
            };
            if ready < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(format!("poll: {}", std::io::Error::last_os_error()));
            }

            let signals = self.signals.take();
            if SignalPipe::has(signals, libc::SIGTERM) || SignalPipe::has(signals, libc::SIGINT) {
                let name = if SignalPipe::has(signals, libc::SIGTERM) {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                self.logger
                    .always(Severity::Notice, format_args!("stopping on {name}"));
                return Ok(());
            }
            if SignalPipe::has(signals, libc::SIGHUP) {
                self.reload();
            }

            let monitor_ready = self.pollfds[1..3]
                .iter()
                .any(|pollfd| pollfd.fd >= 0 && pollfd.revents != 0);
            if monitor_ready || self.now_ms() >= self.next_sample_ms {
                if let Err(error) = self.monitor.drain() {
                    log!(self.logger, Severity::Error, "{error}");
                }
                self.evaluate();
            }

            let now = self.now_ms();
            self.run_due_stages(now);
            self.killer.follow_up(now, &mut self.logger);
            self.hooks.reap(now, &mut self.logger);
            self.publisher.accept();
            self.serve_clients();
        }
    }

    /// Samples, moves between levels, re-arms the wake thresholds. A failed
    /// sample is logged (rate-limited) and retried at the next interval.
    fn evaluate(&mut self) {
        #[cfg(feature = "dbus")]
        let mut changed = false;
        // Re-arming samples again: a figure that crossed between the sample and
        // the write is seen on the next round instead of being missed.
        for _ in 0..3 {
            let snapshot = match self.monitor.sample() {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    log!(self.logger, Severity::Error, "sampling: {error}");
                    break;
                }
            };
            self.last = snapshot;
            let totals = Totals::of(&snapshot.figures, self.totals.page_shift);
            if totals != self.totals {
                // Swap switched on or off, or memory hotplug: % bounds move.
                self.totals = totals;
                self.machine
                    .set_levels(levels::resolve(&self.config.levels, totals));
            }
            if let Some(change) = self.machine.update(&snapshot.figures) {
                self.on_change(change);
                #[cfg(feature = "dbus")]
                {
                    changed = true;
                }
            }
            let wake = self.machine.wake_thresholds(&snapshot.figures);
            match self.monitor.arm(wake) {
                Ok(false) => break,
                Ok(true) => continue,
                Err(error) => {
                    log!(self.logger, Severity::Error, "arming thresholds: {error}");
                    break;
                }
            }
        }
        self.next_sample_ms = self.now_ms() + self.interval_ms();
        #[cfg(feature = "dbus")]
        self.publish_on_bus(changed);
    }

    /// Hands the state to the bus thread (it never blocks on the bus).
    #[cfg(feature = "dbus")]
    fn publish_on_bus(&self, changed: bool) {
        if let Some(bus) = &self.bus {
            let current = self.machine.current();
            bus.publish(
                current,
                self.config.levels.len(),
                level_name(&self.config, current),
                level_name(&self.config, self.previous),
                &self.last.figures,
                1 << self.totals.page_shift,
                changed,
            );
        }
    }

    fn report(&self, event: &'static str) -> Report<'_> {
        Report {
            event,
            level: level_name(&self.config, self.machine.current()),
            previous: level_name(&self.config, self.previous),
            severity: self.machine.current(),
            time_ns: self.last.time_ns,
            figures: &self.last.figures,
            page_size: 1 << self.totals.page_shift,
            backend: self.monitor.kind().name(),
            dry_run: self.settings.dry_run,
        }
    }

    fn on_change(&mut self, change: Change) {
        self.previous = change.from;
        let figures = self.last.figures;
        let shift = self.totals.page_shift;
        let swap_used = figures
            .get(Figure::SwapTotal)
            .saturating_sub(figures.get(Figure::SwapFree));
        log!(
            self.logger,
            Severity::Notice,
            "level {} -> {}: available {} MiB, used {} MiB, free {} MiB, swap used {} MiB",
            level_name(&self.config, change.from),
            level_name(&self.config, change.to),
            mib(figures.get(Figure::Available), shift),
            mib(figures.get(Figure::Used), shift),
            mib(figures.get(Figure::Free), shift),
            mib(swap_used, shift)
        );
        let mut line = [0u8; JSON_BUF];
        let len = json::format(&self.report("change"), &mut line);
        self.publisher.broadcast(&line[..len]);

        if let Some(command) = self.config.hook.clone() {
            self.run_hook(&command);
        }
        let now = self.now_ms();
        if change.to > change.from {
            self.schedule
                .enter(&self.config.levels[change.to - 1].stages, now);
        } else {
            self.schedule.clear();
        }
    }

    fn run_hook(&mut self, command: &str) {
        if self.settings.dry_run {
            log!(
                self.logger,
                Severity::Notice,
                "dry run: would run hook: {command}"
            );
            return;
        }
        let env = HookEnv {
            level: level_name(&self.config, self.machine.current()),
            previous: level_name(&self.config, self.previous),
            severity: self.machine.current(),
            figures: &self.last.figures,
            page_size: 1 << self.totals.page_shift,
        };
        let deadline = self.now_ms() + self.config.hook_timeout.as_millis() as u64;
        self.hooks.spawn(command, &env, deadline, &mut self.logger);
    }

    fn run_due_stages(&mut self, now: u64) {
        let current = self.machine.current();
        if current == 0 {
            return;
        }
        while let Some(index) = self
            .schedule
            .pop_due(&self.config.levels[current - 1].stages, now)
        {
            let action = self.config.levels[current - 1].stages[index].action.clone();
            let level = level_name(&self.config, current);
            log!(
                self.logger,
                Severity::Info,
                "level {level}: stage {} ({})",
                index + 1,
                action.name()
            );
            match action {
                Action::Log(message) => {
                    log!(
                        self.logger,
                        Severity::Notice,
                        "level {}: {message}",
                        level_name(&self.config, current)
                    )
                }
                Action::Hook(command) => self.run_hook(&command),
                Action::Reclaim => actions::reclaim(
                    &self.config.reclaim,
                    &self.reclaim_paths,
                    self.totals,
                    self.settings.dry_run,
                    &mut self.logger,
                ),
                Action::Kill => self.killer.kill_one(
                    &self.config.kill,
                    self.settings.dry_run,
                    now,
                    &mut self.logger,
                ),
            }
        }
    }

    fn serve_clients(&mut self) {
        // The state cannot change while clients are served: format it once.
        let mut line = [0u8; JSON_BUF];
        let len = json::format(&self.report("state"), &mut line);
        self.publisher.serve(|buf| {
            buf[..len].copy_from_slice(&line[..len]);
            len
        });
    }

    /// SIGHUP: load the file again; keep the old configuration if the new one is bad.
    fn reload(&mut self) {
        let path = self.settings.config_path.clone();
        let new = match config::load(&path) {
            Ok(new) => new,
            Err(error) => {
                self.logger.always(
                    Severity::Error,
                    format_args!(
                        "reload rejected, keeping the old configuration: {}",
                        error.display(&path)
                    ),
                );
                return;
            }
        };
        #[cfg(feature = "dbus")]
        if new.dbus
            != self
                .bus
                .as_ref()
                .map(|bus| bus.config())
                .unwrap_or_default()
        {
            self.logger.always(
                Severity::Warning,
                format_args!("dbus settings change only on restart"),
            );
        }
        if new.backend != self.config.backend || new.psi != self.config.psi {
            self.logger.always(
                Severity::Warning,
                format_args!("backend and psi settings change only on restart"),
            );
        }
        // New limits apply to later connections; those already in stay.
        self.publisher.set_limits(new.socket.limits());
        if new.socket.path != self.config.socket.path || new.socket.mode != self.publisher.mode() {
            match Publisher::bind(&new.socket.path, new.socket.mode, new.socket.limits()) {
                Ok(publisher) => self.publisher = publisher,
                Err(error) => self.logger.always(
                    Severity::Error,
                    format_args!(
                        "socket {}: {error}; keeping {}",
                        new.socket.path.display(),
                        self.publisher.path().display()
                    ),
                ),
            }
        }
        let current = level_name(&self.config, self.machine.current()).to_string();
        let kept = new
            .levels
            .iter()
            .position(|level| level.name == current)
            .map_or(0, |index| index + 1);
        self.machine = Machine::new(levels::resolve(&new.levels, self.totals));
        self.machine.set_current(kept);
        self.previous = self.previous.min(new.levels.len());
        self.schedule.clear();
        self.logger
            .set_limit(new.log.burst, new.log.period.as_millis() as u64);
        self.config = new;
        self.logger.always(
            Severity::Notice,
            format_args!(
                "configuration reloaded from {}; level {}",
                path.display(),
                level_name(&self.config, kept)
            ),
        );
        self.evaluate();
    }
}

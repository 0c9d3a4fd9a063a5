//! The system bus (cargo feature `dbus`, issue 17): mce's memory level, freedesktop's
//! low-memory-monitor and memnotifyd's own `org.memnotify.Daemon1`.
//!
//! The bus lives on a thread of its own, so the event loop never waits for it: the loop
//! only stores the current level and figures in [`Shared`] (a mutex held for a copy, no
//! allocation) and wakes the thread. The thread connects, owns the names, answers calls
//! (through zbus's object server, which reads the same [`Shared`]) and sends the signals.
//! When the bus goes away (dbus-daemon restarted or stopped) the thread logs it and
//! connects again, at growing intervals up to [`RETRY_MAX`]; the levels, the socket and
//! the actions go on meanwhile, untouched. On every (re)connection the current mce level is
//! sent once, so clients that saw the name come back are up to date.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use memnotify::{Figure, Figures};
use memnotifyd::dbus::{low_memory_warning, mce_level, DbusConfig};
use zbus::blocking::Connection;
use zbus::fdo::{RequestNameFlags, RequestNameReply};

use crate::log::{Logger, Severity};

/// mce's names (`mce/dbus-names.h`).
pub const MCE_SERVICE: &str = "com.nokia.mce";
pub const MCE_REQUEST_PATH: &str = "/com/nokia/mce/request";
pub const MCE_SIGNAL_PATH: &str = "/com/nokia/mce/signal";
pub const MCE_SIGNAL_IF: &str = "com.nokia.mce.signal";
pub const MCE_MEMORY_LEVEL_SIG: &str = "sig_memory_level_ind";
/// low-memory-monitor's names.
pub const LMM_SERVICE: &str = "org.freedesktop.LowMemoryMonitor";
pub const LMM_PATH: &str = "/org/freedesktop/LowMemoryMonitor";
/// Ours (documented in `dbus/org.memnotify.Daemon1.xml`).
pub const OWN_SERVICE: &str = "org.memnotify.Daemon1";
pub const OWN_PATH: &str = "/org/memnotify/Daemon1";

/// low-memory-monitor sends a level again at most every 15 s while its PSI trigger keeps
/// firing (`RECOVERY_INTERVAL` in its `low-memory-monitor.c`); memnotifyd repeats the
/// current warning at that interval while the level holds.
pub const LMM_REPEAT: Duration = Duration::from_secs(15);
/// The longest wait between two connection attempts.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// The figures' change signal is sent when one moved by at least 1/FIGURE_STEP of RAM
/// since the last one (or with a level change): not at every sample.
const FIGURE_STEP: u64 = 100;

/// What the event loop tells the bus thread, and what the objects answer from.
#[derive(Clone, Copy)]
struct State {
    /// `None` until the first evaluation.
    severity: Option<usize>,
    /// How many levels are configured (not counting normal).
    levels: usize,
    /// memnotifyd's name of the current level.
    name: [u8; 64],
    name_len: usize,
    figures: Figures,
    page_size: u64,
    /// Bumped at every level change.
    change: u64,
    previous: [u8; 64],
    previous_len: usize,
}

impl State {
    fn level_name(&self) -> &str {
        std::str::from_utf8(&self.name[..self.name_len]).unwrap_or("")
    }
    fn previous_name(&self) -> &str {
        std::str::from_utf8(&self.previous[..self.previous_len]).unwrap_or("")
    }
    fn figures_bytes(&self) -> HashMap<String, u64> {
        Figure::ALL
            .iter()
            .map(|&figure| {
                (
                    figure.name().to_string(),
                    self.figures.get(figure) * self.page_size,
                )
            })
            .collect()
    }
}

struct Inner {
    state: State,
    stop: bool,
    /// The figures of the last wake-up for moved figures (see [`Bus::publish`]).
    woken_for: Figures,
}

/// The state shared by the event loop, the bus thread and the objects.
struct Shared {
    inner: Mutex<Inner>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    fn state(&self) -> State {
        self.lock().state
    }
}

fn copy_name(into: &mut [u8; 64], name: &str) -> usize {
    let len = name.len().min(into.len());
    into[..len].copy_from_slice(&name.as_bytes()[..len]);
    len
}

/// Whether a figure moved by at least 1/[`FIGURE_STEP`] of RAM between two samples.
fn figures_moved(now: &Figures, last: &Figures) -> bool {
    let step = (now.get(Figure::Total) / FIGURE_STEP).max(1);
    Figure::ALL
        .iter()
        .any(|&figure| now.get(figure).abs_diff(last.get(figure)) >= step)
}

/// The event loop's handle on the bus thread.
pub struct Bus {
    shared: Arc<Shared>,
    config: DbusConfig,
}

impl Bus {
    /// Starts the bus thread for the interfaces `config` switches on.
    pub fn start(config: DbusConfig, levels: usize, logger: Logger) -> std::io::Result<Bus> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                state: State {
                    severity: None,
                    levels,
                    name: [0; 64],
                    name_len: 0,
                    figures: Figures::default(),
                    page_size: 4096,
                    change: 0,
                    previous: [0; 64],
                    previous_len: 0,
                },
                stop: false,
                woken_for: Figures::default(),
            }),
            wake: Condvar::new(),
        });
        // Never joined: at exit a thread stuck on a hung bus must not keep the daemon up.
        std::thread::Builder::new().name("dbus".into()).spawn({
            let shared = Arc::clone(&shared);
            move || Worker::new(shared, config, logger).run()
        })?;
        Ok(Bus { shared, config })
    }

    /// The configuration the thread was started with (it changes only on restart).
    pub fn config(&self) -> DbusConfig {
        self.config
    }

    /// Records the current state after an evaluation; `change` is true on a level change.
    /// Never blocks on the bus: a short lock, and a wake-up of the bus thread only when it
    /// has something to send (a level change, or figures that moved for Daemon1), so an
    /// idle daemon's samples do not wake it.
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &self,
        severity: usize,
        levels: usize,
        name: &str,
        previous: &str,
        figures: &Figures,
        page_size: u64,
        change: bool,
    ) {
        let mut inner = self.shared.lock();
        let state = &mut inner.state;
        let first = state.severity.is_none();
        state.severity = Some(severity);
        state.levels = levels;
        state.name_len = copy_name(&mut state.name, name);
        state.previous_len = copy_name(&mut state.previous, previous);
        state.figures = *figures;
        state.page_size = page_size;
        let mut wake = change || first;
        if change || first {
            state.change += 1;
        }
        if self.config.memnotify && figures_moved(figures, &inner.woken_for) {
            inner.woken_for = *figures;
            wake = true;
        }
        drop(inner);
        if wake {
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
    }
}

/// `com.nokia.mce.request` at `/com/nokia/mce/request`: only the memory level.
struct MceRequest(Arc<Shared>);

#[zbus::interface(name = "com.nokia.mce.request")]
impl MceRequest {
    /// The current memory level: `normal`, `warning`, `critical` (`unknown` before the
    /// first figures).
    #[zbus(name = "get_memory_level")]
    fn get_memory_level(&self) -> String {
        let state = self.0.state();
        mce_level(state.severity, state.levels).to_string()
    }
}

/// `com.nokia.mce.signal` at `/com/nokia/mce/signal`, for introspection: the signal is
/// sent by the thread.
struct MceSignal;

#[zbus::interface(name = "com.nokia.mce.signal")]
impl MceSignal {
    #[zbus(signal, name = "sig_memory_level_ind")]
    async fn sig_memory_level_ind(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        level: &str,
    ) -> zbus::Result<()>;
}

/// `org.freedesktop.LowMemoryMonitor`: only the signal, as the original.
struct LowMemoryMonitor;

#[zbus::interface(name = "org.freedesktop.LowMemoryMonitor")]
impl LowMemoryMonitor {
    #[zbus(signal, name = "LowMemoryWarning")]
    async fn low_memory_warning(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        level: u8,
    ) -> zbus::Result<()>;
}

/// `org.memnotify.Daemon1`: the level and figures as properties, level changes as signals.
struct Daemon1(Arc<Shared>);

#[zbus::interface(name = "org.memnotify.Daemon1")]
impl Daemon1 {
    /// memnotifyd's name of the current level (`normal` or a configured level's name).
    #[zbus(property(emits_changed_signal = "true"))]
    fn level(&self) -> String {
        self.0.state().level_name().to_string()
    }

    /// 0 for normal, then 1, 2, … in the configuration's order.
    #[zbus(property(emits_changed_signal = "true"))]
    fn severity(&self) -> u32 {
        self.0.state().severity.unwrap_or(0) as u32
    }

    /// The latest figures in bytes: used, active, total, free, available, swap_total,
    /// swap_free.
    #[zbus(property(emits_changed_signal = "true"))]
    fn figures(&self) -> HashMap<String, u64> {
        self.0.state().figures_bytes()
    }

    #[zbus(signal, name = "LevelChanged")]
    async fn level_change(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        level: &str,
        previous: &str,
        severity: u32,
    ) -> zbus::Result<()>;
}

/// What the thread sent last on the current connection.
struct Sent {
    change: u64,
    figures: Figures,
    lmm_at: Option<Instant>,
}

/// The bus thread.
struct Worker {
    shared: Arc<Shared>,
    config: DbusConfig,
    logger: Logger,
}

/// The names this connection owns.
#[derive(Default, Clone, Copy)]
struct Owned {
    mce: bool,
    lmm: bool,
    own: bool,
}

impl Worker {
    fn new(shared: Arc<Shared>, config: DbusConfig, logger: Logger) -> Worker {
        Worker {
            shared,
            config,
            logger,
        }
    }

    fn run(mut self) {
        let mut retry = Duration::from_secs(1);
        let mut failures = 0u32;
        loop {
            if self.shared.lock().stop {
                return;
            }
            match self.connect() {
                Ok((connection, owned)) => {
                    retry = Duration::from_secs(1);
                    failures = 0;
                    if !self.serve(&connection, &owned) {
                        return;
                    }
                    self.logger.always(
                        Severity::Warning,
                        format_args!("lost the system bus; reconnecting"),
                    );
                }
                Err(error) => {
                    // The first failure of a run, then every tenth: a bus that is down for
                    // long does not fill the log.
                    if failures % 10 == 0 {
                        self.logger.always(
                            Severity::Warning,
                            format_args!(
                                "cannot connect to the system bus ({error}); retrying every {} s at most",
                                RETRY_MAX.as_secs()
                            ),
                        );
                    }
                    failures += 1;
                    let inner = self.shared.lock();
                    let (inner, _) = self
                        .shared
                        .wake
                        .wait_timeout_while(inner, retry, |inner| !inner.stop)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if inner.stop {
                        return;
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Connects, puts the objects up and asks for the names.
    fn connect(&mut self) -> zbus::Result<(Connection, Owned)> {
        let connection = Connection::system()?;
        let mut owned = Owned::default();
        let server = connection.object_server();
        if self.config.mce {
            server.at(MCE_REQUEST_PATH, MceRequest(Arc::clone(&self.shared)))?;
            server.at(MCE_SIGNAL_PATH, MceSignal)?;
            owned.mce = self.own(&connection, MCE_SERVICE, "a real mce?")?;
            if !owned.mce {
                server.remove::<MceRequest, _>(MCE_REQUEST_PATH)?;
                server.remove::<MceSignal, _>(MCE_SIGNAL_PATH)?;
            }
        }
        if self.config.low_memory_monitor {
            server.at(LMM_PATH, LowMemoryMonitor)?;
            owned.lmm = self.own(&connection, LMM_SERVICE, "low-memory-monitor?")?;
            if !owned.lmm {
                server.remove::<LowMemoryMonitor, _>(LMM_PATH)?;
            }
        }
        if self.config.memnotify {
            server.at(OWN_PATH, Daemon1(Arc::clone(&self.shared)))?;
            owned.own = self.own(&connection, OWN_SERVICE, "another memnotifyd?")?;
            if !owned.own {
                server.remove::<Daemon1, _>(OWN_PATH)?;
            }
        }
        drop(server);
        let names: Vec<&str> = [
            (owned.mce, MCE_SERVICE),
            (owned.lmm, LMM_SERVICE),
            (owned.own, OWN_SERVICE),
        ]
        .iter()
        .filter(|(owned, _)| *owned)
        .map(|(_, name)| *name)
        .collect();
        self.logger.always(
            Severity::Notice,
            format_args!(
                "connected to the system bus as {}; owning {}",
                connection
                    .unique_name()
                    .map_or("?".to_string(), |name| name.to_string()),
                if names.is_empty() {
                    "no name".to_string()
                } else {
                    names.join(", ")
                }
            ),
        );
        Ok((connection, owned))
    }

    /// Asks for `name`; `Ok(false)` when someone else has it or the bus refuses it (said in
    /// the log: the other names and the thread go on); an error only if the connection
    /// failed.
    fn own(&mut self, connection: &Connection, name: &str, who: &str) -> zbus::Result<bool> {
        // zbus turns the bus's "exists" answer into an error of its own.
        match connection.request_name_with_flags(name, RequestNameFlags::DoNotQueue.into()) {
            Ok(RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner) => Ok(true),
            Ok(RequestNameReply::Exists | RequestNameReply::InQueue)
            | Err(zbus::Error::NameTaken) => {
                self.logger.always(
                    Severity::Warning,
                    format_args!("{name} is owned by another process ({who}): going on without it"),
                );
                Ok(false)
            }
            Err(error) if connection.is_closed() => Err(error),
            Err(error) => {
                self.logger.always(
                    Severity::Error,
                    format_args!(
                        "cannot own {name} ({error}); is the bus policy \
                         /usr/share/dbus-1/system.d/memnotifyd.conf installed? Going on without it"
                    ),
                );
                Ok(false)
            }
        }
    }

    /// Sends the signals until the connection closes (`true`) or the daemon stops (`false`).
    fn serve(&mut self, connection: &Connection, owned: &Owned) -> bool {
        // The watcher turns the connection's end into a wake-up of this thread.
        let watcher = std::thread::Builder::new()
            .name("dbus-watch".into())
            .spawn({
                let connection = connection.clone();
                let shared = Arc::clone(&self.shared);
                move || {
                    connection.closed();
                    // Under the lock: the serving loop checks and waits without a gap.
                    let _inner = shared.lock();
                    shared.wake.notify_all();
                }
            });
        if let Err(error) = watcher {
            self.logger.always(
                Severity::Error,
                format_args!("cannot start the bus watcher: {error}"),
            );
        }
        let mut sent = Sent {
            change: u64::MAX,
            figures: Figures::default(),
            lmm_at: None,
        };
        let mut first = true;
        loop {
            let state = {
                let mut inner = self.shared.lock();
                loop {
                    if inner.stop {
                        return false;
                    }
                    if connection.is_closed() {
                        return true;
                    }
                    let state = inner.state;
                    let due = self.due(owned, &state, &sent, first);
                    if due.is_zero() {
                        break state;
                    }
                    inner = self
                        .shared
                        .wake
                        .wait_timeout(inner, due)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                }
            };
            if let Err(error) = self.send(connection, owned, &state, &mut sent, first) {
                if connection.is_closed() {
                    return true;
                }
                self.logger.always(
                    Severity::Error,
                    format_args!("sending on the system bus: {error}"),
                );
                // Not lost, but failing: wait for the next change rather than spin.
                sent.change = state.change;
                sent.figures = state.figures;
                sent.lmm_at = Some(Instant::now());
            }
            first = false;
        }
    }

    /// How long until something is due (zero: now; the state is waited for otherwise).
    fn due(&self, owned: &Owned, state: &State, sent: &Sent, first: bool) -> Duration {
        let Some(severity) = state.severity else {
            return Duration::from_secs(3600);
        };
        if first
            || state.change != sent.change
            || (owned.own && figures_moved(&state.figures, &sent.figures))
        {
            return Duration::ZERO;
        }
        if owned.lmm && low_memory_warning(severity, state.levels).is_some() {
            if let Some(at) = sent.lmm_at {
                return LMM_REPEAT.saturating_sub(at.elapsed());
            }
            return Duration::ZERO;
        }
        Duration::from_secs(3600)
    }

    fn send(
        &mut self,
        connection: &Connection,
        owned: &Owned,
        state: &State,
        sent: &mut Sent,
        first: bool,
    ) -> zbus::Result<()> {
        let Some(severity) = state.severity else {
            return Ok(());
        };
        let changed = first || state.change != sent.change;
        let none: Option<&str> = None;
        if changed && owned.mce {
            connection.emit_signal(
                none,
                MCE_SIGNAL_PATH,
                MCE_SIGNAL_IF,
                MCE_MEMORY_LEVEL_SIG,
                &mce_level(Some(severity), state.levels),
            )?;
        }
        if owned.own && (changed || figures_moved(&state.figures, &sent.figures)) {
            let mut properties: HashMap<&str, zbus::zvariant::Value<'_>> = HashMap::new();
            if changed {
                properties.insert("Level", state.level_name().into());
                properties.insert("Severity", (severity as u32).into());
            }
            properties.insert("Figures", state.figures_bytes().into());
            connection.emit_signal(
                none,
                OWN_PATH,
                "org.freedesktop.DBus.Properties",
                "PropertiesChanged",
                &(OWN_SERVICE, properties, Vec::<&str>::new()),
            )?;
            if changed && !first {
                connection.emit_signal(
                    none,
                    OWN_PATH,
                    OWN_SERVICE,
                    "LevelChanged",
                    &(state.level_name(), state.previous_name(), severity as u32),
                )?;
            }
        }
        sent.figures = state.figures;
        sent.change = state.change;
        if owned.lmm {
            match low_memory_warning(severity, state.levels) {
                Some(level) => {
                    let repeat = sent.lmm_at.is_none_or(|at| at.elapsed() >= LMM_REPEAT);
                    if changed || repeat {
                        connection.emit_signal(
                            none,
                            LMM_PATH,
                            LMM_SERVICE,
                            "LowMemoryWarning",
                            &level,
                        )?;
                        sent.lmm_at = Some(Instant::now());
                    }
                }
                None => sent.lmm_at = None,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::object_server::Interface;

    /// The element lines of introspection XML, comments and the node left out.
    fn elements(xml: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = xml;
        while let Some(start) = rest.find("<!--") {
            let end = rest[start..]
                .find("-->")
                .map_or(rest.len(), |end| start + end + 3);
            out.extend(element_lines(&rest[..start]));
            rest = &rest[end..];
        }
        out.extend(element_lines(rest));
        out
    }

    fn element_lines(text: &str) -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|line| line.starts_with('<'))
            .filter(|line| !line.starts_with("<!DOCTYPE") && !line.contains("node"))
            .map(str::to_string)
            .collect()
    }

    fn shared() -> Arc<Shared> {
        let bus_shared = Shared {
            inner: Mutex::new(Inner {
                state: State {
                    severity: None,
                    levels: 2,
                    name: [0; 64],
                    name_len: 0,
                    figures: Figures::default(),
                    page_size: 4096,
                    change: 0,
                    previous: [0; 64],
                    previous_len: 0,
                },
                stop: false,
                woken_for: Figures::default(),
            }),
            wake: Condvar::new(),
        };
        Arc::new(bus_shared)
    }

    #[test]
    fn the_documented_interface_is_the_one_served() {
        let mut served = String::new();
        Daemon1(shared()).introspect_to_writer(&mut served, 0);
        let file = include_str!("../dbus/org.memnotify.Daemon1.xml");
        assert_eq!(elements(&served), elements(file));
        assert!(elements(file)
            .contains(&r#"<property name="Level" type="s" access="read"/>"#.to_string()));
    }

    #[test]
    fn mce_and_low_memory_monitor_use_their_names() {
        let mut served = String::new();
        MceRequest(shared()).introspect_to_writer(&mut served, 0);
        assert!(served.contains(r#"<interface name="com.nokia.mce.request">"#));
        assert!(served.contains(r#"<method name="get_memory_level">"#));
        served.clear();
        MceSignal.introspect_to_writer(&mut served, 0);
        assert!(served.contains(r#"<signal name="sig_memory_level_ind">"#));
        served.clear();
        LowMemoryMonitor.introspect_to_writer(&mut served, 0);
        assert!(served.contains(r#"<interface name="org.freedesktop.LowMemoryMonitor">"#));
        assert!(served.contains(r#"<signal name="LowMemoryWarning">"#));
        assert!(served.contains(r#"<arg name="level" type="y"/>"#));
    }

    fn worker(lmm: bool, own: bool) -> (Worker, Owned) {
        let config = DbusConfig {
            mce: true,
            low_memory_monitor: lmm,
            memnotify: own,
        };
        let logger = Logger::discard();
        let owned = Owned {
            mce: true,
            lmm,
            own,
        };
        (Worker::new(shared(), config, logger), owned)
    }

    fn state(severity: usize, change: u64, available: u64) -> State {
        let mut state = shared().state();
        state.severity = Some(severity);
        state.change = change;
        state.figures.set(Figure::Total, 1000);
        state.figures.set(Figure::Available, available);
        state
    }

    #[test]
    fn the_warning_repeats_every_15_s_while_a_level_holds() {
        let (worker, owned) = worker(true, false);
        let now = Instant::now();
        let sent = |ago: u64| Sent {
            change: 1,
            figures: Figures::default(),
            lmm_at: now.checked_sub(Duration::from_secs(ago)),
        };
        // Warning (severity 1 of 2), sent 1 s ago: due again in about 14 s.
        let due = worker.due(&owned, &state(1, 1, 500), &sent(1), false);
        assert!(
            due > Duration::from_secs(13) && due <= Duration::from_secs(14),
            "{due:?}"
        );
        // Sent 16 s ago: due now.
        assert!(worker
            .due(&owned, &state(1, 1, 500), &sent(16), false)
            .is_zero());
        // Normal: nothing to repeat.
        let due = worker.due(&owned, &state(0, 1, 500), &sent(16), false);
        assert_eq!(due, Duration::from_secs(3600));
        // A level change is due at once.
        assert!(worker
            .due(&owned, &state(2, 2, 500), &sent(1), false)
            .is_zero());
        // Without the name (someone else has it) nothing repeats.
        let mut not_owned = owned;
        not_owned.lmm = false;
        let due = worker.due(&not_owned, &state(1, 1, 500), &sent(16), false);
        assert_eq!(due, Duration::from_secs(3600));
    }

    #[test]
    fn figures_are_signalled_when_one_moved_by_a_hundredth_of_ram() {
        let (worker, owned) = worker(false, true);
        let mut last = Figures::default();
        last.set(Figure::Total, 1000);
        last.set(Figure::Available, 500);
        let sent = Sent {
            change: 1,
            figures: last,
            lmm_at: None,
        };
        let idle = worker.due(&owned, &state(0, 1, 509), &sent, false);
        assert_eq!(idle, Duration::from_secs(3600));
        assert!(worker
            .due(&owned, &state(0, 1, 510), &sent, false)
            .is_zero());
        assert!(worker
            .due(&owned, &state(0, 1, 490), &sent, false)
            .is_zero());
    }

    #[test]
    fn the_objects_answer_from_the_shared_state() {
        let shared = shared();
        let mce = MceRequest(Arc::clone(&shared));
        assert_eq!(mce.get_memory_level(), "unknown");
        {
            let mut inner = shared.lock();
            inner.state.severity = Some(2);
            inner.state.name_len = copy_name(&mut inner.state.name, "critical");
            inner.state.figures.set(Figure::Available, 3);
        }
        assert_eq!(mce.get_memory_level(), "critical");
        let own = Daemon1(Arc::clone(&shared));
        assert_eq!(own.level(), "critical");
        assert_eq!(own.severity(), 2);
        assert_eq!(own.figures()["available"], 3 * 4096);
        assert_eq!(own.figures().len(), 7);
    }
}

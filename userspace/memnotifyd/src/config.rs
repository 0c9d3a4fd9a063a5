//! The YAML configuration: parsing and validation (pure).
//!
//! Every check that can be tied to a place in the file runs while serde_yaml
//! deserializes that place, so errors come out as `path:line: reason`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use memnotify::{BackendKind, PsiTrigger, Units};
use memnotify_proto::parse_value;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// The default configuration file.
pub const DEFAULT_PATH: &str = "/etc/memnotify/memnotifyd.yaml";
/// The default socket.
pub const DEFAULT_SOCKET: &str = "/run/memnotifyd.sock";

/// A configuration error, shown as `path:line: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong and, where possible, what would be right.
    pub reason: String,
}

impl ConfigError {
    /// `path:line: reason`.
    pub fn display(&self, path: &Path) -> String {
        match self.line {
            Some(line) => format!("{}:{line}: {}", path.display(), self.reason),
            None => format!("{}: {}", path.display(), self.reason),
        }
    }
}

/// A memory figure a level can be defined on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// MemAvailable (lower is worse).
    Available,
    /// MemFree (lower is worse).
    Free,
    /// UMM used memory (higher is worse).
    Used,
    /// Swap in use, `swap_total - swap_free` (higher is worse).
    Swap,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 4] = [Metric::Available, Metric::Free, Metric::Used, Metric::Swap];

    /// The configuration key.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::Available => "available",
            Metric::Free => "free",
            Metric::Used => "used",
            Metric::Swap => "swap",
        }
    }

    fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|metric| metric.name() == name)
    }

    /// Whether a higher value means less memory left.
    pub const fn higher_is_worse(self) -> bool {
        matches!(self, Metric::Used | Metric::Swap)
    }
}

/// An amount of memory as written: pages, K/M/G bytes or a percentage.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Amount {
    text: String,
}

/// What an [`Amount`] is measured in, for comparing two amounts without knowing the machine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Measure {
    Pages(u64),
    Bytes(u128),
    Percent(u64),
}

/// Units in which every `K/M/G` and `%` parses (only syntax is checked with them).
const CHECK_UNITS: Units = Units {
    page_shift: 12,
    total_pages: 1 << 20,
};

impl Amount {
    /// Parses and checks an amount (the module's own value parser).
    pub fn parse(text: &str) -> Result<Amount, String> {
        let text = text.trim();
        parse_value(text.as_bytes(), CHECK_UNITS).map_err(|error| {
            format!(
                "'{text}': {}: expected pages (1234), bytes with K, M or G (64M) or a percentage (10%)",
                error.as_str()
            )
        })?;
        Ok(Amount {
            text: text.to_string(),
        })
    }

    /// The amount as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The amount in pages; `%` is a share of `base_pages`. Allocation-free.
    pub fn pages(&self, page_shift: u32, base_pages: u64) -> u64 {
        let units = Units {
            page_shift,
            total_pages: base_pages,
        };
        // Checked at parse time; the same syntax parses with any units.
        parse_value(self.text.as_bytes(), units).unwrap_or(0)
    }

    fn measure(&self) -> Measure {
        let bytes = self.text.as_bytes();
        let (body, last) = bytes.split_at(bytes.len() - 1);
        let number = |digits: &[u8]| parse_value(digits, CHECK_UNITS).unwrap_or(0);
        match last[0] {
            b'%' => Measure::Percent(number(body)),
            b'K' | b'k' => Measure::Bytes(u128::from(number(body)) << 10),
            b'M' | b'm' => Measure::Bytes(u128::from(number(body)) << 20),
            b'G' | b'g' => Measure::Bytes(u128::from(number(body)) << 30),
            _ => Measure::Pages(number(bytes)),
        }
    }

    /// Compares two amounts when they are in the same unit kind.
    fn compare(&self, other: &Amount) -> Option<std::cmp::Ordering> {
        match (self.measure(), other.measure()) {
            (Measure::Pages(a), Measure::Pages(b)) => Some(a.cmp(&b)),
            (Measure::Bytes(a), Measure::Bytes(b)) => Some(a.cmp(&b)),
            (Measure::Percent(a), Measure::Percent(b)) => Some(a.cmp(&b)),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = scalar_text(deserializer, "an amount (1234, 64M, 10%)")?;
        Amount::parse(&text).map_err(D::Error::custom)
    }
}

/// A value written either as a whole number or as a string (`64M`, `5s`), as text for
/// the caller's parser; anything else is an error saying it expected `expected`.
fn scalar_text<'de, D: Deserializer<'de>>(
    deserializer: D,
    expected: &str,
) -> Result<String, D::Error> {
    match serde_yaml::Value::deserialize(deserializer)? {
        serde_yaml::Value::Number(number) if number.as_u64().is_some() => Ok(number.to_string()),
        serde_yaml::Value::String(text) => Ok(text),
        other => Err(D::Error::custom(format!(
            "expected {expected}, found {}",
            describe(&other)
        ))),
    }
}

fn describe(value: &serde_yaml::Value) -> &'static str {
    match value {
        serde_yaml::Value::Null => "nothing",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a negative or fractional number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

/// A duration: `500ms`, `5s`, `2m`, `1h`, or a whole number of seconds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Dur(pub Duration);

/// Parses a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("'{text}' is not a duration: expected e.g. 500ms, 5s, 2m, 1h");
    let (digits, millis) = if let Some(digits) = text.strip_suffix("ms") {
        (digits, 1)
    } else if let Some(digits) = text.strip_suffix('s') {
        (digits, 1000)
    } else if let Some(digits) = text.strip_suffix('m') {
        (digits, 60_000)
    } else if let Some(digits) = text.strip_suffix('h') {
        (digits, 3_600_000)
    } else {
        (text, 1000)
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(bad());
    }
    let number: u64 = digits.parse().map_err(|_| bad())?;
    number
        .checked_mul(millis)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = scalar_text(deserializer, "a duration (500ms, 5s, 2m)")?;
        parse_duration(&text).map(Dur).map_err(D::Error::custom)
    }
}

/// A file mode: `"0660"` (octal text) or a YAML octal number `0o660`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileMode(u32);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(deserializer)?;
        let mode = match &value {
            serde_yaml::Value::String(text) => u32::from_str_radix(text.trim(), 8).ok(),
            serde_yaml::Value::Number(number) => {
                number.as_u64().and_then(|n| u32::try_from(n).ok())
            }
            _ => None,
        };
        match mode {
            Some(mode) if mode <= 0o777 => Ok(FileMode(mode)),
            _ => Err(D::Error::custom(
                "expected a file mode in octal, e.g. \"0660\" or \"0600\"",
            )),
        }
    }
}

/// A name regex, checked when the file is read.
#[derive(Clone, Debug)]
pub struct Pattern(pub regex_lite::Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        regex_lite::Regex::new(&text)
            .map(Pattern)
            .map_err(|error| D::Error::custom(format!("bad pattern '{text}': {error}")))
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// What a stage does.
#[derive(Clone, PartialEq, Debug)]
pub enum Action {
    /// Log a message.
    Log(String),
    /// Run a shell command.
    Hook(String),
    /// Ask the kernel to reclaim memory.
    Reclaim,
    /// Kill one victim.
    Kill,
}

impl Action {
    /// The action's keyword.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Log(_) => "log",
            Action::Hook(_) => "hook",
            Action::Reclaim => "reclaim",
            Action::Kill => "kill",
        }
    }
}

/// One stage of a level's response.
#[derive(Clone, PartialEq, Debug)]
pub struct Stage {
    /// Delay from entering the level.
    pub after: Duration,
    /// Run again this often while the level holds.
    pub repeat: Option<Duration>,
    /// What to do.
    pub action: Action,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    action: String,
    after: Option<Dur>,
    repeat: Option<Dur>,
    command: Option<String>,
    message: Option<String>,
}

impl<'de> Deserialize<'de> for Stage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawStage::deserialize(deserializer)?;
        let fail = |reason: String| Err(D::Error::custom(reason));
        let action = match raw.action.as_str() {
            "log" => Action::Log(raw.message.clone().unwrap_or_default()),
            "hook" => match &raw.command {
                Some(command) if !command.trim().is_empty() => Action::Hook(command.clone()),
                _ => return fail("a hook stage needs a `command`".into()),
            },
            "reclaim" => Action::Reclaim,
            "kill" => Action::Kill,
            other => {
                return fail(format!(
                    "unknown action '{other}': expected log, hook, reclaim or kill"
                ))
            }
        };
        if raw.command.is_some() && raw.action != "hook" {
            return fail("`command` belongs to hook stages only".into());
        }
        if raw.message.is_some() && raw.action != "log" {
            return fail("`message` belongs to log stages only".into());
        }
        let repeat = raw.repeat.map(|Dur(repeat)| repeat);
        if repeat.is_some_and(|repeat| repeat < Duration::from_millis(100)) {
            return fail("`repeat` must be at least 100ms".into());
        }
        Ok(Stage {
            after: raw.after.map_or(Duration::ZERO, |Dur(after)| after),
            repeat,
            action,
        })
    }
}

/// Enter and leave bounds of one metric in one level.
#[derive(Clone, PartialEq, Debug)]
pub struct Bound {
    /// The metric.
    pub metric: Metric,
    /// Entered when the metric passes this (below for available/free, at or above for used/swap).
    pub enter: Amount,
    /// Left once the metric is back on the good side of this.
    pub leave: Amount,
}

/// A level of memory shortage.
#[derive(Clone, PartialEq, Debug)]
pub struct LevelConfig {
    /// Its name (lowercase letters, digits, `-`, `_`).
    pub name: String,
    /// Its bounds, one per metric, in metric order.
    pub bounds: Vec<Bound>,
    /// What to do on entering it.
    pub stages: Vec<Stage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    name: String,
    enter: std::collections::BTreeMap<String, Amount>,
    #[serde(default)]
    leave: std::collections::BTreeMap<String, Amount>,
    #[serde(default)]
    stages: Vec<Stage>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_'
        })
}

fn metric_key(key: &str, what: &str) -> Result<Metric, String> {
    Metric::from_name(key).ok_or_else(|| {
        format!("unknown figure '{key}' in `{what}`: expected available, free, used or swap")
    })
}

impl<'de> Deserialize<'de> for LevelConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawLevel::deserialize(deserializer)?;
        let fail = |reason: String| Err(D::Error::custom(reason));
        if !valid_name(&raw.name) {
            return fail(format!(
                "level name '{}': use 1 to 32 lowercase letters, digits, '-' or '_'",
                raw.name
            ));
        }
        if raw.name == "normal" {
            return fail(
                "'normal' is the implicit level below all others; pick another name".into(),
            );
        }
        if raw.enter.is_empty() {
            return fail(format!(
                "level '{}' needs at least one `enter` bound",
                raw.name
            ));
        }
        for key in raw.leave.keys() {
            let metric = metric_key(key, "leave").map_err(D::Error::custom)?;
            if !raw.enter.contains_key(metric.name()) {
                return fail(format!(
                    "level '{}' has a `leave` bound on {key} but no `enter` bound on it",
                    raw.name
                ));
            }
        }
        let mut bounds = Vec::new();
        for (key, enter) in &raw.enter {
            let metric = metric_key(key, "enter").map_err(D::Error::custom)?;
            let leave = raw.leave.get(key).unwrap_or(enter).clone();
            if let Some(order) = leave.compare(enter) {
                let worse = if metric.higher_is_worse() {
                    order.is_gt()
                } else {
                    order.is_lt()
                };
                if worse {
                    let side = if metric.higher_is_worse() {
                        "at most"
                    } else {
                        "at least"
                    };
                    return fail(format!(
                        "level '{}': leave {key} {} must be {side} enter {key} {}, or the level could never be left",
                        raw.name,
                        leave.as_str(),
                        enter.as_str()
                    ));
                }
            }
            bounds.push(Bound {
                metric,
                enter: enter.clone(),
                leave,
            });
        }
        bounds.sort_by_key(|bound| bound.metric);
        Ok(LevelConfig {
            name: raw.name,
            bounds,
            stages: raw.stages,
        })
    }
}

/// The levels, from least to most severe.
#[derive(Clone, PartialEq, Debug)]
struct Levels(Vec<LevelConfig>);

impl<'de> Deserialize<'de> for Levels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let levels = Vec::<LevelConfig>::deserialize(deserializer)?;
        if levels.is_empty() {
            return Err(D::Error::custom("at least one level is needed"));
        }
        if levels.len() > 8 {
            return Err(D::Error::custom("at most 8 levels are supported"));
        }
        for (index, level) in levels.iter().enumerate() {
            if levels[..index].iter().any(|other| other.name == level.name) {
                return Err(D::Error::custom(format!(
                    "level '{}' is defined twice",
                    level.name
                )));
            }
            let Some(previous) = index.checked_sub(1).map(|i| &levels[i]) else {
                continue;
            };
            for bound in &level.bounds {
                let Some(before) = previous.bounds.iter().find(|b| b.metric == bound.metric) else {
                    continue;
                };
                let Some(order) = bound.enter.compare(&before.enter) else {
                    continue;
                };
                let milder = if bound.metric.higher_is_worse() {
                    order.is_lt()
                } else {
                    order.is_gt()
                };
                if milder {
                    return Err(D::Error::custom(format!(
                        "level '{}' comes after '{}' so it must be more severe, but its enter bound on {} ({}) is milder than '{}''s ({})",
                        level.name,
                        previous.name,
                        bound.metric.name(),
                        bound.enter.as_str(),
                        previous.name,
                        before.enter.as_str()
                    )));
                }
            }
        }
        Ok(Levels(levels))
    }
}

/// How many subscribers the socket takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// In all.
    pub max: usize,
    /// Per user other than root.
    pub per_uid: usize,
}

impl ClientLimits {
    /// Whether a new connection from `uid` fits, with `total` subscribers connected of
    /// which `same_uid` are that user's.
    pub fn admits(self, uid: u32, same_uid: usize, total: usize) -> bool {
        total < self.max && (uid == 0 || same_uid < self.per_uid)
    }
}

/// Subscribers the socket takes by default, in all and per user other than root.
const DEFAULT_MAX_CLIENTS: usize = 16;
const DEFAULT_MAX_CLIENTS_PER_UID: usize = 4;

/// The publishing socket.
#[derive(Clone, PartialEq, Debug)]
pub struct SocketConfig {
    /// Where it is created.
    pub path: PathBuf,
    /// Its permissions.
    pub mode: u32,
    /// At most this many subscribers at once.
    pub max_clients: usize,
    /// At most this many per user other than root.
    pub max_clients_per_uid: usize,
}

impl SocketConfig {
    /// The subscriber limits the publisher enforces.
    pub fn limits(&self) -> ClientLimits {
        ClientLimits {
            max: self.max_clients,
            per_uid: self.max_clients_per_uid,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSocket {
    path: Option<PathBuf>,
    mode: Option<FileMode>,
    max_clients: Option<usize>,
    max_clients_per_uid: Option<usize>,
}

/// How reclaim is done.
#[derive(Clone, PartialEq, Debug)]
pub struct ReclaimConfig {
    /// A cgroup v2 directory whose `memory.reclaim` is used, when it has one.
    pub cgroup: Option<PathBuf>,
    /// How much to ask `memory.reclaim` for (`%` of RAM).
    pub amount: Amount,
    /// What to write to `/proc/sys/vm/drop_caches` without a cgroup (1, 2 or 3).
    pub drop_caches: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReclaim {
    cgroup: Option<PathBuf>,
    amount: Option<Amount>,
    drop_caches: Option<u8>,
}

/// How a victim is chosen and killed.
#[derive(Clone, PartialEq, Debug)]
pub struct KillConfig {
    /// Names to kill first.
    pub prefer: Vec<Pattern>,
    /// Names to kill last.
    pub avoid: Vec<Pattern>,
    /// SIGKILL this long after SIGTERM.
    pub grace: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKill {
    #[serde(default)]
    prefer: Vec<Pattern>,
    #[serde(default)]
    avoid: Vec<Pattern>,
    grace: Option<Dur>,
}

/// How much the daemon may log.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LogConfig {
    /// At most this many messages...
    pub burst: u32,
    /// ...per this period.
    pub period: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    burst: Option<u32>,
    period: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPsi {
    stall: Option<Dur>,
    window: Option<Dur>,
}

/// The whole configuration.
#[derive(Clone, PartialEq, Debug)]
pub struct Config {
    /// Which backend to use.
    pub backend: BackendKind,
    /// Re-evaluate at least this often (`None`: the backend's default).
    pub interval: Option<Duration>,
    /// The publishing socket.
    pub socket: SocketConfig,
    /// A command run on every level change.
    pub hook: Option<String>,
    /// Hooks still running after this are killed.
    pub hook_timeout: Duration,
    /// The levels, least severe first.
    pub levels: Vec<LevelConfig>,
    /// Reclaim settings.
    pub reclaim: ReclaimConfig,
    /// Kill settings.
    pub kill: KillConfig,
    /// Log rate limit.
    pub log: LogConfig,
    /// The PSI trigger for the PSI backend.
    pub psi: PsiTrigger,
    /// The interfaces offered on the system bus.
    pub dbus: crate::dbus::DbusConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    backend: Option<String>,
    interval: Option<Dur>,
    socket: Option<RawSocket>,
    hook: Option<String>,
    hook_timeout: Option<Dur>,
    levels: Levels,
    reclaim: Option<RawReclaim>,
    kill: Option<RawKill>,
    log: Option<RawLog>,
    psi: Option<RawPsi>,
    dbus: Option<crate::dbus::RawDbus>,
}

/// Splits serde_yaml's "reason at line L column C" into the reason and the line.
fn from_yaml_error(error: &serde_yaml::Error) -> ConfigError {
    let text = error.to_string();
    match error.location() {
        Some(location) => {
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            let reason = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
            ConfigError {
                line: Some(location.line()),
                reason,
            }
        }
        None => ConfigError {
            line: None,
            reason: text,
        },
    }
}

/// The 1-based line where top-level `key:` starts, for errors found after parsing.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .map(|index| index + 1)
}

fn duration_us(duration: Duration) -> Option<u32> {
    u32::try_from(duration.as_micros()).ok()
}

/// Parses and validates a configuration.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = serde_yaml::from_str(text).map_err(|error| from_yaml_error(&error))?;
    let at = |key: &str, reason: String| ConfigError {
        line: line_of(text, key),
        reason,
    };
    let backend = match raw.backend.as_deref() {
        None => BackendKind::Auto,
        Some(name) => name.parse().map_err(|reason| at("backend", reason))?,
    };
    let interval = raw.interval.map(|Dur(interval)| interval);
    if interval.is_some_and(|interval| interval < Duration::from_millis(100)) {
        return Err(at("interval", "interval must be at least 100ms".into()));
    }
    let socket = match raw.socket {
        None => SocketConfig {
            path: PathBuf::from(DEFAULT_SOCKET),
            mode: 0o660,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_clients_per_uid: DEFAULT_MAX_CLIENTS_PER_UID,
        },
        Some(socket) => {
            let path = socket.path.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
            if !path.is_absolute() {
                return Err(at(
                    "socket",
                    format!("socket path '{}' must be absolute", path.display()),
                ));
            }
            // sun_path holds 108 bytes with its NUL.
            if path.as_os_str().len() > 107 {
                return Err(at("socket", "socket path is longer than 107 bytes".into()));
            }
            let max_clients = socket.max_clients.unwrap_or(DEFAULT_MAX_CLIENTS);
            if !(1..=256).contains(&max_clients) {
                return Err(at("socket", "socket max_clients must be 1 to 256".into()));
            }
            let max_clients_per_uid = socket
                .max_clients_per_uid
                .unwrap_or(DEFAULT_MAX_CLIENTS_PER_UID.min(max_clients));
            if !(1..=max_clients).contains(&max_clients_per_uid) {
                return Err(at(
                    "socket",
                    format!("socket max_clients_per_uid must be 1 to max_clients ({max_clients})"),
                ));
            }
            SocketConfig {
                path,
                mode: socket.mode.map_or(0o660, |FileMode(mode)| mode),
                max_clients,
                max_clients_per_uid,
            }
        }
    };
    let hook = match raw.hook {
        Some(hook) if hook.trim().is_empty() => {
            return Err(at(
                "hook",
                "hook is empty: remove it or give a command".into(),
            ))
        }
        other => other,
    };
    let reclaim = match raw.reclaim {
        None => ReclaimConfig {
            cgroup: None,
            amount: Amount::parse("5%").expect("valid"),
            drop_caches: 3,
        },
        Some(reclaim) => {
            if let Some(cgroup) = &reclaim.cgroup {
                if !cgroup.is_absolute() {
                    return Err(at(
                        "reclaim",
                        format!(
                            "reclaim cgroup '{}' must be an absolute path",
                            cgroup.display()
                        ),
                    ));
                }
            }
            let drop_caches = reclaim.drop_caches.unwrap_or(3);
            if !(1..=3).contains(&drop_caches) {
                return Err(at(
                    "reclaim",
                    "reclaim drop_caches must be 1 (page cache), 2 (slab) or 3 (both)".into(),
                ));
            }
            ReclaimConfig {
                cgroup: reclaim.cgroup,
                amount: reclaim
                    .amount
                    .unwrap_or_else(|| Amount::parse("5%").expect("valid")),
                drop_caches,
            }
        }
    };
    let kill = match raw.kill {
        None => KillConfig {
            prefer: Vec::new(),
            avoid: Vec::new(),
            grace: Duration::from_secs(5),
        },
        Some(kill) => KillConfig {
            prefer: kill.prefer,
            avoid: kill.avoid,
            grace: kill
                .grace
                .map_or(Duration::from_secs(5), |Dur(grace)| grace),
        },
    };
    let log = match raw.log {
        None => LogConfig {
            burst: 20,
            period: Duration::from_secs(60),
        },
        Some(log) => {
            let log = LogConfig {
                burst: log.burst.unwrap_or(20),
                period: log
                    .period
                    .map_or(Duration::from_secs(60), |Dur(period)| period),
            };
            if log.burst == 0 || log.period.is_zero() {
                return Err(at("log", "log burst and period must be more than 0".into()));
            }
            log
        }
    };
    let psi = match raw.psi {
        None => PsiTrigger::default(),
        Some(psi) => {
            let default = PsiTrigger::default();
            let stall = psi
                .stall
                .map_or(Some(default.stall_us), |Dur(stall)| duration_us(stall));
            let window = psi
                .window
                .map_or(Some(default.window_us), |Dur(window)| duration_us(window));
            let (Some(stall_us), Some(window_us)) = (stall, window) else {
                return Err(at(
                    "psi",
                    "psi stall and window must be under an hour".into(),
                ));
            };
            let trigger = PsiTrigger {
                stall_us,
                window_us,
            };
            memnotify::psi_trigger(trigger).map_err(|error| at("psi", error.to_string()))?;
            trigger
        }
    };
    let dbus = raw
        .dbus
        .unwrap_or_default()
        .into_config()
        .map_err(|reason| at("dbus", reason))?;
    Ok(Config {
        backend,
        interval,
        socket,
        hook,
        hook_timeout: raw
            .hook_timeout
            .map_or(Duration::from_secs(30), |Dur(timeout)| timeout),
        levels: raw.levels.0,
        reclaim,
        kill,
        log,
        psi,
        dbus,
    })
}

/// Reads and parses a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
        line: None,
        reason: format!("cannot read: {error}"),
    })?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIST: &str = include_str!("../dist/memnotifyd.yaml");

    fn error(text: &str) -> ConfigError {
        parse(text).expect_err("should be rejected")
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let config = parse(DIST).unwrap();
        assert_eq!(config.backend, BackendKind::Auto);
        assert_eq!(config.socket.path, PathBuf::from("/run/memnotifyd.sock"));
        assert_eq!(config.socket.mode, 0o660);
        let names: Vec<_> = config
            .levels
            .iter()
            .map(|level| level.name.as_str())
            .collect();
        assert_eq!(names, ["warning", "critical"]);
        let critical = &config.levels[1];
        assert_eq!(critical.bounds[0].metric, Metric::Available);
        assert_eq!(critical.bounds[0].enter.as_str(), "7%");
        assert_eq!(critical.bounds[0].leave.as_str(), "10%");
        assert_eq!(critical.stages[1].action, Action::Kill);
        assert_eq!(critical.stages[1].after, Duration::from_secs(5));
        assert_eq!(critical.stages[1].repeat, Some(Duration::from_secs(10)));
        assert!(config.kill.avoid[0].0.is_match("sshd"));
    }

    #[test]
    fn socket_limits_default_and_are_checked() {
        let levels = "levels:\n  - name: low\n    enter: { available: 5% }\n";
        let config = parse(levels).unwrap();
        assert_eq!(config.socket.max_clients, 16);
        assert_eq!(config.socket.max_clients_per_uid, 4);
        let small = parse(&format!("socket: {{ max_clients: 2 }}\n{levels}")).unwrap();
        assert_eq!(small.socket.max_clients_per_uid, 2, "never above the total");
        let message = error(&format!(
            "socket: {{ max_clients: 8, max_clients_per_uid: 9 }}\n{levels}"
        ))
        .reason;
        assert!(
            message.contains("max_clients_per_uid must be 1 to max_clients (8)"),
            "{message}"
        );
        error(&format!("socket: {{ max_clients_per_uid: 0 }}\n{levels}"));
    }

    #[test]
    fn the_readme_example_is_valid() {
        let readme = include_str!("../README.md");
        let example = readme
            .split("```yaml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a yaml block in the README");
        let config = parse(example).unwrap();
        assert_eq!(config.levels[1].bounds.len(), 2);
        assert_eq!(config.levels[1].bounds[1].metric, Metric::Swap);
        assert_eq!(config.kill.avoid.len(), 1);
    }

    #[test]
    fn a_minimal_config() {
        let config = parse("levels:\n  - name: low\n    enter: { available: 64M }\n").unwrap();
        let level = &config.levels[0];
        assert_eq!(level.bounds[0].leave, level.bounds[0].enter);
        assert!(level.stages.is_empty());
        assert_eq!(config.kill.grace, Duration::from_secs(5));
        assert_eq!(config.socket.mode, 0o660);
    }

    #[test]
    fn amounts_resolve_like_the_module() {
        let amount = Amount::parse("10%").unwrap();
        assert_eq!(amount.pages(12, 65536), 6553);
        assert_eq!(Amount::parse("64M").unwrap().pages(12, 0), 16384);
        assert_eq!(Amount::parse("0x100").unwrap().pages(12, 0), 256);
        assert_eq!(Amount::parse("1000").unwrap().pages(16, 0), 1000);
    }

    #[test]
    fn errors_name_the_line() {
        let text = "backend: auto\nlevels:\n  - name: low\n    enter:\n      available: 12x\n";
        let error = error(text);
        assert_eq!(error.line, Some(5));
        assert!(error.reason.contains("'12x'"), "{}", error.reason);
        assert_eq!(
            error.display(Path::new("/etc/memnotify/memnotifyd.yaml")),
            format!("/etc/memnotify/memnotifyd.yaml:5: {}", error.reason)
        );
    }

    #[test]
    fn bad_configs_are_explained() {
        let cases: &[(&str, &str)] = &[
            ("levels: []\n", "at least one level"),
            ("levels:\n  - name: Low\n    enter: {available: 1}\n", "lowercase"),
            ("levels:\n  - name: normal\n    enter: {available: 1}\n", "implicit"),
            ("levels:\n  - name: a\n    enter: {}\n", "at least one `enter`"),
            ("levels:\n  - name: a\n    enter: {availble: 1}\n", "unknown figure 'availble'"),
            (
                "levels:\n  - name: a\n    enter: {available: 10%}\n    leave: {available: 5%}\n",
                "never be left",
            ),
            (
                "levels:\n  - name: a\n    enter: {used: 80%}\n    leave: {used: 90%}\n",
                "never be left",
            ),
            (
                "levels:\n  - name: a\n    enter: {used: 1}\n    leave: {available: 2}\n",
                "no `enter` bound",
            ),
            (
                "levels:\n  - name: a\n    enter: {available: 10%}\n  - name: b\n    enter: {available: 20%}\n",
                "more severe",
            ),
            (
                "levels:\n  - name: a\n    enter: {available: 1}\n  - name: a\n    enter: {available: 1}\n",
                "defined twice",
            ),
            (
                "levels:\n  - name: a\n    enter: {available: 1}\n    stages:\n      - action: nap\n",
                "unknown action 'nap'",
            ),
            (
                "levels:\n  - name: a\n    enter: {available: 1}\n    stages:\n      - action: hook\n",
                "needs a `command`",
            ),
            (
                "levels:\n  - name: a\n    enter: {available: 1}\n    stages:\n      - action: kill\n        after: soon\n",
                "not a duration",
            ),
            ("levels:\n  - name: a\n    enter: {available: 101%}\n", "out of range"),
            (
                "levels:\n  - name: a\n    enter: {available: [1]}\n",
                "expected an amount (1234, 64M, 10%), found a list",
            ),
            (
                "levels:\n  - name: a\n    enter: {available: -5}\n",
                "expected an amount (1234, 64M, 10%), found a negative or fractional number",
            ),
            (
                "levels:\n  - name: a\n    enter: {available: 1}\n    stages:\n      - action: kill\n        after: {s: 1}\n",
                "expected a duration (500ms, 5s, 2m), found a mapping",
            ),
            (
                "hook_timeout: 1.5\nlevels:\n  - name: a\n    enter: {available: 1}\n",
                "expected a duration (500ms, 5s, 2m), found a negative or fractional number",
            ),
            ("backend: magic\nlevels:\n  - name: a\n    enter: {available: 1}\n", "unknown backend"),
            ("socket: {path: relative.sock}\nlevels:\n  - name: a\n    enter: {available: 1}\n", "absolute"),
            ("socket: {mode: \"0999\"}\nlevels:\n  - name: a\n    enter: {available: 1}\n", "octal"),
            ("kill: {prefer: ['(']}\nlevels:\n  - name: a\n    enter: {available: 1}\n", "bad pattern"),
            ("psi: {window: 100ms}\nlevels:\n  - name: a\n    enter: {available: 1}\n", "window"),
            ("levels:\n  - name: a\n    enter: {available: 1}\nbogus: 1\n", "unknown field `bogus`"),
            ("levels: [\n", "did not find expected"),
            ("interval: 10ms\nlevels:\n  - name: a\n    enter: {available: 1}\n", "at least 100ms"),
        ];
        for (text, expected) in cases {
            let error = error(text);
            assert!(
                error.reason.contains(expected),
                "{text:?}: expected {expected:?} in {:?}",
                error.reason
            );
            assert!(error.line.is_some(), "{text:?}: no line in {error:?}");
        }
    }

    #[test]
    fn unreadable_files_say_so() {
        let error = load(Path::new("/nonexistent/memnotifyd.yaml")).unwrap_err();
        assert_eq!(error.line, None);
        assert!(error.reason.starts_with("cannot read"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        let numbers = "hook_timeout: 7\nlevels:\n  - name: a\n    enter: {available: 4096}\n";
        let config = parse(numbers).unwrap();
        assert_eq!(config.hook_timeout, Duration::from_secs(7));
        assert_eq!(config.levels[0].bounds[0].enter.as_str(), "4096");
        for bad in ["", "s", "-1s", "1.5s", "5x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

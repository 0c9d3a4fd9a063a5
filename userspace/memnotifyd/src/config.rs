//! The YAML configuration: parsing and validation (pure).
//!
//! serde deserializes the file straight into the typed sections below (unknown
//! keys are errors everywhere); each section is then checked by a small function
//! of its own, called from serde while it is still at that section, so every
//! error comes out with serde_yaml's place: `path:line:column: reason`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use memnotify::{BackendKind, PsiTrigger};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// The default configuration file.
pub const DEFAULT_PATH: &str = "/etc/memnotify/memnotifyd.yaml";
/// The default socket.
pub const DEFAULT_SOCKET: &str = "/run/memnotifyd.sock";

/// A configuration error, shown as `path:line:column: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong and, where possible, what would be right.
    pub reason: String,
}

impl ConfigError {
    /// `path:line:column: reason` (as much of the place as is known).
    pub fn display(&self, path: &Path) -> String {
        let path = path.display();
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("{path}:{line}:{column}: {}", self.reason),
            (Some(line), None) => format!("{path}:{line}: {}", self.reason),
            _ => format!("{path}: {}", self.reason),
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

/// An amount of memory: pages, K/M/G bytes or a percentage of RAM, in the
/// device's own syntax (`memnotify_proto::Amount`, which deserializes from a
/// whole number or a string).
pub use memnotify_proto::Amount;

/// A value written either as a whole number or as a string (`64M`, `5s`), as text for
/// the caller's parser; anything else is an error saying it expected `expected`.
fn scalar_text(value: serde_yaml::Value, expected: &str) -> Result<String, String> {
    match value {
        serde_yaml::Value::Number(number) if number.as_u64().is_some() => Ok(number.to_string()),
        serde_yaml::Value::String(text) => Ok(text),
        other => Err(format!("expected {expected}, found {}", describe(&other))),
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
        let check = |value| {
            let text = scalar_text(value, "a duration (500ms, 5s, 2m)")?;
            parse_duration(&text).map(Dur)
        };
        checked(deserializer, check, None)
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Metric::from_name(&name).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown figure '{name}': expected available, free, used or swap"
            ))
        })
    }
}

/// A file mode: `"0660"` (octal text) or a YAML octal number `0o660`.
fn file_mode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let value = serde_yaml::Value::deserialize(deserializer)?;
    let mode = match &value {
        serde_yaml::Value::String(text) => u32::from_str_radix(text.trim(), 8).ok(),
        serde_yaml::Value::Number(number) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    };
    match mode {
        _ if value.is_null() => Ok(SocketConfig::default().mode),
        Some(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(D::Error::custom(
            "expected a file mode in octal, e.g. \"0660\" or \"0600\"",
        )),
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

/// `key:` left empty inside a section means that key's default, as a missing key does.
macro_rules! empty_is_default {
    ($($name:ident: $section:ident.$field:ident: $type:ty,)*) => {
        $(
            fn $name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<$type, D::Error> {
                Ok(Option::<$type>::deserialize(deserializer)?
                    .unwrap_or_else(|| $section::default().$field))
            }
        )*
    };
}

empty_is_default! {
    socket_path: SocketConfig.path: PathBuf,
    socket_max_clients: SocketConfig.max_clients: usize,
    reclaim_amount: ReclaimConfig.amount: Amount,
    reclaim_drop_caches: ReclaimConfig.drop_caches: u8,
    log_burst: LogConfig.burst: u32,
}

/// Deserializes a `T` where it stands and turns it into a `U` with `check`, while
/// serde_yaml is still at that place: the check's error then gets the place's line,
/// column and path (a check run after serde_yaml returned would get the document's).
/// `empty` is the value of an empty place (`socket:`), `None` where one is an error.
fn checked<'de, D, T, U>(
    deserializer: D,
    check: fn(T) -> Result<U, String>,
    empty: Option<fn() -> U>,
) -> Result<U, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_any(Checked { check, empty })
}

/// A section is a mapping (or the list of levels); its default when left empty.
fn section<'de, D, T>(deserializer: D, check: fn(T) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    checked(deserializer, check, Some(T::default))
}

struct Checked<T, U> {
    check: fn(T) -> Result<U, String>,
    empty: Option<fn() -> U>,
}

impl<'de, T: Deserialize<'de>, U> Checked<T, U> {
    fn from<E, D>(self, deserializer: D) -> Result<U, E>
    where
        E: serde::de::Error,
        D: Deserializer<'de, Error = E>,
    {
        (self.check)(T::deserialize(deserializer)?).map_err(E::custom)
    }
}

macro_rules! visit_scalar {
    ($($method:ident: $type:ty => $deserializer:ident,)*) => {
        $(
            fn $method<E: serde::de::Error>(self, value: $type) -> Result<U, E> {
                self.from(serde::de::value::$deserializer::<E>::new(value))
            }
        )*
    };
}

impl<'de, T: Deserialize<'de>, U> serde::de::Visitor<'de> for Checked<T, U> {
    type Value = U;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<U, A::Error> {
        self.from(serde::de::value::MapAccessDeserializer::new(map))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<U, A::Error> {
        self.from(serde::de::value::SeqAccessDeserializer::new(seq))
    }

    visit_scalar! {
        visit_str: &str => StrDeserializer,
        visit_u64: u64 => U64Deserializer,
        visit_i64: i64 => I64Deserializer,
        visit_f64: f64 => F64Deserializer,
        visit_bool: bool => BoolDeserializer,
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<U, E> {
        match self.empty {
            Some(empty) => Ok(empty()),
            // Read as an empty mapping: `- ` in a list of stages is "missing field `action`".
            None => self.from(serde::de::value::MapDeserializer::new(std::iter::empty::<(
                &str,
                &str,
            )>())),
        }
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

/// A stage as written: `action:` selects the variant, and each variant takes
/// only its own keys (a `message` on a kill stage is an unknown field).
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
enum StageEntry {
    Log {
        #[serde(default)]
        message: String,
        after: Option<Dur>,
        repeat: Option<Dur>,
    },
    Hook {
        command: Option<String>,
        after: Option<Dur>,
        repeat: Option<Dur>,
    },
    Reclaim {
        after: Option<Dur>,
        repeat: Option<Dur>,
    },
    Kill {
        after: Option<Dur>,
        repeat: Option<Dur>,
    },
}

impl<'de> Deserialize<'de> for Stage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Inside the stage's own mapping, so errors name the stage.
        checked(deserializer, Stage::from_entry, None)
    }
}

impl Stage {
    fn from_entry(entry: StageEntry) -> Result<Stage, String> {
        let (action, after, repeat) = match entry {
            StageEntry::Log {
                message,
                after,
                repeat,
            } => (Action::Log(message), after, repeat),
            StageEntry::Hook {
                command,
                after,
                repeat,
            } => match command {
                Some(command) if !command.trim().is_empty() => {
                    (Action::Hook(command), after, repeat)
                }
                _ => return Err("a hook stage needs a `command`".into()),
            },
            StageEntry::Reclaim { after, repeat } => (Action::Reclaim, after, repeat),
            StageEntry::Kill { after, repeat } => (Action::Kill, after, repeat),
        };
        let repeat = repeat.map(|Dur(repeat)| repeat);
        if repeat.is_some_and(|repeat| repeat < Duration::from_millis(100)) {
            return Err("`repeat` must be at least 100ms".into());
        }
        Ok(Stage {
            after: after.map_or(Duration::ZERO, |Dur(after)| after),
            repeat,
            action,
        })
    }
}

/// Enter and leave bounds of one metric in one level.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Bound {
    /// The metric.
    pub metric: Metric,
    /// Entered when the metric passes this (below for available/free, at or above for used/swap).
    pub enter: Amount,
    /// Left once the metric is back on the good side of this (the enter bound when not given).
    pub leave: Amount,
}

/// A level of memory shortage.
#[derive(Clone, PartialEq, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelConfig {
    /// Its name (lowercase letters, digits, `-`, `_`).
    pub name: String,
    /// Where it is entered, per metric.
    pub enter: BTreeMap<Metric, Amount>,
    /// Where it is left, per metric; a metric without one is left at its `enter` bound.
    #[serde(default)]
    pub leave: BTreeMap<Metric, Amount>,
    /// What to do on entering it.
    #[serde(default)]
    pub stages: Vec<Stage>,
}

impl LevelConfig {
    /// Its bounds, one per metric, in metric order.
    pub fn bounds(&self) -> impl Iterator<Item = Bound> + '_ {
        self.enter.iter().map(|(&metric, &enter)| Bound {
            metric,
            enter,
            leave: self.leave.get(&metric).copied().unwrap_or(enter),
        })
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_'
        })
}

/// One level on its own: its name, and bounds it can be entered and left by.
fn check_level(level: &LevelConfig) -> Result<(), String> {
    if !valid_name(&level.name) {
        return Err(format!(
            "level name '{}': use 1 to 32 lowercase letters, digits, '-' or '_'",
            level.name
        ));
    }
    if level.name == "normal" {
        return Err("'normal' is the implicit level below all others; pick another name".into());
    }
    if level.enter.is_empty() {
        return Err(format!(
            "level '{}' needs at least one `enter` bound",
            level.name
        ));
    }
    if let Some(metric) = level
        .leave
        .keys()
        .find(|metric| !level.enter.contains_key(metric))
    {
        return Err(format!(
            "level '{}' has a `leave` bound on {} but no `enter` bound on it",
            level.name,
            metric.name()
        ));
    }
    for bound in level.bounds() {
        let Some(order) = bound.leave.cmp_same_kind(bound.enter) else {
            continue;
        };
        let (worse, side) = if bound.metric.higher_is_worse() {
            (order.is_gt(), "at most")
        } else {
            (order.is_lt(), "at least")
        };
        if worse {
            let key = bound.metric.name();
            return Err(format!(
                "level '{}': leave {key} {} must be {side} enter {key} {}, or the level could never be left",
                level.name, bound.leave, bound.enter
            ));
        }
    }
    Ok(())
}

/// The levels together: 1 to 8, each valid, distinct names, each more severe
/// than the one before on the metrics they share (in the same unit kind).
fn check_levels(levels: Vec<LevelConfig>) -> Result<Vec<LevelConfig>, String> {
    if levels.is_empty() {
        return Err("at least one level is needed".into());
    }
    if levels.len() > 8 {
        return Err("at most 8 levels are supported".into());
    }
    for (index, level) in levels.iter().enumerate() {
        check_level(level)?;
        if levels[..index].iter().any(|other| other.name == level.name) {
            return Err(format!("level '{}' is defined twice", level.name));
        }
        let Some(previous) = index.checked_sub(1).map(|i| &levels[i]) else {
            continue;
        };
        for bound in level.bounds() {
            let Some(before) = previous.enter.get(&bound.metric) else {
                continue;
            };
            let Some(order) = bound.enter.cmp_same_kind(*before) else {
                continue;
            };
            let milder = if bound.metric.higher_is_worse() {
                order.is_lt()
            } else {
                order.is_gt()
            };
            if milder {
                return Err(format!(
                    "level '{}' comes after '{}' so it must be more severe, but its enter bound on {} ({}) is milder than '{}''s ({})",
                    level.name,
                    previous.name,
                    bound.metric.name(),
                    bound.enter,
                    previous.name,
                    before
                ));
            }
        }
    }
    Ok(levels)
}

fn levels<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<LevelConfig>, D::Error> {
    section(deserializer, check_levels)
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
#[derive(Clone, PartialEq, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketConfig {
    /// Where it is created.
    #[serde(deserialize_with = "socket_path")]
    pub path: PathBuf,
    /// Its permissions.
    #[serde(deserialize_with = "file_mode")]
    pub mode: u32,
    /// At most this many subscribers at once.
    #[serde(deserialize_with = "socket_max_clients")]
    pub max_clients: usize,
    /// At most this many per user other than root (`None`: 4, or `max_clients` if fewer).
    pub max_clients_per_uid: Option<usize>,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            path: PathBuf::from(DEFAULT_SOCKET),
            mode: 0o660,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_clients_per_uid: None,
        }
    }
}

impl SocketConfig {
    /// The subscriber limits the publisher enforces.
    pub fn limits(&self) -> ClientLimits {
        ClientLimits {
            max: self.max_clients,
            per_uid: self
                .max_clients_per_uid
                .unwrap_or(DEFAULT_MAX_CLIENTS_PER_UID.min(self.max_clients)),
        }
    }
}

fn check_socket(socket: SocketConfig) -> Result<SocketConfig, String> {
    if !socket.path.is_absolute() {
        return Err(format!(
            "socket path '{}' must be absolute",
            socket.path.display()
        ));
    }
    // sun_path holds 108 bytes with its NUL.
    if socket.path.as_os_str().len() > 107 {
        return Err("socket path is longer than 107 bytes".into());
    }
    if !(1..=256).contains(&socket.max_clients) {
        return Err("socket max_clients must be 1 to 256".into());
    }
    if !(1..=socket.max_clients).contains(&socket.limits().per_uid) {
        return Err(format!(
            "socket max_clients_per_uid must be 1 to max_clients ({})",
            socket.max_clients
        ));
    }
    Ok(socket)
}

fn socket<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketConfig, D::Error> {
    section(deserializer, check_socket)
}

/// How reclaim is done.
#[derive(Clone, PartialEq, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReclaimConfig {
    /// A cgroup v2 directory whose `memory.reclaim` is used, when it has one.
    pub cgroup: Option<PathBuf>,
    /// How much to ask `memory.reclaim` for (`%` of RAM).
    #[serde(deserialize_with = "reclaim_amount")]
    pub amount: Amount,
    /// What to write to `/proc/sys/vm/drop_caches` without a cgroup (1, 2 or 3).
    #[serde(deserialize_with = "reclaim_drop_caches")]
    pub drop_caches: u8,
}

impl Default for ReclaimConfig {
    fn default() -> Self {
        ReclaimConfig {
            cgroup: None,
            amount: Amount::Percent(5),
            drop_caches: 3,
        }
    }
}

fn check_reclaim(reclaim: ReclaimConfig) -> Result<ReclaimConfig, String> {
    if let Some(cgroup) = reclaim
        .cgroup
        .as_ref()
        .filter(|cgroup| !cgroup.is_absolute())
    {
        return Err(format!(
            "reclaim cgroup '{}' must be an absolute path",
            cgroup.display()
        ));
    }
    if !(1..=3).contains(&reclaim.drop_caches) {
        return Err("reclaim drop_caches must be 1 (page cache), 2 (slab) or 3 (both)".into());
    }
    Ok(reclaim)
}

fn reclaim<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ReclaimConfig, D::Error> {
    section(deserializer, check_reclaim)
}

/// How a victim is chosen and killed.
#[derive(Clone, PartialEq, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KillConfig {
    /// Names to kill first.
    pub prefer: Vec<Pattern>,
    /// Names to kill last.
    pub avoid: Vec<Pattern>,
    /// SIGKILL this long after SIGTERM.
    #[serde(deserialize_with = "duration_or::<_, 5000>")]
    pub grace: Duration,
}

impl Default for KillConfig {
    fn default() -> Self {
        KillConfig {
            prefer: Vec::new(),
            avoid: Vec::new(),
            grace: Duration::from_secs(5),
        }
    }
}

/// How much the daemon may log.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// At most this many messages...
    #[serde(deserialize_with = "log_burst")]
    pub burst: u32,
    /// ...per this period.
    #[serde(deserialize_with = "duration_or::<_, 60000>")]
    pub period: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            burst: 20,
            period: Duration::from_secs(60),
        }
    }
}

fn check_log(log: LogConfig) -> Result<LogConfig, String> {
    if log.burst == 0 || log.period.is_zero() {
        return Err("log burst and period must be more than 0".into());
    }
    Ok(log)
}

fn log<'de, D: Deserializer<'de>>(deserializer: D) -> Result<LogConfig, D::Error> {
    section(deserializer, check_log)
}

/// The PSI trigger as written: durations, at most an hour each.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PsiConfig {
    #[serde(deserialize_with = "duration_or::<_, 150>")]
    stall: Duration,
    #[serde(deserialize_with = "duration_or::<_, 2000>")]
    window: Duration,
}

impl Default for PsiConfig {
    fn default() -> Self {
        let trigger = PsiTrigger::default();
        PsiConfig {
            stall: Duration::from_micros(trigger.stall_us.into()),
            window: Duration::from_micros(trigger.window_us.into()),
        }
    }
}

fn check_psi(psi: PsiConfig) -> Result<PsiTrigger, String> {
    let micros = |duration: Duration| u32::try_from(duration.as_micros()).ok();
    let (Some(stall_us), Some(window_us)) = (micros(psi.stall), micros(psi.window)) else {
        return Err("psi stall and window must be under an hour".into());
    };
    let trigger = PsiTrigger {
        stall_us,
        window_us,
    };
    memnotify::psi_trigger(trigger).map_err(|error| error.to_string())?;
    Ok(trigger)
}

fn psi<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PsiTrigger, D::Error> {
    checked(deserializer, check_psi, Some(PsiTrigger::default))
}

fn dbus<'de, D: Deserializer<'de>>(deserializer: D) -> Result<crate::dbus::DbusConfig, D::Error> {
    checked(
        deserializer,
        |raw: crate::dbus::RawDbus| raw.into_config(),
        Some(crate::dbus::DbusConfig::default),
    )
}

fn backend<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BackendKind, D::Error> {
    checked(
        deserializer,
        |name: String| name.parse(),
        Some(BackendKind::default),
    )
}

fn interval<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let check = |Dur(interval)| {
        if interval < Duration::from_millis(100) {
            return Err("interval must be at least 100ms".to_string());
        }
        Ok(Some(interval))
    };
    checked(deserializer, check, Some(|| None))
}

fn hook<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let check = |hook: String| {
        if hook.trim().is_empty() {
            return Err("hook is empty: remove it or give a command".to_string());
        }
        Ok(Some(hook))
    };
    checked(deserializer, check, Some(|| None))
}

/// A duration that may be left empty (`grace:`) for its default, `MILLIS`.
fn duration_or<'de, D: Deserializer<'de>, const MILLIS: u64>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    Ok(Option::<Dur>::deserialize(deserializer)?
        .map_or(Duration::from_millis(MILLIS), |Dur(duration)| duration))
}

const fn default_hook_timeout() -> Duration {
    Duration::from_secs(30)
}

/// The whole configuration.
#[derive(Clone, PartialEq, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which backend to use.
    #[serde(default, deserialize_with = "backend")]
    pub backend: BackendKind,
    /// Re-evaluate at least this often (`None`: the backend's default).
    #[serde(default, deserialize_with = "interval")]
    pub interval: Option<Duration>,
    /// The publishing socket.
    #[serde(default, deserialize_with = "socket")]
    pub socket: SocketConfig,
    /// A command run on every level change.
    #[serde(default, deserialize_with = "hook")]
    pub hook: Option<String>,
    /// Hooks still running after this are killed.
    #[serde(
        default = "default_hook_timeout",
        deserialize_with = "duration_or::<_, 30000>"
    )]
    pub hook_timeout: Duration,
    /// The levels, least severe first.
    #[serde(deserialize_with = "levels")]
    pub levels: Vec<LevelConfig>,
    /// Reclaim settings.
    #[serde(default, deserialize_with = "reclaim")]
    pub reclaim: ReclaimConfig,
    /// Kill settings.
    #[serde(default)]
    pub kill: KillConfig,
    /// Log rate limit.
    #[serde(default, deserialize_with = "log")]
    pub log: LogConfig,
    /// The PSI trigger for the PSI backend.
    #[serde(default, deserialize_with = "psi")]
    pub psi: PsiTrigger,
    /// The interfaces offered on the system bus.
    #[serde(default, deserialize_with = "dbus")]
    pub dbus: crate::dbus::DbusConfig,
}

/// Splits serde_yaml's "reason at line L column C" into the reason and the place.
fn from_yaml_error(error: &serde_yaml::Error) -> ConfigError {
    let text = error.to_string();
    match error.location() {
        Some(location) => {
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            let reason = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
            ConfigError {
                line: Some(location.line()),
                column: Some(location.column()),
                reason,
            }
        }
        None => ConfigError {
            line: None,
            column: None,
            reason: text,
        },
    }
}

/// Parses and validates a configuration.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    serde_yaml::from_str(text).map_err(|error| from_yaml_error(&error))
}

/// Reads and parses a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
        line: None,
        column: None,
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
        let bounds: Vec<Bound> = critical.bounds().collect();
        assert_eq!(bounds[0].metric, Metric::Available);
        assert_eq!(bounds[0].enter.to_string(), "7%");
        assert_eq!(bounds[0].leave.to_string(), "10%");
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
        assert_eq!(config.socket.limits().per_uid, 4);
        let small = parse(&format!("socket: {{ max_clients: 2 }}\n{levels}")).unwrap();
        assert_eq!(small.socket.limits().per_uid, 2, "never above the total");
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
        let bounds: Vec<Bound> = config.levels[1].bounds().collect();
        assert_eq!(bounds.len(), 2);
        assert_eq!(bounds[1].metric, Metric::Swap);
        assert_eq!(config.kill.avoid.len(), 1);
    }

    #[test]
    fn a_minimal_config() {
        let config = parse("levels:\n  - name: low\n    enter: { available: 64M }\n").unwrap();
        let level = &config.levels[0];
        let bound = level.bounds().next().unwrap();
        assert_eq!(bound.leave, bound.enter);
        assert!(level.stages.is_empty());
        assert_eq!(config.kill.grace, Duration::from_secs(5));
        assert_eq!(config.socket.mode, 0o660);
    }

    #[test]
    fn amounts_resolve_like_the_module() {
        let config = parse(
            "levels:\n  - name: a\n    enter: {available: 10%, free: 64M, used: 0x100, swap: \"1000\"}\n",
        )
        .unwrap();
        let units = |page_shift, total_pages| memnotify::Units {
            page_shift,
            total_pages,
        };
        let bounds: Vec<Bound> = config.levels[0].bounds().collect();
        assert_eq!(bounds[0].enter.pages(units(12, 65536)), 6553);
        assert_eq!(bounds[1].enter.pages(units(12, 0)), 16384);
        assert_eq!(bounds[2].enter.pages(units(12, 0)), 256);
        assert_eq!(bounds[3].enter.pages(units(16, 0)), 1000);
    }

    #[test]
    fn errors_name_the_line() {
        let text = "backend: auto\nlevels:\n  - name: low\n    enter:\n      available: 12x\n";
        let error = error(text);
        assert_eq!((error.line, error.column), (Some(5), Some(18)));
        assert!(
            error
                .reason
                .starts_with("levels[0].enter.available: '12x': value is not a number"),
            "{}",
            error.reason
        );
        assert_eq!(
            error.display(Path::new("/etc/memnotify/memnotifyd.yaml")),
            format!("/etc/memnotify/memnotifyd.yaml:5:18: {}", error.reason)
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
                "stages[0].action: unknown variant `nap`, expected one of `log`, `hook`, `reclaim`, `kill`",
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
            (
                "levels:\n  - name: a\n    enter: {available: 1}\n    stages:\n      - action: kill\n        message: bye\n",
                "unknown field `message`, expected `after` or `repeat`",
            ),
            (
                "levels:\n  - name: a\n    enter: {available: 1}\n    stages:\n      - action: log\n        repeat: 10ms\n",
                "`repeat` must be at least 100ms",
            ),
            (
                "levels:\n  - name: a\n    enter: {available: 1}\n    stages:\n      - after: 1s\n",
                "missing field `action`",
            ),
            ("hook: ' '\nlevels:\n  - name: a\n    enter: {available: 1}\n", "hook is empty"),
            ("socket: {max_clients: 0}\nlevels:\n  - name: a\n    enter: {available: 1}\n", "max_clients must be 1 to 256"),
            ("reclaim: {drop_caches: 4}\nlevels:\n  - name: a\n    enter: {available: 1}\n", "drop_caches must be 1"),
            ("reclaim: {cgroup: sys}\nlevels:\n  - name: a\n    enter: {available: 1}\n", "absolute path"),
            ("log: {burst: 0}\nlevels:\n  - name: a\n    enter: {available: 1}\n", "more than 0"),
            ("psi: {stall: 2h}\nlevels:\n  - name: a\n    enter: {available: 1}\n", "under an hour"),
            ("kill: {grace: 5s, bogus: 1}\nlevels:\n  - name: a\n    enter: {available: 1}\n", "unknown field `bogus`"),
            ("levels:\n  - name: a\n    enter: {available: 1}\n    leave: {availble: 2}\n", "unknown figure 'availble'"),
            ("socket: {}\n", "missing field `levels`"),
        ];
        for (text, expected) in cases {
            let error = error(text);
            assert!(
                error.reason.contains(expected),
                "{text:?}: expected {expected:?} in {:?}",
                error.reason
            );
            assert!(error.line.is_some(), "{text:?}: no line in {error:?}");
            assert!(error.column.is_some(), "{text:?}: no column in {error:?}");
        }
    }

    #[test]
    fn section_errors_point_into_the_section() {
        let text = "levels:\n  - name: a\n    enter: {available: 1}\nsocket:\n  path: /run/x.sock\n  max_clients: 300\n";
        let failure = error(text);
        assert_eq!(failure.line, Some(5), "{failure:?}");
        assert!(
            failure
                .reason
                .starts_with("socket: socket max_clients must be 1 to 256"),
            "{failure:?}"
        );
        let text = "levels:\n  - name: a\n    enter: {available: 10%}\n  - name: b\n    enter: {available: 20%}\n";
        let failure = error(text);
        assert_eq!(
            (failure.line, failure.column),
            (Some(2), Some(3)),
            "{failure:?}"
        );
        assert!(
            failure
                .reason
                .starts_with("levels: level 'b' comes after 'a'"),
            "{failure:?}"
        );
    }

    #[test]
    fn stages_deserialize_into_actions() {
        let text = "levels:\n  - name: a\n    enter: {available: 1}\n    stages:\n      - action: log\n        message: hi\n      - action: hook\n        command: echo\n        after: 1s\n      - action: reclaim\n        repeat: 5s\n      - action: kill\n";
        let stages = &parse(text).unwrap().levels[0].stages;
        let actions: Vec<_> = stages.iter().map(|stage| stage.action.clone()).collect();
        assert_eq!(
            actions,
            [
                Action::Log("hi".into()),
                Action::Hook("echo".into()),
                Action::Reclaim,
                Action::Kill
            ]
        );
        assert_eq!(stages[1].after, Duration::from_secs(1));
        assert_eq!(stages[2].repeat, Some(Duration::from_secs(5)));
        assert_eq!((stages[3].after, stages[3].repeat), (Duration::ZERO, None));
    }

    #[test]
    fn empty_keys_mean_their_defaults() {
        let text = "backend:\ninterval:\nhook:\nhook_timeout:\nsocket:\n  path:\n  mode:\n  max_clients:\n  max_clients_per_uid:\nreclaim:\n  cgroup:\n  amount:\n  drop_caches:\nkill:\n  prefer:\n  avoid:\n  grace:\nlog:\n  burst:\n  period:\npsi:\n  stall:\n  window:\nlevels:\n  - name: a\n    enter: {available: 1}\n    stages:\n      - action: kill\n        after:\n        repeat:\n";
        let empty = parse(text).unwrap();
        let minimal = parse(
            "levels:\n  - name: a\n    enter: {available: 1}\n    stages:\n      - action: kill\n",
        )
        .unwrap();
        assert_eq!(empty, minimal);
        assert_eq!(empty.socket.mode, 0o660);
        assert_eq!(empty.reclaim.amount, Amount::Percent(5));
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
        assert_eq!(
            config.levels[0].enter[&Metric::Available].to_string(),
            "4096"
        );
        for bad in ["", "s", "-1s", "1.5s", "5x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

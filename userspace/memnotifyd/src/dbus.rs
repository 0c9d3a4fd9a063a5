//! The `dbus:` section of the configuration and how memnotifyd's levels map onto the
//! memory-level interfaces applications already listen to on the system bus (issue 17).
//!
//! This part is plain data, in the library so the configuration parser (and its fuzzer)
//! can use it whatever the build; the bus itself (zbus) is the binary's `dbus_service`,
//! compiled only with the cargo feature `dbus`.
//!
//! memnotifyd has `normal` (severity 0) and then `n` configured levels, least severe
//! first (severity `1..=n`). The interfaces know fewer:
//!
//! | severity | mce (`sig_memory_level_ind`) | low-memory-monitor (`LowMemoryWarning`) |
//! | --- | --- | --- |
//! | 0 | `normal` | nothing (it has no signal for the return) |
//! | the most severe, `n` | `critical` | 255 (critical) |
//! | the first, 1 (if `n > 1`) | `warning` | 50 (low) |
//! | between (`1 < s < n`) | `warning` | 100 (medium) |
//!
//! So the shipped `warning`/`critical` pair is mce's `warning`/`critical` and GLib's low
//! and critical, a single level is critical on both, and a third level in the middle is
//! GLib's medium.

use serde::Deserialize;

/// Which interfaces memnotifyd offers on the system bus. All off by default.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DbusConfig {
    /// mce's memory level: `com.nokia.mce`.
    pub mce: bool,
    /// freedesktop's low-memory-monitor: `org.freedesktop.LowMemoryMonitor` (GLib's
    /// `GMemoryMonitor`).
    pub low_memory_monitor: bool,
    /// memnotifyd's own interface: `org.memnotify.Daemon1`.
    pub memnotify: bool,
}

impl DbusConfig {
    /// Whether any interface is on (the daemon connects to the bus only then).
    pub fn any(&self) -> bool {
        self.mce || self.low_memory_monitor || self.memnotify
    }
}

/// The section as written (`dbus: { mce: true, ... }`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDbus {
    #[serde(default)]
    mce: bool,
    #[serde(default)]
    low_memory_monitor: bool,
    #[serde(default)]
    memnotify: bool,
}

impl RawDbus {
    /// Validates the section: interfaces may be switched on only in a build that has D-Bus.
    pub fn into_config(self) -> Result<DbusConfig, String> {
        let config = DbusConfig {
            mce: self.mce,
            low_memory_monitor: self.low_memory_monitor,
            memnotify: self.memnotify,
        };
        if config.any() && !cfg!(feature = "dbus") {
            return Err(
                "dbus: this memnotifyd was built without D-Bus support (cargo feature `dbus`)"
                    .into(),
            );
        }
        Ok(config)
    }
}

/// mce's name for a severity (`mode-names.h`: `MCE_MEMORY_LEVEL_*`); `None` (no figures
/// yet) is `unknown`.
pub fn mce_level(severity: Option<usize>, levels: usize) -> &'static str {
    match severity {
        None => "unknown",
        Some(0) => "normal",
        Some(severity) if severity >= levels => "critical",
        Some(_) => "warning",
    }
}

/// GLib's `GMemoryMonitorWarningLevel` for a severity: 50 low, 100 medium, 255 critical;
/// `None` for normal (low-memory-monitor sends nothing then).
pub fn low_memory_warning(severity: usize, levels: usize) -> Option<u8> {
    match severity {
        0 => None,
        severity if severity >= levels => Some(255),
        1 => Some(50),
        _ => Some(100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mce_levels_for_the_shipped_pair_one_level_and_three() {
        assert_eq!(mce_level(None, 2), "unknown");
        let two: Vec<_> = (0..=2).map(|s| mce_level(Some(s), 2)).collect();
        assert_eq!(two, ["normal", "warning", "critical"]);
        assert_eq!(mce_level(Some(0), 1), "normal");
        assert_eq!(mce_level(Some(1), 1), "critical");
        let three: Vec<_> = (0..=3).map(|s| mce_level(Some(s), 3)).collect();
        assert_eq!(three, ["normal", "warning", "warning", "critical"]);
    }

    #[test]
    fn glib_levels_for_the_shipped_pair_one_level_and_three() {
        let two: Vec<_> = (0..=2).map(|s| low_memory_warning(s, 2)).collect();
        assert_eq!(two, [None, Some(50), Some(255)]);
        assert_eq!(low_memory_warning(1, 1), Some(255));
        let four: Vec<_> = (0..=4).map(|s| low_memory_warning(s, 4)).collect();
        assert_eq!(four, [None, Some(50), Some(100), Some(100), Some(255)]);
    }

    #[test]
    fn a_level_left_over_after_a_reload_to_fewer_levels_is_the_most_severe() {
        // Between a reload and the next evaluation the severity may exceed the count.
        assert_eq!(mce_level(Some(3), 2), "critical");
        assert_eq!(low_memory_warning(3, 2), Some(255));
    }

    #[test]
    fn every_switch_is_off_by_default_and_on_only_with_the_feature() {
        let off = RawDbus::default().into_config().unwrap();
        assert!(!off.any());
        let raw: RawDbus = serde_yaml::from_str("{ mce: true }").unwrap();
        let result = raw.into_config();
        if cfg!(feature = "dbus") {
            let config = result.unwrap();
            assert!(config.mce && !config.low_memory_monitor && !config.memnotify);
        } else {
            assert!(result.unwrap_err().contains("without D-Bus support"));
        }
        assert!(serde_yaml::from_str::<RawDbus>("{ mce: true, upower: true }").is_err());
        assert!(serde_yaml::from_str::<RawDbus>("{ mce: yes please }").is_err());
    }

    #[test]
    fn the_section_in_a_whole_configuration() {
        let base = "levels:\n  - name: low\n    enter: { available: 10% }\n    leave: { available: 12% }\n";
        assert_eq!(
            crate::config::parse(base).unwrap().dbus,
            DbusConfig::default()
        );
        let text = format!("{base}dbus:\n  low_memory_monitor: true\n");
        let result = crate::config::parse(&text);
        if cfg!(feature = "dbus") {
            let dbus = result.unwrap().dbus;
            assert!(dbus.low_memory_monitor && !dbus.mce && !dbus.memnotify);
        } else {
            // At the section's value, where the switch is (the line after `dbus:`).
            let error = result.unwrap_err();
            assert_eq!(error.line, Some(6));
            assert!(error.reason.contains("without D-Bus support"));
        }
        let off = format!("{base}dbus: {{ mce: false }}\n");
        assert!(!crate::config::parse(&off).unwrap().dbus.any());
        let unknown = format!("{base}dbus:\n  upower: true\n");
        assert_eq!(crate::config::parse(&unknown).unwrap_err().line, Some(6));
    }
}

//! The module's statistics and parameters in sysfs.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// The statistics directory of the misc device.
pub const STATISTICS_DIR: &str = "/sys/class/misc/memnotify/statistics";
/// The module parameters directory.
pub const PARAMETERS_DIR: &str = "/sys/module/memnotify/parameters";

/// The statistics the module exports, in the order they are shown.
pub const STATISTICS: [&str; 5] = [
    "clients",
    "evaluations",
    "events",
    "wakeups",
    "last_eval_ns",
];

/// Reads every statistic from `dir`.
pub fn read_statistics(dir: &Path) -> Result<Vec<(&'static str, u64)>, Error> {
    if !dir.is_dir() {
        return Err(Error::DeviceMissing {
            path: dir.display().to_string(),
        });
    }
    STATISTICS
        .iter()
        .map(|&name| {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|error| Error::io(format!("reading {}", path.display()), error))?;
            let value = text.trim().parse().map_err(|_| {
                Error::io(
                    format!("reading {}", path.display()),
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "not a number"),
                )
            })?;
            Ok((name, value))
        })
        .collect()
}

/// Writes module parameter `name` under `dir`.
pub fn write_parameter(dir: &Path, name: &str, value: u64) -> Result<(), Error> {
    if !dir.is_dir() {
        return Err(Error::DeviceMissing {
            path: dir.display().to_string(),
        });
    }
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, format!("{value}\n"))
        .map_err(|error| Error::io(format!("writing {}", path.display()), error))
}

/// Reads module parameter `name` under `dir`.
pub fn read_parameter(dir: &Path, name: &str) -> Result<u64, Error> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|error| Error::io(format!("reading {}", path.display()), error))?;
    text.trim().parse().map_err(|_| {
        Error::io(
            format!("reading {}", path.display()),
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not a number"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_and_parameters_round_trip() {
        let dir = std::env::temp_dir().join(format!("memnotify-sysfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (index, name) in STATISTICS.iter().enumerate() {
            std::fs::write(dir.join(name), format!("{index}\n")).unwrap();
        }
        let stats = read_statistics(&dir).unwrap();
        assert_eq!(stats[4], ("last_eval_ns", 4));
        write_parameter(&dir, "rate_limit_ms", 300).unwrap();
        assert_eq!(read_parameter(&dir, "rate_limit_ms").unwrap(), 300);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            read_statistics(&dir),
            Err(Error::DeviceMissing { .. })
        ));
    }
}

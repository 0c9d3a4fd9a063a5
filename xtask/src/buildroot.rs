//! Buildroot external tree tooling: offline checks.

use anyhow::Result;
use xshell::Shell;

/// Offline checks of buildroot-external/.
pub fn check(_sh: &Shell) -> Result<()> {
    anyhow::bail!("buildroot-check is not implemented yet")
}

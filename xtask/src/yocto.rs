//! Yocto layer tooling (meta-memnotify): crate list generation and offline checks.

use anyhow::Result;
use xshell::Shell;

/// Regenerates meta-memnotify's `crate://` list from Cargo.lock.
pub fn crates(_sh: &Shell) -> Result<()> {
    anyhow::bail!("yocto-crates is not implemented yet")
}

/// Offline checks of the layer (oelint-adv, referenced files, crate list, fragments).
pub fn check(_sh: &Shell) -> Result<()> {
    anyhow::bail!("yocto-check is not implemented yet")
}

//! `cargo xtask`: build kernels, the module, userspace and images; boot them under QEMU; run scenarios.

mod buildroot;
mod yocto;

use anyhow::{bail, Result};
use xshell::Shell;

fn main() -> Result<()> {
    let sh = Shell::new()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("yocto-crates") => yocto::crates(&sh),
        Some("yocto-check") => yocto::check(&sh),
        Some("buildroot-check") => buildroot::check(&sh),
        _ => bail!("usage: cargo xtask <command>"),
    }
}

/// The repository's top directory.
pub fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

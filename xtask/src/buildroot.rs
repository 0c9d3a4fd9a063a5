//! The Buildroot external tree (`buildroot-external/`) checked by Buildroot 2026.02 itself.
//!
//! `cargo xtask buildroot-check` runs, with Buildroot 2026.02.3 (`MEMNOTIFY_BUILDROOT`, a user's
//! own clone, or the snapshot of `../shared/upstream/` unpacked into the cache):
//!   - `utils/check-package` over every file of the tree, with no ignore list: 0 warnings;
//!   - for every defconfig, `make BR2_EXTERNAL=… <defconfig>` (every option of the defconfig
//!     survives in `.config`) and `make show-info`: the memnotify packages and their
//!     dependencies present, the kernel at the pinned version with the Rust host tools as
//!     dependencies, the kernel's Rust library source at host-rustc's version;
//!   - every crate Buildroot compiles for memnotifyd allows Buildroot's rustc (`cargo metadata`);
//!   - `BR2_PACKAGE_MEMNOTIFYD_DBUS=y` on one defconfig: dbus is a dependency, and cargo gets
//!     the `dbus` feature (`make printvars`).
//!
//! Nothing is downloaded or built: `make <defconfig>` and `show-info` only evaluate.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::kernel::Series;
use crate::util::cache_dir;
use crate::yocto::{ensure_pip, run_tool, upstream_tree, Checks, Outcome};

const TREE: &str = "buildroot-external";
/// The kernel every defconfig pins: the upstream release of the 6.12 source the QEMU matrix
/// tests (Buildroot's default 6.19 is a series the matrix does not run).
fn kernel_version() -> &'static str {
    Series::V6_12.facts().upstream_version()
}
/// Packages every defconfig must have, with dependencies that must be there.
const PACKAGES: &[(&str, &[&str])] = &[
    ("memnotifyd", &["host-rustc"]),
    ("memnotify-module", &["linux"]),
    (
        "linux",
        &["host-rustc", "host-rust-bindgen", "host-memnotify-rust-src"],
    ),
    ("host-memnotify-rust-src", &[]),
];

fn tree() -> PathBuf {
    crate::project_root().join(TREE)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn check_package(buildroot: &Path) -> Result<Outcome> {
    ensure_pip("python-magic", "magic", None)?;
    ensure_pip("flake8", "flake8", None)?;
    let mut all = Vec::new();
    files(&tree(), &mut all)?;
    all.sort();
    let mut command = Command::new(buildroot.join("utils/check-package"));
    command
        .current_dir(buildroot)
        .arg("--br2-external")
        .args(&all);
    // check-package exits 1 on warnings: read its report either way.
    let output = command.output().context("running utils/check-package")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let warnings = text
        .lines()
        .find_map(|l| l.strip_suffix(" warnings generated"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .with_context(|| format!("no summary from check-package:\n{text}"))?;
    if warnings != 0 || !output.status.success() {
        bail!("check-package: {warnings} warning(s):\n{text}");
    }
    let lines = text
        .lines()
        .find(|l| l.ends_with("lines processed"))
        .unwrap_or("");
    Ok(Outcome::Pass(format!(
        "{} files, {lines}, 0 warnings, no ignore list",
        all.len()
    )))
}

/// `make` in Buildroot's tree for the output directory `out`.
fn make(buildroot: &Path, out: &Path, args: &[&str]) -> Result<String> {
    let mut command = Command::new("make");
    command
        .current_dir(buildroot)
        .arg("-s")
        .arg(format!("O={}", out.display()))
        .arg(format!("BR2_EXTERNAL={}", tree().display()))
        .args(args);
    run_tool(&mut command, &format!("make {}", args.join(" ")))
}

/// Options of `defconfig` that `.config` does not have as written (Kconfig dropped them).
fn lost_options(defconfig: &str, config: &str) -> Vec<String> {
    let kept = |line: &str| match line
        .strip_prefix("# ")
        .and_then(|l| l.strip_suffix(" is not set"))
    {
        Some(name) => !config.lines().any(|c| c.starts_with(&format!("{name}="))),
        None => config.lines().any(|c| c == line),
    };
    defconfig
        .lines()
        .filter(|l| l.starts_with("BR2_") || l.starts_with("# BR2_"))
        .filter(|l| !kept(l))
        .map(str::to_string)
        .collect()
}

fn show_info(buildroot: &Path, out: &Path) -> Result<BTreeMap<String, Value>> {
    let text = make(buildroot, out, &["show-info"])?;
    serde_json::from_str(&text).context("show-info is not JSON")
}

fn check_defconfig(buildroot: &Path, name: &str) -> Result<Outcome> {
    let out = cache_dir().join("buildroot").join(name);
    let _ = fs::remove_dir_all(&out);
    make(buildroot, &out, &[&format!("{name}_defconfig")])?;
    let defconfig = fs::read_to_string(tree().join(format!("configs/{name}_defconfig")))?;
    let lost = lost_options(&defconfig, &fs::read_to_string(out.join(".config"))?);
    if !lost.is_empty() {
        bail!("Kconfig dropped: {}", lost.join(", "));
    }
    let info = show_info(buildroot, &out)?;
    let mut wrong = Vec::new();
    for (package, deps) in PACKAGES {
        let Some(entry) = info.get(*package) else {
            wrong.push(format!("no {package}"));
            continue;
        };
        let have: Vec<&str> = entry["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for dep in *deps {
            if !have.contains(dep) {
                wrong.push(format!("{package} does not depend on {dep}"));
            } else if !info.contains_key(*dep) {
                wrong.push(format!("{package}'s dependency {dep} is missing"));
            }
        }
    }
    let version = |p: &str| {
        info.get(p)
            .and_then(|e| e["version"].as_str())
            .unwrap_or("")
            .to_string()
    };
    if version("linux") != kernel_version() {
        wrong.push(format!(
            "linux is {}, not {}, the 6.12 release the QEMU matrix tests",
            version("linux"),
            kernel_version()
        ));
    }
    let rustc = ["host-rust-bin", "host-rust"]
        .iter()
        .map(|p| version(p))
        .find(|v| !v.is_empty())
        .unwrap_or_default();
    if version("host-memnotify-rust-src") != rustc {
        wrong.push(format!(
            "host-memnotify-rust-src is {}, host-rustc {rustc}",
            version("host-memnotify-rust-src")
        ));
    }
    if !wrong.is_empty() {
        bail!("show-info: {}", wrong.join("; "));
    }
    Ok(Outcome::Pass(format!(
        "{} packages; linux {}, Rust {rustc}; memnotify packages and dependencies present",
        info.len(),
        kernel_version()
    )))
}

fn check_dbus(buildroot: &Path, name: &str) -> Result<Outcome> {
    let out = cache_dir().join("buildroot").join(format!("{name}-dbus"));
    let _ = fs::remove_dir_all(&out);
    make(buildroot, &out, &[&format!("{name}_defconfig")])?;
    let mut config = fs::read_to_string(out.join(".config"))?;
    config += "BR2_PACKAGE_MEMNOTIFYD_DBUS=y\n";
    fs::write(out.join(".config"), config)?;
    make(buildroot, &out, &["olddefconfig"])?;
    if !fs::read_to_string(out.join(".config"))?.contains("\nBR2_PACKAGE_MEMNOTIFYD_DBUS=y\n") {
        bail!("olddefconfig dropped BR2_PACKAGE_MEMNOTIFYD_DBUS");
    }
    let info = show_info(buildroot, &out)?;
    let deps = &info.get("memnotifyd").context("no memnotifyd")?["dependencies"];
    if !deps.as_array().into_iter().flatten().any(|d| d == "dbus") || !info.contains_key("dbus") {
        bail!("memnotifyd does not depend on dbus: {deps}");
    }
    let vars = make(
        buildroot,
        &out,
        &[
            "printvars",
            "VARS=MEMNOTIFYD_CARGO_BUILD_OPTS",
            "QUOTED_VARS=YES",
        ],
    )?;
    if !vars.contains("--features memnotifyd/dbus") {
        bail!("cargo does not get the dbus feature: {vars}");
    }
    Ok(Outcome::Pass(
        "memnotifyd depends on dbus and builds with --features memnotifyd/dbus".into(),
    ))
}

/// "1.85" or "1.85.0" as a comparable triple.
fn version(text: &str) -> Vec<u32> {
    let mut parts: Vec<u32> = text.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts
}

/// Packages Buildroot compiles for memnotifyd (`MEMNOTIFYD_CRATES` and their normal and build
/// dependencies, from `cargo metadata`) whose `rust-version` is newer than `rustc`: cargo
/// refuses to build them.
fn too_new_for(metadata: &Value, rustc: &str) -> Vec<String> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let nodes = metadata["resolve"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let node = |id: &str| nodes.iter().find(|n| n["id"] == id);
    let mut pending: Vec<String> = packages
        .iter()
        .filter(|p| {
            ["memnotify", "memnotifyd", "memhog"].contains(&p["name"].as_str().unwrap_or(""))
        })
        .filter_map(|p| p["id"].as_str().map(str::to_string))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(id) = pending.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for dep in node(&id)
            .and_then(|n| n["deps"].as_array())
            .into_iter()
            .flatten()
        {
            let kinds = dep["dep_kinds"].as_array().into_iter().flatten();
            if kinds.clone().any(|k| k["kind"] != "dev") {
                pending.extend(dep["pkg"].as_str().map(str::to_string));
            }
        }
    }
    packages
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| seen.contains(id)))
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > version(rustc))
                .then(|| format!("{} needs rustc {needs}", p["name"].as_str().unwrap_or("?")))
        })
        .collect()
}

fn check_rust_version(buildroot: &Path) -> Result<Outcome> {
    let mk = fs::read_to_string(buildroot.join("package/rust-bin/rust-bin.mk"))?;
    let rustc = mk
        .lines()
        .find_map(|l| l.strip_prefix("RUST_BIN_VERSION = "))
        .context("no RUST_BIN_VERSION in package/rust-bin/rust-bin.mk")?
        .trim();
    let manifest = crate::project_root().join("Cargo.toml");
    let output = crate::util::output_of(
        "cargo",
        &[
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
            &manifest.to_string_lossy(),
        ],
    )?;
    let metadata: Value = serde_json::from_str(&output).context("cargo metadata is not JSON")?;
    let too_new = too_new_for(&metadata, rustc);
    if !too_new.is_empty() {
        bail!("Buildroot's rustc is {rustc}: {}", too_new.join(", "));
    }
    Ok(Outcome::Pass(format!(
        "every crate Buildroot builds for memnotifyd allows rustc {rustc}"
    )))
}

/// Every Buildroot check, in order.
pub fn run_checks() -> Checks {
    let mut checks = Checks::default();
    let buildroot = upstream_tree("MEMNOTIFY_BUILDROOT", "buildroot-", "Buildroot 2026.02.x");
    let run = |checks: &mut Checks, name: &str, f: &dyn Fn(&Path) -> Result<Outcome>| {
        checks.run(name, || match &buildroot {
            Ok(dir) => f(dir),
            Err(why) => Ok(Outcome::Skip(why.clone())),
        });
    };
    run(&mut checks, "buildroot: check-package", &check_package);
    run(
        &mut checks,
        "buildroot: crates' rust-version",
        &check_rust_version,
    );
    let mut defconfigs: Vec<String> = fs::read_dir(tree().join("configs"))
        .map(|entries| {
            entries
                .filter_map(|e| {
                    e.ok()?
                        .file_name()
                        .to_str()?
                        .strip_suffix("_defconfig")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    defconfigs.sort();
    for name in &defconfigs {
        run(&mut checks, &format!("buildroot: {name}"), &|dir| {
            check_defconfig(dir, name)
        });
    }
    run(
        &mut checks,
        "buildroot: BR2_PACKAGE_MEMNOTIFYD_DBUS",
        &|dir| check_dbus(dir, "memnotify_qemu_x86_64"),
    );
    checks
}

/// `cargo xtask buildroot-check`.
pub fn check(_sh: &xshell::Shell) -> Result<()> {
    run_checks().finish("buildroot-check")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_crates_buildroot_compiles_must_allow_its_rustc() {
        let metadata = serde_json::json!({
            "packages": [
                {"id": "d", "name": "memnotifyd", "rust_version": "1.82"},
                {"id": "n", "name": "new", "rust_version": "1.90"},
                {"id": "t", "name": "test-only", "rust_version": "1.95"},
                {"id": "x", "name": "xtask", "rust_version": "1.96"}
            ],
            "resolve": {"nodes": [
                {"id": "d", "deps": [
                    {"pkg": "n", "dep_kinds": [{"kind": null}]},
                    {"pkg": "t", "dep_kinds": [{"kind": "dev"}]}
                ]},
                {"id": "n", "deps": []}, {"id": "t", "deps": []}, {"id": "x", "deps": []}
            ]}
        });
        assert_eq!(
            too_new_for(&metadata, "1.88.0"),
            vec!["new needs rustc 1.90"]
        );
        assert!(too_new_for(&metadata, "1.90.0").is_empty());
    }

    #[test]
    fn lost_options_are_those_kconfig_changed() {
        let defconfig = "BR2_arm=y\nBR2_FOO=\"x\"\n# BR2_BAR is not set\n# BR2_GONE is not set\n";
        let config = "BR2_arm=y\nBR2_FOO=\"y\"\nBR2_BAR=y\n";
        assert_eq!(
            lost_options(defconfig, config),
            vec!["BR2_FOO=\"x\"", "# BR2_BAR is not set"]
        );
    }
}

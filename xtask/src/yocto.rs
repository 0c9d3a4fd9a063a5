//! The Yocto layer (`meta-memnotify/`) checked by the real tools, and the check/report type the
//! Buildroot checks share.
//!
//! `cargo xtask yocto-check` runs, on Yocto 6.0 "wrynose" (openembedded-core and bitbake at tag
//! yocto-6.0.2, meta-yocto at wrynose for beaglebone-yocto):
//!   - oelint-adv (pinned, installed with pip when missing) with no finding; each inline
//!     suppression must carry its reason in a comment beside it;
//!   - the crate include is what oe-core's own `cargo-update-recipe-crates` generator writes;
//!   - `bitbake -p` with the layer, no error and no warning;
//!   - per machine (qemux86-64, qemuarm64, qemuarm, beaglebone-yocto, each with another mix of
//!     init manager, swap and the dbus PACKAGECONFIG): `bitbake -g memnotify-image` (the image's
//!     task graph resolves) and `bitbake -e` values of linux-yocto, memnotify-module, memnotifyd.
//!
//! The upstream trees come from `MEMNOTIFY_OE_CORE`, `MEMNOTIFY_BITBAKE`, `MEMNOTIFY_META_YOCTO`
//! (a user's own clones), or else from the snapshots in `../shared/upstream/` beside the
//! repository (`MEMNOTIFY_UPSTREAM` overrides), unpacked once into the xtask cache. Without
//! either, the checks that need them are skipped, saying how to point them at clones.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util::cache_dir;

const LAYER: &str = "meta-memnotify";
const CRATES_INC: &str = "recipes-core/memnotifyd/memnotifyd-crates.inc";
/// The Yocto release the layer is written for (oelint-adv's `--release`, LAYERSERIES_COMPAT).
const RELEASE: &str = "wrynose";
/// oelint-adv is pinned: new versions add rules, and a check must not change on its own.
const OELINT_VERSION: &str = "9.11.2";
/// Findings allowed in one file only, each with its reason.
const OELINT_FILE_ALLOWED: &[(&str, &str, &str)] = &[
    (
        CRATES_INC,
        "oelint.vars.inconspaces",
        "oe-core's generator writes `SRC_URI += \" \\`",
    ),
    (
        CRATES_INC,
        "oelint.vars.notneededspace",
        "the same line of the generated file",
    ),
];
/// Machine, the configuration it is checked with, and the layers it needs beyond oe-core.
const MACHINES: &[(&str, &str)] = &[
    (
        "qemux86-64",
        "INIT_MANAGER = \"systemd\"\nPACKAGECONFIG:pn-memnotifyd = \"dbus\"\n",
    ),
    (
        "qemuarm64",
        "INIT_MANAGER = \"systemd\"\nMEMNOTIFY_SWAP = \"off\"\n",
    ),
    (
        "qemuarm",
        "INIT_MANAGER = \"sysvinit\"\nPACKAGECONFIG:pn-memnotifyd = \"dbus\"\n",
    ),
    (
        "beaglebone-yocto",
        "INIT_MANAGER = \"sysvinit\"\nMEMNOTIFY_SWAP = \"off\"\n",
    ),
];

// ---------------------------------------------------------------------------------------------
// The check/report type shared with buildroot.rs and ci.rs.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// What a check that did not fail found: a summary, or why it could not run.
pub enum Outcome {
    Pass(String),
    Skip(String),
}

pub struct CheckResult {
    pub name: String,
    pub status: Status,
    pub note: String,
    pub seconds: f64,
}

/// Runs checks one after the other, printing one line per check as it ends.
#[derive(Default)]
pub struct Checks(pub Vec<CheckResult>);

impl Checks {
    pub fn run(&mut self, name: &str, check: impl FnOnce() -> Result<Outcome>) -> Status {
        let start = Instant::now();
        let (status, note) = match check() {
            Ok(Outcome::Pass(note)) => (Status::Pass, note),
            Ok(Outcome::Skip(note)) => (Status::Skip, note),
            Err(error) => (Status::Fail, format!("{error:#}")),
        };
        let seconds = start.elapsed().as_secs_f64();
        let label = match status {
            Status::Pass => "ok  ",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        println!("{label} {name} ({seconds:.1}s): {note}");
        self.0.push(CheckResult {
            name: name.to_string(),
            status,
            note,
            seconds,
        });
        status
    }

    /// For the command line: an error when a check failed.
    pub fn finish(self, what: &str) -> Result<()> {
        let count = |status| self.0.iter().filter(|r| r.status == status).count();
        let (passed, failed, skipped) = (
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
        );
        println!("{what}: {passed} passed, {failed} failed, {skipped} skipped");
        if failed > 0 {
            bail!("{what}: {failed} check(s) failed");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream trees: a user's clone, or a snapshot unpacked into the cache.

/// A tree from `env`, or the snapshot `<prefix>*.tar.xz` of `../shared/upstream` unpacked into
/// the cache; `Err` is the reason to skip, naming the variable.
pub fn upstream_tree(env: &str, prefix: &str, what: &str) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(env).filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let snapshots = std::env::var_os("MEMNOTIFY_UPSTREAM")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("../shared/upstream"));
    let tarball = fs::read_dir(&snapshots).ok().and_then(|entries| {
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|path| {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with(prefix) && name.ends_with(".tar.xz")
            })
    });
    let Some(tarball) = tarball else {
        return Err(format!(
            "no {what}: set {env} to your own clone, or put the upstream snapshots in {} \
             (MEMNOTIFY_UPSTREAM)",
            snapshots.display()
        ));
    };
    unpack(&snapshots, &tarball).map_err(|error| format!("{error:#}"))
}

/// Unpacks a snapshot once (checked against SHA256SUMS) and returns its one top directory.
fn unpack(snapshots: &Path, tarball: &Path) -> Result<PathBuf> {
    let name = tarball.file_name().unwrap_or_default().to_string_lossy();
    let dest = cache_dir()
        .join("upstream")
        .join(name.trim_end_matches(".tar.xz"));
    let done = dest.join(".unpacked");
    if !done.exists() {
        let sums =
            fs::read_to_string(snapshots.join("SHA256SUMS")).context("reading SHA256SUMS")?;
        let want = sums
            .lines()
            .find(|line| line.ends_with(name.as_ref()))
            .and_then(|line| line.split_whitespace().next())
            .with_context(|| format!("{name} is not in SHA256SUMS"))?;
        let got = crate::util::output_of("sha256sum", &[&tarball.to_string_lossy()])?;
        if !got.starts_with(want) {
            bail!("{name}: sha256 {got} is not SHA256SUMS's {want}");
        }
        let _ = fs::remove_dir_all(&dest);
        fs::create_dir_all(&dest)?;
        let status = Command::new("tar")
            .arg("-xJf")
            .arg(tarball)
            .arg("-C")
            .arg(&dest)
            .status()?;
        if !status.success() {
            bail!("unpacking {name} failed");
        }
        fs::write(&done, "")?;
    }
    let mut dirs = fs::read_dir(&dest)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir());
    match (dirs.next(), dirs.next()) {
        (Some(dir), None) => Ok(dir),
        _ => bail!("{} should hold one directory", dest.display()),
    }
}

/// Output of a command; the error holds its last lines.
pub fn run_tool(command: &mut Command, what: &str) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {what}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        let lines: Vec<&str> = text.lines().collect();
        bail!(
            "{what} failed ({}):\n{}",
            output.status,
            lines[lines.len().saturating_sub(25)..].join("\n")
        );
    }
    Ok(text)
}

/// Installs a pinned PyPI package with pip when `python3 -c import` fails or `version` differs.
pub fn ensure_pip(package: &str, module: &str, version: Option<&str>) -> Result<()> {
    let probe = match version {
        Some(v) => {
            format!("import importlib.metadata as m; assert m.version('{package}') == '{v}'")
        }
        None => format!("import {module}"),
    };
    let ok = |_: ()| {
        Command::new("python3")
            .args(["-c", &probe])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok(()) {
        return Ok(());
    }
    let spec = version.map_or(package.to_string(), |v| format!("{package}=={v}"));
    println!("     installing {spec} with pip");
    run_tool(
        Command::new("python3").args(["-m", "pip", "install", "--quiet", &spec]),
        "pip install",
    )?;
    if !ok(()) {
        bail!("{spec} is not importable after pip install");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The crate list: oe-core's own generator.

/// Runs oe-core's `do_update_crates` (cargo-update-recipe-crates.bbclass) on the repository's
/// Cargo.lock, the way `bitbake -c update_crates memnotifyd` does, writing into `dir`.
fn generate_crates(oe_core: &Path, dir: &Path) -> Result<String> {
    let class =
        fs::read_to_string(oe_core.join("meta/classes-recipe/cargo-update-recipe-crates.bbclass"))
            .context("reading oe-core's cargo-update-recipe-crates.bbclass")?;
    let body = class
        .split_once("\ndo_update_crates() {\n")
        .and_then(|(_, rest)| rest.split_once("\n}\n"))
        .map(|(body, _)| body)
        .context("no do_update_crates() in cargo-update-recipe-crates.bbclass")?;
    let lock_dir = dir.join("lock");
    fs::create_dir_all(&lock_dir)?;
    fs::copy(
        crate::project_root().join("Cargo.lock"),
        lock_dir.join("Cargo.lock"),
    )?;
    let mut script = String::from("nativepython3() { python3 \"$@\"; }\nbbnote() { :; }\n");
    script += &body
        .replace("${THISDIR}", &dir.to_string_lossy())
        .replace("${BPN}", "memnotifyd")
        .replace("${PN}", "memnotifyd")
        .replace("${CARGO_LOCK_SRC_DIR}", &lock_dir.to_string_lossy());
    run_tool(
        Command::new("sh").args(["-e", "-c", &script]),
        "oe-core's update_crates",
    )?;
    fs::read_to_string(dir.join("memnotifyd-crates.inc")).context("the generator wrote nothing")
}

fn crates_path() -> PathBuf {
    crate::project_root().join(LAYER).join(CRATES_INC)
}

fn scratch(name: &str) -> Result<PathBuf> {
    let dir = cache_dir().join("yocto").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `cargo xtask yocto-crates`: rewrites the crate include with oe-core's generator.
pub fn crates(_sh: &xshell::Shell) -> Result<()> {
    let oe_core = upstream_tree(
        "MEMNOTIFY_OE_CORE",
        "openembedded-core",
        "openembedded-core",
    )
    .map_err(anyhow::Error::msg)?;
    let text = generate_crates(&oe_core, &scratch("crates")?)?;
    fs::write(crates_path(), &text)?;
    println!(
        "wrote {LAYER}/{CRATES_INC} ({} crates)",
        text.matches("crate://").count()
    );
    Ok(())
}

fn check_crates(oe_core: &Path) -> Result<Outcome> {
    let want = generate_crates(oe_core, &scratch("crates")?)?;
    let have = fs::read_to_string(crates_path())?;
    if want != have {
        bail!("{CRATES_INC} is not what oe-core's generator makes of Cargo.lock: run cargo xtask yocto-crates");
    }
    Ok(Outcome::Pass(format!(
        "{} crates, as oe-core's generator writes them",
        want.matches("crate://").count()
    )))
}

// ---------------------------------------------------------------------------------------------
// oelint-adv

fn layer_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            layer_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Inline `# nooelint:` suppressions without a reason: a comment of four words or more within
/// the three lines above (or the line below, for a file's first line).
fn unjustified_suppressions(name: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let reason = |line: &&str| {
        let line = line.trim_start();
        line.starts_with('#') && !line.contains("nooelint:") && line.split_whitespace().count() >= 4
    };
    (0..lines.len())
        .filter(|&i| lines[i].trim_start().starts_with('#') && lines[i].contains("nooelint:"))
        .filter(|&i| {
            !lines[i.saturating_sub(3)..i].iter().any(reason)
                && !lines.get(i + 1).is_some_and(reason)
        })
        .map(|i| format!("{name}:{}: {}", i + 1, lines[i].trim()))
        .collect()
}

fn check_oelint() -> Result<Outcome> {
    ensure_pip("oelint-adv", "oelint_adv", Some(OELINT_VERSION))?;
    let dir = crate::project_root().join(LAYER);
    let mut files = Vec::new();
    layer_files(&dir, &mut files)?;
    files.sort();
    let rel = |p: &Path| {
        p.strip_prefix(&dir)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let mut problems = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.to_string_lossy().contains(".bb") || f.to_string_lossy().ends_with(".inc"))
    {
        problems.extend(unjustified_suppressions(
            &rel(file),
            &fs::read_to_string(file)?,
        ));
    }
    // Recipes, appends and layer.conf; they pull in the classes and includes they use.
    let entries: Vec<String> = files
        .iter()
        .map(|f| rel(f))
        .filter(|f| f.ends_with(".bb") || f.ends_with(".bbappend") || f == "conf/layer.conf")
        .collect();
    for entry in &entries {
        let output = Command::new("python3")
            .current_dir(&dir)
            .env("OELINT_SKIP_CONFIG", "1")
            .args([
                "-m",
                "oelint_adv",
                "--quiet",
                "--relpaths",
                "--release",
                RELEASE,
            ])
            .args(["--constantmods", "+oelint-variables.json", "--", entry])
            .output()
            .context("running oelint-adv")?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        let findings: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if !output.status.success() && findings.is_empty() {
            bail!(
                "oelint-adv failed on {entry} without a finding ({})",
                output.status
            );
        }
        problems.extend(
            findings
                .into_iter()
                .filter(|line| {
                    !OELINT_FILE_ALLOWED.iter().any(|(file, rule, _)| {
                        line.starts_with(&format!("{file}:")) && line.contains(&format!(":{rule}:"))
                    })
                })
                .map(str::to_string),
        );
    }
    problems.sort();
    problems.dedup();
    if !problems.is_empty() {
        bail!(
            "{} finding(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    let allowed: Vec<String> = OELINT_FILE_ALLOWED
        .iter()
        .map(|(f, r, why)| format!("{r} in {f} ({why})"))
        .collect();
    Ok(Outcome::Pass(format!(
        "oelint-adv {OELINT_VERSION} --release {RELEASE}: {} entry points, 0 findings; allowed: {}",
        entries.len(),
        allowed.join("; ")
    )))
}

// ---------------------------------------------------------------------------------------------
// bitbake

struct Bitbake {
    bitbake: PathBuf,
    build: PathBuf,
}

impl Bitbake {
    /// A build directory in the cache with oe-core, meta-yocto-bsp and the layer.
    fn new(oe_core: &Path, bitbake: &Path, meta_yocto: &Path) -> Result<Bitbake> {
        let build = cache_dir().join("yocto/build");
        fs::create_dir_all(build.join("conf"))?;
        let layers = [
            oe_core.join("meta"),
            meta_yocto.join("meta-yocto-bsp"),
            crate::project_root().join(LAYER),
        ];
        let layers: Vec<String> = layers
            .iter()
            .map(|l| l.to_string_lossy().into_owned())
            .collect();
        fs::write(
            build.join("conf/bblayers.conf"),
            format!("BBLAYERS = \"{}\"\n", layers.join(" ")),
        )?;
        fs::write(
            build.join("conf/local.conf"),
            "DISTRO = \"nodistro\"\nOE_FRAGMENTS += \"memnotify/enable\"\nBB_NO_NETWORK = \"1\"\n",
        )?;
        for (machine, config) in MACHINES {
            fs::write(
                build.join(format!("conf/{machine}.conf")),
                format!("MACHINE = \"{machine}\"\n{config}"),
            )?;
        }
        Ok(Bitbake {
            bitbake: bitbake.to_path_buf(),
            build,
        })
    }

    /// Runs bitbake for `machine`; oe-core refuses root, so as root it runs in a user
    /// namespace (uid 65534 there, still the owner of the files here).
    fn run(&self, machine: &str, args: &[&str]) -> Result<String> {
        let bin = self.bitbake.join("bin");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = if nix_is_root() {
            let mut c = Command::new("unshare");
            c.args(["--user", "--"]).arg(bin.join("bitbake"));
            c
        } else {
            Command::new(bin.join("bitbake"))
        };
        command
            .current_dir(&self.build)
            .env("PATH", path)
            .env("BBPATH", &self.build)
            .env("LANG", "en_US.UTF-8")
            .env("LC_ALL", "en_US.UTF-8")
            // The server stays between the commands of a machine, which then reuse its parse
            // (stop() ends it).
            .args(["--idle-timeout", "120", "-r"])
            .arg(self.build.join(format!("conf/{machine}.conf")))
            .args(args);
        run_tool(
            &mut command,
            &format!("bitbake {} ({machine})", args.join(" ")),
        )
    }

    fn stop(&self) {
        let _ = self.run("qemux86-64", &["--kill-server"]);
    }

    /// `bitbake -e RECIPE`: its variables (the final `NAME="value"` lines).
    fn env(&self, machine: &str, recipe: &str) -> Result<BTreeMap<String, String>> {
        let text = self.run(machine, &["-e", recipe])?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once("=\""))
            .filter(|(k, _)| {
                k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_:-${}.".contains(c))
            })
            .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
            .collect())
    }
}

fn nix_is_root() -> bool {
    crate::util::output_of("id", &["-u"]).is_ok_and(|uid| uid == "0")
}

/// Messages bitbake printed as warnings or errors.
fn bitbake_complaints(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("WARNING:") || l.starts_with("ERROR:"))
        .collect()
}

fn check_parse(bitbake: &Bitbake) -> Result<Outcome> {
    let text = bitbake.run("qemux86-64", &["-p"])?;
    let complaints = bitbake_complaints(&text);
    if !complaints.is_empty() {
        bail!("bitbake -p complained:\n  {}", complaints.join("\n  "));
    }
    let summary = text
        .lines()
        .find(|l| l.starts_with("Parsing of"))
        .unwrap_or("parsed");
    Ok(Outcome::Pass(format!("no error or warning; {summary}")))
}

/// What a variable must contain (`true`) or must not (`false`), per recipe.
fn expectations(machine: &str, config: &str) -> Vec<(&'static str, &'static str, String, bool)> {
    let swap = if config.contains("MEMNOTIFY_SWAP = \"off\"") {
        "off"
    } else {
        "on"
    };
    let other = if swap == "on" { "off" } else { "on" };
    let dbus = config.contains("dbus");
    let systemd = config.contains("systemd");
    let mut e = vec![
        ("linux-yocto", "KERNEL_FEATURES", "rust".into(), true),
        ("linux-yocto", "DEPENDS", "rust-native".into(), true),
        ("linux-yocto", "DEPENDS", "bindgen-cli-native".into(), true),
        (
            "linux-yocto",
            "SRC_URI",
            "file://0001-mm-export-si_swapinfo-for-the-memnotify-module.patch".into(),
            true,
        ),
        ("linux-yocto", "SRC_URI", "file://0002-".into(), false),
        (
            "linux-yocto",
            "SRC_URI",
            "file://memnotify.config".into(),
            true,
        ),
        (
            "linux-yocto",
            "SRC_URI",
            format!("file://swap-{swap}.config"),
            true,
        ),
        (
            "linux-yocto",
            "SRC_URI",
            format!("file://swap-{other}.config"),
            false,
        ),
        ("linux-yocto", "PV", "6.18".into(), true),
        ("memnotify-module", "DEPENDS", "rust-native".into(), true),
        (
            "memnotify-module",
            "RPROVIDES:memnotify-module",
            "kernel-module-memnotify".into(),
            true,
        ),
        ("memnotifyd", "SRC_URI", "crate://crates.io/".into(), true),
        (
            "memnotifyd",
            "DISTRO_FEATURES",
            if systemd { "systemd" } else { "sysvinit" }.into(),
            true,
        ),
        (
            "memnotifyd",
            "PACKAGECONFIG_CONFARGS",
            "--features=memnotifyd/dbus".into(),
            dbus,
        ),
        ("memnotifyd", "RDEPENDS:memnotifyd", "dbus".into(), dbus),
    ];
    if machine == "qemuarm" {
        // Rust's code is ARM-mode: oe-core compiles the kernel's C with -marm for Thumb tunes.
        e.push(("linux-yocto", "TARGET_CC_KERNEL_ARCH", "-marm".into(), true));
    }
    if machine == "beaglebone-yocto" {
        // meta-yocto-bsp's board: its linux-yocto machine and the BeagleBone device trees.
        e.push(("linux-yocto", "KMACHINE", "beaglebone".into(), true));
        e.push((
            "linux-yocto",
            "KERNEL_DEVICETREE",
            "ti/omap/am335x-boneblack.dtb".into(),
            true,
        ));
    }
    e
}

fn check_machine(bitbake: &Bitbake, machine: &str, config: &str) -> Result<Outcome> {
    let text = bitbake.run(machine, &["-g", "memnotify-image"])?;
    let complaints = bitbake_complaints(&text);
    if !complaints.is_empty() {
        bail!("bitbake -g complained:\n  {}", complaints.join("\n  "));
    }
    let graph = fs::read_to_string(bitbake.build.join("task-depends.dot"))?;
    for task in [
        "memnotifyd.do_package_write",
        "memnotify-module.do_compile",
        "linux-yocto.do_memnotify_configcheck",
    ] {
        if !graph.contains(&format!("\"{task}")) {
            bail!("memnotify-image's task graph has no {task}");
        }
    }
    let mut wrong = Vec::new();
    let mut envs = BTreeMap::new();
    for (recipe, var, want, present) in expectations(machine, config) {
        if !envs.contains_key(recipe) {
            envs.insert(recipe, bitbake.env(machine, recipe)?);
        }
        let value = envs[recipe].get(var).map(String::as_str).unwrap_or("");
        if value
            .split_whitespace()
            .any(|w| w.starts_with(want.as_str()))
            != present
        {
            let how = if present { "lacks" } else { "has" };
            wrong.push(format!("{recipe} {var} {how} {want} ({value:.120})"));
        }
    }
    if !wrong.is_empty() {
        bail!("bitbake -e:\n  {}", wrong.join("\n  "));
    }
    let settings = config.lines().collect::<Vec<_>>().join(", ");
    Ok(Outcome::Pass(format!(
        "memnotify-image's task graph resolves; {} bitbake -e values as expected ({settings})",
        expectations(machine, config).len()
    )))
}

// ---------------------------------------------------------------------------------------------

/// Every Yocto check, in order.
pub fn run_checks() -> Checks {
    let mut checks = Checks::default();
    checks.run("yocto: oelint-adv", check_oelint);
    let oe_core = upstream_tree(
        "MEMNOTIFY_OE_CORE",
        "openembedded-core",
        "openembedded-core (yocto-6.0.2)",
    );
    let bitbake_dir = upstream_tree("MEMNOTIFY_BITBAKE", "bitbake", "bitbake (yocto-6.0.2)");
    let meta_yocto = upstream_tree("MEMNOTIFY_META_YOCTO", "meta-yocto", "meta-yocto (wrynose)");
    checks.run(
        "yocto: crate list (oe-core's generator)",
        || match &oe_core {
            Ok(dir) => check_crates(dir),
            Err(why) => Ok(Outcome::Skip(why.clone())),
        },
    );
    let bitbake = match (&oe_core, &bitbake_dir, &meta_yocto) {
        (Ok(o), Ok(b), Ok(m)) => Bitbake::new(o, b, m).map_err(|e| format!("{e:#}")),
        (Err(why), _, _) | (_, Err(why), _) | (_, _, Err(why)) => Err(why.clone()),
    };
    let parsed = checks.run("yocto: bitbake -p", || match &bitbake {
        Ok(b) => check_parse(b),
        Err(why) => Ok(Outcome::Skip(why.clone())),
    });
    for (machine, config) in MACHINES {
        checks.run(
            &format!("yocto: bitbake -g/-e {machine}"),
            || match &bitbake {
                Ok(_) if parsed == Status::Fail => Ok(Outcome::Skip("bitbake -p failed".into())),
                Ok(b) => check_machine(b, machine, config),
                Err(why) => Ok(Outcome::Skip(why.clone())),
            },
        );
    }
    if let Ok(b) = &bitbake {
        b.stop();
    }
    checks
}

/// `cargo xtask yocto-check`.
pub fn check(_sh: &xshell::Shell) -> Result<()> {
    run_checks().finish("yocto-check")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppressions_need_a_reason() {
        let text = "# the homepage is a placeholder, never reachable\n# nooelint: a\nA = \"1\"\n\n\n\n# nooelint: b\nB = \"2\"\n";
        assert_eq!(
            unjustified_suppressions("x.bb", text),
            vec!["x.bb:7: # nooelint: b"]
        );
    }

    #[test]
    fn complaints_are_warnings_and_errors() {
        let text = "NOTE: fine\nWARNING: odd\nERROR: bad\nParsing of 1 .bb files complete";
        assert_eq!(bitbake_complaints(text), vec!["WARNING: odd", "ERROR: bad"]);
    }

    #[test]
    fn expectations_follow_the_machine_configuration() {
        let e = expectations("qemuarm64", MACHINES[1].1);
        assert!(e.iter().any(|(r, v, w, p)| *r == "linux-yocto"
            && *v == "SRC_URI"
            && w == "file://swap-off.config"
            && *p));
        assert!(e
            .iter()
            .any(|(_, v, _, p)| *v == "PACKAGECONFIG_CONFARGS" && !*p));
    }
}

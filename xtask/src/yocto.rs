//! Yocto layer tooling (`meta-memnotify/`): the crate list of the memnotifyd recipe and the
//! offline checks of the layer.
//!
//! `cargo xtask yocto-crates` writes `memnotifyd-crates.inc` from the workspace's Cargo.lock.
//! `cargo xtask yocto-check` checks what can be checked without fetching anything:
//!   1. oelint-adv (pinned, installed with pip when missing) over every recipe, append, class and
//!      layer.conf, with `--release whinlatter`; inline suppressions must carry a justification,
//!      and the appends must change core recipes only behind a feature test;
//!   2. every file and repository path the layer references exists (SRC_URI files, `${S}/...`
//!      paths, the Cargo packages and binaries it builds, the kas includes, the oeqa suite) and
//!      the kernel patches carry the Upstream-Status oe-core's QA requires;
//!   3. `memnotifyd-crates.inc` is exactly what Cargo.lock gives;
//!   4. the kernel fragments are the repository's own `qemu/configs` files, with no copy in the
//!      layer;
//!   5. with `MEMNOTIFY_OE_CORE` pointing at an openembedded-core whinlatter checkout (and
//!      bitbake beside it, or at `MEMNOTIFY_BITBAKE`): `bitbake -p` with the layer for the QEMU
//!      machines (and beaglebone-yocto with meta-yocto-bsp, when a meta-yocto checkout is at
//!      hand), and the values bitbake computes for the layer's key variables.
//!
//! The parsers below are pure functions over file contents, tested at the end; `crates` and
//! `check` are the thin shell that reads files, runs tools and prints one line per check.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use regex::Regex;
use xshell::Shell;

/// The layer's directory, relative to the repository root.
const LAYER: &str = "meta-memnotify";
/// The generated crate list, relative to the layer.
const CRATES_INC: &str = "recipes-core/memnotifyd/memnotifyd-crates.inc";
/// The Yocto release the layer is written for (oelint-adv's `--release`, LAYERSERIES_COMPAT).
const RELEASE: &str = "whinlatter";
/// oelint-adv is pinned: new versions add rules, and a check must not change on its own.
const OELINT_VERSION: &str = "9.11.2";
/// The layer's own variables, so that oelint-adv does not report them as unknown.
const OELINT_VARIABLES: &str = "oelint-variables.json";
/// Rules suppressed for the whole layer, each with its reason.
const OELINT_SUPPRESSED: &[(&str, &str)] = &[(
    "oelint.vars.noncoreoverride",
    "the appends change linux-yocto, make-mod-scripts and rust only through classes they inherit \
     behind a DISTRO_FEATURES/KERNEL_FEATURES test, which oelint-adv cannot evaluate; \
     check_conditional_appends checks that shape instead",
)];
/// How cargo names crates.io in Cargo.lock (git index and sparse index).
const CRATES_IO: &[&str] = &[
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];
/// The `qemu/configs` fragments every build system shares; xtask adds only its `qemu-*.config`
/// boot bits on top of these, which a Yocto kernel must not use.
const SHARED_FRAGMENTS: &[&str] = &["memnotify.config", "swap-off.config", "swap-on.config"];
/// The values of MEMNOTIFY_SWAP.
const SWAP_CHOICES: &[&str] = &["on", "off"];
/// oeqa runtime suites oe-core itself provides; any other one must be in the layer.
const CORE_TEST_SUITES: &[&str] = &["ping", "ssh", "auto"];
/// The machines of the kas files that openembedded-core alone provides, parsed by the optional
/// bitbake step.
const MACHINES: &[&str] = &["qemux86-64", "qemuarm64", "qemuarm"];
/// A real board from meta-yocto-bsp (the meta-yocto repository), parsed too when a meta-yocto
/// checkout is at hand (`MEMNOTIFY_META_YOCTO`, or `meta-yocto` beside openembedded-core).
const BSP_MACHINE: &str = "beaglebone-yocto";

/// Regenerates meta-memnotify's `crate://` list from Cargo.lock.
pub fn crates(_sh: &Shell) -> Result<()> {
    let root = crate::project_root();
    let lock = read(&root.join("Cargo.lock"))?;
    let crates = registry_crates(&lock)?;
    let path = root.join(LAYER).join(CRATES_INC);
    let text = render_crates_inc(&crates);
    let unchanged = fs::read_to_string(&path).is_ok_and(|old| old == text);
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{} {} ({} crates from crates.io)",
        if unchanged { "unchanged" } else { "wrote" },
        path.strip_prefix(&root).unwrap_or(&path).display(),
        crates.len()
    );
    Ok(())
}

/// What a passing check reports: a summary, or why it did not run.
enum Outcome {
    Passed(String),
    Skipped(String),
}

/// Offline checks of the layer (oelint-adv, referenced files, crate list, fragments).
pub fn check(_sh: &Shell) -> Result<()> {
    let root = crate::project_root();
    let layer = Layer::load(&root)?;
    let checks: [(&str, &dyn Fn() -> Result<Outcome>); 7] = [
        ("oelint-adv", &|| check_oelint(&layer)),
        ("inline suppressions", &|| check_suppressions(&layer)),
        ("conditional appends", &|| check_conditional_appends(&layer)),
        ("referenced files", &|| check_references(&layer)),
        ("crate list", &|| check_crates(&layer)),
        ("kernel fragments", &|| check_fragments(&layer)),
        ("bitbake parse", &|| check_bitbake_parse(&layer)),
    ];
    let mut failed = Vec::new();
    for (name, run) in checks {
        match run() {
            Ok(Outcome::Passed(summary)) => println!("ok   {name}: {summary}"),
            Ok(Outcome::Skipped(reason)) => println!("skip {name}: {reason}"),
            Err(error) => {
                println!("FAIL {name}: {error:#}");
                failed.push(name);
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "yocto-check: {} check(s) failed: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The layer's text files, read once.
struct Layer {
    root: PathBuf,
    dir: PathBuf,
    /// Path relative to the layer, and contents, of every file of the layer.
    files: BTreeMap<String, String>,
}

impl Layer {
    fn load(root: &Path) -> Result<Layer> {
        let dir = root.join(LAYER);
        let mut files = BTreeMap::new();
        let mut pending = vec![dir.clone()];
        while let Some(current) = pending.pop() {
            for entry in
                fs::read_dir(&current).with_context(|| format!("listing {}", current.display()))?
            {
                let path = entry?.path();
                if path.is_dir() {
                    if path.file_name().is_some_and(|name| name == "__pycache__") {
                        continue;
                    }
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(&dir)?.to_string_lossy().into_owned();
                    files.insert(relative, read(&path)?);
                }
            }
        }
        Ok(Layer {
            root: root.to_path_buf(),
            dir,
            files,
        })
    }

    /// Files whose name ends with one of `suffixes`.
    fn with_suffix<'a>(
        &'a self,
        suffixes: &'a [&str],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.files
            .iter()
            .filter(move |(name, _)| suffixes.iter().any(|suffix| name.ends_with(suffix)))
            .map(|(name, text)| (name.as_str(), text.as_str()))
    }

    /// Recipes, appends, classes and includes: the files bitbake parses.
    fn metadata(&self) -> impl Iterator<Item = (&str, &str)> {
        self.with_suffix(&[".bb", ".bbappend", ".bbclass", ".inc"])
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// 1. oelint-adv

/// The files oelint-adv is run on, one at a time: recipes, appends and layer.conf, which pull in
/// the classes and includes they use (a class linted on its own and again inside an append gets
/// contradictory context-dependent findings), plus any class or include nothing refers to.
fn lint_entry_points(files: &BTreeMap<String, String>) -> Vec<String> {
    let mut entries: Vec<String> = files
        .keys()
        .filter(|name| {
            name.ends_with(".bb")
                || name.ends_with(".bbappend")
                || name.ends_with("conf/layer.conf")
        })
        .cloned()
        .collect();
    for name in files
        .keys()
        .filter(|name| name.ends_with(".bbclass") || name.ends_with(".inc"))
    {
        let stem = Path::new(name)
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy();
        let used = files
            .iter()
            .filter(|(other, _)| *other != name)
            .any(|(_, text)| text.contains(stem.as_ref()));
        if !used {
            entries.push(name.clone());
        }
    }
    entries
}

fn oelint_version() -> Option<String> {
    let output = Command::new("python3")
        .args(["-m", "oelint_adv", "--version"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    output.status.success().then(|| {
        text.trim()
            .trim_start_matches("oelint-adv")
            .trim()
            .to_string()
    })
}

fn ensure_oelint() -> Result<()> {
    if oelint_version().as_deref() == Some(OELINT_VERSION) {
        return Ok(());
    }
    println!("     installing oelint-adv {OELINT_VERSION} with pip");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            &format!("oelint-adv=={OELINT_VERSION}"),
        ])
        .status()
        .context("running python3 -m pip")?;
    if !status.success() || oelint_version().as_deref() != Some(OELINT_VERSION) {
        bail!("could not install oelint-adv {OELINT_VERSION} (python3 -m pip install oelint-adv=={OELINT_VERSION})");
    }
    Ok(())
}

fn check_oelint(layer: &Layer) -> Result<Outcome> {
    ensure_oelint()?;
    let entries = lint_entry_points(&layer.files);
    let mut findings = Vec::new();
    for entry in &entries {
        let mut command = Command::new("python3");
        command
            .current_dir(&layer.dir)
            // No user or working-directory .oelint.cfg: the options below are the whole setup.
            .env("OELINT_SKIP_CONFIG", "1")
            .args([
                "-m",
                "oelint_adv",
                "--quiet",
                "--relpaths",
                "--release",
                RELEASE,
            ]);
        for (rule, _) in OELINT_SUPPRESSED {
            command.arg(format!("--suppress={rule}"));
        }
        command
            .arg("--constantmods")
            .arg(format!("+{OELINT_VARIABLES}"))
            .arg("--")
            .arg(entry);
        let output = command.output().context("running oelint-adv")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        findings.extend(
            text.lines()
                .filter(|line| !line.trim().is_empty())
                .map(str::to_string),
        );
        if !output.status.success() && text.trim().is_empty() {
            bail!(
                "oelint-adv failed on {entry} without a finding (exit {})",
                output.status
            );
        }
    }
    findings.sort();
    findings.dedup();
    if !findings.is_empty() {
        bail!(
            "{} finding(s):\n  {}",
            findings.len(),
            findings.join("\n  ")
        );
    }
    let suppressed: Vec<&str> = OELINT_SUPPRESSED.iter().map(|(rule, _)| *rule).collect();
    Ok(Outcome::Passed(format!(
        "oelint-adv {OELINT_VERSION} --release {RELEASE}: {} entry points, no findings (layer-wide suppression: {})",
        entries.len(),
        suppressed.join(", ")
    )))
}

/// Inline `# nooelint:` suppressions that have no justification: a comment line right above or
/// right below that explains it (below, for findings on a file's first line).
fn unjustified_suppressions(name: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let is_suppression =
        |line: &str| line.trim_start().starts_with('#') && line.contains("nooelint:");
    let is_justification = |line: Option<&&str>| {
        line.is_some_and(|line| {
            let line = line.trim_start();
            line.starts_with('#')
                && !line.contains("nooelint:")
                && line.split_whitespace().count() >= 4
        })
    };
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| is_suppression(line))
        .filter(|(index, _)| {
            let above = index.checked_sub(1).and_then(|above| lines.get(above));
            !is_justification(above) && !is_justification(lines.get(index + 1))
        })
        .map(|(index, line)| format!("{name}:{}: {}", index + 1, line.trim()))
        .collect()
}

fn check_suppressions(layer: &Layer) -> Result<Outcome> {
    let mut count = 0;
    let mut bad = Vec::new();
    for (name, text) in layer.metadata().chain(layer.with_suffix(&[".conf"])) {
        count += text
            .lines()
            .filter(|line| line.contains("nooelint:"))
            .count();
        bad.extend(unjustified_suppressions(name, text));
    }
    if !bad.is_empty() {
        bail!(
            "suppressions without a justifying comment next to them:\n  {}",
            bad.join("\n  ")
        );
    }
    Ok(Outcome::Passed(format!(
        "{count} inline suppressions, each with its reason"
    )))
}

/// Lines of an append that are not `inherit_defer` of a class behind a feature test.
fn unconditional_append_lines(text: &str) -> Vec<String> {
    let conditional = Regex::new(
        r"^inherit_defer \$\{@bb\.utils\.contains\('(DISTRO_FEATURES|KERNEL_FEATURES)', '[\w-]+', '[\w-]+', '', d\)\}$",
    )
    .expect("valid regex");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter(|line| !conditional.is_match(line))
        .map(str::to_string)
        .collect()
}

/// Stands in for oelint-adv's noncoreoverride rule (see [`OELINT_SUPPRESSED`]): adding the layer
/// alone must change no core recipe, so every append only inherits classes behind a feature test.
fn check_conditional_appends(layer: &Layer) -> Result<Outcome> {
    let mut bad = Vec::new();
    let mut count = 0;
    for (name, text) in layer.with_suffix(&[".bbappend"]) {
        count += 1;
        bad.extend(
            unconditional_append_lines(text)
                .into_iter()
                .map(|line| format!("{name}: {line}")),
        );
    }
    if !bad.is_empty() {
        bail!(
            "appends may only contain inherit_defer ${{@bb.utils.contains('DISTRO_FEATURES' or 'KERNEL_FEATURES', ...)}}; \
             move these lines into a class:\n  {}",
            bad.join("\n  ")
        );
    }
    Ok(Outcome::Passed(format!(
        "{count} appends, each only inherits behind a feature test"
    )))
}

// ---------------------------------------------------------------------------------------------
// 2. Referenced files

/// The value of every assignment of `name` (any operator, no override) in `text`, continuation
/// lines joined.
fn assignments(text: &str, name: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    let pattern = Regex::new(&format!(
        r#"(?m)^(?:export\s+)?{}\s*(?:\?\?=|\?=|:=|\+=|=\+|\.=|=)\s*"([^"]*)""#,
        regex::escape(name)
    ))
    .expect("valid regex");
    pattern
        .captures_iter(&joined)
        .map(|captures| captures[1].trim().to_string())
        .collect()
}

/// The directories of `FILESEXTRAPATHS:prepend` in `text`, with the layer's path variables resolved.
fn search_dirs(text: &str, vars: &BTreeMap<&str, PathBuf>) -> Result<Vec<PathBuf>> {
    let pattern =
        Regex::new(r#"(?m)^FILESEXTRAPATHS:prepend\s*:?=\s*"([^"]*)""#).expect("valid regex");
    let mut dirs = Vec::new();
    for captures in pattern.captures_iter(text) {
        for entry in captures[1].split(':').filter(|entry| !entry.is_empty()) {
            dirs.push(resolve(entry, vars)?);
        }
    }
    Ok(dirs)
}

/// `value` with the `${VAR}` of `vars` substituted; an error if another variable is left.
fn resolve(value: &str, vars: &BTreeMap<&str, PathBuf>) -> Result<PathBuf> {
    let mut resolved = value.to_string();
    for (name, path) in vars {
        resolved = resolved.replace(&format!("${{{name}}}"), &path.to_string_lossy());
    }
    if resolved.contains("${") {
        bail!("cannot resolve {value} offline");
    }
    Ok(PathBuf::from(resolved))
}

/// The local file names of the `file://` entries of `text`, with `${MEMNOTIFY_SWAP}` expanded to
/// each of its values; entries under `${COMMON_LICENSE_DIR}` (oe-core's) are left out.
fn local_files(text: &str) -> BTreeSet<String> {
    let pattern = Regex::new(r"file://([\w${}./+-]+)").expect("valid regex");
    let mut names = BTreeSet::new();
    for captures in pattern.captures_iter(text) {
        let name = &captures[1];
        if name.contains("${COMMON_LICENSE_DIR}") {
            continue;
        }
        if name.contains("${MEMNOTIFY_SWAP}") {
            names.extend(
                SWAP_CHOICES
                    .iter()
                    .map(|choice| name.replace("${MEMNOTIFY_SWAP}", choice)),
            );
        } else {
            names.insert(name.to_string());
        }
    }
    names
}

/// A kernel patch without the `Upstream-Status:` line oe-core's patch-status QA check (an error
/// in whinlatter) requires; None when it has one.
fn upstream_status_problem(patch: &str) -> Option<&'static str> {
    let strict = Regex::new(r"(?m)^Upstream-Status: (Pending|Submitted|Denied|Inappropriate|Backport|Inactive-Upstream)( .+)?$")
        .expect("valid regex");
    let loose = Regex::new(r"(?mi)^.*upstream.*status.*$").expect("valid regex");
    if strict.is_match(patch) {
        None
    } else if loose.is_match(patch) {
        Some("malformed Upstream-Status line")
    } else {
        Some("no Upstream-Status line")
    }
}

/// The binaries a Cargo package provides, from its manifest and its source layout.
fn package_binaries(manifest: &str, package_dir: &Path) -> BTreeSet<String> {
    let mut binaries = BTreeSet::new();
    let name = Regex::new(r#"(?m)^name\s*=\s*"([^"]+)""#).expect("valid regex");
    // [[bin]] sections name their binaries explicitly.
    for section in manifest.split("[[bin]]").skip(1) {
        let section = section.split("\n[").next().unwrap_or_default();
        if let Some(captures) = name.captures(section) {
            binaries.insert(captures[1].to_string());
        }
    }
    if package_dir.join("src/main.rs").exists() {
        if let Some(captures) = name.captures(manifest) {
            binaries.insert(captures[1].to_string());
        }
    }
    if let Ok(entries) = fs::read_dir(package_dir.join("src/bin")) {
        for entry in entries.flatten() {
            let path = entry.path();
            let stem = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if path.extension().is_some_and(|extension| extension == "rs")
                || path.join("main.rs").exists()
            {
                binaries.insert(stem);
            }
        }
    }
    binaries
}

/// The workspace's userspace packages: name and directory.
fn userspace_packages(root: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let name = Regex::new(r#"(?m)^name\s*=\s*"([^"]+)""#).expect("valid regex");
    let mut packages = BTreeMap::new();
    for entry in fs::read_dir(root.join("userspace")).context("listing userspace/")? {
        let dir = entry?.path();
        let Ok(manifest) = fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        if let Some(captures) = name.captures(&manifest) {
            packages.insert(captures[1].to_string(), dir);
        }
    }
    Ok(packages)
}

fn check_references(layer: &Layer) -> Result<Outcome> {
    let root = &layer.root;
    let vars: BTreeMap<&str, PathBuf> = [
        ("MEMNOTIFY_SRCDIR", root.clone()),
        ("MEMNOTIFY_LAYERDIR", layer.dir.clone()),
        ("MEMNOTIFY_TREE", root.clone()),
    ]
    .into();
    let mut missing = Vec::new();
    let mut checked = 0;
    let srcdir_paths = Regex::new(r"\$\{MEMNOTIFY_SRCDIR\}/([\w./-]+)").expect("valid regex");
    let s_paths = Regex::new(r"\$\{S\}/([\w./-]+)").expect("valid regex");

    for (name, text) in layer.metadata() {
        let file_dir = layer
            .dir
            .join(name)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut file_vars = vars.clone();
        file_vars.insert("THISDIR", file_dir);
        // SRC_URI files: found in the FILESEXTRAPATHS the same file declares.
        let files = local_files(text);
        if !files.is_empty() {
            let dirs = search_dirs(text, &file_vars).with_context(|| name.to_string())?;
            for file in files {
                checked += 1;
                if !dirs.iter().any(|dir| dir.join(&file).exists()) {
                    missing.push(format!(
                        "{name}: file://{file} is in none of {}",
                        display_dirs(&dirs)
                    ));
                }
            }
        }
        // Paths into the repository: ${MEMNOTIFY_SRCDIR}/... and ${S}/... (S under MEMNOTIFY_TREE).
        for captures in srcdir_paths.captures_iter(text) {
            checked += 1;
            if !root.join(&captures[1]).exists() {
                missing.push(format!(
                    "{name}: ${{MEMNOTIFY_SRCDIR}}/{} does not exist",
                    &captures[1]
                ));
            }
        }
        if let Some(s) = assignments(text, "S").first() {
            let base = resolve(s, &vars).with_context(|| format!("{name}: S"))?;
            for captures in s_paths.captures_iter(text) {
                checked += 1;
                if !base.join(&captures[1]).exists() {
                    missing.push(format!(
                        "{name}: ${{S}}/{} does not exist (S = {s})",
                        &captures[1]
                    ));
                }
            }
        }
        // The Cargo packages a recipe builds and the binaries it installs.
        let packages = assignments(text, "MEMNOTIFY_CARGO_PACKAGES");
        if let Some(wanted) = packages.first() {
            let available = userspace_packages(root)?;
            let mut provided = BTreeSet::new();
            for package in wanted.split_whitespace() {
                checked += 1;
                match available.get(package) {
                    Some(dir) => {
                        provided.extend(package_binaries(&read(&dir.join("Cargo.toml"))?, dir))
                    }
                    None => {
                        missing.push(format!("{name}: no userspace package is named {package}"))
                    }
                }
            }
            for binary in assignments(text, "MEMNOTIFY_BINARIES")
                .iter()
                .flat_map(|value| value.split_whitespace())
            {
                checked += 1;
                if !provided.contains(binary) {
                    missing.push(format!(
                        "{name}: binary {binary} is built by none of {wanted}"
                    ));
                }
            }
        }
        // oeqa suites beyond oe-core's own are the layer's.
        for suite in assignments(text, "TEST_SUITES")
            .iter()
            .flat_map(|value| value.split_whitespace())
        {
            if CORE_TEST_SUITES.contains(&suite) {
                continue;
            }
            checked += 1;
            if !layer
                .dir
                .join(format!("lib/oeqa/runtime/cases/{suite}.py"))
                .exists()
            {
                missing.push(format!("{name}: TEST_SUITES names {suite}, but lib/oeqa/runtime/cases/{suite}.py does not exist"));
            }
        }
    }

    // The .scc files name fragments that must be fetched next to them.
    for (name, text) in layer.with_suffix(&[".scc"]) {
        for fragment in scc_fragments(text) {
            checked += 1;
            if !root.join("qemu/configs").join(&fragment).exists() {
                missing.push(format!("{name}: kconf {fragment} is not in qemu/configs"));
            }
        }
    }

    // The kernel patches every build system applies: oe-core refuses them without Upstream-Status.
    let patch_dir = root.join("kernel-module/patches");
    for entry in
        fs::read_dir(&patch_dir).with_context(|| format!("listing {}", patch_dir.display()))?
    {
        let path = entry?.path();
        if path
            .extension()
            .is_some_and(|extension| extension == "patch")
        {
            checked += 1;
            if let Some(problem) = upstream_status_problem(&read(&path)?) {
                missing.push(format!(
                    "{}: {problem} (oe-core's patch-status QA check fails the kernel build; add e.g. \
                     \"Upstream-Status: Pending\" or \"Upstream-Status: Inappropriate [reason]\" to its header)",
                    path.strip_prefix(root).unwrap_or(&path).display()
                ));
            }
        }
    }

    // kas: included files and the layer itself.
    for (name, text) in layer
        .with_suffix(&[".yml", ".yaml"])
        .filter(|(name, _)| name.starts_with("kas/"))
    {
        let config: serde_yaml::Value =
            serde_yaml::from_str(text).with_context(|| format!("{name}: not YAML"))?;
        for include in config["header"]["includes"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            if let Some(include) = include.as_str() {
                checked += 1;
                if !root.join(include).exists() {
                    missing.push(format!("{name}: includes {include}, which does not exist (paths are relative to the repository)"));
                }
            }
        }
        for (_, repo) in config["repos"].as_mapping().into_iter().flatten() {
            if repo.get("url").is_some() {
                continue;
            }
            for (layer_path, _) in repo["layers"].as_mapping().into_iter().flatten() {
                if let Some(layer_path) = layer_path.as_str() {
                    checked += 1;
                    if !root.join(layer_path).join("conf/layer.conf").exists() {
                        missing.push(format!(
                            "{name}: layer {layer_path} has no conf/layer.conf in this repository"
                        ));
                    }
                }
            }
        }
    }

    if !missing.is_empty() {
        bail!("{} problem(s):\n  {}", missing.len(), missing.join("\n  "));
    }
    Ok(Outcome::Passed(format!(
        "{checked} references, all present"
    )))
}

fn display_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// 3. The crate list

/// A crates.io package of Cargo.lock.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LockedCrate {
    name: String,
    version: String,
    checksum: String,
}

/// The crates.io packages of a Cargo.lock (v3 or v4), sorted by name and version. Workspace and
/// path packages (no `source`) are left out; any other source is an error, since the recipe can
/// only fetch crates.io crates.
fn registry_crates(lock: &str) -> Result<Vec<LockedCrate>> {
    #[derive(Default)]
    struct Package {
        fields: BTreeMap<String, String>,
    }
    let mut packages = Vec::new();
    let mut current: Option<Package> = None;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            packages.extend(current.take());
            current = Some(Package::default());
        } else if line.starts_with('[') && !line.ends_with(',') && !line.ends_with('[') {
            // Another table ([metadata], [[patch.unused]]): the package is complete.
            packages.extend(current.take());
        } else if let (Some(package), Some((key, value))) =
            (current.as_mut(), line.split_once(" = "))
        {
            if let Some(value) = value
                .strip_prefix('"')
                .and_then(|value| value.strip_suffix('"'))
            {
                package.fields.insert(key.to_string(), value.to_string());
            }
        }
    }
    packages.extend(current);

    let mut crates = Vec::new();
    for package in packages {
        let field = |key: &str| package.fields.get(key).cloned();
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            bail!("Cargo.lock has a [[package]] without name or version");
        };
        let Some(source) = field("source") else {
            continue;
        };
        if !CRATES_IO.contains(&source.as_str()) {
            bail!(
                "{name} {version} comes from {source}: the memnotifyd recipe fetches crates.io crates only \
                 (crate:// entries); depend on a crates.io release instead"
            );
        }
        let Some(checksum) = field("checksum") else {
            bail!("Cargo.lock has no checksum for {name} {version}: regenerate it with a current cargo");
        };
        if checksum.len() != 64 || !checksum.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("Cargo.lock's checksum of {name} {version} is not a sha256: {checksum}");
        }
        crates.push(LockedCrate {
            name,
            version,
            checksum,
        });
    }
    crates.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| version_key(&a.version).cmp(&version_key(&b.version)))
    });
    crates.dedup();
    Ok(crates)
}

/// Orders versions numerically where they are numbers (1.9 before 1.10).
fn version_key(version: &str) -> Vec<(u64, String)> {
    version
        .split(['.', '-', '+'])
        .map(|part| match part.parse::<u64>() {
            Ok(number) => (number, String::new()),
            Err(_) => (u64::MAX, part.to_string()),
        })
        .collect()
}

fn render_crates_inc(crates: &[LockedCrate]) -> String {
    let mut text = String::new();
    text.push_str("# Generated by \"cargo xtask yocto-crates\" from the repository's Cargo.lock: do not edit.\n");
    text.push_str("# \"cargo xtask yocto-check\" fails when this file and Cargo.lock disagree.\n");
    text.push_str("# Every crates.io package of the workspace, dev and host-only ones too: cargo resolves the\n");
    text.push_str(
        "# whole workspace from its vendored sources, even when it builds a few of its packages.\n",
    );
    text.push('\n');
    text.push_str("SRC_URI += \"\\\n");
    for krate in crates {
        text.push_str(&format!(
            "    crate://crates.io/{}/{} \\\n",
            krate.name, krate.version
        ));
    }
    text.push_str("\"\n\n");
    for krate in crates {
        text.push_str(&format!(
            "SRC_URI[{}-{}.sha256sum] = \"{}\"\n",
            krate.name, krate.version, krate.checksum
        ));
    }
    text
}

/// The `crate://` entries of a crate list, for a readable difference.
fn listed_crates(inc: &str) -> BTreeSet<String> {
    let pattern = Regex::new(r"crate://crates\.io/([^/\s]+)/([^\s\\]+)").expect("valid regex");
    pattern
        .captures_iter(inc)
        .map(|captures| format!("{} {}", &captures[1], &captures[2]))
        .collect()
}

fn check_crates(layer: &Layer) -> Result<Outcome> {
    let lock = read(&layer.root.join("Cargo.lock"))?;
    let crates = registry_crates(&lock)?;
    let expected = render_crates_inc(&crates);
    let Some(actual) = layer.files.get(CRATES_INC) else {
        bail!("{LAYER}/{CRATES_INC} is missing: run cargo xtask yocto-crates");
    };
    if *actual != expected {
        let (want, have) = (listed_crates(&expected), listed_crates(actual));
        let added: Vec<&String> = want.difference(&have).collect();
        let removed: Vec<&String> = have.difference(&want).collect();
        bail!(
            "{LAYER}/{CRATES_INC} is out of date with Cargo.lock (missing: {}; not in Cargo.lock: {}{}): \
             run cargo xtask yocto-crates",
            summarize(&added),
            summarize(&removed),
            if added.is_empty() && removed.is_empty() { "; checksums or layout differ" } else { "" }
        );
    }
    Ok(Outcome::Passed(format!(
        "{} crates.io crates, matching Cargo.lock",
        crates.len()
    )))
}

fn summarize(items: &[&String]) -> String {
    match items.len() {
        0 => "none".to_string(),
        count if count <= 8 => items
            .iter()
            .map(|item| item.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        count => format!(
            "{} and {} more",
            items[..8]
                .iter()
                .map(|item| item.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            count - 8
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Kernel fragments

/// The files the `kconf` lines of an .scc name.
fn scc_fragments(scc: &str) -> Vec<String> {
    scc.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("kconf"))
                .then(|| words.nth(1).map(str::to_string))
                .flatten()
        })
        .collect()
}

/// Lines that set a kernel option: a layer file with one is a copy of a fragment.
fn kconfig_lines(text: &str) -> Vec<&str> {
    let pattern =
        Regex::new(r"^(CONFIG_[A-Z0-9_]+=|# CONFIG_[A-Z0-9_]+ is not set)").expect("valid regex");
    text.lines().filter(|line| pattern.is_match(line)).collect()
}

fn check_fragments(layer: &Layer) -> Result<Outcome> {
    let mut problems = Vec::new();
    // No copies: the layer sets no kernel option itself and carries no patch or fragment file.
    for (name, text) in &layer.files {
        if name.ends_with(".cfg") || name.ends_with(".config") || name.ends_with(".patch") {
            problems.push(format!(
                "{name}: fragments and patches come from the repository, not the layer"
            ));
        }
        if let Some(line) = kconfig_lines(text).first() {
            problems.push(format!(
                "{name}: sets a kernel option ({line}); use qemu/configs instead"
            ));
        }
    }
    // The fragments the layer uses, through SRC_URI and its .scc files, are exactly the shared ones.
    let mut used = BTreeSet::new();
    for (_, text) in layer.metadata() {
        used.extend(
            local_files(text)
                .into_iter()
                .filter(|name| name.ends_with(".config")),
        );
    }
    for (name, text) in layer.with_suffix(&[".scc"]) {
        let fragments = scc_fragments(text);
        let choice = SWAP_CHOICES
            .iter()
            .find(|choice| name.ends_with(&format!("-swap-{choice}.scc")));
        match choice {
            Some(choice) => {
                let want = vec![
                    "memnotify.config".to_string(),
                    format!("swap-{choice}.config"),
                ];
                if fragments != want {
                    problems.push(format!("{name}: names {fragments:?}, want {want:?}"));
                }
            }
            None => problems.push(format!("{name}: not a memnotify-swap-<on|off>.scc")),
        }
        used.extend(fragments);
    }
    let shared: BTreeSet<String> = SHARED_FRAGMENTS
        .iter()
        .map(|name| name.to_string())
        .collect();
    if used != shared {
        problems.push(format!(
            "the layer uses the fragments {used:?}; the shared ones are {shared:?}"
        ));
    }
    for fragment in &shared {
        if !layer.root.join("qemu/configs").join(fragment).is_file() {
            problems.push(format!("qemu/configs/{fragment} does not exist"));
        }
    }
    // The swap choice's default is one of the fragments.
    for (name, text) in layer.metadata() {
        for value in assignments(text, "MEMNOTIFY_SWAP") {
            if !SWAP_CHOICES.contains(&value.as_str()) {
                problems.push(format!(
                    "{name}: MEMNOTIFY_SWAP defaults to {value:?}, not on or off"
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    Ok(Outcome::Passed(format!(
        "the layer uses qemu/configs/{{{}}} and no copy of them",
        SHARED_FRAGMENTS.join(",")
    )))
}

// ---------------------------------------------------------------------------------------------
// 5. bitbake parse (optional)

/// Values bitbake must compute on some machines only, as (machines, recipe, variable, text its
/// value must contain).
const MACHINE_VALUES: &[(&[&str], &str, &str, &str)] = &[
    // The QEMU machines' kernels are linux-yocto's with the virtio feature.
    (
        &["qemux86-64", "qemuarm64", "qemuarm"],
        "linux-yocto",
        "KERNEL_FEATURES",
        "cfg/virtio.scc",
    ),
    // qemuarm's tune is Thumb-2 (cortexa15thf-neon) for userspace; oe-core compiles the
    // kernel's C in ARM mode, like its Rust (arm-unknown-linux-gnueabi, kernel-module/patches).
    (
        &["qemuarm"],
        "linux-yocto",
        "TARGET_CC_KERNEL_ARCH",
        "-marm",
    ),
    (
        &["beaglebone-yocto"],
        "linux-yocto",
        "KMACHINE",
        "beaglebone",
    ),
    (
        &["beaglebone-yocto"],
        "linux-yocto",
        "KERNEL_DEVICETREE",
        "ti/omap/am335x-boneblack.dtb",
    ),
];

/// What bitbake must compute on every machine, as (recipe, variable, text its value must contain).
const EXPECTED_VALUES: &[(&str, &str, &str)] = &[
    ("linux-yocto", "PV", "6.12"),
    ("linux-yocto", "SRC_URI", "file://memnotify-swap-on.scc"),
    ("linux-yocto", "SRC_URI", "file://memnotify.config"),
    ("linux-yocto", "SRC_URI", "file://swap-on.config"),
    ("linux-yocto", "SRC_URI", ".patch"),
    ("linux-yocto", "DEPENDS", "bindgen-cli-native"),
    ("linux-yocto", "RUST_LIB_SRC", "rustlib/src/rust/library"),
    ("make-mod-scripts", "DEPENDS", "rust-native"),
    ("make-mod-scripts", "EXTRA_OEMAKE", "RUSTC="),
    (
        "rust-native",
        "rust_do_install()",
        "rustlib/src/rust/library",
    ),
    (
        "memnotify-module",
        "module_conf_memnotify",
        "options memnotify fast_ms=10 ",
    ),
    ("memnotify-module", "KERNEL_MODULE_AUTOLOAD", "memnotify"),
    ("memnotify-module", "DEPENDS", "rust-native"),
    (
        "memnotify-module",
        "SRC_URI",
        "file://kernel-module;subdir=memnotify",
    ),
    ("memnotifyd", "SRC_URI", "crate://crates.io/"),
    (
        "memnotifyd",
        "SYSTEMD_SERVICE:memnotifyd",
        "memnotifyd.service",
    ),
    (
        "memnotify-image",
        "IMAGE_INSTALL",
        "kernel-module-memnotify",
    ),
];

/// The value of `variable` in the output of `bitbake -e`, if it is set; for `name()`, the body
/// of the shell function.
fn environment_value(environment: &str, variable: &str) -> Option<String> {
    if let Some(function) = variable.strip_suffix("()") {
        let start = environment.find(&format!("\n{function}() {{\n"))?;
        let body = &environment[start + function.len() + 6..];
        return Some(body[..body.find("\n}\n").unwrap_or(body.len())].to_string());
    }
    environment.lines().find_map(|line| {
        let line = line.strip_prefix("export ").unwrap_or(line);
        let value = line.strip_prefix(variable)?.strip_prefix("=\"")?;
        Some(value.strip_suffix('"').unwrap_or(value).to_string())
    })
}

fn check_bitbake_parse(layer: &Layer) -> Result<Outcome> {
    let Some(oe_core) = std::env::var_os("MEMNOTIFY_OE_CORE").map(PathBuf::from) else {
        return Ok(Outcome::Skipped(
            "set MEMNOTIFY_OE_CORE to an openembedded-core whinlatter checkout (bitbake beside it or in MEMNOTIFY_BITBAKE)".into(),
        ));
    };
    let bitbake = std::env::var_os("MEMNOTIFY_BITBAKE")
        .map(PathBuf::from)
        .unwrap_or_else(|| oe_core.join("../bitbake"));
    for (what, path) in [
        ("openembedded-core", oe_core.join("meta/conf/layer.conf")),
        ("bitbake", bitbake.join("bin/bitbake")),
    ] {
        if !path.exists() {
            bail!("{what}: {} does not exist", path.display());
        }
    }
    let series = read(&oe_core.join("meta/conf/layer.conf"))?;
    if !series.contains(&format!("LAYERSERIES_CORENAMES = \"{RELEASE}\"")) {
        bail!("{} is not a {RELEASE} openembedded-core", oe_core.display());
    }
    // The license text the recipes point at, with the checksum they give.
    let license = oe_core.join("meta/files/common-licenses/GPL-2.0-only");
    let md5 = md5sum(&license)?;
    for (name, text) in layer.with_suffix(&[".bb"]) {
        for value in assignments(text, "LIC_FILES_CHKSUM") {
            if value.contains("${COMMON_LICENSE_DIR}/GPL-2.0-only")
                && !value.contains(&format!("md5={md5}"))
            {
                bail!(
                    "{name}: LIC_FILES_CHKSUM does not match {} (md5 {md5})",
                    license.display()
                );
            }
        }
    }

    // meta-yocto-bsp for beaglebone-yocto, when a meta-yocto checkout is at hand.
    let meta_yocto = std::env::var_os("MEMNOTIFY_META_YOCTO")
        .map(PathBuf::from)
        .unwrap_or_else(|| oe_core.join("../meta-yocto"));
    let bsp_layer = meta_yocto.join("meta-yocto-bsp");
    let mut machines: Vec<(&str, Vec<PathBuf>)> = MACHINES
        .iter()
        .map(|machine| (*machine, Vec::new()))
        .collect();
    let mut skipped = String::new();
    if bsp_layer.join("conf/layer.conf").exists() {
        let compat = read(&bsp_layer.join("conf/layer.conf"))?;
        if !compat.contains(RELEASE) {
            bail!("{} is not a {RELEASE} meta-yocto-bsp", bsp_layer.display());
        }
        machines.push((BSP_MACHINE, vec![bsp_layer.clone()]));
    } else {
        skipped = format!(
            "; {BSP_MACHINE} not parsed: no meta-yocto checkout at {} (MEMNOTIFY_META_YOCTO)",
            meta_yocto.display()
        );
    }

    // Every carried kernel patch must reach linux-yocto on every machine.
    let patches: Vec<String> =
        crate::util::sorted_files(&layer.root.join("kernel-module/patches"), "patch")?
            .iter()
            .filter_map(|path| path.file_name())
            .map(|name| format!("file://{}", name.to_string_lossy()))
            .collect();

    let base = yocto_cache_dir().join("parse-check");
    let tools = BitbakeTools {
        bitbake: &bitbake,
        oe_core: &oe_core,
    };
    let mut summaries = Vec::new();
    let mut checked = 0;
    for (machine, extra_layers) in &machines {
        let machine = *machine;
        let build = base.join(machine);
        write_build_conf(&build, &oe_core, &layer.dir, extra_layers, machine)?;
        tools
            .run(&build, &["bitbake", "-p"], &build.join("parse.log"))
            .with_context(|| machine.to_string())?;
        let expected = expected_values(machine, &patches);
        let recipes: BTreeSet<&str> = expected.iter().map(|(recipe, _, _)| *recipe).collect();
        for recipe in recipes {
            let log = build.join(format!("environment-{recipe}.log"));
            tools
                .run(&build, &["bitbake", "-e", recipe], &log)
                .with_context(|| machine.to_string())?;
            let environment = read(&log)?;
            for (_, variable, want) in expected.iter().filter(|(name, _, _)| *name == recipe) {
                match environment_value(&environment, variable) {
                    Some(value) if value.contains(want.as_str()) => {}
                    value => bail!("{machine}: {recipe}'s {variable} lacks {want:?}; bitbake -e says {value:?} ({})", log.display()),
                }
            }
        }
        checked += expected.len();
        summaries.push(machine.to_string());
    }
    Ok(Outcome::Passed(format!(
        "bitbake -p parses {} with the layer, and bitbake -e gives the {checked} expected values (build dirs in {}){skipped}",
        summaries.join(", "),
        base.display()
    )))
}

/// The values bitbake must compute for `machine`: the common ones, the machine's own, and every
/// kernel patch (as `file://NAME`) in linux-yocto's SRC_URI.
fn expected_values<'a>(machine: &str, patches: &[String]) -> Vec<(&'a str, &'a str, String)> {
    let mut expected: Vec<(&str, &str, String)> = EXPECTED_VALUES
        .iter()
        .map(|(recipe, variable, want)| (*recipe, *variable, want.to_string()))
        .collect();
    expected.extend(
        MACHINE_VALUES
            .iter()
            .filter(|(machines, _, _, _)| machines.contains(&machine))
            .map(|(_, recipe, variable, want)| (*recipe, *variable, want.to_string())),
    );
    expected.extend(
        patches
            .iter()
            .map(|patch| ("linux-yocto", "SRC_URI", patch.clone())),
    );
    expected
}

fn yocto_cache_dir() -> PathBuf {
    let base = std::env::var_os("MEMNOTIFY_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".cache/memnotify"))
                .unwrap_or_else(|| PathBuf::from("/var/tmp/memnotify"))
        });
    base.join("yocto")
}

fn md5sum(path: &Path) -> Result<String> {
    let output = Command::new("md5sum")
        .arg(path)
        .output()
        .context("running md5sum")?;
    if !output.status.success() {
        bail!("md5sum {} failed", path.display());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// bblayers.conf and local.conf of a parse-only build directory for `machine`, with the BSP
/// layers it needs (`extra_layers`, after oe-core).
fn build_conf(
    oe_core: &Path,
    layer: &Path,
    extra_layers: &[PathBuf],
    machine: &str,
) -> (String, String) {
    let layers: Vec<String> = std::iter::once(oe_core.join("meta"))
        .chain(extra_layers.iter().cloned())
        .chain(std::iter::once(layer.to_path_buf()))
        .map(|path| path.display().to_string())
        .collect();
    let bblayers = format!(
        "# Written by cargo xtask yocto-check.\nBBPATH = \"${{TOPDIR}}\"\nBBFILES ?= \"\"\nBBLAYERS = \"{}\"\n",
        layers.join(" ")
    );
    let local = format!(
        "# Written by cargo xtask yocto-check: parse only, nothing is fetched or built.\n\
         MACHINE = \"{machine}\"\n\
         OE_FRAGMENTS += \"memnotify/enable\"\n\
         INIT_MANAGER = \"systemd\"\n\
         BB_NO_NETWORK = \"1\"\n\
         CONNECTIVITY_CHECK_URIS = \"\"\n\
         DL_DIR = \"${{TOPDIR}}/downloads\"\n\
         SSTATE_DIR = \"${{TOPDIR}}/sstate-cache\"\n"
    );
    (bblayers, local)
}

fn write_build_conf(
    build: &Path,
    oe_core: &Path,
    layer: &Path,
    extra_layers: &[PathBuf],
    machine: &str,
) -> Result<()> {
    let conf = build.join("conf");
    fs::create_dir_all(&conf).with_context(|| format!("creating {}", conf.display()))?;
    let (bblayers, local) = build_conf(oe_core, layer, extra_layers, machine);
    fs::write(conf.join("bblayers.conf"), bblayers)?;
    fs::write(conf.join("local.conf"), local)?;
    // The host sanity checks (not as root, every build host tool present) are for builds; a
    // parse needs none of them, and CI runs as root.
    fs::write(
        conf.join("sanity.conf"),
        "# Parse-only build directory: no host sanity checks.\n",
    )?;
    Ok(())
}

/// bitbake and openembedded-core's scripts, run in a build directory.
struct BitbakeTools<'a> {
    bitbake: &'a Path,
    oe_core: &'a Path,
}

impl BitbakeTools<'_> {
    /// Runs `args` (bitbake's own programs) in `build`, output in `log`; the log's tail on failure.
    fn run(&self, build: &Path, args: &[&str], log: &Path) -> Result<()> {
        let path = format!(
            "{}:{}:{}",
            self.bitbake.join("bin").display(),
            self.oe_core.join("scripts").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log_file =
            fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let status = Command::new(self.bitbake.join("bin").join(args[0]))
            .args(&args[1..])
            .current_dir(build)
            .env("PATH", path)
            .env("LANG", "en_US.UTF-8")
            .env("LC_ALL", "en_US.UTF-8")
            .env("BBPATH", build)
            .env("BUILDDIR", build)
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .status()
            .with_context(|| format!("running {}", args[0]))?;
        if !status.success() {
            let text = read(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            bail!(
                "{} failed ({status}), log {}:\n{}",
                args.join(" "),
                log.display(),
                tail.join("\n")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"# This file is automatically @generated by Cargo.
version = 4

[[package]]
name = "anyhow"
version = "1.0.104"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "330a5ed07fa54e4702c9d6c4174f74427fc0ef6e214bbd677ae50a5099946470"

[[package]]
name = "memnotify"
version = "0.1.0"
dependencies = [
 "anyhow",
 "regex 1.10.0",
]

[[package]]
name = "regex"
version = "1.10.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

[[package]]
name = "regex"
version = "1.9.6"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
"#;

    #[test]
    fn lock_keeps_registry_crates_sorted_by_version_number() {
        let crates = registry_crates(LOCK).unwrap();
        let names: Vec<String> = crates
            .iter()
            .map(|krate| format!("{} {}", krate.name, krate.version))
            .collect();
        assert_eq!(names, ["anyhow 1.0.104", "regex 1.9.6", "regex 1.10.0"]);
    }

    #[test]
    fn lock_with_git_source_is_refused() {
        let lock = LOCK.replace(
            "source = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"330a",
            "source = \"git+https://example.invalid/anyhow#abc\"\nchecksum = \"330a",
        );
        let error = registry_crates(&lock).unwrap_err().to_string();
        assert!(error.contains("anyhow 1.0.104 comes from git+"), "{error}");
    }

    #[test]
    fn lock_without_checksum_is_refused() {
        let lock = LOCK.replace("checksum = \"bbbb", "nochecksum = \"bbbb");
        assert!(registry_crates(&lock)
            .unwrap_err()
            .to_string()
            .contains("no checksum for regex 1.9.6"));
    }

    #[test]
    fn crates_inc_lists_entries_and_checksums() {
        let text = render_crates_inc(&registry_crates(LOCK).unwrap());
        assert!(text.contains("SRC_URI += \"\\\n    crate://crates.io/anyhow/1.0.104 \\\n"));
        assert!(text.contains(
            "SRC_URI[regex-1.9.6.sha256sum] = \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"\n"
        ));
        assert_eq!(listed_crates(&text).len(), 3);
        // Deterministic: the same lock gives the same text.
        assert_eq!(text, render_crates_inc(&registry_crates(LOCK).unwrap()));
    }

    #[test]
    fn suppression_needs_a_comment_next_to_it() {
        let justified =
            "# The reason this rule does not apply here.\n# nooelint: oelint.a\nX = \"1\"\n";
        assert!(unjustified_suppressions("f", justified).is_empty());
        let first_line = "# nooelint: oelint.a\n# Named like the class it replaces upstream.\n";
        assert!(unjustified_suppressions("f", first_line).is_empty());
        let bare = "X = \"1\"\n# nooelint: oelint.a\nY = \"2\"\n";
        assert_eq!(
            unjustified_suppressions("f", bare),
            ["f:2: # nooelint: oelint.a"]
        );
        let stacked = "# nooelint: oelint.a\n# nooelint: oelint.b\nY = \"2\"\n";
        assert_eq!(unjustified_suppressions("f", stacked).len(), 2);
    }

    #[test]
    fn appends_may_only_inherit_behind_a_feature() {
        let good = "# why\ninherit_defer ${@bb.utils.contains('KERNEL_FEATURES', 'rust', 'kernel-yocto-rust', '', d)}\n";
        assert!(unconditional_append_lines(good).is_empty());
        let bad = "inherit kernel-yocto-rust\nSRC_URI += \"file://x.cfg\"\n";
        assert_eq!(unconditional_append_lines(bad).len(), 2);
    }

    #[test]
    fn local_files_expand_the_swap_choice_and_skip_oe_core_licenses() {
        let text = "SRC_URI += \"file://memnotify-swap-${MEMNOTIFY_SWAP}.scc file://Cargo.toml;subdir=memnotify\"\n\
                    LIC_FILES_CHKSUM = \"file://${COMMON_LICENSE_DIR}/GPL-2.0-only;md5=1\"\n";
        let names: Vec<String> = local_files(text).into_iter().collect();
        assert_eq!(
            names,
            [
                "Cargo.toml",
                "memnotify-swap-off.scc",
                "memnotify-swap-on.scc"
            ]
        );
    }

    #[test]
    fn search_dirs_resolve_layer_variables_only() {
        let vars: BTreeMap<&str, PathBuf> = [("MEMNOTIFY_SRCDIR", PathBuf::from("/repo"))].into();
        let text = "FILESEXTRAPATHS:prepend := \"${MEMNOTIFY_SRCDIR}/qemu/configs:${MEMNOTIFY_SRCDIR}:\"\n";
        assert_eq!(
            search_dirs(text, &vars).unwrap(),
            [PathBuf::from("/repo/qemu/configs"), PathBuf::from("/repo")]
        );
        assert!(search_dirs("FILESEXTRAPATHS:prepend := \"${OTHER}/x:\"\n", &vars).is_err());
    }

    #[test]
    fn assignments_join_continuation_lines() {
        let text = "S = \"${MEMNOTIFY_TREE}\"\nX ??= \"a \\\n    b\"\nexport Y = \"c\"\n";
        assert_eq!(assignments(text, "S"), ["${MEMNOTIFY_TREE}"]);
        assert_eq!(assignments(text, "X"), ["a      b"]);
        assert_eq!(assignments(text, "Y"), ["c"]);
    }

    #[test]
    fn upstream_status_follows_oe_core_rule() {
        assert_eq!(
            upstream_status_problem("Subject: x\nUpstream-Status: Pending\n---\n"),
            None
        );
        assert_eq!(
            upstream_status_problem("Upstream-Status: Inappropriate [memnotify only]\n"),
            None
        );
        assert_eq!(
            upstream_status_problem("Upstream-status: pending\n"),
            Some("malformed Upstream-Status line")
        );
        assert_eq!(
            upstream_status_problem("Subject: x\n---\n"),
            Some("no Upstream-Status line")
        );
    }

    #[test]
    fn kconfig_lines_find_copies_of_fragments() {
        assert_eq!(
            kconfig_lines("# comment\nCONFIG_RUST=y\n# CONFIG_SWAP is not set\n").len(),
            2
        );
        assert!(kconfig_lines(
            "kconf non-hardware memnotify.config\n# CONFIG_RUST comes from there\n"
        )
        .is_empty());
    }

    #[test]
    fn scc_fragments_are_the_kconf_targets() {
        let scc = "define KFEATURE_DESCRIPTION \"x\"\nkconf non-hardware memnotify.config\nkconf non-hardware swap-on.config\n";
        assert_eq!(scc_fragments(scc), ["memnotify.config", "swap-on.config"]);
    }

    #[test]
    fn lint_entry_points_skip_classes_that_are_used() {
        let files: BTreeMap<String, String> = [
            ("a/x_1.0.bb".to_string(), "inherit used_class\n".to_string()),
            (
                "classes-recipe/used_class.bbclass".to_string(),
                String::new(),
            ),
            ("classes-recipe/lonely.bbclass".to_string(), String::new()),
            ("conf/layer.conf".to_string(), String::new()),
        ]
        .into();
        assert_eq!(
            lint_entry_points(&files),
            [
                "a/x_1.0.bb",
                "conf/layer.conf",
                "classes-recipe/lonely.bbclass"
            ]
        );
    }

    #[test]
    fn environment_value_reads_bitbake_e_lines() {
        let environment =
            "# comment\nexport RUST_LIB_SRC=\"/x/library\"\nPV=\"6.12.69+git\"\nPVX=\"no\"\n";
        assert_eq!(
            environment_value(environment, "PV").as_deref(),
            Some("6.12.69+git")
        );
        assert_eq!(
            environment_value(environment, "RUST_LIB_SRC").as_deref(),
            Some("/x/library")
        );
        assert_eq!(environment_value(environment, "SRC_URI"), None);
        let functions = "X=\"1\"\nrust_do_install() {\n\tinstall -d /x\n}\nother() {\n}\n";
        assert_eq!(
            environment_value(functions, "rust_do_install()").as_deref(),
            Some("\tinstall -d /x")
        );
    }

    #[test]
    fn expected_values_add_machine_values_and_patches() {
        let patches = vec!["file://0001-a.patch".to_string()];
        let arm = expected_values("qemuarm", &patches);
        assert!(arm.contains(&("linux-yocto", "TARGET_CC_KERNEL_ARCH", "-marm".to_string())));
        assert!(arm.contains(&(
            "linux-yocto",
            "KERNEL_FEATURES",
            "cfg/virtio.scc".to_string()
        )));
        assert!(arm.contains(&("linux-yocto", "SRC_URI", "file://0001-a.patch".to_string())));
        let bone = expected_values("beaglebone-yocto", &patches);
        assert!(!bone
            .iter()
            .any(|(_, variable, _)| *variable == "KERNEL_FEATURES"));
        assert!(bone.contains(&("linux-yocto", "KMACHINE", "beaglebone".to_string())));
        assert_eq!(
            expected_values("qemux86-64", &[]).len(),
            EXPECTED_VALUES.len() + 1
        );
    }

    #[test]
    fn build_conf_enables_the_fragment_offline() {
        let (bblayers, local) = build_conf(
            Path::new("/oe"),
            Path::new("/repo/meta-memnotify"),
            &[],
            "qemuarm64",
        );
        assert!(bblayers.contains("BBLAYERS = \"/oe/meta /repo/meta-memnotify\""));
        assert!(local.contains("MACHINE = \"qemuarm64\""));
        let (bblayers, _) = build_conf(
            Path::new("/oe"),
            Path::new("/repo/meta-memnotify"),
            &[PathBuf::from("/my/meta-yocto-bsp")],
            "beaglebone-yocto",
        );
        assert!(
            bblayers.contains("BBLAYERS = \"/oe/meta /my/meta-yocto-bsp /repo/meta-memnotify\"")
        );
        assert!(local.contains("OE_FRAGMENTS += \"memnotify/enable\""));
        assert!(local.contains("BB_NO_NETWORK = \"1\""));
    }
}

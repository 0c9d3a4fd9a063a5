//! Buildroot external tree tooling: offline checks of `buildroot-external/`.
//!
//! `cargo xtask buildroot-check` checks what Buildroot's own `utils/check-package`
//! cannot (it is not vendored here, and it knows nothing of this repository): that
//! every package is complete, that the defconfigs reference files and packages
//! that exist, that the kernel fragments and patches are the repository's own,
//! and that every shell script passes shellcheck. With `MEMNOTIFY_BUILDROOT`
//! pointing at a Buildroot 2025.02.x source tree it also resolves every defconfig
//! with that Buildroot (offline) and runs its `check-package -b` on the tree.
//!
//! The parsers below are pure functions over file contents, tested at the end;
//! `check` is the thin shell that reads files, runs tools and prints one line per
//! check.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use regex::Regex;
use xshell::{cmd, Shell};

/// The external tree's directory, relative to the repository root.
const TREE: &str = "buildroot-external";
/// `name:` in external.desc; Buildroot derives `BR2_EXTERNAL_MEMNOTIFY_PATH` from it.
const EXTERNAL_NAME: &str = "MEMNOTIFY";
const EXTERNAL_PATH_VAR: &str = "BR2_EXTERNAL_MEMNOTIFY_PATH";
/// The Buildroot release series the tree targets.
const BUILDROOT_SERIES: &str = "2025.02";
/// The kernel series every defconfig must pin.
const KERNEL_SERIES: &str = "6.12.";
/// The QEMU boards; each has `<board>_defconfig` (swap on) and `<board>_noswap_defconfig`.
const QEMU_BOARDS: [&str; 3] = [
    "memnotify_qemu_x86_64",
    "memnotify_qemu_aarch64_virt",
    "memnotify_qemu_arm_virt",
];
/// Real hardware: one `<board>_defconfig` each, kernel with swap support, no QEMU.
const HARDWARE_BOARDS: [&str; 1] = ["memnotify_beaglebone"];
/// Host packages the kernel build must wait for (linux/linux-ext-memnotify-rust.mk).
const KERNEL_RUST_HOST_TOOLS: [&str; 3] =
    ["host-rustc", "host-rust-bindgen", "host-memnotify-rust-src"];

/// Offline checks of buildroot-external/.
pub fn check(sh: &Shell) -> Result<()> {
    let root = crate::project_root();
    let tree = root.join(TREE);
    if !tree.is_dir() {
        bail!("{} does not exist", tree.display());
    }
    let mut report = Report::default();

    check_tree_files(&mut report, &root, &tree);
    let packages = check_packages(&mut report, &root, &tree);
    check_defconfigs(&mut report, &root, &tree, &packages);
    check_scripts(&mut report, sh, &tree);

    let buildroot = std::env::var_os("MEMNOTIFY_BUILDROOT")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from);
    check_kernel_configs(&mut report, &tree, buildroot.as_deref());
    match &buildroot {
        Some(dir) => check_with_buildroot(&mut report, sh, &tree, dir),
        None => println!(
            "skip Buildroot resolution and check-package: MEMNOTIFY_BUILDROOT is not set \
             (see {TREE}/README.md)"
        ),
    }

    report.finish()
}

// ---------------------------------------------------------------------------
// Reporting

#[derive(Default)]
struct Report {
    passed: usize,
    failed: Vec<String>,
}

impl Report {
    /// Records and prints one check: `Ok(detail)` passes, `Err(reason)` fails.
    fn record(&mut self, what: &str, outcome: std::result::Result<String, String>) {
        match outcome {
            Ok(detail) if detail.is_empty() => {
                println!("ok   {what}");
                self.passed += 1;
            }
            Ok(detail) => {
                println!("ok   {what}: {detail}");
                self.passed += 1;
            }
            Err(reason) => {
                println!("FAIL {what}: {reason}");
                self.failed.push(what.to_string());
            }
        }
    }

    fn finish(self) -> Result<()> {
        println!(
            "buildroot-check: {} passed, {} failed",
            self.passed,
            self.failed.len()
        );
        if self.failed.is_empty() {
            Ok(())
        } else {
            bail!("buildroot-check failed: {}", self.failed.join("; "))
        }
    }
}

fn read(path: &Path) -> std::result::Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------
// Tree-level files

fn check_tree_files(report: &mut Report, root: &Path, tree: &Path) {
    report.record(
        "external.desc names the tree MEMNOTIFY",
        read(&tree.join("external.desc")).and_then(|text| {
            let name = desc_field(&text, "name").ok_or("no 'name:' line")?;
            if name != EXTERNAL_NAME {
                return Err(format!("name is '{name}', expected '{EXTERNAL_NAME}'"));
            }
            desc_field(&text, "desc").ok_or("no 'desc:' line")?;
            Ok(String::new())
        }),
    );

    report.record(
        "external.mk includes every package/*/*.mk",
        read(&tree.join("external.mk")).and_then(|text| {
            let wanted = format!("$({EXTERNAL_PATH_VAR})/package/*/*.mk");
            if text
                .lines()
                .any(|l| l.trim_start().starts_with("include") && l.contains(&wanted))
            {
                Ok(String::new())
            } else {
                Err(format!("no 'include' of {wanted}"))
            }
        }),
    );

    report.record(
        "Config.in sources only files that exist",
        read(&tree.join("Config.in")).and_then(|text| {
            let sources = parse_kconfig(&text).sources;
            if sources.is_empty() {
                return Err("sources nothing".into());
            }
            let missing: Vec<_> = sources
                .iter()
                .map(|s| expand_external(s, tree))
                .filter(|p| !p.is_file())
                .map(|p| relative(&p, root))
                .collect();
            if missing.is_empty() {
                Ok(format!("{} file(s)", sources.len()))
            } else {
                Err(format!("missing: {}", missing.join(", ")))
            }
        }),
    );

    report.record("no kernel config fragment is copied into the tree", {
        let copies: Vec<_> = walk(tree)
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.ends_with(".config") || name.ends_with(".fragment")
            })
            .map(|p| relative(&p, root))
            .collect();
        if copies.is_empty() {
            Ok("fragments come from qemu/configs/ only".to_string())
        } else {
            Err(format!(
                "found {}: reference qemu/configs/ instead",
                copies.join(", ")
            ))
        }
    });

    let ignore = tree.join(".checkpackageignore");
    if ignore.exists() {
        report.record(
            ".checkpackageignore names files that exist",
            read(&ignore).and_then(|text| {
                let missing: Vec<_> = text
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .filter(|f| !tree.join(f).is_file())
                    .map(str::to_string)
                    .collect();
                if missing.is_empty() {
                    Ok(String::new())
                } else {
                    Err(format!("missing: {}", missing.join(", ")))
                }
            }),
        );
    }
}

// ---------------------------------------------------------------------------
// Packages

/// What the defconfig checks need to know about the tree's packages.
#[derive(Default)]
struct Packages {
    /// Every Kconfig symbol the tree defines.
    symbols: BTreeSet<String>,
}

fn check_packages(report: &mut Report, root: &Path, tree: &Path) -> Packages {
    let mut packages = Packages::default();
    let top = read(&tree.join("Config.in")).unwrap_or_default();
    let top_kconfig = parse_kconfig(&top);
    packages.symbols.extend(top_kconfig.defined.iter().cloned());
    let sourced: BTreeSet<PathBuf> = top_kconfig
        .sources
        .iter()
        .map(|s| expand_external(s, tree))
        .collect();
    let mut referenced = top_kconfig.referenced.clone();

    let mut dirs: Vec<PathBuf> = fs::read_dir(tree.join("package"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    report.record(
        "package/ holds packages",
        if dirs.is_empty() {
            Err("no package directory".into())
        } else {
            Ok(format!("{}", dirs.len()))
        },
    );

    for dir in dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let upper = name.replace('-', "_").to_uppercase();
        let what = format!("package {name}");
        let mk_path = dir.join(format!("{name}.mk"));
        let mk_text = match read(&mk_path) {
            Ok(text) => text,
            Err(e) => {
                report.record(&format!("{what}: has {name}.mk"), Err(e));
                continue;
            }
        };
        let mk = MkFile::parse(&mk_text, tree);

        report.record(
            &format!(
                "{what}: {name}.mk has the standard header and calls a package infrastructure"
            ),
            check_mk_shape(&mk_text, &name),
        );

        let infras = mk.infrastructures();
        let target = infras
            .iter()
            .any(|i| !i.starts_with("host-") && i != "kernel-module");
        if target {
            let config_in = dir.join("Config.in");
            report.record(
                &format!("{what}: Config.in defines BR2_PACKAGE_{upper} and is sourced by the top Config.in"),
                read(&config_in).and_then(|text| {
                    let kconfig = parse_kconfig(&text);
                    referenced.extend(kconfig.referenced.iter().cloned());
                    packages.symbols.extend(kconfig.defined.iter().cloned());
                    let symbol = format!("BR2_PACKAGE_{upper}");
                    if !kconfig.defined.contains(&symbol) {
                        return Err(format!("does not define {symbol}"));
                    }
                    if !sourced.contains(&config_in) {
                        return Err(format!(
                            "not sourced: add 'source \"${EXTERNAL_PATH_VAR}/package/{name}/Config.in\"'"
                        ));
                    }
                    Ok(String::new())
                }),
            );
        }

        let site = mk.get(&format!("{upper}_SITE"));
        if mk.get(&format!("{upper}_SITE_METHOD")).as_deref() == Some("local") {
            report.record(
                &format!("{what}: local site is this repository"),
                match site {
                    Some(site) if same_dir(Path::new(&site), root) => Ok(site),
                    Some(site) => Err(format!("{site} is not {}", root.display())),
                    None => Err(format!("{upper}_SITE is not set")),
                },
            );
        } else {
            report.record(
                &format!("{what}: {name}.hash has a sha256 for every download"),
                check_hash_file(&dir, &name, &mk, &upper),
            );
        }

        match name.as_str() {
            "memnotify-module" => check_module_sources(report, root, &mk),
            "memnotifyd" => check_userspace_sources(report, root, &mk),
            _ => {}
        }
    }

    let undefined: Vec<_> = referenced
        .iter()
        .filter(|s| s.starts_with("BR2_MEMNOTIFY_") || s.starts_with("BR2_PACKAGE_MEMNOTIFY"))
        .filter(|s| !packages.symbols.contains(*s))
        .cloned()
        .collect();
    report.record(
        "every memnotify symbol used in Config.in files is defined",
        if undefined.is_empty() {
            Ok(String::new())
        } else {
            Err(format!("undefined: {}", undefined.join(", ")))
        },
    );
    packages
}

fn check_mk_shape(text: &str, name: &str) -> std::result::Result<String, String> {
    let hashes = "#".repeat(80);
    let lines: Vec<&str> = text.lines().collect();
    let header_ok = lines.len() > 5
        && lines[0] == hashes
        && lines[1] == "#"
        && lines[2] == format!("# {name}")
        && lines[3] == "#"
        && lines[4] == hashes
        && lines[5].is_empty();
    if !header_ok {
        return Err(format!(
            "first lines must be 80 '#', '#', '# {name}', '#', 80 '#', blank"
        ));
    }
    if MkFile::parse(text, Path::new(""))
        .infrastructures()
        .is_empty()
    {
        return Err("no $(eval $(...-package)) line".into());
    }
    Ok(String::new())
}

fn check_hash_file(
    dir: &Path,
    name: &str,
    mk: &MkFile,
    upper: &str,
) -> std::result::Result<String, String> {
    let source = mk
        .get(&format!("{upper}_SOURCE"))
        .ok_or_else(|| format!("{upper}_SOURCE is not set (needed to check its hash)"))?;
    let text = read(&dir.join(format!("{name}.hash")))?;
    let hashes = parse_hash_file(&text);
    match hashes.get(&source) {
        Some(_) => Ok(source),
        None => Err(format!("no sha256 line for {source}")),
    }
}

fn check_module_sources(report: &mut Report, root: &Path, mk: &MkFile) {
    let subdirs = mk
        .get("MEMNOTIFY_MODULE_MODULE_SUBDIRS")
        .unwrap_or_else(|| ".".into());
    for subdir in subdirs.split_whitespace() {
        let dir = root.join(subdir);
        report.record(
            &format!("package memnotify-module: {subdir}/ has Kbuild and the sources of its obj-m objects"),
            read(&dir.join("Kbuild")).and_then(|kbuild| {
                let objects = kbuild_objects(&kbuild);
                if objects.is_empty() {
                    return Err("Kbuild has no obj-m".into());
                }
                let missing: Vec<_> = objects
                    .iter()
                    .filter(|o| !dir.join(format!("{o}.rs")).is_file() && !dir.join(format!("{o}.c")).is_file())
                    .map(|o| format!("{subdir}/{o}.rs"))
                    .collect();
                if missing.is_empty() {
                    Ok(objects.iter().map(|o| format!("{o}.ko")).collect::<Vec<_>>().join(" "))
                } else {
                    Err(format!("missing {}", missing.join(", ")))
                }
            }),
        );
    }
}

fn check_userspace_sources(report: &mut Report, root: &Path, mk: &MkFile) {
    let crates: Vec<String> = mk
        .get("MEMNOTIFYD_CRATES")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let binaries: Vec<String> = mk
        .get("MEMNOTIFYD_BINARIES")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let dist = mk.get("MEMNOTIFYD_DIST").unwrap_or_default();

    report.record(
        "package memnotifyd: the workspace has a Cargo.lock to build --locked from",
        if root.join("Cargo.lock").is_file() {
            Ok(String::new())
        } else {
            Err("no Cargo.lock".into())
        },
    );

    report.record(
        "package memnotifyd: every crate exists and every installed binary is built by one",
        (|| {
            if crates.is_empty() || binaries.is_empty() {
                return Err("MEMNOTIFYD_CRATES or MEMNOTIFYD_BINARIES is empty".to_string());
            }
            let mut built = BTreeSet::new();
            for name in &crates {
                let dir = root.join("userspace").join(name);
                let manifest = read(&dir.join("Cargo.toml"))?;
                built.extend(crate_binaries(&manifest, &dir));
            }
            let missing: Vec<_> = binaries
                .iter()
                .filter(|b| !built.contains(*b))
                .cloned()
                .collect();
            if missing.is_empty() {
                Ok(binaries.join(" "))
            } else {
                Err(format!(
                    "no crate of {} builds {} (it builds: {})",
                    crates.join(" "),
                    missing.join(", "),
                    built.into_iter().collect::<Vec<_>>().join(" ")
                ))
            }
        })(),
    );

    for file in ["memnotifyd.yaml", "memnotifyd.init", "memnotifyd.service"] {
        let path = root.join(&dist).join(file);
        report.record(
            &format!("package memnotifyd: installs {dist}/{file}"),
            if path.is_file() {
                Ok(String::new())
            } else {
                Err(format!("{} does not exist", path.display()))
            },
        );
    }

    // Cargo refuses a crate whose rust-version is newer than the compiler, and
    // Buildroot 2025.02 ships one rustc version (memnotify-rust-src pins the same).
    let rustc = fs::read_to_string(
        root.join(TREE)
            .join("package/memnotify-rust-src/memnotify-rust-src.mk"),
    )
    .ok()
    .and_then(|t| MkFile::parse(&t, Path::new("")).get("MEMNOTIFY_RUST_SRC_VERSION"));
    report.record(
        "package memnotifyd: the crates' rust-version allows Buildroot's rustc",
        (|| {
            let rustc = rustc.ok_or("cannot read MEMNOTIFY_RUST_SRC_VERSION")?;
            let workspace = read(&root.join("Cargo.toml"))?;
            let mut too_new = Vec::new();
            let mut seen = BTreeSet::new();
            let mut queue: Vec<PathBuf> = crates.iter().map(|c| root.join("userspace").join(c)).collect();
            while let Some(dir) = queue.pop() {
                let Ok(dir) = dir.canonicalize() else { continue };
                if !seen.insert(dir.clone()) {
                    continue;
                }
                let manifest = read(&dir.join("Cargo.toml"))?;
                let info = parse_manifest(&manifest);
                queue.extend(info.path_dependencies.iter().map(|p| dir.join(p)));
                let declared = match info.rust_version {
                    RustVersion::Workspace => toml_value(&workspace, "workspace.package", "rust-version"),
                    RustVersion::Own(v) => Some(v),
                    RustVersion::None => None,
                };
                if let Some(declared) = declared {
                    if version_newer(&declared, &rustc) {
                        too_new.push(format!("{} ({declared})", info.name.unwrap_or_default()));
                    }
                }
            }
            if too_new.is_empty() {
                Ok(format!("rustc {rustc}"))
            } else {
                Err(format!(
                    "Buildroot {BUILDROOT_SERIES} has rustc {rustc}, but {} need(s) newer: cargo will refuse \
                     to build; lower the workspace rust-version to {rustc} (and keep the code to it)",
                    too_new.join(", ")
                ))
            }
        })(),
    );
}

// ---------------------------------------------------------------------------
// Defconfigs

fn check_defconfigs(report: &mut Report, root: &Path, tree: &Path, packages: &Packages) {
    let configs = tree.join("configs");
    let mut names: Vec<String> = fs::read_dir(&configs)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with("_defconfig"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();

    let expected: Vec<String> = QEMU_BOARDS
        .iter()
        .flat_map(|b| [format!("{b}_defconfig"), format!("{b}_noswap_defconfig")])
        .chain(HARDWARE_BOARDS.iter().map(|b| format!("{b}_defconfig")))
        .collect();
    let absent: Vec<_> = expected
        .iter()
        .filter(|e| !names.contains(e))
        .cloned()
        .collect();
    report.record(
        "configs/ has a swap and a no-swap defconfig for x86_64, aarch64 and arm, and the BeagleBone's",
        if !absent.is_empty() {
            Err(format!("missing {}", absent.join(", ")))
        } else if let Some(unknown) = names.iter().find(|n| !expected.contains(n)) {
            Err(format!(
                "{unknown} is no known board: add it to QEMU_BOARDS or HARDWARE_BOARDS in xtask/src/buildroot.rs"
            ))
        } else {
            Ok(format!("{}", names.len()))
        },
    );

    let mut parsed: BTreeMap<String, Defconfig> = BTreeMap::new();
    for name in &names {
        let text = match read(&configs.join(name)) {
            Ok(t) => t,
            Err(e) => {
                report.record(&format!("{name}: readable"), Err(e));
                continue;
            }
        };
        let defconfig = Defconfig::parse(&text);
        let swap_on = !name.ends_with("_noswap_defconfig");
        check_one_defconfig(report, root, tree, packages, name, &defconfig, swap_on);
        parsed.insert(name.clone(), defconfig);
    }

    for board in QEMU_BOARDS {
        let (Some(on), Some(off)) = (
            parsed.get(&format!("{board}_defconfig")),
            parsed.get(&format!("{board}_noswap_defconfig")),
        ) else {
            continue;
        };
        report.record(
            &format!("{board}: the no-swap defconfig differs only in the swap fragment"),
            swap_pair_difference(on, off),
        );
    }
}

fn check_one_defconfig(
    report: &mut Report,
    root: &Path,
    tree: &Path,
    packages: &Packages,
    name: &str,
    defconfig: &Defconfig,
    swap_on: bool,
) {
    report.record(
        &format!("{name}: every ${EXTERNAL_PATH_VAR} path exists"),
        {
            let mut missing = Vec::new();
            let mut count = 0;
            for (_, value) in defconfig.strings() {
                for word in value
                    .split_whitespace()
                    .filter(|w| w.contains(EXTERNAL_PATH_VAR))
                {
                    count += 1;
                    let path = expand_external(word, tree);
                    if !path.exists() {
                        missing.push(relative(&path, root));
                    }
                }
            }
            if missing.is_empty() {
                Ok(format!("{count} path(s)"))
            } else {
                Err(format!("missing: {}", missing.join(", ")))
            }
        },
    );

    report.record(
        &format!("{name}: enables the memnotify packages, all defined by the tree"),
        (|| {
            let ours: Vec<&String> = defconfig
                .enabled()
                .filter(|s| {
                    s.starts_with("BR2_PACKAGE_MEMNOTIFY") || s.starts_with("BR2_MEMNOTIFY_")
                })
                .collect();
            let unknown: Vec<_> = ours
                .iter()
                .filter(|s| !packages.symbols.contains(**s))
                .map(|s| s.to_string())
                .collect();
            if !unknown.is_empty() {
                return Err(format!("unknown symbol(s): {}", unknown.join(", ")));
            }
            for wanted in ["BR2_PACKAGE_MEMNOTIFY_MODULE", "BR2_PACKAGE_MEMNOTIFYD"] {
                if !defconfig.is_enabled(wanted) {
                    return Err(format!("{wanted}=y is missing"));
                }
            }
            Ok(ours
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "))
        })(),
    );

    report.record(
        &format!("{name}: pins a {KERNEL_SERIES}x kernel whose hash the tree provides"),
        (|| {
            if !defconfig.is_enabled("BR2_LINUX_KERNEL_CUSTOM_VERSION") {
                return Err("BR2_LINUX_KERNEL_CUSTOM_VERSION=y is missing".to_string());
            }
            let version = defconfig
                .string("BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE")
                .ok_or("BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE is missing")?;
            if !version.starts_with(KERNEL_SERIES) {
                return Err(format!("kernel {version} is not {KERNEL_SERIES}x"));
            }
            let patch_dirs = defconfig
                .string("BR2_GLOBAL_PATCH_DIR")
                .ok_or("BR2_GLOBAL_PATCH_DIR is missing")?;
            // Buildroot checks a download against the .hash files of every global patch
            // directory; the kernel's is the tree's own.
            let patch_dir = patch_dirs
                .split_whitespace()
                .find(|dir| dir.contains(EXTERNAL_PATH_VAR))
                .ok_or_else(|| {
                    format!("BR2_GLOBAL_PATCH_DIR has no ${EXTERNAL_PATH_VAR} directory")
                })?;
            let hash_file = expand_external(patch_dir, tree).join("linux/linux.hash");
            let hashes = parse_hash_file(&read(&hash_file)?);
            let tarball = format!("linux-{version}.tar.xz");
            if !hashes.contains_key(&tarball) {
                return Err(format!(
                    "{} has no sha256 for {tarball}",
                    relative(&hash_file, root)
                ));
            }
            if !defconfig.is_enabled("BR2_DOWNLOAD_FORCE_CHECK_HASHES") {
                return Err("BR2_DOWNLOAD_FORCE_CHECK_HASHES=y is missing".to_string());
            }
            Ok(version)
        })(),
    );

    report.record(
        &format!("{name}: kernel patches are the repository's kernel-module/patches"),
        (|| {
            let value = defconfig
                .string("BR2_LINUX_KERNEL_PATCH")
                .ok_or("BR2_LINUX_KERNEL_PATCH is missing")?;
            let entries: Vec<PathBuf> = value
                .split_whitespace()
                .map(|w| expand_external(w, tree))
                .collect();
            let patches = root.join("kernel-module/patches");
            if entries.len() != 1 || !same_dir(&entries[0], &patches) {
                return Err(format!(
                    "is '{value}', expected the kernel-module/patches directory alone"
                ));
            }
            let count = walk(&patches)
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "patch"))
                .count();
            if count == 0 {
                return Err("kernel-module/patches has no *.patch".to_string());
            }
            Ok(format!("{count} patch(es)"))
        })(),
    );

    report.record(
        &format!(
            "{name}: kernel fragments are qemu/configs/memnotify.config and swap-{}.config",
            on_off(swap_on)
        ),
        (|| {
            let value = defconfig
                .string("BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES")
                .ok_or("BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES is missing")?;
            let fragments: Vec<PathBuf> = value
                .split_whitespace()
                .map(|w| expand_external(w, tree))
                .collect();
            let configs = root.join("qemu/configs");
            let shared = [
                configs.join("memnotify.config"),
                configs.join(format!("swap-{}.config", on_off(swap_on))),
            ];
            // A QEMU board whose base kernel config is not a QEMU one (arm: multi_v7) may put
            // the repository's own QEMU fragment of its architecture first.
            let qemu_fragment = defconfig_arch(defconfig)
                .filter(|_| is_qemu_board(name))
                .map(|arch| configs.join(format!("qemu-{}.config", arch.name())));
            let same = |wanted: &[&PathBuf]| {
                fragments.len() == wanted.len()
                    && fragments.iter().zip(wanted).all(|(f, w)| same_file(f, w))
            };
            let plain: Vec<&PathBuf> = shared.iter().collect();
            if same(&plain) {
                return Ok(String::new());
            }
            if let Some(qemu) = &qemu_fragment {
                let with_qemu: Vec<&PathBuf> = std::iter::once(qemu).chain(&shared).collect();
                if same(&with_qemu) {
                    return Ok(format!("after {}", relative(qemu, root)));
                }
            }
            Err(format!("is '{value}'"))
        })(),
    );
}

/// Whether a defconfig belongs to one of the QEMU boards.
fn is_qemu_board(name: &str) -> bool {
    QEMU_BOARDS.iter().any(|board| {
        name == format!("{board}_defconfig") || name == format!("{board}_noswap_defconfig")
    })
}

/// The architecture a defconfig builds for (`BR2_x86_64`, `BR2_aarch64` or `BR2_arm`).
fn defconfig_arch(defconfig: &Defconfig) -> Option<crate::Arch> {
    [
        ("BR2_x86_64", crate::Arch::X86_64),
        ("BR2_aarch64", crate::Arch::Arm64),
        ("BR2_arm", crate::Arch::Arm),
    ]
    .into_iter()
    .find(|(symbol, _)| defconfig.is_enabled(symbol))
    .map(|(_, arch)| arch)
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// The swap-on and swap-off defconfigs of a board must be the same but for
/// `swap-on.config` -> `swap-off.config` in the fragment list.
fn swap_pair_difference(on: &Defconfig, off: &Defconfig) -> std::result::Result<String, String> {
    let expected: Vec<(String, String)> = on
        .entries
        .iter()
        .map(|(k, v)| (k.clone(), v.replace("swap-on.config", "swap-off.config")))
        .collect();
    if expected == off.entries {
        Ok(String::new())
    } else {
        let differing: Vec<String> = expected
            .iter()
            .zip(off.entries.iter())
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.0.clone())
            .chain(if expected.len() != off.entries.len() {
                Some("(line count)".to_string())
            } else {
                None
            })
            .collect();
        Err(format!("differ in: {}", differing.join(", ")))
    }
}

// ---------------------------------------------------------------------------
// Scripts

fn check_scripts(report: &mut Report, sh: &Shell, tree: &Path) {
    let scripts: Vec<PathBuf> = walk(tree)
        .into_iter()
        .filter(|p| is_shell_script(p))
        .collect();
    report.record(
        "the tree's shell scripts",
        if scripts.is_empty() {
            Err("none found".into())
        } else {
            Ok(format!("{}", scripts.len()))
        },
    );

    // Buildroot runs post-build/post-image scripts and copies the overlay as is.
    for script in &scripts {
        let rel = relative(script, tree);
        if rel.starts_with("board/") {
            report.record(
                &format!("{rel}: executable"),
                if is_executable(script) {
                    Ok(String::new())
                } else {
                    Err("chmod +x it".into())
                },
            );
        }
    }

    if let Err(e) = ensure_shellcheck(sh) {
        report.record("shellcheck is available", Err(format!("{e:#}")));
        return;
    }
    for script in &scripts {
        let rel = relative(script, tree);
        let outcome = cmd!(sh, "shellcheck {script}")
            .ignore_status()
            .output()
            .map_err(|e| e.to_string())
            .and_then(|out| {
                if out.status.success() {
                    Ok(String::new())
                } else {
                    Err(format!(
                        "\n{}",
                        String::from_utf8_lossy(&out.stdout).trim_end()
                    ))
                }
            });
        report.record(&format!("shellcheck {rel}"), outcome);
    }
}

fn ensure_shellcheck(sh: &Shell) -> Result<()> {
    if cmd!(sh, "shellcheck --version")
        .quiet()
        .ignore_stdout()
        .run()
        .is_ok()
    {
        return Ok(());
    }
    println!("shellcheck is missing: installing it with apt-get");
    cmd!(sh, "apt-get install -y shellcheck")
        .run()
        .context("shellcheck is missing and 'apt-get install -y shellcheck' failed (run 'apt-get update' first?)")?;
    Ok(())
}

fn is_shell_script(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    let first = text.lines().next().unwrap_or("");
    first.starts_with("#!")
        && (first.ends_with("/sh") || first.ends_with("bash") || first.ends_with(" sh"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Kernel configurations, resolved offline with the repository's kernel source

/// Where a defconfig's kernel configuration starts (Buildroot's linux.mk choice).
#[derive(Debug, PartialEq)]
enum KernelBase {
    /// A kernel make target: `<name>_defconfig`, or `defconfig` for the architecture's default.
    Target(String),
    /// A configuration file, relative to the Buildroot tree unless it names the external tree.
    File(String),
}

impl std::fmt::Display for KernelBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelBase::Target(target) if target == "defconfig" => {
                write!(f, "the architecture's defconfig")
            }
            KernelBase::Target(target) => write!(f, "{target}"),
            KernelBase::File(file) => write!(f, "{file}"),
        }
    }
}

fn kernel_base(defconfig: &Defconfig) -> std::result::Result<KernelBase, String> {
    if defconfig.is_enabled("BR2_LINUX_KERNEL_USE_ARCH_DEFAULT_CONFIG") {
        return Ok(KernelBase::Target("defconfig".to_string()));
    }
    if defconfig.is_enabled("BR2_LINUX_KERNEL_USE_CUSTOM_CONFIG") {
        return defconfig
            .string("BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE")
            .map(KernelBase::File)
            .ok_or_else(|| "BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE is missing".to_string());
    }
    // BR2_LINUX_KERNEL_USE_DEFCONFIG, Buildroot's default choice.
    defconfig
        .string("BR2_LINUX_KERNEL_DEFCONFIG")
        .map(|name| KernelBase::Target(format!("{name}_defconfig")))
        .ok_or_else(|| "no kernel configuration choice (BR2_LINUX_KERNEL_DEFCONFIG)".to_string())
}

/// The options Buildroot's `LINUX_KCONFIG_FIXUP_CMDS` sets for this defconfig, as arguments of
/// the kernel's `scripts/config` (the cases the memnotify defconfigs can reach).
fn buildroot_kernel_fixups(defconfig: &Defconfig) -> Vec<String> {
    let mut args: Vec<&str> = Vec::new();
    // The kernel-module infrastructure (memnotify-module) needs modules.
    if defconfig.is_enabled("BR2_PACKAGE_MEMNOTIFY_MODULE") {
        args.extend(["-e", "MODULES"]);
    }
    // BR2_LINUX_KERNEL_GZIP is Buildroot's default compression.
    args.extend(["-e", "KERNEL_GZIP"]);
    for other in [
        "KERNEL_BZIP2",
        "KERNEL_LZ4",
        "KERNEL_LZMA",
        "KERNEL_LZO",
        "KERNEL_XZ",
        "KERNEL_ZSTD",
    ] {
        args.extend(["-d", other]);
    }
    if defconfig.is_enabled("BR2_arm") {
        args.extend(["-e", "AEABI"]);
    }
    if !defconfig.is_enabled("BR2_ROOTFS_DEVICE_CREATION_STATIC") {
        args.extend(["-e", "DEVTMPFS", "-e", "DEVTMPFS_MOUNT"]);
    }
    if defconfig.is_enabled("BR2_ROOTFS_DEVICE_CREATION_DYNAMIC_MDEV") {
        args.extend(["-e", "NET"]);
    }
    args.extend(["-d", "GCC_PLUGINS"]);
    args.into_iter().map(str::to_string).collect()
}

/// Problems of a resolved kernel `.config` beyond its fragments: Rust and modules on, and for
/// 32-bit ARM an ARM-mode kernel (HAVE_RUST excludes THUMB2_KERNEL, see kernel-module/patches).
fn kernel_config_problems(dotconfig: &str, arch: crate::Arch) -> Vec<String> {
    let has = |line: &str| dotconfig.lines().any(|l| l == line);
    let mut problems = Vec::new();
    for wanted in ["CONFIG_RUST=y", "CONFIG_MODULES=y"] {
        if !has(wanted) {
            problems.push(format!("{wanted} is missing"));
        }
    }
    if arch == crate::Arch::Arm && has("CONFIG_THUMB2_KERNEL=y") {
        problems.push("CONFIG_THUMB2_KERNEL=y: the Rust code is ARM-mode".to_string());
    }
    problems
}

/// Runs a command quietly; on failure, the tail of its output.
fn run_quiet(
    mut command: std::process::Command,
    what: &str,
) -> std::result::Result<String, String> {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        let lines: Vec<&str> = text.lines().collect();
        Err(format!(
            "{what} failed:\n{}",
            lines[lines.len().saturating_sub(15)..].join("\n")
        ))
    }
}

/// Configures the kernel of one defconfig the way Buildroot's linux.mk does (base
/// configuration, `merge_config.sh -m` of the fragments, Buildroot's fixups, `olddefconfig`),
/// with the repository's patched 6.12 source and the xtask toolchain, and checks the result.
fn resolve_kernel_config(
    source: &Path,
    out: &Path,
    arch: crate::Arch,
    base: &Path,
    base_target: Option<&str>,
    fragments: &[PathBuf],
    fixups: &[String],
) -> std::result::Result<String, String> {
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let in_source = crate::kernel::Kernel {
        build_dir: source.to_path_buf(),
        arch,
    };
    let in_out = crate::kernel::Kernel {
        build_dir: out.to_path_buf(),
        arch,
    };
    let output = format!("O={}", out.display());
    match base_target {
        Some(target) => {
            let mut make = in_source.make();
            make.arg(&output).arg(target);
            run_quiet(make, &format!("make {target}"))?;
        }
        None => {
            fs::copy(base, out.join(".config"))
                .map_err(|e| format!("copying {}: {e}", base.display()))?;
            let mut make = in_source.make();
            make.arg(&output).arg("olddefconfig");
            run_quiet(make, "make olddefconfig")?;
        }
    }
    let mut merge = std::process::Command::new(source.join("scripts/kconfig/merge_config.sh"));
    merge
        .env("PATH", crate::setup::kernel_path_env())
        .env("ARCH", arch.kernel_arch())
        .current_dir(source)
        .args(["-m", "-O"])
        .arg(out)
        .arg(out.join(".config"))
        .args(fragments);
    run_quiet(merge, "merge_config.sh")?;
    let mut config = std::process::Command::new(source.join("scripts/config"));
    config.arg("--file").arg(out.join(".config")).args(fixups);
    run_quiet(config, "scripts/config (Buildroot's fixups)")?;
    let mut make = in_out.make();
    make.arg("olddefconfig");
    run_quiet(make, "make olddefconfig")?;

    let dotconfig_path = out.join(".config");
    let dotconfig = read(&dotconfig_path)?;
    let mut problems = kernel_config_problems(&dotconfig, arch);
    if let Err(error) = crate::kernel::verify_config(&dotconfig_path, fragments) {
        problems.push(format!("{error:#}"));
    }
    if !problems.is_empty() {
        let mut make = in_out.make();
        make.arg("rustavailable");
        let why = match run_quiet(make, "make rustavailable") {
            Ok(_) => "make rustavailable: Rust is available".to_string(),
            Err(e) => e,
        };
        return Err(format!("{}\n{why}", problems.join("\n")));
    }
    let kept = fragments
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .map(|text| {
            text.lines()
                .filter(|l| l.starts_with("CONFIG_") || l.ends_with(" is not set"))
                .count()
        })
        .sum::<usize>();
    Ok(format!(
        "CONFIG_RUST=y and all {kept} fragment options{}",
        if arch == crate::Arch::Arm {
            ", ARM-mode (no THUMB2_KERNEL)"
        } else {
            ""
        }
    ))
}

/// Resolves every defconfig's kernel configuration offline: the base configuration it names,
/// its fragments and Buildroot's fixups on the repository's 6.12 source with its patches
/// (`cargo xtask kernel`'s tree), then CONFIG_RUST=y and every fragment option must hold.
/// Base configurations from Buildroot's tree need MEMNOTIFY_BUILDROOT.
fn check_kernel_configs(report: &mut Report, tree: &Path, buildroot: Option<&Path>) {
    if !Path::new(crate::setup::KERNEL_TARBALL).exists() {
        println!(
            "skip kernel configurations: {} is missing (cargo xtask setup installs it)",
            crate::setup::KERNEL_TARBALL
        );
        return;
    }
    let source = match crate::kernel::source_tree() {
        Ok(source) => source,
        Err(e) => {
            report.record(
                "the patched 6.12 kernel source for the kernel configurations",
                Err(format!("{e:#}")),
            );
            return;
        }
    };
    let configs = tree.join("configs");
    let mut names: Vec<String> = fs::read_dir(&configs)
        .map(|e| {
            e.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with("_defconfig"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let scratch = std::env::temp_dir().join(format!(
        "memnotify-buildroot-kconfig-{}",
        std::process::id()
    ));
    for name in &names {
        let Ok(text) = fs::read_to_string(configs.join(name)) else {
            continue;
        };
        let defconfig = Defconfig::parse(&text);
        let what =
            format!("{name}: the kernel configuration keeps CONFIG_RUST=y and the fragments");
        let Some(arch) = defconfig_arch(&defconfig) else {
            report.record(&what, Err("no BR2_x86_64, BR2_aarch64 or BR2_arm".into()));
            continue;
        };
        let base = match kernel_base(&defconfig) {
            Ok(base) => base,
            Err(e) => {
                report.record(&what, Err(e));
                continue;
            }
        };
        let (base_path, base_target) = match &base {
            KernelBase::Target(target) => (PathBuf::new(), Some(target.as_str())),
            KernelBase::File(file) if file.contains(EXTERNAL_PATH_VAR) => {
                (expand_external(file, tree), None)
            }
            KernelBase::File(file) => match buildroot {
                Some(buildroot) => (buildroot.join(file), None),
                None => {
                    println!(
                        "skip {name}: its kernel configuration starts from Buildroot's {file}: \
                         set MEMNOTIFY_BUILDROOT"
                    );
                    continue;
                }
            },
        };
        if let Some(names) = defconfig.string("BR2_LINUX_KERNEL_INTREE_DTS_NAME") {
            let dts_dir = source
                .join("arch")
                .join(arch.kernel_arch())
                .join("boot/dts");
            let missing: Vec<&str> = names
                .split_whitespace()
                .filter(|name| !dts_dir.join(format!("{name}.dts")).is_file())
                .collect();
            report.record(
                &format!("{name}: the device trees exist in the 6.12 kernel"),
                if missing.is_empty() {
                    Ok(format!("{} .dts", names.split_whitespace().count()))
                } else {
                    Err(format!(
                        "not in {}: {}",
                        dts_dir.display(),
                        missing.join(", ")
                    ))
                },
            );
        }
        let fragments: Vec<PathBuf> = defconfig
            .string("BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES")
            .unwrap_or_default()
            .split_whitespace()
            .map(|w| expand_external(w, tree))
            .collect();
        let outcome = resolve_kernel_config(
            &source,
            &scratch.join(name),
            arch,
            &base_path,
            base_target,
            &fragments,
            &buildroot_kernel_fixups(&defconfig),
        )
        .map(|detail| format!("{base} + {} fragment(s): {detail}", fragments.len()));
        report.record(&what, outcome);
    }
    let _ = fs::remove_dir_all(&scratch);
}

// ---------------------------------------------------------------------------
// With a Buildroot tree (MEMNOTIFY_BUILDROOT)

fn check_with_buildroot(report: &mut Report, sh: &Shell, tree: &Path, buildroot: &Path) {
    let version = read(&buildroot.join("Makefile")).and_then(|text| {
        buildroot_version(&text)
            .ok_or_else(|| format!("{} is not a Buildroot tree", buildroot.display()))
    });
    let version_ok = matches!(&version, Ok(v) if v.starts_with(BUILDROOT_SERIES));
    report.record(
        &format!("MEMNOTIFY_BUILDROOT is a Buildroot {BUILDROOT_SERIES}.x tree"),
        version.and_then(|v| {
            if version_ok {
                Ok(v)
            } else {
                Err(format!("it is {v}"))
            }
        }),
    );
    if !version_ok {
        return;
    }

    let scratch =
        std::env::temp_dir().join(format!("memnotify-buildroot-check-{}", std::process::id()));
    let configs = tree.join("configs");
    let mut names: Vec<String> = fs::read_dir(&configs)
        .map(|e| {
            e.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| n.ends_with("_defconfig"));
    names.sort();

    for name in &names {
        let out = scratch.join(name);
        let defconfig = fs::read_to_string(configs.join(name))
            .map(|t| Defconfig::parse(&t))
            .unwrap_or_default();
        report.record(
            &format!("{name}: resolves with Buildroot, keeping every line"),
            resolve_defconfig(sh, buildroot, tree, &out, name, &defconfig),
        );
        report.record(&format!("{name}: Buildroot-relative files exist"), {
            // Device tree names are paths in the kernel tree (checked with the kernel source).
            let missing: Vec<String> = defconfig
                .strings()
                .filter(|(k, _)| *k != "BR2_LINUX_KERNEL_INTREE_DTS_NAME")
                .flat_map(|(_, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .filter(|w| w.contains('/') && !w.contains('$') && !w.starts_with('/'))
                .filter(|w| !buildroot.join(w).exists())
                .collect();
            if missing.is_empty() {
                Ok(String::new())
            } else {
                Err(format!("missing in Buildroot: {}", missing.join(", ")))
            }
        });
        report.record(
            &format!("{name}: the kernel's kconfig step waits for the Rust host tools"),
            kernel_waits_for_rust_tools(sh, &out),
        );
        report.record(
            &format!("{name}: host-rustc matches memnotify-rust-src"),
            (|| {
                let vars = printvars(
                    sh,
                    &out,
                    &["RUST_BIN_VERSION", "MEMNOTIFY_RUST_SRC_VERSION"],
                )?;
                match (
                    vars.get("RUST_BIN_VERSION"),
                    vars.get("MEMNOTIFY_RUST_SRC_VERSION"),
                ) {
                    (Some(a), Some(b)) if a == b => Ok(a.clone()),
                    (a, b) => Err(format!("host-rust-bin {a:?} but memnotify-rust-src {b:?}")),
                }
            })(),
        );
    }
    let _ = fs::remove_dir_all(&scratch);

    report.record(
        "Buildroot's utils/check-package -b accepts the tree",
        run_check_package(sh, tree, buildroot),
    );
}

fn resolve_defconfig(
    sh: &Shell,
    buildroot: &Path,
    tree: &Path,
    out: &Path,
    name: &str,
    defconfig: &Defconfig,
) -> std::result::Result<String, String> {
    let external = format!("BR2_EXTERNAL={}", tree.display());
    let output = format!("O={}", out.display());
    let result = cmd!(sh, "make -s -C {buildroot} {external} {output} {name}")
        .ignore_status()
        .output()
        .map_err(|e| e.to_string())?;
    if !result.status.success() {
        return Err(format!(
            "make {name} failed:\n{}",
            String::from_utf8_lossy(&result.stderr).trim_end()
        ));
    }
    let dotconfig = Defconfig::parse(&read(&out.join(".config"))?);
    let dropped: Vec<String> = defconfig
        .entries
        .iter()
        .filter(|entry| !dotconfig.entries.contains(entry))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !dropped.is_empty() {
        return Err(format!(
            "dropped by Kconfig (unmet dependencies?): {}",
            dropped.join(", ")
        ));
    }
    let version = dotconfig
        .string("BR2_LINUX_KERNEL_VERSION")
        .unwrap_or_default();
    if !version.starts_with(KERNEL_SERIES) {
        return Err(format!("BR2_LINUX_KERNEL_VERSION is '{version}'"));
    }
    for wanted in ["BR2_MEMNOTIFY_LINUX_RUST", "BR2_PACKAGE_HOST_RUSTC"] {
        if !dotconfig.is_enabled(wanted) {
            return Err(format!("{wanted} is not enabled"));
        }
    }
    Ok(format!("kernel {version}"))
}

/// The kernel's `.stamp_dotconfig` rule must list the Rust host tools among its
/// prerequisites; `printvars` would show them even when the rule does not.
fn kernel_waits_for_rust_tools(sh: &Shell, out: &Path) -> std::result::Result<String, String> {
    let result = cmd!(sh, "make -C {out} -p -n linux-show-depends")
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| e.to_string())?;
    let database = String::from_utf8_lossy(&result.stdout);
    // The kernel's build directory is linux-<version>; linux-backports and
    // linux-headers are other packages.
    let kernel_rule =
        Regex::new(r"/build/linux-[0-9][^/]*/\.stamp_dotconfig: ").expect("valid regex");
    let rule = database
        .lines()
        .find(|l| kernel_rule.is_match(l) && !l.contains(" = "))
        .ok_or("no .stamp_dotconfig rule in make's database")?;
    let missing: Vec<&str> = KERNEL_RUST_HOST_TOOLS
        .iter()
        .copied()
        .filter(|tool| !rule.split_whitespace().any(|w| w == *tool))
        .collect();
    if missing.is_empty() {
        Ok(KERNEL_RUST_HOST_TOOLS.join(" "))
    } else {
        Err(format!(
            "not prerequisites of the kernel's kconfig step: {}",
            missing.join(" ")
        ))
    }
}

fn printvars(
    sh: &Shell,
    out: &Path,
    vars: &[&str],
) -> std::result::Result<BTreeMap<String, String>, String> {
    let vars = format!("VARS={}", vars.join(" "));
    let result = cmd!(sh, "make -s -C {out} printvars {vars}")
        .quiet()
        .ignore_status()
        .output()
        .map_err(|e| e.to_string())?;
    if !result.status.success() {
        return Err(format!(
            "printvars failed: {}",
            String::from_utf8_lossy(&result.stderr).trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&result.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

fn run_check_package(
    sh: &Shell,
    tree: &Path,
    buildroot: &Path,
) -> std::result::Result<String, String> {
    // check-package needs python3's "magic" module (Debian: python3-magic); a
    // Python of its own (pyenv, venv) may lack it where the system one has it.
    let python = ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| {
            cmd!(sh, "{p} -c 'import magic'")
                .quiet()
                .ignore_stderr()
                .run()
                .is_ok()
        })
        .ok_or("no python3 with the 'magic' module: apt-get install python3-magic")?;
    let tool = buildroot.join("utils/check-package");
    let mut files: Vec<String> = walk(tree).iter().map(|p| relative(p, tree)).collect();
    files.sort();
    let _dir = sh.push_dir(tree);
    let result = cmd!(
        sh,
        "{python} {tool} -b --ignore-list=.checkpackageignore {files...}"
    )
    .quiet()
    .ignore_status()
    .output()
    .map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    let summary = text
        .lines()
        .rfind(|l| l.contains("warnings generated"))
        .unwrap_or("")
        .to_string();
    if result.status.success() && summary.starts_with("0 warnings") {
        Ok(summary)
    } else {
        Err(format!("\n{}", text.trim_end()))
    }
}

// ---------------------------------------------------------------------------
// Pure parsers

/// A `key: value` field of external.desc.
fn desc_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key && !v.trim().is_empty()).then(|| v.trim().to_string())
    })
}

/// Replaces `$(BR2_EXTERNAL_MEMNOTIFY_PATH)` or `$BR2_EXTERNAL_MEMNOTIFY_PATH` by the tree.
fn expand_external(text: &str, tree: &Path) -> PathBuf {
    let tree = tree.display().to_string();
    PathBuf::from(
        text.replace(&format!("$({EXTERNAL_PATH_VAR})"), &tree)
            .replace(&format!("${EXTERNAL_PATH_VAR}"), &tree),
    )
}

#[derive(Default, Debug)]
struct Kconfig {
    defined: BTreeSet<String>,
    referenced: BTreeSet<String>,
    sources: Vec<String>,
}

/// Symbols defined (`config`/`menuconfig`), symbols used (`depends on`,
/// `select`, `default ... if`), and `source` targets of a Config.in file.
fn parse_kconfig(text: &str) -> Kconfig {
    let symbol = Regex::new(r"\bBR2_[A-Z0-9_]+\b").expect("valid regex");
    let mut kconfig = Kconfig::default();
    let mut in_help = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if in_help {
            // Help text is indented deeper than the attributes; it ends at the
            // first line that is not (Kconfig's own rule).
            if trimmed.is_empty() || line.starts_with("\t  ") || line.starts_with("\t\t") {
                continue;
            }
            in_help = false;
        }
        let mut words = trimmed.split_whitespace();
        match words.next() {
            Some("config" | "menuconfig") => {
                if let Some(name) = words.next() {
                    kconfig
                        .defined
                        .insert(format!("BR2_{}", name.trim_start_matches("BR2_")));
                }
            }
            Some("source") => {
                kconfig.sources.push(
                    trimmed["source".len()..]
                        .trim()
                        .trim_matches('"')
                        .to_string(),
                );
            }
            Some("help" | "---help---") => in_help = true,
            Some("depends" | "select" | "default" | "imply" | "if" | "visible") => {
                kconfig
                    .referenced
                    .extend(symbol.find_iter(trimmed).map(|m| m.as_str().to_string()));
            }
            _ => {}
        }
    }
    kconfig
}

/// The variables of a package .mk file, with `$(VAR)` references to the same
/// file's variables and to the external tree's path expanded (enough for
/// reading site, version, source and lists; not a make implementation).
struct MkFile {
    vars: BTreeMap<String, String>,
    evals: Vec<String>,
    tree: String,
}

impl MkFile {
    fn parse(text: &str, tree: &Path) -> MkFile {
        let assignment =
            Regex::new(r"^([A-Za-z0-9_]+)\s*(\+=|:=|\?=|=)\s*(.*)$").expect("valid regex");
        let eval = Regex::new(r"^\$\(eval \$\(([a-z-]+)\)\)").expect("valid regex");
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let mut evals = Vec::new();
        let mut in_define = false;
        for line in join_continuations(text) {
            let trimmed = line.trim();
            if in_define {
                in_define = trimmed != "endef";
                continue;
            }
            if trimmed.starts_with("define ") {
                in_define = true;
                continue;
            }
            if let Some(c) = eval.captures(trimmed) {
                evals.push(c[1].to_string());
                continue;
            }
            if trimmed.starts_with('#') || line.starts_with('\t') {
                continue;
            }
            if let Some(c) = assignment.captures(trimmed) {
                let (name, op, value) = (c[1].to_string(), &c[2], c[3].trim().to_string());
                match op {
                    "+=" => {
                        let entry = vars.entry(name).or_default();
                        if !entry.is_empty() {
                            entry.push(' ');
                        }
                        entry.push_str(&value);
                    }
                    "?=" => {
                        vars.entry(name).or_insert(value);
                    }
                    _ => {
                        vars.insert(name, value);
                    }
                }
            }
        }
        MkFile {
            vars,
            evals,
            tree: tree.display().to_string(),
        }
    }

    /// A variable's value with references expanded, if it is set.
    fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).map(|v| self.expand(v, 0))
    }

    fn expand(&self, value: &str, depth: usize) -> String {
        let reference = Regex::new(r"\$\(([A-Za-z0-9_]+)\)").expect("valid regex");
        reference
            .replace_all(value, |c: &regex::Captures| {
                let name = &c[1];
                if name == EXTERNAL_PATH_VAR {
                    self.tree.clone()
                } else if let (Some(v), true) = (self.vars.get(name), depth < 8) {
                    self.expand(v, depth + 1)
                } else {
                    c[0].to_string()
                }
            })
            .into_owned()
    }

    /// The package infrastructures the file evaluates, e.g. `generic-package`.
    fn infrastructures(&self) -> Vec<String> {
        self.evals.clone()
    }
}

/// Joins backslash-continued lines into one.
fn join_continuations(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(stripped) = line.strip_suffix('\\') {
            current.push_str(stripped);
            current.push(' ');
        } else {
            current.push_str(line);
            lines.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// `sha256 <hex> <file>` lines of a Buildroot .hash file, by file name.
fn parse_hash_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (kind, hash, file) = (words.next()?, words.next()?, words.next()?);
            let valid =
                kind == "sha256" && hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit());
            valid.then(|| (file.to_string(), hash.to_string()))
        })
        .collect()
}

/// A Buildroot defconfig: `BR2_X=value` entries in file order (`# BR2_X is not
/// set` kept as `BR2_X=n` so dropped negations are noticed too).
#[derive(Default, Debug, PartialEq)]
struct Defconfig {
    entries: Vec<(String, String)>,
}

impl Defconfig {
    fn parse(text: &str) -> Defconfig {
        let entries = text
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                if let Some(rest) = l.strip_prefix("# ") {
                    let name = rest.strip_suffix(" is not set")?;
                    return name
                        .starts_with("BR2_")
                        .then(|| (name.to_string(), "n".to_string()));
                }
                let (k, v) = l.split_once('=')?;
                k.starts_with("BR2_")
                    .then(|| (k.to_string(), v.to_string()))
            })
            .collect();
        Defconfig { entries }
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn is_enabled(&self, name: &str) -> bool {
        self.value(name) == Some("y")
    }

    fn enabled(&self) -> impl Iterator<Item = &String> {
        self.entries
            .iter()
            .filter(|(_, v)| v == "y")
            .map(|(k, _)| k)
    }

    /// A string option's value without its quotes.
    fn string(&self, name: &str) -> Option<String> {
        let v = self.value(name)?;
        Some(v.strip_prefix('"')?.strip_suffix('"')?.to_string())
    }

    fn strings(&self) -> impl Iterator<Item = (&str, String)> {
        self.entries.iter().filter_map(|(k, v)| {
            let s = v.strip_prefix('"')?.strip_suffix('"')?;
            Some((k.as_str(), s.to_string()))
        })
    }
}

/// The object names of `obj-m := a.o b.o` lines of a Kbuild file.
fn kbuild_objects(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim_end_matches([':', '+', ' ']).trim() == "obj-m").then_some(v)
        })
        .flat_map(|v| {
            v.split_whitespace()
                .filter_map(|o| o.strip_suffix(".o"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[derive(Debug, PartialEq)]
enum RustVersion {
    None,
    Workspace,
    Own(String),
}

#[derive(Debug)]
struct Manifest {
    name: Option<String>,
    bins: Vec<String>,
    rust_version: RustVersion,
    path_dependencies: Vec<String>,
}

/// The few facts this check needs from a crate's Cargo.toml (a line-based
/// reader for the simple manifests of this workspace, not a TOML parser).
fn parse_manifest(text: &str) -> Manifest {
    let mut manifest = Manifest {
        name: None,
        bins: Vec::new(),
        rust_version: RustVersion::None,
        path_dependencies: Vec::new(),
    };
    let path_dep = Regex::new(r#"path\s*=\s*"([^"]+)""#).expect("valid regex");
    let mut table = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            table = line.trim_matches(['[', ']']).trim().to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let unquoted = value.trim_matches('"').to_string();
        match table.as_str() {
            "package" if key == "name" => manifest.name = Some(unquoted),
            "package" if key == "rust-version" => {
                manifest.rust_version = RustVersion::Own(unquoted)
            }
            "package" if key == "rust-version.workspace" && value == "true" => {
                manifest.rust_version = RustVersion::Workspace
            }
            "bin" if key == "name" => manifest.bins.push(unquoted),
            "dependencies" | "build-dependencies" => {
                if let Some(c) = path_dep.captures(value) {
                    manifest.path_dependencies.push(c[1].to_string());
                }
            }
            _ => {}
        }
    }
    manifest
}

/// The binaries a crate builds: `[[bin]]` targets, `src/main.rs` (named after
/// the package) and `src/bin/*.rs` or `src/bin/*/main.rs`.
fn crate_binaries(manifest_text: &str, dir: &Path) -> BTreeSet<String> {
    let manifest = parse_manifest(manifest_text);
    let mut bins: BTreeSet<String> = manifest.bins.into_iter().collect();
    if dir.join("src/main.rs").is_file() {
        if let Some(name) = manifest.name {
            bins.insert(name);
        }
    }
    if let Ok(entries) = fs::read_dir(dir.join("src/bin")) {
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") {
                if let Some(stem) = path.file_stem() {
                    bins.insert(stem.to_string_lossy().to_string());
                }
            } else if path.join("main.rs").is_file() {
                bins.insert(entry.file_name().to_string_lossy().to_string());
            }
        }
    }
    bins
}

/// `key = "value"` from `[table]` of a TOML text (simple manifests only).
fn toml_value(text: &str, table: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line.trim_matches(['[', ']']).trim().to_string();
            continue;
        }
        if current == table {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    None
}

/// Whether dotted version `a` is newer than `b` (missing parts count as 0).
fn version_newer(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (mut a, mut b) = (parts(a), parts(b));
    let len = a.len().max(b.len());
    a.resize(len, 0);
    b.resize(len, 0);
    a > b
}

/// `export BR2_VERSION := 2025.02.16` in Buildroot's top Makefile.
fn buildroot_version(makefile: &str) -> Option<String> {
    makefile.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("export BR2_VERSION")?;
        Some(
            rest.trim_start()
                .trim_start_matches(":=")
                .trim_start_matches('=')
                .trim()
                .to_string(),
        )
    })
}

// ---------------------------------------------------------------------------
// File system helpers

/// Every file below `dir`, sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn same_dir(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

fn same_file(a: &Path, b: &Path) -> bool {
    same_dir(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desc_field_reads_name_and_rejects_empty() {
        let text = "name: MEMNOTIFY\ndesc: a tree\nempty:\n";
        assert_eq!(desc_field(text, "name").as_deref(), Some("MEMNOTIFY"));
        assert_eq!(desc_field(text, "desc").as_deref(), Some("a tree"));
        assert_eq!(desc_field(text, "empty"), None);
        assert_eq!(desc_field(text, "absent"), None);
    }

    #[test]
    fn kconfig_separates_definitions_uses_sources_and_help() {
        let text = "menu \"x\"\nconfig BR2_PACKAGE_FOO\n\tbool \"foo\"\n\tdepends on BR2_LINUX_KERNEL\n\
                    \tselect BR2_MEMNOTIFY_LINUX_RUST\n\thelp\n\t  depends on BR2_NOT_A_USE\n\n\t  more\n\
                    comment \"c\"\n\tdepends on !BR2_LINUX_KERNEL\n\
                    source \"$BR2_EXTERNAL_MEMNOTIFY_PATH/package/foo/Config.in\"\nendmenu\n";
        let k = parse_kconfig(text);
        assert_eq!(k.defined, BTreeSet::from(["BR2_PACKAGE_FOO".to_string()]));
        assert!(k.referenced.contains("BR2_MEMNOTIFY_LINUX_RUST"));
        assert!(k.referenced.contains("BR2_LINUX_KERNEL"));
        assert!(
            !k.referenced.contains("BR2_NOT_A_USE"),
            "help text is not Kconfig"
        );
        assert_eq!(
            k.sources,
            vec!["$BR2_EXTERNAL_MEMNOTIFY_PATH/package/foo/Config.in".to_string()]
        );
    }

    #[test]
    fn mk_file_expands_variables_and_skips_defines() {
        let text = "FOO_VERSION = 1.2\nFOO_SOURCE = foo-$(FOO_VERSION).tar.xz\n\
                    FOO_SITE = $(BR2_EXTERNAL_MEMNOTIFY_PATH)/..\nFOO_LIST = a \\\n\tb\nFOO_LIST += c\n\
                    define FOO_CMDS\n\tFOO_VERSION = 9\nendef\n$(eval $(kernel-module))\n$(eval $(generic-package))\n";
        let mk = MkFile::parse(text, Path::new("/tree"));
        assert_eq!(mk.get("FOO_SOURCE").as_deref(), Some("foo-1.2.tar.xz"));
        assert_eq!(mk.get("FOO_SITE").as_deref(), Some("/tree/.."));
        assert_eq!(
            mk.get("FOO_LIST")
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(mk.infrastructures(), ["kernel-module", "generic-package"]);
        assert_eq!(mk.get("FOO_ABSENT"), None);
    }

    #[test]
    fn mk_shape_wants_the_buildroot_header() {
        let good = format!(
            "{h}\n#\n# foo\n#\n{h}\n\n$(eval $(generic-package))\n",
            h = "#".repeat(80)
        );
        assert!(check_mk_shape(&good, "foo").is_ok());
        assert!(check_mk_shape(&good, "bar").is_err());
        let no_eval = format!(
            "{h}\n#\n# foo\n#\n{h}\n\nFOO_SITE = x\n",
            h = "#".repeat(80)
        );
        assert!(check_mk_shape(&no_eval, "foo").is_err());
    }

    #[test]
    fn hash_file_keeps_only_valid_sha256_lines() {
        let good = "a".repeat(64);
        let text = format!(
            "# comment\nsha256  {good}  foo.tar.xz\nsha256  1234  short.tar.xz\nmd5 {good} m\n"
        );
        let hashes = parse_hash_file(&text);
        assert_eq!(hashes.keys().collect::<Vec<_>>(), ["foo.tar.xz"]);
    }

    #[test]
    fn defconfig_reads_values_strings_and_negations() {
        let d = Defconfig::parse("BR2_x86_64=y\nBR2_S=\"a b\"\n# BR2_T is not set\n# a comment\n");
        assert!(d.is_enabled("BR2_x86_64"));
        assert_eq!(d.string("BR2_S").as_deref(), Some("a b"));
        assert_eq!(d.value("BR2_T"), Some("n"));
        assert_eq!(d.entries.len(), 3);
    }

    #[test]
    fn swap_pair_must_differ_only_in_the_swap_fragment() {
        let on = Defconfig::parse("BR2_A=y\nBR2_F=\"x/memnotify.config x/swap-on.config\"\n");
        let off = Defconfig::parse("BR2_A=y\nBR2_F=\"x/memnotify.config x/swap-off.config\"\n");
        assert!(swap_pair_difference(&on, &off).is_ok());
        let other = Defconfig::parse("BR2_A=n\nBR2_F=\"x/memnotify.config x/swap-off.config\"\n");
        assert_eq!(
            swap_pair_difference(&on, &other),
            Err("differ in: BR2_A".to_string())
        );
        let same = Defconfig::parse("BR2_A=y\nBR2_F=\"x/memnotify.config x/swap-on.config\"\n");
        assert!(
            swap_pair_difference(&on, &same).is_err(),
            "a no-swap board with swap on"
        );
    }

    #[test]
    fn kbuild_objects_lists_obj_m() {
        assert_eq!(
            kbuild_objects("# SPDX\nobj-m := memnotify.o\n"),
            ["memnotify"]
        );
        assert_eq!(
            kbuild_objects("obj-m += a.o b.o\nobj-y := c.o\n"),
            ["a", "b"]
        );
        assert!(kbuild_objects("obj-y := c.o\n").is_empty());
    }

    #[test]
    fn manifest_reads_name_bins_rust_version_and_path_deps() {
        let text = "[package]\nname = \"memnotify\"\nrust-version.workspace = true\n\n[[bin]]\nname = \"mn_test\"\n\
                    path = \"src/bin/mn_test.rs\"\n\n[dependencies]\nmemnotify-proto = { path = \"../memnotify-proto\" }\n\
                    libc = \"0.2\"\n";
        let m = parse_manifest(text);
        assert_eq!(m.name.as_deref(), Some("memnotify"));
        assert_eq!(m.bins, ["mn_test"]);
        assert_eq!(m.rust_version, RustVersion::Workspace);
        assert_eq!(m.path_dependencies, ["../memnotify-proto"]);
        let own = parse_manifest("[package]\nname = \"x\"\nrust-version = \"1.80\"\n");
        assert_eq!(own.rust_version, RustVersion::Own("1.80".into()));
    }

    #[test]
    fn toml_value_reads_the_right_table() {
        let text =
            "[package]\nrust-version = \"9\"\n[workspace.package]\nrust-version = \"1.85\"\n";
        assert_eq!(
            toml_value(text, "workspace.package", "rust-version").as_deref(),
            Some("1.85")
        );
        assert_eq!(toml_value(text, "workspace", "rust-version"), None);
    }

    #[test]
    fn version_comparison_is_numeric() {
        assert!(version_newer("1.85", "1.82.0"));
        assert!(!version_newer("1.82", "1.82.0"));
        assert!(!version_newer("1.9", "1.82.0"));
        assert!(version_newer("1.100", "1.82.0"));
    }

    #[test]
    fn buildroot_version_comes_from_the_makefile() {
        assert_eq!(
            buildroot_version("# x\nexport BR2_VERSION := 2025.02.16\n").as_deref(),
            Some("2025.02.16")
        );
        assert_eq!(buildroot_version("all:\n"), None);
    }

    #[test]
    fn qemu_boards_and_arch_come_from_the_defconfig() {
        assert!(is_qemu_board("memnotify_qemu_arm_virt_noswap_defconfig"));
        assert!(is_qemu_board("memnotify_qemu_x86_64_defconfig"));
        assert!(!is_qemu_board("memnotify_beaglebone_defconfig"));
        let arm = Defconfig::parse("BR2_arm=y\nBR2_cortex_a8=y\n");
        assert_eq!(defconfig_arch(&arm), Some(crate::Arch::Arm));
        let arm64 = Defconfig::parse("BR2_aarch64=y\n");
        assert_eq!(defconfig_arch(&arm64), Some(crate::Arch::Arm64));
        assert_eq!(defconfig_arch(&Defconfig::parse("BR2_mips=y\n")), None);
    }

    #[test]
    fn kernel_base_follows_linux_mk_choices() {
        let default = Defconfig::parse("BR2_LINUX_KERNEL_USE_ARCH_DEFAULT_CONFIG=y\n");
        assert_eq!(
            kernel_base(&default),
            Ok(KernelBase::Target("defconfig".into()))
        );
        let named = Defconfig::parse("BR2_LINUX_KERNEL_DEFCONFIG=\"omap2plus\"\n");
        assert_eq!(
            kernel_base(&named),
            Ok(KernelBase::Target("omap2plus_defconfig".into()))
        );
        let custom = Defconfig::parse(
            "BR2_LINUX_KERNEL_USE_CUSTOM_CONFIG=y\n\
             BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE=\"board/qemu/x86_64/linux.config\"\n",
        );
        assert_eq!(
            kernel_base(&custom),
            Ok(KernelBase::File("board/qemu/x86_64/linux.config".into()))
        );
        assert!(kernel_base(&Defconfig::parse("BR2_LINUX_KERNEL=y\n")).is_err());
    }

    #[test]
    fn buildroot_fixups_depend_on_the_defconfig() {
        let arm = buildroot_kernel_fixups(&Defconfig::parse(
            "BR2_arm=y\nBR2_PACKAGE_MEMNOTIFY_MODULE=y\nBR2_ROOTFS_DEVICE_CREATION_DYNAMIC_MDEV=y\n",
        ))
        .join(" ");
        for wanted in [
            "-e MODULES",
            "-e AEABI",
            "-e DEVTMPFS",
            "-e NET",
            "-e KERNEL_GZIP",
            "-d KERNEL_XZ",
            "-d GCC_PLUGINS",
        ] {
            assert!(arm.contains(wanted), "{wanted} in {arm}");
        }
        let static_x86 = buildroot_kernel_fixups(&Defconfig::parse(
            "BR2_x86_64=y\nBR2_ROOTFS_DEVICE_CREATION_STATIC=y\n",
        ))
        .join(" ");
        assert!(!static_x86.contains("AEABI") && !static_x86.contains("DEVTMPFS"));
        assert!(!static_x86.contains("MODULES"));
    }

    #[test]
    fn kernel_config_needs_rust_modules_and_arm_mode() {
        let good = "CONFIG_RUST=y\nCONFIG_MODULES=y\n# CONFIG_THUMB2_KERNEL is not set\n";
        assert!(kernel_config_problems(good, crate::Arch::Arm).is_empty());
        let thumb = "CONFIG_RUST=y\nCONFIG_MODULES=y\nCONFIG_THUMB2_KERNEL=y\n";
        assert_eq!(kernel_config_problems(thumb, crate::Arch::Arm).len(), 1);
        assert_eq!(
            kernel_config_problems("CONFIG_MODULES=y\n", crate::Arch::X86_64),
            ["CONFIG_RUST=y is missing"]
        );
    }

    #[test]
    fn external_path_is_expanded_in_both_spellings() {
        let tree = Path::new("/t");
        assert_eq!(
            expand_external("$(BR2_EXTERNAL_MEMNOTIFY_PATH)/a", tree),
            PathBuf::from("/t/a")
        );
        assert_eq!(
            expand_external("$BR2_EXTERNAL_MEMNOTIFY_PATH/b", tree),
            PathBuf::from("/t/b")
        );
    }
}

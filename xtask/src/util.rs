//! Small helpers shared by the xtask commands: cache paths, input hashing, logged long-running steps.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Where expensive, reusable artefacts (unpacked kernel source, kernel builds) live:
/// outside the repository so that a fresh clone on the same machine reuses them.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MEMNOTIFY_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    base.join("memnotify")
}

/// Per-checkout build products (module, userspace, images, logs).
pub fn target_dir() -> PathBuf {
    crate::project_root().join("target")
}

/// A hash of named inputs; the name is part of the hash so that reordering matters.
#[derive(Default)]
pub struct InputHash(Sha256);

impl InputHash {
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> &mut Self {
        self.0.update((name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn add_file(&mut self, path: &Path) -> Result<&mut Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        Ok(self.add(&name, &bytes))
    }

    /// The first 16 hex digits: enough to key a handful of cache entries.
    pub fn short(&self) -> String {
        let digest = self.0.clone().finalize();
        digest
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// Files in `dir` with the given extension, sorted by name (missing dir: none).
pub fn sorted_files(dir: &Path, extension: &str) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == extension));
    files.sort();
    Ok(files)
}

/// Runs a long command with its output in `log`, printing progress (elapsed time and the
/// log's last line) every 20 seconds; on failure, shows the log's tail and its path.
pub fn run_logged(mut command: Command, log: &Path, what: &str) -> Result<()> {
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    command
        .stdout(out.try_clone()?)
        .stderr(out)
        .stdin(std::process::Stdio::null());
    let start = Instant::now();
    eprintln!("==> {what} (log: {})", log.display());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let mut last_report = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(250));
        if last_report.elapsed() >= Duration::from_secs(20) {
            last_report = Instant::now();
            let tail = tail_lines(log, 1).unwrap_or_default();
            eprintln!(
                "    {what}: {}s … {}",
                start.elapsed().as_secs(),
                tail.trim().chars().take(100).collect::<String>()
            );
        }
    };
    if !status.success() {
        eprintln!("{}", tail_lines(log, 40).unwrap_or_default());
        bail!("{what} failed ({status}); full log: {}", log.display());
    }
    eprintln!("    {what}: done in {}s", start.elapsed().as_secs());
    Ok(())
}

/// The last `count` lines of a file.
pub fn tail_lines(path: &Path, count: usize) -> Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(count)..].join("\n"))
}

/// Output of a command as a trimmed string, or an error naming it.
pub fn output_of(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The first line of an error chain, at most `width` characters: a table cell.
pub fn summary(error: &anyhow::Error, width: usize) -> String {
    format!("{error:#}")
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(width)
        .collect()
}

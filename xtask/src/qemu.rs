//! `cargo xtask run`: boot a cell's image under QEMU (TCG: KVM aborts on these machines).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::image::{self, Image};
use crate::util::target_dir;
use crate::Cell;

/// How the guest's /init behaves (see qemu/initramfs/init).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shell,
    Command,
    Script,
}

/// What to boot and how.
pub struct Boot<'a> {
    pub cell: Cell,
    pub image: &'a Image,
    pub mem: &'a str,
    pub mode: Mode,
    pub load_module: bool,
}

/// The marker /init prints with the guest command's exit status.
pub const EXIT_MARKER: &str = "memnotify-exit-status=";

/// The QEMU command line for a boot.
pub fn qemu_command(boot: &Boot<'_>) -> Result<Command> {
    let mut append = vec![
        "panic=-1".to_string(),
        "loglevel=4".to_string(),
        format!(
            "mn_mode={}",
            match boot.mode {
                Mode::Shell => "shell",
                Mode::Command => "cmd",
                Mode::Script => "script",
            }
        ),
        format!("mn_swap={}", boot.cell.swap_name()),
        format!("mn_kernel={}", boot.cell.kernel.name()),
        format!("mn_module={}", u8::from(boot.load_module)),
    ];
    let facts = boot.cell.arch.facts();
    append.insert(0, format!("console={}", facts.console));
    let mut qemu = Command::new(facts.qemu_system);
    qemu.args(facts.qemu_machine);
    qemu.args([
        "-smp",
        "2",
        "-m",
        boot.mem,
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
    ])
    .arg("-kernel")
    .arg(boot.image.kernel.image())
    .arg("-initrd")
    .arg(&boot.image.initrd)
    .arg("-append")
    .arg(append.join(" "));
    // vda: a data disk whose reads fill the page cache (the swapless full-cache case);
    // vdb: the swap disk, with swap on. Both are sparse and read-only to QEMU: with
    // snapshot=on the guest's writes go to a temporary overlay, so concurrent boots of
    // the same cell never share a swap area.
    let mut disks = vec![("data", 160u64 << 20)];
    if boot.cell.swap {
        disks.push(("swap", 128 << 20));
    }
    for (name, size) in disks {
        let disk = target_dir().join(format!("image/{}/{name}.img", boot.cell.name()));
        if std::fs::metadata(&disk).map(|meta| meta.len()).ok() != Some(size) {
            std::fs::File::create(&disk)?.set_len(size)?;
        }
        qemu.arg("-drive").arg(format!(
            "file={},if=virtio,format=raw,snapshot=on",
            disk.display()
        ));
    }
    Ok(qemu)
}

/// Boots a cell: an interactive shell without `command`, otherwise runs it and returns its
/// exit status.
pub fn run(
    cell: Cell,
    mem: Option<&str>,
    extra: Option<&Path>,
    command: &[String],
    timeout_secs: Option<u64>,
) -> Result<i32> {
    let script = (!command.is_empty()).then(|| shell_words(command));
    let image = image::build(cell, extra, script.as_deref())?;
    let boot = Boot {
        cell,
        image: &image,
        mem: mem.unwrap_or("256M"),
        mode: if script.is_some() {
            Mode::Command
        } else {
            Mode::Shell
        },
        load_module: true,
    };
    let mut qemu = qemu_command(&boot)?;
    if script.is_none() {
        eprintln!("==> booting {cell}; type 'exit' to power off (Ctrl-A X quits QEMU)");
        let status = qemu.status().context("starting QEMU")?;
        return Ok(status.code().unwrap_or(1));
    }
    eprintln!(
        "==> booting {cell} to run: {}",
        script.as_deref().unwrap_or("")
    );
    let log_path = target_dir().join(format!("logs/run-{}.log", cell.name()));
    let timeout = Duration::from_secs(timeout_secs.unwrap_or(900));
    let mut out = std::io::stdout();
    let console = capture_console(qemu, &log_path, timeout, |bytes, _| {
        out.write_all(bytes)?;
        out.flush()?;
        Ok(())
    })?;
    // The command's archive is per run (initrd-cmd-<pid>.cpio.gz).
    let _ = std::fs::remove_file(&image.initrd);
    let text = String::from_utf8_lossy(&console);
    let status = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix(EXIT_MARKER))
        .filter_map(|code| code.trim().parse::<i32>().ok())
        .next_back();
    match status {
        Some(code) => Ok(code),
        None => bail!(
            "the guest stopped without reporting the command's exit status; console log: {}",
            log_path.display()
        ),
    }
}

/// Runs `qemu` to its end with its console captured: copied to `log_path`, passed to
/// `on_output` as it comes (the bytes just read, then the whole console so far) and
/// returned. The guest is killed, and an error returned, after `timeout`.
pub fn capture_console(
    mut qemu: Command,
    log_path: &Path,
    timeout: Duration,
    mut on_output: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<Vec<u8>> {
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut log = std::fs::File::create(log_path)?;
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting QEMU")?;
    let mut stdout = child.stdout.take().context("QEMU stdout")?;
    let deadline = Instant::now() + timeout;
    // A reader thread, so that the deadline is checked while the guest is silent.
    let (sender, receiver) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || sender.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut console = Vec::new();
    loop {
        match receiver.recv_timeout(Duration::from_millis(200)) {
            Ok(bytes) => {
                log.write_all(&bytes)?;
                console.extend_from_slice(&bytes);
                on_output(&bytes, &console)?;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the guest did not finish within {} s; console log: {}",
                timeout.as_secs(),
                log_path.display()
            );
        }
    }
    child.wait()?;
    Ok(console)
}

/// Joins arguments into one shell command line, quoting those that need it.
fn shell_words(words: &[String]) -> String {
    if words.len() == 1 {
        // One argument is taken as a whole shell command: `-- 'a | b'`.
        return words[0].clone();
    }
    words
        .iter()
        .map(|word| {
            if !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+%@".contains(c))
            {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

//! The guest architectures and everything xtask knows about each, in one table.
//!
//! Every per-architecture fact (triples, Debian names, cross compilers, the kernel's boot
//! image, QEMU's machine and console) is a field of [`ArchFacts`]; the rest of xtask asks
//! `arch.facts()` instead of matching on the architecture.

use anyhow::{bail, Result};

/// A guest architecture.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    X86_64,
    Arm64,
    /// 32-bit ARMv7 (little-endian, hard-float userspace), the N9's kind of CPU.
    Arm,
}

/// What xtask needs to know about one architecture.
pub struct ArchFacts {
    /// Our name for it, on the command line and in file names.
    pub name: &'static str,
    /// Other names `--arch` accepts.
    pub aliases: &'static [&'static str],
    /// The kernel's `ARCH=`.
    pub kernel_arch: &'static str,
    /// The boot image in a kernel build tree.
    pub kernel_image: &'static str,
    /// The Rust target triple of the guest's userspace.
    pub rust_target: &'static str,
    /// Whether std is built from `rust-web-src` (`-Zbuild-std`) rather than taken packaged:
    /// for armhf Debian's packaged std may be older than the compiler (bookworm's is 1.85).
    pub builds_std_from_source: bool,
    /// Debian's name of the architecture.
    pub deb_arch: &'static str,
    /// Debian's multiarch triple (`/usr/lib/<triple>`).
    pub multiarch: &'static str,
    /// Where the host keeps this architecture's shared libraries (native, multiarch or cross).
    pub library_dirs: &'static [&'static str],
    /// The C compiler for this architecture's programs (the cross gcc, or the host's).
    pub c_compiler: &'static str,
    /// Whether the host itself runs this architecture (no cross linker, the host's busybox).
    pub native: bool,
    /// The QEMU system emulator.
    pub qemu_system: &'static str,
    /// QEMU's machine and CPU arguments.
    pub qemu_machine: &'static [&'static str],
    /// The kernel's serial console.
    pub console: &'static str,
    /// Whether the debug kernel (KASAN) exists here: Rust on 32-bit ARM excludes KASAN.
    pub debug_kernel: bool,
}

const X86_64: ArchFacts = ArchFacts {
    name: "x86_64",
    aliases: &["x86-64", "amd64"],
    kernel_arch: "x86_64",
    kernel_image: "arch/x86/boot/bzImage",
    rust_target: "x86_64-unknown-linux-gnu",
    builds_std_from_source: false,
    deb_arch: "amd64",
    multiarch: "x86_64-linux-gnu",
    library_dirs: &[
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib64",
    ],
    c_compiler: "gcc",
    native: true,
    qemu_system: "qemu-system-x86_64",
    qemu_machine: &["-accel", "tcg", "-cpu", "max"],
    console: "ttyS0",
    debug_kernel: true,
};

const ARM64: ArchFacts = ArchFacts {
    name: "arm64",
    aliases: &["aarch64"],
    kernel_arch: "arm64",
    kernel_image: "arch/arm64/boot/Image",
    rust_target: "aarch64-unknown-linux-gnu",
    builds_std_from_source: false,
    deb_arch: "arm64",
    multiarch: "aarch64-linux-gnu",
    library_dirs: &[
        "/lib/aarch64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/aarch64-linux-gnu/lib",
    ],
    c_compiler: "aarch64-linux-gnu-gcc",
    native: false,
    qemu_system: "qemu-system-aarch64",
    qemu_machine: &["-M", "virt", "-cpu", "cortex-a57"],
    console: "ttyAMA0",
    debug_kernel: true,
};

const ARM: ArchFacts = ArchFacts {
    name: "arm",
    aliases: &["armv7", "armhf"],
    kernel_arch: "arm",
    kernel_image: "arch/arm/boot/zImage",
    rust_target: "armv7-unknown-linux-gnueabihf",
    builds_std_from_source: true,
    deb_arch: "armhf",
    multiarch: "arm-linux-gnueabihf",
    library_dirs: &[
        "/lib/arm-linux-gnueabihf",
        "/usr/lib/arm-linux-gnueabihf",
        "/usr/arm-linux-gnueabihf/lib",
    ],
    c_compiler: "arm-linux-gnueabihf-gcc",
    native: false,
    qemu_system: "qemu-system-arm",
    // highmem=off: a 32-bit kernel without LPAE cannot reach the PCI window QEMU places
    // above 4 GiB.
    qemu_machine: &["-M", "virt,highmem=off", "-cpu", "cortex-a15"],
    console: "ttyAMA0",
    debug_kernel: false,
};

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::X86_64, Arch::Arm64, Arch::Arm];

    /// This architecture's row of the table.
    pub fn facts(self) -> &'static ArchFacts {
        match self {
            Arch::X86_64 => &X86_64,
            Arch::Arm64 => &ARM64,
            Arch::Arm => &ARM,
        }
    }

    pub fn name(self) -> &'static str {
        self.facts().name
    }

    pub fn parse(text: &str) -> Result<Arch> {
        match Arch::ALL.into_iter().find(|arch| {
            let facts = arch.facts();
            facts.name == text || facts.aliases.contains(&text)
        }) {
            Some(arch) => Ok(arch),
            None => bail!("unknown arch '{text}': use x86_64, arm64 or arm"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_parse_back() {
        for arch in Arch::ALL {
            assert_eq!(Arch::parse(arch.name()).unwrap(), arch);
            for alias in arch.facts().aliases {
                assert_eq!(Arch::parse(alias).unwrap(), arch);
            }
        }
        assert!(Arch::parse("riscv64").is_err());
    }
}

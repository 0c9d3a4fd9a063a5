# nooelint: oelint.bbclass.underscores
# Named like the oe-core class it backports, so that oe-core's own class replaces it on newer
# releases (oe-core's classes come first in BBPATH).
#
# Backport to whinlatter of oe-core's kernel-yocto-rust class (added after 5.3): Rust support in a
# linux-yocto kernel. This layer's linux-yocto append inherits it when KERNEL_FEATURES contains
# "rust", as newer kernel-yocto.bbclass does. Delete it on releases after whinlatter.

inherit kernel_rust_toolchain

# Newer kernel-yocto maps the "rust" feature to features/kernel-rust/kernel-rust.scc of
# yocto-kernel-cache; whinlatter's would look for a file named "rust" and fail. CONFIG_RUST comes
# from the recipe's fragments instead (memnotify.config for memnotify).
KERNEL_FEATURES:remove = "rust"

do_kernel_configme[depends] += "${RUST_KERNEL_TASK_DEPENDS}"

# Fail early, with the kernel's own diagnosis, when rustc, bindgen, libclang or the Rust library
# sources are missing or too old: otherwise kconfig silently drops CONFIG_RUST.
do_kernel_configme:append() {
    oe_runmake -C ${S} O=${B} rustavailable
}

# nooelint: oelint.bbclass.underscores
# Named like the oe-core class it backports, so that oe-core's own class replaces it on newer
# releases (oe-core's classes come first in BBPATH).
#
# Backport to whinlatter of oe-core's module-rust class (added after 5.3): an out-of-tree kernel
# module written in Rust, built with the kernel's Rust toolchain. Delete it on releases after
# whinlatter.

inherit module

# A module build needs rustc only: bindgen ran when the kernel and make-mod-scripts were built.
RUST_KERNEL_DEPENDS = "rust-native"
inherit kernel_rust_toolchain

RUST_DEBUG_REMAP = "--remap-path-prefix=${S}=${TARGET_DBGSRC_DIR} --remap-path-prefix=${TMPDIR}/work-shared=${TARGET_DBGSRC_DIR}"

# As in oe-core: a Rust module needs a Rust kernel, which KERNEL_FEATURES asks for.
# nooelint: oelint.task.noanonpython
python __anonymous() {
    if not bb.utils.contains('KERNEL_FEATURES', 'rust', True, False, d):
        raise bb.parse.SkipRecipe("%s is a Rust kernel module: add KERNEL_FEATURES:append = \" rust\" to local.conf" % d.getVar('PN'))
}

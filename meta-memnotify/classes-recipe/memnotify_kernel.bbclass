# What memnotify needs in linux-yocto 6.18, taken from the memnotify repository itself, so that
# the Yocto kernel, the xtask QEMU kernels and the Buildroot kernel use the same files:
#   qemu/configs/memnotify.config                  Rust, modules, PSI, ... (no Yocto copy of it)
#   qemu/configs/swap-on.config, swap-off.config   the swap choice (MEMNOTIFY_SWAP)
#   kernel-module/patches/6.12/0001-*.patch        the export of si_swapinfo (6.18 has Rust on
#                                                  ARMv7 itself: 0002, its 6.12 backport, is not used)
#   qemu/check-kconfig.sh                          the check that Kconfig kept every option
# The layer's linux-yocto append inherits this class when DISTRO_FEATURES contains "memnotify".

# oelint-adv reads this class as part of the linux-yocto append and wants its changes to a core
# recipe behind a MACHINE or DISTRO override; the append inherits the class only when
# DISTRO_FEATURES contains "memnotify", a condition the rule cannot see (so for every item below).
# "on": CONFIG_SWAP=y (the swap figures are live); "off": a swapless kernel, like most phones.
# nooelint: oelint.vars.noncoreoverride
MEMNOTIFY_SWAP ??= "on"

# In this class rather than in the append, which inherits the class only when the memnotify distro
# feature is on: adding the layer alone must change no kernel. oelint-adv reads this line as if it
# were in the append, and the append must use FILESEXTRAPATHS with THISDIR; the files are in the
# repository around the layer, which only MEMNOTIFY_SRCDIR names.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.noncoreoverride
FILESEXTRAPATHS:prepend := "${MEMNOTIFY_LAYERDIR}/recipes-kernel/linux/linux-yocto:${MEMNOTIFY_SRCDIR}/qemu/configs:${MEMNOTIFY_SRCDIR}/kernel-module/patches/6.12:"

# kernel-yocto only takes fragments named *.cfg from SRC_URI, so a small .scc of this layer names
# the repository's *.config files, which are fetched next to it (noncoreoverride: above).
# nooelint: oelint.vars.noncoreoverride
SRC_URI += "\
    file://memnotify-swap-${MEMNOTIFY_SWAP}.scc \
    file://memnotify.config \
    file://swap-${MEMNOTIFY_SWAP}.config \
    file://0001-mm-export-si_swapinfo-for-the-memnotify-module.patch \
"

# The fragments whose every line must hold in the final .config (see do_memnotify_configcheck).
# nooelint: oelint.vars.noncoreoverride
MEMNOTIFY_KERNEL_FRAGMENTS = "memnotify.config swap-${MEMNOTIFY_SWAP}.config"

# MEMNOTIFY_SWAP must be "on" or "off" (noanonpython: a parse-time check cannot be a task;
# noncoreoverride: above).
# nooelint: oelint.task.noanonpython,oelint.vars.noncoreoverride
python __anonymous() {
    swap = d.getVar('MEMNOTIFY_SWAP')
    if swap not in ('on', 'off'):
        bb.fatal("MEMNOTIFY_SWAP must be \"on\" or \"off\", not \"%s\"" % swap)
}

# memnotify cannot work on a kernel where Kconfig silently dropped one of its options (CONFIG_RUST
# disappears when the Rust toolchain is incomplete): the repository's qemu/check-kconfig.sh, the
# same check xtask and Buildroot run, fails here with the offending lines (noncoreoverride: above).
# nooelint: oelint.vars.noncoreoverride
do_memnotify_configcheck() {
    fragments=""
    for fragment in ${MEMNOTIFY_KERNEL_FRAGMENTS}; do
        fragments="$fragments ${UNPACKDIR}/$fragment"
    done
    if ! sh ${MEMNOTIFY_SRCDIR}/qemu/check-kconfig.sh ${B}/.config $fragments; then
        bbfatal "the kernel configuration lost options memnotify needs (above)"
    fi
}
do_memnotify_configcheck[doc] = "Fails when the final kernel .config lost an option of memnotify's fragments"
do_memnotify_configcheck[file-checksums] += "${MEMNOTIFY_SRCDIR}/qemu/check-kconfig.sh:True"
addtask memnotify_configcheck after do_configure before do_compile

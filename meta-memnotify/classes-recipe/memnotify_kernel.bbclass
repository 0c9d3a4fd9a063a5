# What memnotify needs in linux-yocto 6.12, taken from the memnotify repository itself, so that
# the Yocto kernel, the xtask QEMU kernels and the Buildroot kernel use the same files:
#   qemu/configs/memnotify.config                  Rust, modules, PSI, ... (no Yocto copy of it)
#   qemu/configs/swap-on.config, swap-off.config   the swap choice (MEMNOTIFY_SWAP)
#   kernel-module/patches/*.patch                  applied in name order, as xtask does
# The layer's linux-yocto append inherits this class when DISTRO_FEATURES contains "memnotify".

# "on": CONFIG_SWAP=y (the swap figures are live); "off": a swapless kernel, like most phones.
MEMNOTIFY_SWAP ??= "on"

# In this class rather than in the append, which inherits the class only when the memnotify distro
# feature is on: adding the layer alone must change no kernel.
# nooelint: oelint.vars.fileextrapaths
FILESEXTRAPATHS:prepend := "${MEMNOTIFY_LAYERDIR}/recipes-kernel/linux/linux-yocto:${MEMNOTIFY_SRCDIR}/qemu/configs:${MEMNOTIFY_SRCDIR}/kernel-module/patches:"

# kernel-yocto only takes fragments named *.cfg from SRC_URI, so a small .scc of this layer names
# the repository's *.config files, which are fetched next to it.
SRC_URI += "\
    file://memnotify-swap-${MEMNOTIFY_SWAP}.scc \
    file://memnotify.config \
    file://swap-${MEMNOTIFY_SWAP}.config \
"

# The fragments whose every line must hold in the final .config (see do_memnotify_configcheck).
MEMNOTIFY_KERNEL_FRAGMENTS = "memnotify.config swap-${MEMNOTIFY_SWAP}.config"

# Checks MEMNOTIFY_SWAP and adds every patch of kernel-module/patches, in name order: the list is
# read from the repository, so that a new patch needs no change here, and the directory is marked
# as a parse dependency, so that adding or removing a patch re-parses the kernel recipe.
# nooelint: oelint.task.noanonpython
python __anonymous() {
    swap = d.getVar('MEMNOTIFY_SWAP')
    if swap not in ('on', 'off'):
        bb.fatal("MEMNOTIFY_SWAP must be \"on\" or \"off\", not \"%s\"" % swap)

    patchdir = d.expand('${MEMNOTIFY_SRCDIR}/kernel-module/patches')
    bb.parse.mark_dependency(d, patchdir)
    if not os.path.isdir(patchdir):
        bb.fatal("%s does not exist: is MEMNOTIFY_SRCDIR the memnotify repository?" % patchdir)
    patches = sorted(name for name in os.listdir(patchdir) if name.endswith('.patch'))
    d.appendVar('SRC_URI', ''.join(' file://%s' % name for name in patches))
}

# memnotify cannot work on a kernel where kconfig silently dropped one of its options (CONFIG_RUST
# disappears when the Rust toolchain is incomplete, MODVERSIONS may come back from a feature):
# fail here with the offending lines instead of at module build or load time.
do_memnotify_configcheck() {
    lost=""
    for fragment in ${MEMNOTIFY_KERNEL_FRAGMENTS}; do
        while read -r line; do
            case "$line" in
            CONFIG_*=*)
                option=${line%%=*}
                grep -qxF "$line" ${B}/.config && continue
                ;;
            "# CONFIG_"*" is not set")
                option=${line#\# }
                option=${option%% *}
                grep -q "^$option=" ${B}/.config || continue
                ;;
            *)
                continue
                ;;
            esac
            actual=$(grep "^$option=" ${B}/.config || echo "# $option is not set")
            lost="$lost
    $fragment wants '$line', the kernel has '$actual'"
        done < ${UNPACKDIR}/$fragment
    done
    # 32-bit ARM: the Rust code is ARM-mode (arm-unknown-linux-gnueabi), and the patch that enables
    # Rust there (kernel-module/patches) offers HAVE_RUST only to ARM-mode kernels. Say so, rather
    # than only that CONFIG_RUST is gone, when a machine's kernel configuration asks for Thumb-2.
    if grep -qx 'CONFIG_THUMB2_KERNEL=y' ${B}/.config; then
        lost="$lost
    CONFIG_THUMB2_KERNEL=y: Rust on 32-bit ARM needs an ARM-mode kernel; add a fragment with
    '# CONFIG_THUMB2_KERNEL is not set' to this machine's kernel (see meta-memnotify/README.md)"
    fi
    if [ -n "$lost" ]; then
        bbfatal "the kernel configuration lost options memnotify needs:$lost"
    fi
}
do_memnotify_configcheck[doc] = "Fails when the final kernel .config lost an option of memnotify's fragments"
addtask memnotify_configcheck after do_configure before do_compile

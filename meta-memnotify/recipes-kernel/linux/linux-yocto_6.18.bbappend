# memnotify's fragments and patch, only when the distro asks for memnotify, so that adding the
# layer alone changes no kernel. Rust itself is oe-core's: KERNEL_FEATURES += "rust" makes
# kernel-yocto.bbclass inherit kernel-yocto-rust (conf/fragments/enable.conf sets it).
inherit_defer ${@bb.utils.contains('DISTRO_FEATURES', 'memnotify', 'memnotify_kernel', '', d)}

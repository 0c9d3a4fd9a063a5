# Rust in the kernel: newer oe-core's kernel-yocto.bbclass inherits kernel-yocto-rust when
# KERNEL_FEATURES contains "rust"; whinlatter's does not, so this append does (the class is a
# backport in this layer's classes-recipe/).
inherit_defer ${@bb.utils.contains('KERNEL_FEATURES', 'rust', 'kernel-yocto-rust', '', d)}

# memnotify's fragments and patches, only when the distro asks for memnotify, so that adding the
# layer alone changes no kernel.
inherit_defer ${@bb.utils.contains('DISTRO_FEATURES', 'memnotify', 'memnotify_kernel', '', d)}

# Every change this append makes comes from a class it inherits only under the condition above.
# oelint-adv's noncoreoverride rule cannot evaluate such a condition and flags every line of the
# class; "cargo xtask yocto-check" suppresses that one rule and checks instead that each append of
# this layer is made of conditional inherits only.

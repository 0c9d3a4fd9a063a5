# Newer oe-core installs rust-native's library sources, which the kernel's Rust build needs
# (RUST_LIB_SRC); whinlatter does not. Only when the kernel has Rust, so that adding this layer
# alone does not rebuild rust-native. Delete on releases after whinlatter.
inherit_defer ${@bb.utils.contains('KERNEL_FEATURES', 'rust', 'rust_library_sources', '', d)}

# Every change this append makes comes from a class it inherits only under the condition above.
# oelint-adv's noncoreoverride rule cannot evaluate such a condition and flags every line of the
# class; "cargo xtask yocto-check" suppresses that one rule and checks instead that each append of
# this layer is made of conditional inherits only.

# make-mod-scripts runs the kernel's "make prepare" for out-of-tree modules; with CONFIG_RUST that
# builds the kernel's Rust crates too, so it needs the kernel's Rust toolchain (whinlatter only;
# newer oe-core handles it in the recipe).
inherit_defer ${@bb.utils.contains('KERNEL_FEATURES', 'rust', 'make_mod_scripts_rust', '', d)}

# Every change this append makes comes from a class it inherits only under the condition above.
# oelint-adv's noncoreoverride rule cannot evaluate such a condition and flags every line of the
# class; "cargo xtask yocto-check" suppresses that one rule and checks instead that each append of
# this layer is made of conditional inherits only.

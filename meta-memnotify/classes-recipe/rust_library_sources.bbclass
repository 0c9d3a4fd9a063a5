# rust-native with its library sources (core, alloc, ...) at ${libdir}/rustlib/src/rust/library,
# where the kernel's "make rustavailable" and its Rust build look for them by default. Newer
# oe-core's rust recipe does this itself; on whinlatter this layer's rust append inherits this
# class when KERNEL_FEATURES contains "rust". Delete it on releases after whinlatter.

rust_do_install:append:class-native() {
    install -d ${D}${libdir}/rustlib/src/rust
    cp -R --no-preserve=ownership ${S}/library ${D}${libdir}/rustlib/src/rust/
    # Test and CI scripts only: the kernel compiles core from the .rs files.
    find ${D}${libdir}/rustlib/src/rust/library -name '*.sh' -type f -delete
}

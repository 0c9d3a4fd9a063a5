# make-mod-scripts with a Rust kernel on whinlatter (newer oe-core changed the recipe itself):
# its "make prepare" builds the kernel's Rust crates for out-of-tree modules, so it needs the
# kernel's Rust toolchain. Inherited by this layer's make-mod-scripts append when KERNEL_FEATURES
# contains "rust".

# Appends RUSTC, BINDGEN, RUST_LIB_SRC and KRUSTFLAGS to EXTRA_OEMAKE.
inherit kernel_rust_toolchain

# whinlatter passes the host compiler flags inside HOSTCC; the kernel hands HOSTCC to rustc as its
# linker, which then rejects the flags ("Unrecognized option"). Pass them separately, as the
# kernel recipe and newer make-mod-scripts do.
EXTRA_OEMAKE = "HOSTCC='${BUILD_CC}' HOSTCFLAGS='${BUILD_CFLAGS}' HOSTLDFLAGS='${BUILD_LDFLAGS}' HOSTCPP='${BUILD_CPP}'"
EXTRA_OEMAKE += "HOSTCXX='${BUILD_CXX} ${BUILD_CXXFLAGS} ${BUILD_LDFLAGS}' CROSS_COMPILE=${TARGET_PREFIX}"

# The Rust toolchain of a kernel build on whinlatter, shared by this layer's backports of
# kernel-yocto-rust and module-rust and by its make-mod-scripts change: rustc and its library
# sources from rust-native (see rust_library_sources.bbclass), bindgen from bindgen-cli-native and
# libclang from clang-native, all passed to the kernel's make explicitly.

RUST_KERNEL_DEPENDS ?= "clang-native rust-native bindgen-cli-native"
DEPENDS += "${RUST_KERNEL_DEPENDS}"
# Tasks that run the kernel's make before do_configure (do_kernel_configme) must depend on the
# tools directly: that is what stages them into the recipe's native sysroot for that task.
RUST_KERNEL_TASK_DEPENDS ?= "${@' '.join('%s:do_populate_sysroot' % dep for dep in d.getVar('RUST_KERNEL_DEPENDS').split())}"

KERNEL_RUSTC ?= "${STAGING_BINDIR_NATIVE}/rustc"
KERNEL_BINDGEN ?= "${STAGING_BINDIR_NATIVE}/bindgen"
# Exported too: merge_config.sh and kconfig's rust_is_available.sh see the environment, not the
# make command line.
export RUST_LIB_SRC = "${STAGING_LIBDIR_NATIVE}/rustlib/src/rust/library"
EXTRA_OEMAKE:append = " RUSTC=${KERNEL_RUSTC} HOSTRUSTC=${KERNEL_RUSTC} BINDGEN=${KERNEL_BINDGEN} RUST_LIB_SRC=${RUST_LIB_SRC}"

# rustc records source paths (panic locations, debug info): map the build directories away so the
# buildpaths QA check passes and builds are reproducible.
RUST_DEBUG_REMAP ?= "--remap-path-prefix=${WORKDIR}=${TARGET_DBGSRC_DIR} --remap-path-prefix=${TMPDIR}/work-shared=${TARGET_DBGSRC_DIR}"
KRUSTFLAGS = "${RUST_DEBUG_REMAP}"
EXTRA_OEMAKE:append = " KRUSTFLAGS='${KRUSTFLAGS}'"

# The kernel passes HOSTCC to rustc as its linker, which must be a path, not "ccache gcc"
# (https://github.com/Rust-for-Linux/linux/issues/1224).
CCACHE_DISABLE ?= "1"

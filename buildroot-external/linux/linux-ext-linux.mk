################################################################################
#
# linux-ext-linux: Rust support for the Linux kernel build (memnotify)
#
################################################################################

# Buildroot 2026.02 cannot build Rust code in the kernel on its own. This
# file is not a "linux extension" in the LINUX_EXTENSIONS sense (it patches
# nothing into the kernel): it is placed here because linux/linux.mk
# includes br2-external linux/linux-ext-*.mk files *before* it evaluates
# the kernel package. It only adds to the linux package's variables, so it
# is named after that package, and check-package checks it as part of it
# (every variable prefixed LINUX_). Dependencies added here therefore become real
# prerequisites of the kernel's kconfig and build steps, which they would
# not be from external.mk (included after the kernel's rules are made).

ifeq ($(BR2_MEMNOTIFY_LINUX_RUST),y)

# The repository this br2-external tree lives in.
LINUX_MEMNOTIFY_RUST_REPOSITORY = $(BR2_EXTERNAL_MEMNOTIFY_PATH)/..

LINUX_MEMNOTIFY_RUST_HOST_TOOLS = \
	host-rustc \
	host-rust-bindgen \
	host-memnotify-rust-src

# Kconfig runs scripts/rust_is_available.sh to decide whether CONFIG_RUST
# can be offered, so the tools must exist before the kernel is configured,
# not only before it is built.
LINUX_KCONFIG_DEPENDENCIES += $(LINUX_MEMNOTIFY_RUST_HOST_TOOLS)
LINUX_DEPENDENCIES += $(LINUX_MEMNOTIFY_RUST_HOST_TOOLS)

# The kernel is built with Buildroot's GCC cross-toolchain; only the Rust
# parts use rustc, and bindgen reads the C headers through libclang from
# host-clang. LINUX_MAKE_FLAGS is used by every kernel make call,
# including kconfig and out-of-tree module builds (kernel-module infra).
LINUX_MAKE_FLAGS += \
	RUSTC=$(HOST_DIR)/bin/rustc \
	HOSTRUSTC=$(HOST_DIR)/bin/rustc \
	BINDGEN=$(HOST_DIR)/bin/bindgen \
	RUST_LIB_SRC=$(HOST_DIR)/lib/rustlib/src/rust/library

# bindgen loads libclang at run time.
LINUX_MAKE_ENV += LIBCLANG_PATH=$(HOST_DIR)/lib

# olddefconfig silently drops CONFIG_RUST when rustc, bindgen or the
# library source are unusable: fail here, naming the option, rather than
# later when the module does not build.
LINUX_MEMNOTIFY_RUST_KERNEL_FRAGMENTS = \
	$(filter $(LINUX_MEMNOTIFY_RUST_REPOSITORY)/qemu/configs/%,$(LINUX_KCONFIG_FRAGMENT_FILES))

# On failure, the kernel's own "rustavailable" target says what is wrong
# with the Rust tools.
define LINUX_MEMNOTIFY_RUST_CHECK_KERNEL_CONFIG
	$(Q)$(LINUX_MEMNOTIFY_RUST_REPOSITORY)/qemu/check-kconfig.sh \
		$(LINUX_DIR)/.config $(LINUX_MEMNOTIFY_RUST_KERNEL_FRAGMENTS) || { \
		$(LINUX_MAKE_ENV) $(BR2_MAKE) $(LINUX_MAKE_FLAGS) \
			-C $(LINUX_DIR) rustavailable; \
		exit 1; }
endef
LINUX_POST_CONFIGURE_HOOKS += LINUX_MEMNOTIFY_RUST_CHECK_KERNEL_CONFIG

endif

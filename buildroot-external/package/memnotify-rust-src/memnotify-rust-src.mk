################################################################################
#
# memnotify-rust-src
#
################################################################################

# The Rust core library source ("rust-src" component) that the kernel
# compiles itself against (RUST_LIB_SRC). Buildroot's host-rust-bin only
# installs rustc, cargo and rust-std, so this fills the gap. It must be
# the exact version of host-rustc: see the check below.
MEMNOTIFY_RUST_SRC_VERSION = 1.82.0
MEMNOTIFY_RUST_SRC_SITE = https://static.rust-lang.org/dist
MEMNOTIFY_RUST_SRC_SOURCE = rust-src-$(MEMNOTIFY_RUST_SRC_VERSION).tar.xz
MEMNOTIFY_RUST_SRC_LICENSE = Apache-2.0 or MIT
MEMNOTIFY_RUST_SRC_LICENSE_FILES = LICENSE-APACHE LICENSE-MIT

# rustc refuses a core library of another version, and the kernel build
# would only say so deep inside rust/; stop early instead.
ifeq ($(BR_BUILDING)$(BR2_MEMNOTIFY_LINUX_RUST),yy)
MEMNOTIFY_RUST_SRC_RUSTC_VERSION = \
	$(if $(BR2_PACKAGE_HOST_RUST),$(RUST_VERSION),$(RUST_BIN_VERSION))
ifneq ($(MEMNOTIFY_RUST_SRC_RUSTC_VERSION),$(MEMNOTIFY_RUST_SRC_VERSION))
$(error memnotify-rust-src is $(MEMNOTIFY_RUST_SRC_VERSION) but host-rustc is $(MEMNOTIFY_RUST_SRC_RUSTC_VERSION): update MEMNOTIFY_RUST_SRC_VERSION and its hash)
endif
endif

# install.sh puts the sources under lib/rustlib/src/rust/library, where
# rustc --print sysroot expects them.
define HOST_MEMNOTIFY_RUST_SRC_INSTALL_CMDS
	cd $(@D) && ./install.sh \
		--prefix=$(HOST_DIR) \
		--components=rust-src \
		--disable-ldconfig
endef

$(eval $(host-generic-package))

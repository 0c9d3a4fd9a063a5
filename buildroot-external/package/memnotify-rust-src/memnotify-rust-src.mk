################################################################################
#
# memnotify-rust-src
#
################################################################################

# The Rust core library source that the kernel compiles itself against
# (RUST_LIB_SRC). Buildroot's host-rust-bin only installs rustc, cargo and
# rust-std, so this fills the gap with the library/ directory of the
# rustc source tarball Buildroot's own host-rust builds from (the same
# file and checksum as package/rust/rust.hash). It must be the exact
# version of host-rustc: see the check below.
MEMNOTIFY_RUST_SRC_VERSION = 1.88.0
MEMNOTIFY_RUST_SRC_SITE = https://static.rust-lang.org/dist
MEMNOTIFY_RUST_SRC_SOURCE = rustc-$(MEMNOTIFY_RUST_SRC_VERSION)-src.tar.xz
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

# Only the library and the license texts of the whole compiler source.
define HOST_MEMNOTIFY_RUST_SRC_EXTRACT_CMDS
	$(call suitable-extractor,$(MEMNOTIFY_RUST_SRC_SOURCE)) \
		$(HOST_MEMNOTIFY_RUST_SRC_DL_DIR)/$(MEMNOTIFY_RUST_SRC_SOURCE) | \
		$(TAR) --strip-components=1 -C $(@D) $(TAR_OPTIONS) - \
			rustc-$(MEMNOTIFY_RUST_SRC_VERSION)-src/library \
			rustc-$(MEMNOTIFY_RUST_SRC_VERSION)-src/LICENSE-APACHE \
			rustc-$(MEMNOTIFY_RUST_SRC_VERSION)-src/LICENSE-MIT
endef

# Where rustc --print sysroot expects the library sources.
define HOST_MEMNOTIFY_RUST_SRC_INSTALL_CMDS
	mkdir -p $(HOST_DIR)/lib/rustlib/src/rust
	rm -rf $(HOST_DIR)/lib/rustlib/src/rust/library
	cp -a $(@D)/library $(HOST_DIR)/lib/rustlib/src/rust/library
endef

$(eval $(host-generic-package))

################################################################################
#
# memnotifyd
#
################################################################################

# The userspace crates live in the memnotify repository, the parent of
# this br2-external tree, and are built from the working copy (see
# memnotify-module.mk for switching to a git release).
MEMNOTIFYD_SITE = $(BR2_EXTERNAL_MEMNOTIFY_PATH)/..
MEMNOTIFYD_SITE_METHOD = local
MEMNOTIFYD_LICENSE = GPL-2.0
# Cargo build output of the working copy is not source.
MEMNOTIFYD_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude=/target

MEMNOTIFYD_CRATES = memnotify memnotifyd memhog
MEMNOTIFYD_BINARIES = memnotify mn_test memnotifyd memhog
MEMNOTIFYD_DIST = userspace/memnotifyd/dist

# Vendoring. Buildroot vendors a cargo package's dependencies when it
# downloads the package's tarball (support/download/cargo-post-process);
# a local site is never downloaded, so nothing would be vendored and
# "cargo build --offline --locked" would fail. This package does the
# same work itself: "cargo vendor --locked" of the repository's workspace
# into a tarball in DL_DIR, named after the Cargo.lock it was made from.
# It happens in "make memnotifyd-source" (so in "make source", the usual
# step before an offline build), or at configure time if it was skipped.
# The crates are checked against the Cargo.lock checksums by cargo itself.
MEMNOTIFYD_VENDOR_LOCK = $(MEMNOTIFYD_SITE)/Cargo.lock
MEMNOTIFYD_VENDOR_ID = \
	$(firstword $(shell sha256sum $(MEMNOTIFYD_VENDOR_LOCK) 2>/dev/null | cut -c1-16))
MEMNOTIFYD_VENDOR_TARBALL = \
	$(DL_DIR)/memnotifyd/memnotifyd-vendor-$(MEMNOTIFYD_VENDOR_ID).tar.gz

# Uses host-rustc's cargo and Buildroot's shared cargo home, like
# cargo-post-process does.
define MEMNOTIFYD_VENDOR_FETCH
	$(Q)if [ ! -f $(MEMNOTIFYD_VENDOR_TARBALL) ]; then \
		set -e; \
		tmp=$$(mktemp -d $(DL_DIR)/memnotifyd-vendor.XXXXXX); \
		trap 'rm -rf "$${tmp}"' EXIT; \
		mkdir -p $(BR_CARGO_HOME) $(dir $(MEMNOTIFYD_VENDOR_TARBALL)); \
		cd $(MEMNOTIFYD_SITE); \
		$(HOST_MAKE_ENV) CARGO_HOME=$(BR_CARGO_HOME) \
			flock $(BR_CARGO_HOME)/.br-lock \
			cargo vendor --quiet --locked --manifest-path Cargo.toml \
				$${tmp}/VENDOR > /dev/null; \
		$(TAR) -C $${tmp} --sort=name --mtime=@0 --owner=0 --group=0 \
			--numeric-owner -cf $${tmp}/vendor.tar VENDOR; \
		gzip -n $${tmp}/vendor.tar; \
		mv $${tmp}/vendor.tar.gz $(MEMNOTIFYD_VENDOR_TARBALL); \
	fi
endef

memnotifyd-vendor: host-rustc
	@$(call MESSAGE,"Vendoring the memnotify workspace crates")
	$(MEMNOTIFYD_VENDOR_FETCH)

memnotifyd-source memnotifyd-all-source: memnotifyd-vendor
.PHONY: memnotifyd-vendor

define MEMNOTIFYD_VENDOR_UNPACK
	$(MEMNOTIFYD_VENDOR_FETCH)
	rm -rf $(@D)/VENDOR
	$(TAR) -C $(@D) -xzf $(MEMNOTIFYD_VENDOR_TARBALL)
endef
MEMNOTIFYD_PRE_CONFIGURE_HOOKS += MEMNOTIFYD_VENDOR_UNPACK

# Use the vendored crates instead of crates.io, without touching the
# repository's own .cargo/config.toml.
MEMNOTIFYD_CARGO_CONFIG = \
	--config 'source.crates-io.replace-with="memnotifyd-vendor"' \
	--config 'source.memnotifyd-vendor.directory="$(@D)/VENDOR"'

MEMNOTIFYD_CARGO_BUILD_OPTS = \
	$(MEMNOTIFYD_CARGO_CONFIG) \
	$(addprefix -p ,$(MEMNOTIFYD_CRATES)) \
	--bins

ifeq ($(BR2_PACKAGE_MEMNOTIFYD_DBUS),y)
# zbus speaks the D-Bus protocol itself: dbus is needed at run time only.
MEMNOTIFYD_DEPENDENCIES += dbus
MEMNOTIFYD_CARGO_BUILD_OPTS += --features memnotifyd/dbus
define MEMNOTIFYD_INSTALL_DBUS_POLICY
	$(INSTALL) -D -m 0644 $(@D)/userspace/memnotifyd/dbus/memnotifyd.conf \
		$(TARGET_DIR)/usr/share/dbus-1/system.d/memnotifyd.conf
endef
MEMNOTIFYD_POST_INSTALL_TARGET_HOOKS += MEMNOTIFYD_INSTALL_DBUS_POLICY
define MEMNOTIFYD_INSTALL_DBUS_SYSTEMD_DROPIN
	$(INSTALL) -D -m 0644 $(@D)/userspace/memnotifyd/dbus/dbus.conf \
		$(TARGET_DIR)/usr/lib/systemd/system/memnotifyd.service.d/dbus.conf
endef
endif

MEMNOTIFYD_PROFILE_DIR = $(if $(BR2_ENABLE_DEBUG),debug,release)

# The default cargo install step wants one crate at the top; this is a
# workspace of several, already built: install the binaries as they are.
define MEMNOTIFYD_INSTALL_TARGET_CMDS
	$(foreach bin,$(MEMNOTIFYD_BINARIES),\
		$(INSTALL) -D -m 0755 \
			$(@D)/target/$(RUSTC_TARGET_NAME)/$(MEMNOTIFYD_PROFILE_DIR)/$(bin) \
			$(TARGET_DIR)/usr/bin/$(bin)$(sep))
	$(INSTALL) -D -m 0644 $(@D)/$(MEMNOTIFYD_DIST)/memnotifyd.yaml \
		$(TARGET_DIR)/etc/memnotify/memnotifyd.yaml
endef

define MEMNOTIFYD_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/$(MEMNOTIFYD_DIST)/memnotifyd.init \
		$(TARGET_DIR)/etc/init.d/S60memnotifyd
endef

define MEMNOTIFYD_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/$(MEMNOTIFYD_DIST)/memnotifyd.service \
		$(TARGET_DIR)/usr/lib/systemd/system/memnotifyd.service
	$(MEMNOTIFYD_INSTALL_DBUS_SYSTEMD_DROPIN)
endef

$(eval $(cargo-package))

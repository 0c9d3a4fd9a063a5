################################################################################
#
# memnotify-module
#
################################################################################

# The module includes ../userspace/memnotify-proto/src, so the whole
# memnotify repository (the parent of this br2-external tree) is the
# source, built from the working copy. A product would rather pin a
# release: MEMNOTIFY_MODULE_SITE = <git URL>, _SITE_METHOD = git,
# _VERSION = <tag or commit> (plus a .hash file for the tarball).
MEMNOTIFY_MODULE_SITE = $(BR2_EXTERNAL_MEMNOTIFY_PATH)/..
MEMNOTIFY_MODULE_SITE_METHOD = local
MEMNOTIFY_MODULE_LICENSE = GPL-2.0
# Cargo build output of the working copy is not source.
MEMNOTIFY_MODULE_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude=/target

MEMNOTIFY_MODULE_MODULE_SUBDIRS = kernel-module

# Load the module at boot, before memnotifyd starts.
define MEMNOTIFY_MODULE_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(MEMNOTIFY_MODULE_PKGDIR)/S05memnotify-module \
		$(TARGET_DIR)/etc/init.d/S05memnotify-module
endef

define MEMNOTIFY_MODULE_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(MEMNOTIFY_MODULE_PKGDIR)/memnotify.conf \
		$(TARGET_DIR)/usr/lib/modules-load.d/memnotify.conf
endef

$(eval $(kernel-module))
$(eval $(generic-package))

# nooelint: oelint.var.bbclassextend
# A kernel module: target only.
SUMMARY = "memnotify: low-memory notification device /dev/memnotify"
DESCRIPTION = "A Rust kernel module that reports memory figures through /dev/memnotify and wakes readers when a figure crosses a threshold they wrote, or a default low or critical level."
# The project has no public homepage yet; example.invalid is its placeholder everywhere (and no
# homepage is reachable from an offline CI).
# nooelint: oelint.vars.homepageping
HOMEPAGE = "https://example.invalid/memnotify"
BUGTRACKER = "https://example.invalid/memnotify/issues"
SECTION = "kernel"
CVE_PRODUCT = "memnotify"
LICENSE = "GPL-2.0-only"
# The repository ships no license text of its own (Cargo.toml and the SPDX lines of kernel-module/
# declare GPL-2.0-only), so the checksum is that of oe-core's copy of the license.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/GPL-2.0-only;md5=801f80980d171dd6425610833a22dbe6"

inherit module-rust memnotify_source features_check

REQUIRED_DISTRO_FEATURES = "memnotify"

S = "${MEMNOTIFY_TREE}/kernel-module"

EXTRA_OEMAKE += "KDIR=${STAGING_KERNEL_DIR}"

# memnotify.rs includes ../userspace/memnotify-proto/src: map the whole tree, not only ${S}.
RUST_DEBUG_REMAP:append = " --remap-path-prefix=${MEMNOTIFY_TREE}=${TARGET_DBGSRC_DIR}"

RPROVIDES:${PN} += "kernel-module-memnotify"

KERNEL_MODULE_AUTOLOAD += "memnotify"

# Module parameters, written to /etc/modprobe.d/memnotify.conf. The defaults are the module's own.
MEMNOTIFY_FAST_MS ?= "10"
MEMNOTIFY_SLOW_MS ?= "1000"
MEMNOTIFY_DEFAULT_LOW_PCT ?= "10"
MEMNOTIFY_DEFAULT_CRITICAL_PCT ?= "5"
MEMNOTIFY_RATE_LIMIT_MS ?= "200"
MEMNOTIFY_MAX_CLIENTS ?= "16384"
MEMNOTIFY_MAX_PER_UID ?= "256"
MEMNOTIFY_DEV_MODE ?= "0666"
MEMNOTIFY_DEV_GID ?= "0"

KERNEL_MODULE_PROBECONF += "memnotify"
module_conf_memnotify = "options memnotify fast_ms=${MEMNOTIFY_FAST_MS} slow_ms=${MEMNOTIFY_SLOW_MS} default_low_pct=${MEMNOTIFY_DEFAULT_LOW_PCT} default_critical_pct=${MEMNOTIFY_DEFAULT_CRITICAL_PCT} rate_limit_ms=${MEMNOTIFY_RATE_LIMIT_MS} max_clients=${MEMNOTIFY_MAX_CLIENTS} max_per_uid=${MEMNOTIFY_MAX_PER_UID} dev_mode=${MEMNOTIFY_DEV_MODE} dev_gid=${MEMNOTIFY_DEV_GID}"

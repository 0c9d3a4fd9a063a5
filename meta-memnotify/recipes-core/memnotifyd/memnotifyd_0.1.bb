# nooelint: oelint.var.bbclassextend
# Target only: a daemon and tools for /dev/memnotify on the device (no native or SDK use).
SUMMARY = "memnotify userspace: the memnotifyd daemon, the memnotify CLI and test tools"
SUMMARY:${PN}-tools = "memnotify test tools: mn_test and the memhog load generator"
DESCRIPTION = "memnotifyd turns /dev/memnotify (or PSI, without the module) into low-memory levels with hysteresis, hooks, reclaim and a last-resort kill; memnotify reads and watches the device from the shell; mn_test and memhog exercise it."
# The project has no public homepage yet; example.invalid is its placeholder everywhere (and no
# homepage is reachable from an offline CI).
# nooelint: oelint.vars.homepageping
HOMEPAGE = "https://example.invalid/memnotify"
BUGTRACKER = "https://example.invalid/memnotify/issues"
SECTION = "admin"
CVE_PRODUCT = "memnotify"
LICENSE = "GPL-2.0-only"
# The repository ships no license text of its own (Cargo.toml declares GPL-2.0-only), so the
# checksum is that of oe-core's copy of the license.
# nooelint: oelint.var.licenseremotefile
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/GPL-2.0-only;md5=801f80980d171dd6425610833a22dbe6"

inherit memnotify_source cargo cargo-update-recipe-crates systemd update-rc.d

# Every crates.io package of Cargo.lock, pinned with its checksum, written by oe-core's generator:
# run "bitbake -c update_crates memnotifyd" (or "cargo xtask yocto-crates", which runs the same
# generator without a build directory) after Cargo.lock changes; "cargo xtask yocto-check" fails
# until then.
require ${BPN}-crates.inc

S = "${MEMNOTIFY_TREE}"

# The workspace also holds xtask, the host build tool: build only the target packages.
MEMNOTIFY_CARGO_PACKAGES = "memnotify memnotifyd memhog"
MEMNOTIFY_BINARIES = "memnotify mn_test memnotifyd memhog"

# dbus: memnotifyd's D-Bus interface (cargo feature "dbus", zbus: pure Rust, so the bus daemon is
# a runtime dependency only), its bus policy and, with systemd, a drop-in that orders the daemon
# after dbus.service.
PACKAGECONFIG ??= ""
PACKAGECONFIG[dbus] = "--features=memnotifyd/dbus,,,dbus"

# The workspace's release profile strips binaries; leave that to bitbake so that -dbg packages
# work and the already-stripped QA check passes.
export CARGO_PROFILE_RELEASE_STRIP = "false"

do_compile() {
    packages=""
    for package in ${MEMNOTIFY_CARGO_PACKAGES}; do
        packages="$packages -p $package"
    done
    oe_cargo_build $packages
}

do_install() {
    for binary in ${MEMNOTIFY_BINARIES}; do
        install -D -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/$binary ${D}${bindir}/$binary
    done
    install -D -m 0644 ${S}/userspace/memnotifyd/dist/memnotifyd.yaml ${D}${sysconfdir}/memnotify/memnotifyd.yaml
    if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        install -D -m 0644 ${S}/userspace/memnotifyd/dist/memnotifyd.service ${D}${systemd_system_unitdir}/memnotifyd.service
    fi
    if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
        install -D -m 0755 ${S}/userspace/memnotifyd/dist/memnotifyd.init ${D}${sysconfdir}/init.d/memnotifyd
    fi
    if ${@bb.utils.contains('PACKAGECONFIG', 'dbus', 'true', 'false', d)}; then
        install -D -m 0644 ${S}/userspace/memnotifyd/dbus/memnotifyd.conf ${D}${datadir}/dbus-1/system.d/memnotifyd.conf
        if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
            install -D -m 0644 ${S}/userspace/memnotifyd/dbus/dbus.conf ${D}${systemd_system_unitdir}/memnotifyd.service.d/dbus.conf
        fi
    fi
}

PACKAGES =+ "${PN}-tools"
FILES:${PN}-tools += "${bindir}/mn_test ${bindir}/memhog"

FILES:${PN} += "${@bb.utils.contains('PACKAGECONFIG', 'dbus', '${datadir}/dbus-1/system.d/memnotifyd.conf ${systemd_system_unitdir}/memnotifyd.service.d', '', d)}"

CONFFILES:${PN} = "${sysconfdir}/memnotify/memnotifyd.yaml"

SYSTEMD_SERVICE:${PN} = "memnotifyd.service"
INITSCRIPT_NAME = "memnotifyd"
INITSCRIPT_PARAMS = "defaults 20"

# The daemon falls back to PSI without the module, so the module is recommended, not required.
RRECOMMENDS:${PN} = "kernel-module-memnotify"

#!/bin/sh
# Buildroot post-build script of the memnotify boards.
#
#   post-build.sh <target dir>     (BR2_CONFIG in the environment)
#
# Checks that the target tree has everything memnotify needs, so a
# packaging mistake stops the build here rather than in a booted guest.

set -eu

target="${1:?usage: post-build.sh <target dir>}"
config="${BR2_CONFIG:?BR2_CONFIG is not set: run from Buildroot}"

enabled() {
	grep -qx "$1=y" "${config}"
}

missing=0
need() {
	# $1: path inside the target, $2: what it is for
	if [ ! -e "${target}/$1" ]; then
		echo "post-build: /$1 is missing from the target ($2)" >&2
		missing=$((missing + 1))
	fi
}

sysv_init=false
if enabled BR2_INIT_BUSYBOX || enabled BR2_INIT_SYSV; then
	sysv_init=true
fi

if enabled BR2_PACKAGE_MEMNOTIFY_MODULE; then
	module="$(find "${target}/lib/modules" -name 'memnotify.ko*' 2> /dev/null | head -n 1)"
	if [ -z "${module}" ]; then
		echo "post-build: memnotify.ko is not under /lib/modules" >&2
		missing=$((missing + 1))
	else
		echo "post-build: module ${module#"${target}"}"
	fi
	if "${sysv_init}"; then
		need etc/init.d/S05memnotify-module "loads the module at boot"
	elif enabled BR2_INIT_SYSTEMD; then
		need usr/lib/modules-load.d/memnotify.conf "loads the module at boot"
	fi
fi

if enabled BR2_PACKAGE_MEMNOTIFYD; then
	for program in memnotify mn_test memnotifyd memhog; do
		need "usr/bin/${program}" "memnotifyd package"
	done
	need etc/memnotify/memnotifyd.yaml "the daemon's configuration"
	if "${sysv_init}"; then
		need etc/init.d/S60memnotifyd "starts the daemon at boot"
	elif enabled BR2_INIT_SYSTEMD; then
		need usr/lib/systemd/system/memnotifyd.service "starts the daemon at boot"
	fi
fi

if [ "${missing}" -ne 0 ]; then
	echo "post-build: ${missing} file(s) missing" >&2
	exit 1
fi

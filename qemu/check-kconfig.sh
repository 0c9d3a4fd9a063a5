#!/bin/sh
# Checks that a kernel .config kept what memnotify asked for: the one copy of this check,
# run by xtask (xtask/src/kernel.rs), by the Yocto layer (meta-memnotify memnotify_kernel.bbclass)
# and by the Buildroot tree (buildroot-external/linux/linux-ext-linux.mk).
#
#   check-kconfig.sh <kernel .config> [fragment...]
#
# Always requires CONFIG_RUST=y and CONFIG_MODULES=y. Each fragment line "CONFIG_X=value" must
# appear as is in the .config, and each "# CONFIG_X is not set" must not be enabled there.
# Kconfig drops options whose dependencies are missing without a word, so this is where a
# missing Rust toolchain or a conflicting board configuration shows up.

set -eu

if [ "$#" -lt 1 ]; then
	echo "usage: $0 <kernel .config> [fragment...]" >&2
	exit 2
fi

dotconfig="$1"
shift

if [ ! -r "${dotconfig}" ]; then
	echo "check-kconfig: cannot read ${dotconfig}" >&2
	exit 2
fi

missing=0

# Where the requirement being checked comes from, for the messages.
origin="memnotify"

require() {
	# $1: the exact line wanted
	if ! grep -qxF "$1" "${dotconfig}"; then
		echo "check-kconfig: ${dotconfig} lacks '$1' (from ${origin})" >&2
		missing=$((missing + 1))
	fi
}

forbid_enabled() {
	# $1: option name
	if grep -qE "^$1=[ym]$" "${dotconfig}"; then
		echo "check-kconfig: ${dotconfig} enables $1, which ${origin} disables" >&2
		missing=$((missing + 1))
	fi
}

# The module is written in Rust and loaded at boot.
require "CONFIG_RUST=y"
require "CONFIG_MODULES=y"

for fragment in "$@"; do
	if [ ! -r "${fragment}" ]; then
		echo "check-kconfig: cannot read fragment ${fragment}" >&2
		exit 2
	fi
	origin="${fragment}"
	while IFS= read -r line || [ -n "${line}" ]; do
		case "${line}" in
		CONFIG_*=*)
			require "${line}"
			;;
		"# CONFIG_"*" is not set")
			option="${line#\# }"
			option="${option%% is not set}"
			forbid_enabled "${option}"
			;;
		esac
	done < "${fragment}"
done

if [ "${missing}" -ne 0 ]; then
	echo "check-kconfig: ${missing} kernel option(s) not as requested" >&2
	exit 1
fi
echo "check-kconfig: ${dotconfig} has CONFIG_RUST=y and every option of: ${*:-no fragment}"

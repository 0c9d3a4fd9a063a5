#!/bin/sh
# Buildroot post-image script of the memnotify boards.
#
#   post-image.sh <images dir>     (BR2_CONFIG and BUILD_DIR in the environment)
#
# Installs start-qemu.sh next to the images and, when the kernel was
# configured with CONFIG_SWAP=y (the swap-on boards), a blank swap.img
# that start-qemu.sh attaches as /dev/vdb and S04swap turns into swap.

set -eu

images="${1:?usage: post-image.sh <images dir>}"
config="${BR2_CONFIG:?BR2_CONFIG is not set: run from Buildroot}"
build_dir="${BUILD_DIR:?BUILD_DIR is not set: run from Buildroot}"
board_dir="$(dirname "$0")"
swap_size_mib=256

install -m 0755 "${board_dir}/start-qemu.sh" "${images}/start-qemu.sh"

kernel_version="$(sed -n 's/^BR2_LINUX_KERNEL_VERSION="\(.*\)"$/\1/p' "${config}")"
kernel_config="${build_dir}/linux-${kernel_version}/.config"
if [ ! -r "${kernel_config}" ]; then
	echo "post-image: cannot read the kernel configuration ${kernel_config}" >&2
	exit 1
fi

rm -f "${images}/swap.img"
if grep -qx 'CONFIG_SWAP=y' "${kernel_config}"; then
	# Sparse: takes no room until the guest swaps.
	dd if=/dev/zero of="${images}/swap.img" bs=1M count=0 seek="${swap_size_mib}" 2> /dev/null
	echo "post-image: kernel has CONFIG_SWAP=y, made ${swap_size_mib} MiB swap.img"
else
	echo "post-image: kernel has no CONFIG_SWAP, no swap disk"
fi

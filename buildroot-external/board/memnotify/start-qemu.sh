#!/bin/sh
# Boot a memnotify Buildroot image under QEMU, console on this terminal.
# post-image.sh installs this script next to the images.
#
#   start-qemu.sh [extra QEMU arguments...]
#
# MEMNOTIFY_QEMU_MEM sets the guest memory (default 256M): small enough
# that memhog reaches the low and critical levels quickly. QEMU is taken
# from Buildroot's host directory (BR2_PACKAGE_HOST_QEMU) when it is
# there, from PATH otherwise. Quit with Ctrl-a x.

set -eu

images="$(cd "$(dirname "$0")" && pwd)"
memory="${MEMNOTIFY_QEMU_MEM:-256M}"

if [ -d "${images}/../host/bin" ]; then
	PATH="${images}/../host/bin:${PATH}"
fi

# Both disks on virtio-pci, so the rootfs is always /dev/vda and the
# swap disk /dev/vdb, in command-line order.
swap_disk=""
if [ -f "${images}/swap.img" ]; then
	swap_disk="-drive file=${images}/swap.img,if=none,format=raw,id=swap -device virtio-blk-pci,drive=swap"
fi

# The machine of each kernel image; ARMv7 is virt without highmem (the kernel has no
# LPAE) with a Cortex-A15, like qemu/configs/qemu-arm.config and the cargo xtask arm cells.
if [ -f "${images}/bzImage" ]; then
	qemu="qemu-system-x86_64 -M pc" kernel=bzImage console=ttyS0
elif [ -f "${images}/Image" ]; then
	qemu="qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 1" kernel=Image console=ttyAMA0
elif [ -f "${images}/zImage" ]; then
	qemu="qemu-system-arm -M virt,highmem=off -cpu cortex-a15 -smp 1" kernel=zImage console=ttyAMA0
else
	echo "start-qemu.sh: no bzImage, Image or zImage in ${images}" >&2
	exit 1
fi

# shellcheck disable=SC2086 # qemu and swap_disk hold several arguments
exec ${qemu} -m "${memory}" -nographic \
	-kernel "${images}/${kernel}" \
	-append "rootwait root=/dev/vda console=${console}" \
	-drive "file=${images}/rootfs.ext2,if=none,format=raw,id=root" \
	-device virtio-blk-pci,drive=root \
	${swap_disk} \
	-netdev user,id=eth0 -device virtio-net-pci,netdev=eth0 \
	"$@"

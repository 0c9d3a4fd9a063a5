# The memnotify packages. The kernel-side Rust settings live in
# linux/linux-ext-linux.mk: Buildroot includes that file from
# linux/linux.mk before the kernel package is evaluated, which is what
# makes LINUX_DEPENDENCIES and LINUX_KCONFIG_DEPENDENCIES additions
# effective (this file is included only after the kernel's rules exist).
include $(sort $(wildcard $(BR2_EXTERNAL_MEMNOTIFY_PATH)/package/*/*.mk))

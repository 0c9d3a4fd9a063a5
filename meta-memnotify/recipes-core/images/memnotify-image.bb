# nooelint: oelint.var.suggestedvar.CVE_PRODUCT
# An image is no product of its own for the CVE database: its packages carry their CVE_PRODUCT.
SUMMARY = "A small image to try and test memnotify"
DESCRIPTION = "Boots to a shell with the memnotify module loaded, memnotifyd running, the memnotify CLI, mn_test and memhog installed, and an ssh server for oeqa's runtime tests."
BUGTRACKER = "https://example.invalid/memnotify/issues"
SECTION = "images"
LICENSE = "MIT"

inherit core-image features_check

REQUIRED_DISTRO_FEATURES = "memnotify"

IMAGE_INSTALL = "\
    packagegroup-core-boot \
    kernel-module-memnotify \
    memnotifyd \
    memnotifyd-tools \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"
IMAGE_LINGUAS = ""

# oeqa's runtime tests log in over ssh.
IMAGE_FEATURES += "ssh-server-dropbear"

# bitbake -c testimage memnotify-image: the layer's lib/oeqa/runtime/cases/memnotify.py.
TEST_SUITES = "ping ssh memnotify"

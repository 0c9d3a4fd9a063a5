# Where the memnotify recipes take the memnotify sources from. Both see the repository's layout
# under MEMNOTIFY_TREE: kernel-module/ includes ../userspace/memnotify-proto/src, and the
# userspace crates form one Cargo workspace with a single Cargo.lock.
#
# MEMNOTIFY_SOURCE = "local" (the default): the files of the memnotify checkout this layer is part
#   of (MEMNOTIFY_SRCDIR, see conf/layer.conf), as they are on disk, uncommitted changes included;
#   bitbake rebuilds when they change. Only the parts listed below are copied (not target/, .git).
# MEMNOTIFY_SOURCE = "git": a clone of MEMNOTIFY_GIT_URI at MEMNOTIFY_SRCREV, for products that
#   want the sources in DL_DIR, source mirrors and the archiver, e.g. in local.conf or a distro:
#     MEMNOTIFY_SOURCE = "git"
#     MEMNOTIFY_GIT_URI = "git://git.example.com/memnotify.git;protocol=https;branch=main"
#     MEMNOTIFY_SRCREV = "<the full commit id of the release>"

MEMNOTIFY_SOURCE ??= "local"
MEMNOTIFY_GIT_URI ??= ""
MEMNOTIFY_SRCREV ??= ""

# The files are outside the layer: in the repository around it.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext
FILESEXTRAPATHS:prepend := "${MEMNOTIFY_SRCDIR}:"
MEMNOTIFY_SRC_URI_local = "\
    file://Cargo.toml;subdir=memnotify \
    file://Cargo.lock;subdir=memnotify \
    file://xtask;subdir=memnotify \
    file://userspace;subdir=memnotify \
    file://kernel-module;subdir=memnotify \
"
MEMNOTIFY_SRC_URI_git = "${MEMNOTIFY_GIT_URI};destsuffix=memnotify"

SRC_URI = "${MEMNOTIFY_SRC_URI_${MEMNOTIFY_SOURCE}}"
SRCREV = "${MEMNOTIFY_SRCREV}"

# The repository's top directory in the work directory.
MEMNOTIFY_TREE = "${UNPACKDIR}/memnotify"

# Clear errors for a mistyped source selection instead of a fetcher error.
# nooelint: oelint.task.noanonpython
python __anonymous() {
    source = d.getVar('MEMNOTIFY_SOURCE')
    if source not in ('local', 'git'):
        bb.fatal("MEMNOTIFY_SOURCE must be \"local\" or \"git\", not \"%s\"" % source)
    if source == 'git' and not (d.getVar('MEMNOTIFY_GIT_URI') and d.getVar('MEMNOTIFY_SRCREV')):
        bb.fatal("MEMNOTIFY_SOURCE is \"git\": set MEMNOTIFY_GIT_URI and MEMNOTIFY_SRCREV too")
}

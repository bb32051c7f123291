#!/usr/bin/env bash
# BR2_ROOTFS_POST_BUILD_SCRIPT: TARGET_DIR BOARD_DIR (see env.sh). Buildroot's
# packages have put the programs into TARGET_DIR (busybox, gondwana, wg,
# nft, sfdisk, e2fsprogs, kernel modules); the rest of the root filesystem
# is the shared composition, the same call as scripts/build-images makes:
# overlays/rootfs, mount points, the links onto /state and /run,
# os-release, modes, timestamps, the list of modules rcS loads from the
# root (docs/image.md "One composition").
set -euo pipefail
# shellcheck source=buildroot/board/env.sh
. "$BR2_EXTERNAL_GONDWANA_PATH/board/env.sh" "$@"
moddirs=("$1"/lib/modules/*/)
[[ ${#moddirs[@]} -eq 1 && -d ${moddirs[0]} ]] || {
    echo "post-build: want one kernel in $1/lib/modules, found: ${moddirs[*]}" >&2
    exit 1
}
exec "$repo/image/compose" rootfs "$board_dir" "$1" --modules="${moddirs[0]%/}"

#!/usr/bin/env bash
# BR2_ROOTFS_POST_BUILD_SCRIPT: TARGET_DIR BOARD_DIR (see env.sh). Buildroot's
# packages have put the programs into TARGET_DIR (busybox, gondwana, wg,
# nft, sfdisk, e2fsprogs, kernel modules); the rest of the root filesystem
# is the shared composition, the same call as scripts/build-images makes:
# overlays/rootfs, mount points, the links onto /state and /run,
# os-release, modes, timestamps (docs/image.md "One composition").
set -euo pipefail
# shellcheck source=buildroot/board/env.sh
. "$BR2_EXTERNAL_GONDWANA_PATH/board/env.sh" "$@"
exec "$repo/image/compose" rootfs "$board_dir" "$1"

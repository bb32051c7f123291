# shellcheck shell=bash
# buildroot/board/env.sh — sourced by post-build.sh and post-image.sh with
# their arguments. Buildroot runs them (from its own tree) as
#     SCRIPT DIR BOARD_DIR
# DIR: TARGET_DIR (post-build) or BINARIES_DIR (post-image); BOARD_DIR:
# BR2_ROOTFS_POST_SCRIPT_ARGS, i.e. board/<board>/ of this repository. Its
# make exports BR2_EXTERNAL_GONDWANA_PATH, TARGET_DIR and BINARIES_DIR.
# Sets repo, board_dir and SOURCE_DATE_EPOCH (Buildroot's own with
# BR2_REPRODUCIBLE, else the last commit's time, as scripts/build-images).
[[ $# -ge 2 ]] || { echo "usage: $0 DIR BOARD_DIR (BR2_ROOTFS_POST_SCRIPT_ARGS = the board directory)" >&2; exit 2; }
: "${BR2_EXTERNAL_GONDWANA_PATH:?run by buildroot, which exports BR2_EXTERNAL_GONDWANA_PATH}"
repo=$(cd "$BR2_EXTERNAL_GONDWANA_PATH/.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this
board_dir=$(cd "$2" && pwd)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}
export SOURCE_DATE_EPOCH

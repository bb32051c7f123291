#!/bin/sh
# BR2_ROOTFS_POST_BUILD_SCRIPT: the same rootfs additions as the offline
# path (scripts/build-images): the overlay is applied by
# BR2_ROOTFS_OVERLAY (../overlays/rootfs); here the symlinks onto the state
# partition and the mount points the initramfs uses.
# $1 = TARGET_DIR, $2 = board name (BR2_ROOTFS_POST_SCRIPT_ARGS).
set -eu
target=$1
mkdir -p "$target/state" "$target/boot" "$target/var/lib"
ln -sfn /state/gondwana "$target/var/lib/gondwana"
ln -sfn /state/machine-id "$target/etc/machine-id"
ln -sfn /run/resolv.conf "$target/etc/resolv.conf"

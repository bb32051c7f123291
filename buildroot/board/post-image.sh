#!/usr/bin/env bash
# BR2_ROOTFS_POST_IMAGE_SCRIPT: the same layout as the offline path, by the
# same step (image/assemble). $1 = BINARIES_DIR, $2 = board name
# (mochabin | amd64-live, from BR2_ROOTFS_POST_SCRIPT_ARGS).
# Inputs from buildroot: $TARGET_DIR (the rootfs), BINARIES_DIR/Image or
# bzImage, dtbs. The initramfs is the target rootfs itself (busybox,
# sfdisk, e2fsprogs from buildroot; drivers built into the kernel by
# linux-gondwana.fragment, so no load.list) plus overlays/initramfs/init.
# Output: BINARIES_DIR/gondwana-<board>.img(.xz).
set -euo pipefail
binaries=$1 board=$2
repo=$(cd "$BR2_EXTERNAL_GONDWANA_PATH/.." && pwd)
board_env=$repo/board/$board/board.env
# shellcheck disable=SC1090
. "$board_env"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}
boot=$binaries/gw-boot
rm -rf "$boot"
mkdir -p "$boot/gondwana"
initramfs=$binaries/gw-initramfs
rm -rf "$initramfs"
cp -a "$TARGET_DIR" "$initramfs"
install -m 0755 "$repo/overlays/initramfs/init" "$initramfs/init"
mkdir -p "$initramfs/newroot" "$initramfs/newroot-state" "$initramfs/lib/modules"
: >"$initramfs/lib/modules/load.list"
find "$initramfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$initramfs" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -6 >"$boot/initrd.img"
case $BOOTLOADER in
uboot)
    cp "$binaries/Image" "$boot/Image"
    install -D -m 0644 "$binaries/${DTB##*/}" "$boot/dtbs/$DTB"
    install -D -m 0644 "$repo/board/$board/extlinux/extlinux.conf" "$boot/extlinux/extlinux.conf"
    mkimage -A arm64 -O linux -T script -C none -n gondwana -d "$repo/board/$board/boot.cmd" "$boot/boot.scr" >/dev/null
    ;;
grub-efi)
    mkdir -p "$boot/EFI/BOOT"
    cp "$binaries/bzImage" "$boot/vmlinuz"
    cp "$binaries/efi-part/EFI/BOOT/bootx64.efi" "$boot/EFI/BOOT/BOOTX64.EFI"
    cp "$repo/board/$board/grub.cfg" "$boot/EFI/BOOT/grub.cfg"
    ;;
esac
"$repo/image/assemble" "$board_env" "$boot" "$TARGET_DIR" "$binaries/gondwana-$board.img"
xz -T1 -6 -c "$binaries/gondwana-$board.img" >"$binaries/gondwana-$board.img.xz"

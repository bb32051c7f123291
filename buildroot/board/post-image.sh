#!/usr/bin/env bash
# BR2_ROOTFS_POST_IMAGE_SCRIPT: BINARIES_DIR BOARD_DIR (see env.sh). The
# initramfs and the boot partition by the shared composition (image/compose,
# the same calls as scripts/build-images), from Buildroot's outputs instead
# of Debian's packages, then the disk image by the shared image/assemble:
#   initramfs  busybox, sfdisk/e2fsprogs + libraries and the kernel modules
#              (load.list; what linux-gondwana.fragment builds in is
#              skipped) taken from TARGET_DIR
#   boot       BINARIES_DIR/$BUILDROOT_KERNEL, the dtb (BINARIES_DIR/<name>.dtb),
#              GRUB's efi-part/EFI/BOOT/bootx64.efi
# Output: BINARIES_DIR/gondwana-<board>.img(.xz); work trees in
# BINARIES_DIR/gondwana/. GONDWANA_IMAGE_XZ=0 skips the .xz.
set -euo pipefail
# shellcheck source=buildroot/board/env.sh
. "$BR2_EXTERNAL_GONDWANA_PATH/board/env.sh" "$@"
binaries=$1
: "${TARGET_DIR:?run by buildroot, which exports TARGET_DIR}"
# shellcheck disable=SC1091
. "$board_dir/board.env"
compose=$repo/image/compose
work=$binaries/gondwana
rm -rf "$work"
mkdir -p "$work"

moddirs=("$TARGET_DIR"/lib/modules/*/)
[[ ${#moddirs[@]} -eq 1 && -d ${moddirs[0]} ]] || {
    echo "post-image: want one kernel in $TARGET_DIR/lib/modules, found: ${moddirs[*]}" >&2
    exit 1
}
# Buildroot's busybox installed its applet links into the target.
(cd "$TARGET_DIR" && find . -type l -lname '*busybox' -printf '%P\n' | LC_ALL=C sort) >"$work/busybox-applets"
"$compose" initramfs "$board_dir" "$work/initrd.img" --sysroot="$TARGET_DIR" \
    --modules="${moddirs[0]%/}" --applets="$work/busybox-applets"

inputs=(--kernel="$binaries/$BUILDROOT_KERNEL" --initrd="$work/initrd.img")
[[ -z $DTB ]] || inputs+=(--dtb="$binaries/${DTB##*/}")
[[ $BOOTLOADER != grub-efi ]] || inputs+=(--efi="$binaries/efi-part/EFI/BOOT/bootx64.efi")
"$compose" boot "$board_dir" "$work/boot" "${inputs[@]}"

img=$binaries/gondwana-$BOARD_NAME.img
"$repo/image/assemble" "$board_dir/board.env" "$work/boot" "$TARGET_DIR" "$img"
if [[ ${GONDWANA_IMAGE_XZ:-1} != 0 ]]; then
    xz -T1 -6 --check=crc64 -c "$img" >"$img.xz.tmp"
    mv "$img.xz.tmp" "$img.xz"
fi

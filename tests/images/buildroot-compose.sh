#!/usr/bin/env bash
# tests/images/buildroot-compose.sh [BOARD...] — the Buildroot path composes
# the same trees as the offline path (docs/image.md "One composition"),
# without Buildroot: buildroot/board/post-build.sh and post-image.sh are run
# as Buildroot runs them (argument 1 TARGET_DIR / BINARIES_DIR, then
# BR2_ROOTFS_POST_SCRIPT_ARGS from the board's defconfig; TARGET_DIR,
# BINARIES_DIR and BR2_EXTERNAL_GONDWANA_PATH in the environment; the
# current directory elsewhere) on a fake TARGET_DIR/BINARIES_DIR filled
# from the offline path's inputs (Debian's packages, our binary), and
#   1. the root filesystem post-build.sh leaves in TARGET_DIR,
#   2. the boot directory post-image.sh composes (kernel, initrd.img byte
#      for byte — so the initramfs too —, dtb / EFI loader, configs)
# must equal, in file list, types, modes, link targets, timestamps and
# contents, the trees `scripts/build-images` composes
# (GONDWANA_IMAGE_TREES_ONLY=1, out/images/<board>/). The fake TARGET_DIR
# starts with what Buildroot's skeleton has where the composition must
# replace it (os-release links, var/log -> ../tmp, …). post-image.sh's disk
# image must come out with the board's partition table.
# Default boards: mochabin amd64-live. Installs what it needs (through
# scripts/build-images).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=image/debs.sh
. "$ROOT/image/debs.sh"
# shellcheck source=image/elf.sh
. "$ROOT/image/elf.sh"
# shellcheck source=image/initrd.sh
. "$ROOT/image/initrd.sh"
boards=("$@")
((${#boards[@]})) || boards=(mochabin amd64-live)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 1700000000)}
export LC_ALL=C TZ=UTC
umask 022

work=$(mktemp -d /tmp/gondwana-br-compose.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() {
    printf 'buildroot-compose[%s]: FAIL %s\n' "$board" "$*" >&2
    exit 1
}

# One line per entry: path, type, mode, link target, mtime, sha256.
manifest() {
    (cd "$1" && find . -printf '%P\t%y\t%m\t%l\t%T@\n' | sort) | while IFS=$'\t' read -r p y m l t; do
        sum=-
        [[ $y != f ]] || sum=$(sha256sum <"$1/$p" | cut -d' ' -f1)
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "/$p" "$y" "$m" "$l" "$t" "$sum"
    done
}
same_tree() { # NAME OFFLINE BUILDROOT [DIR]
    manifest "$2" >"$work/$1.offline"
    manifest "$3" >"$work/$1.buildroot"
    if [[ -n ${4:-} ]]; then
        # Entries under DIR only Buildroot has: what its kernel installs
        # besides what the composition puts there (here: the modules the
        # initramfs carries), not the composition's doing.
        cut -f1 "$work/$1.offline" >"$work/$1.offline-paths"
        awk -F'\t' -v dir="/$4/" 'NR == FNR { have[$1] = 1; next }
            !(index($1, dir) == 1 && !($1 in have))' "$work/$1.offline-paths" "$work/$1.buildroot" >"$work/$1.buildroot.kept"
        mv "$work/$1.buildroot.kept" "$work/$1.buildroot"
    fi
    diff -u "$work/$1.offline" "$work/$1.buildroot" >"$work/$1.diff" && return 0
    head -n 40 "$work/$1.diff" >&2
    if [[ $1 == boot && -f $2/slot-a/initrd.img && -f $3/slot-a/initrd.img ]]; then
        echo "initramfs listings (offline vs buildroot):" >&2
        diff <(initrd_cat "$2/slot-a/initrd.img" | cpio -itv --quiet) <(initrd_cat "$3/slot-a/initrd.img" | cpio -itv --quiet) | head -n 20 >&2 || true
    fi
    fail "$1 differs (offline -> buildroot above)"
}

for board in "${boards[@]}"; do
    GONDWANA_IMAGE_TREES_ONLY=1 "$ROOT/scripts/build-images" "$board" >"$work/build-images.log" 2>&1 ||
        { cat "$work/build-images.log" >&2; fail "scripts/build-images"; }
    # shellcheck disable=SC1090
    . "$ROOT/board/$board/board.env"
    stage=$ROOT/out/images/$board
    debs=$ROOT/out/images/debs-$DEB_ARCH
    kver=$(cat "$debs/kernel-version")
    kpkg=$debs/$(cat "$debs/kernel-package")
    defconfig=$ROOT/buildroot/configs/gondwana_${board//-/_}_defconfig
    script_args=$(sed -n 's/^BR2_ROOTFS_POST_SCRIPT_ARGS="\(.*\)"$/\1/p' "$defconfig")
    # shellcheck disable=SC2016 # the literal make reference
    script_args=${script_args//'$(BR2_EXTERNAL_GONDWANA_PATH)'/$ROOT/buildroot}
    [[ -n $script_args ]] || fail "no BR2_ROOTFS_POST_SCRIPT_ARGS in $defconfig"

    target=$work/$board/target binaries=$work/$board/images
    mkdir -p "$target" "$binaries" "$work/$board/buildroot-tree"
    # What Buildroot's packages install (here: the same programs as offline)…
    debs_install_programs "$debs" "$ROOT/out/images/debs-amd64/busybox-static/bin/busybox" \
        "$ROOT/out/$RUST_TARGET/gondwana" "$target"
    # …and what its skeleton and target-finalize leave where the
    # composition must put its own.
    mkdir -p "$target"/{etc,usr/lib,var,root,tmp}
    echo 'NAME=Buildroot' >"$target/usr/lib/os-release"
    ln -s ../usr/lib/os-release "$target/etc/os-release"
    ln -s ../tmp "$target/var/log"
    ln -s ../run "$target/var/run"
    ln -s ../tmp "$target/var/tmp"
    ln -s ../run/resolv.conf "$target/etc/resolv.conf"
    echo buildroot >"$target/etc/hostname"
    echo '::sysinit:/etc/init.d/rcS' >"$target/etc/inittab"
    chmod 0755 "$target/root" "$target/tmp"

    # Buildroot's linux package installs the kernel's modules (here: the
    # ones the offline root and initramfs carry) before post-build.sh.
    moddir=$target/lib/modules/$kver
    install -D -m 0644 "$kpkg/lib/modules/$kver/modules.builtin" "$moddir/modules.builtin"
    {
        cat "$stage/rootfs/lib/modules/$kver/load.list"
        initrd_cat "$stage/boot/slot-a/initrd.img" | cpio -it --quiet | sed -n "s|^lib/modules/$kver/\(kernel/.*\.ko\)\$|\1|p"
    } | while read -r rel; do install -D -m 0644 "$kpkg/lib/modules/$kver/$rel" "$moddir/$rel"; done

    br_env=(BR2_EXTERNAL_GONDWANA_PATH="$ROOT/buildroot" TARGET_DIR="$target" BINARIES_DIR="$binaries")
    # shellcheck disable=SC2086
    (cd "$work/$board/buildroot-tree" && env "${br_env[@]}" "$ROOT/buildroot/board/post-build.sh" "$target" $script_args) ||
        fail "post-build.sh"
    same_tree rootfs "$stage/rootfs" "$target" "lib/modules/$kver"
    printf 'buildroot-compose[%s]: ok   post-build.sh rootfs = scripts/build-images rootfs\n' "$board"

    # Buildroot's sfdisk/e2fsprogs in the target…
    for tool in sfdisk mke2fs e2fsck tune2fs resize2fs; do
        rm -f "$target/sbin/$tool"
        install -D -m 0755 "$(find "$debs/fdisk" "$debs/e2fsprogs" -path "*sbin/$tool" -type f | head -n1)" "$target/sbin/$tool"
        install_elf "$debs" "$target" "" "$target/sbin/$tool"
    done
    install -D -m 0644 "$debs/e2fsprogs/etc/mke2fs.conf" "$target/etc/mke2fs.conf"
    # …and dosfstools' fsck.fat (BR2_PACKAGE_DOSFSTOOLS_FSCK_FAT).
    install -D -m 0755 "$(find "$debs/dosfstools" -path "*sbin/fsck.fat" -type f | head -n1)" "$target/sbin/fsck.fat"
    install_elf "$debs" "$target" "" "$target/sbin/fsck.fat"
    # …and its kernel, dtb and GRUB EFI image in BINARIES_DIR.
    cp "$stage/inputs/$KERNEL_FILE" "$binaries/$BUILDROOT_KERNEL"
    [[ -z $DTB ]] || cp "$kpkg/usr/lib/linux-image-$kver/$DTB" "$binaries/${DTB##*/}"
    if [[ $BOOTLOADER == grub-efi ]]; then
        install -D -m 0644 "$stage/inputs/BOOTX64.EFI" "$binaries/efi-part/EFI/BOOT/bootx64.efi"
    fi
    # shellcheck disable=SC2086
    (cd "$work/$board/buildroot-tree" && env "${br_env[@]}" GONDWANA_IMAGE_XZ=0 \
        "$ROOT/buildroot/board/post-image.sh" "$binaries" $script_args) >"$work/post-image.log" 2>&1 ||
        { cat "$work/post-image.log" >&2; fail "post-image.sh"; }
    same_tree boot "$stage/boot" "$binaries/gondwana/boot"
    printf 'buildroot-compose[%s]: ok   post-image.sh boot dir (initramfs included) = scripts/build-images boot dir\n' "$board"
    label=$(sfdisk --dump "$binaries/gondwana-$board.img" | sed -n 's/^label: //p')
    [[ $label == "$PARTITION_TABLE" ]] || fail "post-image.sh image: partition table '$label', want $PARTITION_TABLE"
    printf 'buildroot-compose[%s]: ok   post-image.sh image has a %s partition table\n' "$board" "$label"
    rm -rf "${work:?}/$board"
done

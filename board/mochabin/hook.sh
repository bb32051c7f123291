# shellcheck shell=bash disable=SC2154 # REPO, board_dir, opt: set by image/compose
# board/mochabin/hook.sh — what image/compose cannot know from board.env:
# the MOCHAbin's U-Boot files on GW_BOOT. Sourced by image/compose, which
# sets REPO, board_dir and opt[] (its --name=value inputs).

# board_boot BOOT_DIR: the device tree (--dtb, the kernel's build of
# $DTB), distro boot's extlinux.conf, and boot.scr for the vendor U-Boot
# 2018.03 (no distro boot there), with its source boot.cmd beside it for
# whoever edits it on the partition.
board_boot() {
    local b=$1
    need_opt dtb
    install -D -m 0644 "${opt[dtb]}" "$b/dtbs/$DTB"
    install -D -m 0644 "$board_dir/extlinux/extlinux.conf" "$b/extlinux/extlinux.conf"
    install -m 0644 "$board_dir/boot.cmd" "$b/boot.cmd"
    mkimage -A arm64 -O linux -T script -C none -n gondwana -d "$b/boot.cmd" "$b/boot.scr" >/dev/null
    chmod 0644 "$b/boot.scr"
}

# shellcheck shell=bash disable=SC2154 # REPO, board_dir, opt: set by image/compose
# board/mochabin/hook.sh — what image/compose cannot know from board.env:
# the MOCHAbin's U-Boot files on GW_BOOT. Sourced by image/compose, which
# sets REPO, board_dir and opt[] (its --name=value inputs).

# board_boot BOOT_DIR SLOT_DIR: the device tree (--dtb, the kernel's
# build of $DTB) in slot A's set, and boot.scr (the slot choice, the
# one-shot trial: docs/updates.md) for the vendor U-Boot 2018.03 and for
# any distro-boot U-Boot (which runs boot.scr when there is no
# extlinux.conf: there is none, extlinux cannot choose a slot), with its
# source boot.cmd beside it for whoever edits it on the partition.
board_boot() {
    local b=$1 s=$2
    need_opt dtb
    install -D -m 0644 "${opt[dtb]}" "$s/dtbs/$DTB"
    install -m 0644 "$board_dir/boot.cmd" "$b/boot.cmd"
    mkimage -A arm64 -O linux -T script -C none -n gondwana -d "$b/boot.cmd" "$b/boot.scr" >/dev/null
    chmod 0644 "$b/boot.scr"
}

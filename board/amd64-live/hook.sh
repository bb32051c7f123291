# shellcheck shell=bash disable=SC2154 # REPO, board_dir, opt: set by image/compose
# board/amd64-live/hook.sh — what image/compose cannot know from
# board.env: the UEFI files on GW_BOOT (the EFI System Partition). Sourced
# by image/compose, which sets REPO, board_dir and opt[] (its inputs).

# board_boot BOOT_DIR SLOT_DIR: the removable-media loader EFI/BOOT/BOOTX64.EFI
# (--efi: GRUB with GRUB_MODULES built in and grub-early.cfg embedded;
# scripts/build-images makes it with grub-mkimage, Buildroot's grub2
# package with the same list) and the menu it reads, EFI/BOOT/grub.cfg.
board_boot() {
    local b=$1
    need_opt efi
    install -D -m 0644 "${opt[efi]}" "$b/EFI/BOOT/BOOTX64.EFI"
    install -m 0644 "$board_dir/grub.cfg" "$b/EFI/BOOT/grub.cfg"
}

# shellcheck shell=bash
# image/initrd.sh — initrd_cat FILE: an initrd's cpio on stdout, whatever
# the board's INITRD_COMPRESSION made it (lz4 legacy, zstd or gzip: told
# by the first bytes, as the kernel does). For the tests and tools that
# look inside an initrd; image/compose writes them.
initrd_cat() {
    local magic
    magic=$(od -An -tx1 -N4 "$1" | tr -d ' \n')
    case $magic in
    1f8b*) gzip -dc "$1" ;;
    28b52ffd) zstd -dcq "$1" ;;
    02214c18) lz4 -dcq "$1" ;;
    *)
        echo "initrd_cat: $1: not gzip, zstd or lz4 (magic $magic)" >&2
        return 1
        ;;
    esac
}

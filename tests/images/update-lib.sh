# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # used by, and set by, the scripts that source it
# tests/images/update-lib.sh — what tests/images/update.sh and
# tests/images/powercut.sh share: signed test bundles and the VM "vm"'s
# serial shell. Source it after scripts/lib/qemu.sh and the board's
# board.env; needs ROOT, work, QEMU_DIR, boot_secs and a fail function.

vm_test_init() { # NAME BOARD: sets work, QEMU_DIR and boot_secs; an EXIT trap
    work=$(mktemp -d "/tmp/gondwana-$1-$2.XXXXXX")
    QEMU_DIR=$work/vm
    trap 'qemu_stop_all; rm -rf "$work"' EXIT
    case $2 in
    mochabin) boot_secs=150 ;;
    *) boot_secs=300 ;;
    esac
}
key=$ROOT/out/keys/release-dev.key
release_tool() { (cd "$ROOT" && cargo run -q --locked -p gondwana-release -- "$@"); }
parts() { # SET_DIR -> --boot NAME=FILE…
    local p=(--boot "$KERNEL_FILE=$1/$KERNEL_FILE" --boot "initrd.img=$1/initrd.img")
    [[ -z $DTB ]] || p+=(--boot "dtbs/$DTB=$1/dtbs/$DTB")
    printf '%s\n' "${p[@]}"
}
bundle() { # NAME VERSION ROOT SET_DIR -> $work/NAME.bundle, signed with the image's key
    local set
    [[ -f $key ]] || fail "no $key (scripts/build-images makes it)"
    mapfile -t set < <(parts "$4")
    release_tool build --key "$key" --board "$BOARD_NAME" --version "$2" --label "$1" \
        --root "$3" "${set[@]}" --out "$work/$1.bundle" >/dev/null
}
bundle_disk() { # BUNDLE… -> $work/bundles.img, a FAT volume labelled GW_BUNDLE
    local mb=$(($(du -cb "$@" | tail -1 | cut -f1) / 1048576 + 16))
    truncate -s "${mb}M" "$work/bundles.img"
    mkfs.vfat -n GW_BUNDLE "$work/bundles.img" >/dev/null
    MTOOLS_SKIP_CHECK=1 mcopy -i "$work/bundles.img" "$@" ::
    # Its QEMU options (no boot files on it: U-Boot's distro boot and OVMF
    # pass it by).
    # shellcheck disable=SC2054 # QEMU options, commas and all
    bundle_disk_opts=(-drive "if=none,id=bundles,format=raw,readonly=on,file=$work/bundles.img"
        -device virtio-blk-pci,drive=bundles)
}
mount_bundles="mkdir -p /tmp/b; grep -q ' /tmp/b ' /proc/mounts || mount -t vfat -o ro \$(findfs LABEL=GW_BUNDLE) /tmp/b"

ready() { # -> node id
    local line
    line=$(qemu_wait vm 'GONDWANA-READY node_id=gw:' "$boot_secs") || fail "no GONDWANA-READY"
    sed -n 's/.*node_id=\([^ ]*\) .*/\1/p' <<<"$line"
}
vm_seq=0
vm_sh() { # COMMAND -> its output, on the serial shell (as tests/images/boot.sh)
    local n log=$QEMU_DIR/vm/serial.log from
    for _ in 1 2 3; do
        n=$((++vm_seq))
        qemu_mark vm
        from=$(stat -c %s "$log")
        qemu_send vm "sleep 1; echo GW-OUT-\"\"$n; $1; echo GW-END-\"\"$n"
        if qemu_wait vm "^GW-OUT-$n\$" 20 >/dev/null 2>&1; then
            qemu_wait vm "^GW-END-$n\$" 120 >/dev/null || return 1
            tail -c +$((from + 1)) "$log" | tr -d '\r' | sed -n "/^GW-OUT-$n\$/,/^GW-END-$n\$/p" | sed '1d;$d'
            return 0
        fi
        qemu_send vm $'\003'
    done
    return 1
}
status_json() { vm_sh "gondwana update status --json" | grep -a '^{' | tail -1; }
field() { # JSON PYTHON-EXPR -> its value(s), space-separated
    python3 -c 'import json,sys; v=json.loads(sys.argv[1]); r=eval(sys.argv[2], {}, {"v": v}); print(" ".join(map(str, r)) if isinstance(r, tuple) else r)' "$1" "$2"
}

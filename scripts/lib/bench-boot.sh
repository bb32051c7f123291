#!/usr/bin/env bash
# scripts/lib/bench-boot.sh [BOARD...] — where a boot's seconds go, per
# phase (scripts/lib/boot-phases.py): power-on -> kernel, kernel -> the
# initramfs, initramfs -> switch_root, root -> API ready, under QEMU TCG,
# for the first boot (creates GW_STATE, provisions) and a later one, of
# out/gondwana-BOARD.img (BENCH_IMG_DIR overrides out/). Markdown on
# stdout, with the load average at the start and the end. Reported, never
# asserted. Part of scripts/bench section 9 (scripts/lib/bench-images.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/deps.sh
. "$ROOT/scripts/lib/deps.sh"
# shellcheck source=scripts/lib/qemu.sh
. "$ROOT/scripts/lib/qemu.sh"
boards=("$@")
((${#boards[@]})) || boards=(mochabin amd64-live)
dir=${BENCH_IMG_DIR:-$ROOT/out}
qemu_deps
work=$(mktemp -d /tmp/gondwana-bench-boot.XXXXXX)
QEMU_DIR=$work/vm
trap 'qemu_stop_all; rm -rf "$work"' EXIT

echo "Boot phases under QEMU TCG, seconds (load average at the start: $(cut -d' ' -f1-3 /proc/loadavg))."
echo
echo "| board | boot | power-on → kernel | kernel → initramfs | initramfs → switch_root | root → API ready | kernel → ready | power-on → ready | root's modules (rcS) |"
echo "|---|---|---|---|---|---|---|---|---|"
for b in "${boards[@]}"; do
    cp --sparse=always "$dir/gondwana-$b.img" "$work/$b.img"
    image_grow "$work/$b.img" 512M
    for run in first later; do
        qemu_boot "$b-$run" "$b" "$work/$b.img"
        if out=$(scripts/lib/boot-phases.py "$QEMU_DIR/$b-$run/serial.log" 400); then
            declare -A p=()
            while read -r k v; do p[$k]=$v; done <<<"$out"
            # `gondwana modules load`'s own count and time, when it ran.
            mods=$(tr -d '\r' <"$QEMU_DIR/$b-$run/serial.log" | sed -n 's/.*gondwana: modules: \([0-9]*\) loaded.*(\([0-9]*\) ms)$/\1 in \2 ms/p' | head -n1)
            echo "| $b | $run | ${p[firmware]} | ${p[kernel]} | ${p[initramfs]} | ${p[root]} | ${p[ours]} | ${p[total]} | ${mods:-n/a} |"
        else
            echo "| $b | $run | n/a | | | | | | |"
        fi
        qemu_stop "$b-$run"
    done
done
echo
echo "(Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg).)"

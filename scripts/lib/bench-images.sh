#!/usr/bin/env bash
# scripts/lib/bench-images.sh — section 7 of scripts/bench (markdown on
# stdout): image and squashfs sizes against the 24 MiB squashfs target, and
# seconds from QEMU power-on to API-ready (the GONDWANA-READY console line,
# printed once GET /v1/status answers) under TCG, first boot and a later boot,
# against the 10 s aarch64 target. Reported, never asserted.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/deps.sh
. "$ROOT/scripts/lib/deps.sh"
# shellcheck source=scripts/lib/qemu.sh
. "$ROOT/scripts/lib/qemu.sh"
boards=(mochabin amd64-live)
for b in "${boards[@]}"; do
    [[ -f out/gondwana-$b.img && -f out/gondwana-$b.img.xz ]] || scripts/build-images "$b" >&2
done
qemu_deps
work=$(mktemp -d /tmp/gondwana-bench-images.XXXXXX)
QEMU_DIR=$work/vm
trap 'qemu_stop_all; rm -rf "$work"' EXIT
mib() { python3 -c "print(f'{$1/1048576:.1f}')"; }

echo "## 9. Images"
echo
echo "| board | image | image.xz | squashfs root | squashfs / 24 MiB target |"
echo "|---|---|---|---|---|"
for b in "${boards[@]}"; do
    sq=$(stat -c %s "out/gondwana-$b.squashfs")
    echo "| $b | $(mib "$(stat -c %s "out/gondwana-$b.img")") MiB | $(mib "$(stat -c %s "out/gondwana-$b.img.xz")") MiB | $(mib "$sq") MiB | $(python3 -c "print(f'{$sq/(24*1048576):.2f}')") |"
done
echo
echo "Power-on to API-ready under QEMU TCG (no KVM), seconds; target for aarch64: 10 s."
echo
echo "| board | first boot (creates GW_STATE, provisions) | later boot | later / 10 s target |"
echo "|---|---|---|---|"
for b in "${boards[@]}"; do
    cp --sparse=always "out/gondwana-$b.img" "$work/$b.img"
    image_grow "$work/$b.img" 512M
    times=()
    for run in first later; do
        start=$(date +%s.%N)
        qemu_boot "$b-$run" "$b" "$work/$b.img"
        if qemu_wait "$b-$run" 'GONDWANA-READY' 400 >/dev/null; then
            times+=("$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")")
        else
            times+=("n/a")
        fi
        qemu_stop "$b-$run"
    done
    ratio=n/a
    [[ ${times[1]} != n/a ]] && ratio=$(python3 -c "print(f'{${times[1]}/10:.2f}')")
    echo "| $b | ${times[0]} | ${times[1]} | $ratio |"
done
echo
echo "(Includes firmware: U-Boot's 2 s autoboot delay and extlinux's 1 s menu on"
echo "aarch64; OVMF and GRUB's 1 s menu on amd64. Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg).)"

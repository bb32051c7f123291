#!/usr/bin/env bash
# scripts/lib/bench-images.sh — section 7 of scripts/bench (markdown on
# stdout): image and squashfs sizes against the 24 MiB squashfs target, and
# seconds from QEMU power-on to API-ready (the GONDWANA-READY console line,
# printed once GET /v1/status answers) under TCG, per phase
# (scripts/lib/bench-boot.sh), first boot and a later boot, against the
# targets. Reported, never asserted.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/deps.sh
. "$ROOT/scripts/lib/deps.sh"
boards=(mochabin amd64-live)
for b in "${boards[@]}"; do
    [[ -f out/gondwana-$b.img && -f out/gondwana-$b.img.xz ]] || scripts/build-images "$b" >&2
done
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
# Power-on to API-ready, per phase, first and later boot (the target:
# aarch64 power-on -> ready <= 10 s, of which kernel -> ready <= 5 s).
scripts/lib/bench-boot.sh "${boards[@]}"
echo
echo "(Includes firmware: U-Boot's 2 s autoboot delay on aarch64 (its own"
echo "environment); OVMF on amd64. Targets: aarch64 power-on -> ready <= 10 s,"
echo "kernel -> ready <= 5 s; amd64 <= 14 s.)"

#!/usr/bin/env bash
# scripts/lib/bench-updates.sh [BOARD...] — `scripts/bench updates`
# (markdown on stdout; docs/updates.md "Measured"). Reported, never asserted.
#
#   * Bundle size against the image, and against what it carries (the root
#     squashfs and the slot's boot files): the rest is the signed head.
#   * Install time of the bundle (`gondwana update install`, the x86_64
#     binary on this host) against `dd` of the same bytes (the squashfs to
#     the inactive root partition, each boot file into the slot's set, every
#     file flushed as the install flushes it), BENCH_INSTALL_RUNS (default
#     5) times each, alternating, median. The disk: a copy of
#     out/gondwana-BOARD.img attached as a loop device with its partitions,
#     GW_BOOT mounted (or, on a host kernel without vfat, its files on a
#     tmpfs: the table says which), the image's release files from its
#     squashfs — the image's layout, on this host's storage (page cache,
#     then the file system under /tmp), not a box's eMMC: the ratio says what verifying
#     costs over a bare copy (the install reads and hashes every part
#     twice: once before writing anything, once while writing), not how
#     fast a MOCHAbin writes. Root (losetup, mount).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
boards=("$@")
((${#boards[@]})) || boards=(mochabin amd64-live)
bin=${BENCH_BIN:-$ROOT/out/x86_64-unknown-linux-musl/gondwana}
runs=${BENCH_INSTALL_RUNS:-5}
# BENCH_IMG_DIR: another out/ (its gondwana-BOARD.* and images/BOARD/).
out=${BENCH_IMG_DIR:-$ROOT/out}
for b in "${boards[@]}"; do
    [[ -f $out/gondwana-$b.bundle ]] || GONDWANA_IMAGE_XZ=0 scripts/build-images "$b" >&2
done
work=$(mktemp -d /tmp/gondwana-bench-updates.XXXXXX)
loop=
cleanup() {
    mountpoint -q "$work/boot" 2>/dev/null && umount "$work/boot"
    [[ -z $loop ]] || losetup -d "$loop"
    rm -rf "$work"
}
trap cleanup EXIT
mib() { python3 -c "print(f'{$1/1048576:.1f}')"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '%s\n\n%s\n\n%s\n%s\n' "## Updates: bundle size and install time" \
    "Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)." \
    "| board | bundle | image | bundle / image | squashfs + boot files | head (bundle − parts) |" \
    "|---|---|---|---|---|---|"
for b in "${boards[@]}"; do
    bundle=$(stat -c %s "$out/gondwana-$b.bundle")
    image=$(stat -c %s "$out/gondwana-$b.img")
    parts=$(($(stat -c %s "$out/gondwana-$b.squashfs") + $(find "$out/images/$b/boot/slot-a" -type f ! -name installed -printf '%s\n' | paste -sd+ | bc)))
    echo "| $b | $(mib "$bundle") MiB | $(mib "$image") MiB | $(ratio "$bundle" "$image") | $(mib "$parts") MiB | $((bundle - parts)) bytes |"
done
echo
echo "Install into the inactive slot of the image's layout on a loop device (host: $(uname -m), $runs runs each, median seconds):"
echo
echo "| board | bytes written | \`gondwana update install\` | \`dd\` of the same bytes | install / dd |"
echo "|---|---|---|---|---|"
for b in "${boards[@]}"; do
    d=$work/$b
    mkdir -p "$d" "$work/boot"
    cp --sparse=always "$out/gondwana-$b.img" "$d/disk.img"
    loop=$(losetup --find --show --partscan "$d/disk.img")
    # Without udev (or the kernel's parser) the nodes come from partx.
    for _ in $(seq 50); do
        [[ -b ${loop}p3 ]] && break
        partx -a "$loop" 2>/dev/null || true
        sleep 0.1
    done
    if mount "${loop}p1" "$work/boot" 2>/dev/null; then
        bootfs="GW_BOOT's vfat"
    else
        # A host kernel without vfat: GW_BOOT's files on a tmpfs.
        mount -t tmpfs tmpfs "$work/boot"
        MTOOLS_SKIP_CHECK=1 mcopy -s -n -i "${loop}p1" '::*' "$work/boot/" 2>/dev/null
        bootfs="a tmpfs (no vfat in this host's kernel)"
    fi
    echo "${loop}p2" >"$d/root-device"
    unsquashfs -cat "$out/gondwana-$b.squashfs" etc/gondwana/release >"$d/release"
    unsquashfs -cat "$out/gondwana-$b.squashfs" etc/gondwana/release-keys >"$d/release-keys"
    echo "gondwana.slot=a gondwana.trial=0" >"$d/cmdline"
    cat >"$d/gondwana.toml" <<TOML
[api]
admin_socket = "$d/admin.sock"

[update]
root_device_file = "$d/root-device"
boot_dir = "$work/boot"
release_file = "$d/release"
release_keys = "$d/release-keys"
state_file = "$d/update.json"
cmdline_file = "$d/cmdline"
TOML
    bundle=$out/gondwana-$b.bundle
    cat "$bundle" >/dev/null # both start from a warm page cache
    ours=() theirs=()
    for _ in $(seq "$runs"); do
        t0=$(date +%s.%N)
        "$bin" --config "$d/gondwana.toml" --state-dir "$d/state" update install "$bundle" --json >"$d/install.json" 2>>"$d/install.log"
        t1=$(date +%s.%N)
        ours+=("$(python3 -c "print(f'{$t1 - $t0:.2f}')")")
        # The same bytes, the way a plain copy writes them.
        t0=$(date +%s.%N)
        dd if="$out/gondwana-$b.squashfs" of="${loop}p3" bs=1M conv=fsync status=none
        mkdir -p "$work/boot/slot-bench"
        (cd "$out/images/$b/boot/slot-a" && find . -type f ! -name installed) | while read -r f; do
            mkdir -p "$work/boot/slot-bench/$(dirname "$f")"
            dd if="$out/images/$b/boot/slot-a/$f" of="$work/boot/slot-bench/$f" bs=1M conv=fsync status=none
        done
        t1=$(date +%s.%N)
        rm -rf "$work/boot/slot-bench"
        theirs+=("$(python3 -c "print(f'{$t1 - $t0:.2f}')")")
    done
    written=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$d/install.json")
    o=$(echo "${ours[*]}" | median) t=$(echo "${theirs[*]}" | median)
    printf '| %s | %s MiB (boot files on %s) | %.2f s (%s) | %.2f s (%s) | %s |\n' "$b" "$(mib "$written")" "$bootfs" "$o" "${ours[*]}" "$t" "${theirs[*]}" "$(ratio "$o" "$t")"
    umount "$work/boot"
    losetup -d "$loop"
    loop=
done
echo
echo "(Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg).)"

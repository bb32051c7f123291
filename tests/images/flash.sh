#!/usr/bin/env bash
# tests/images/flash.sh — scripts/flash against a loop device: writes and
# verifies an image, refuses a mounted device, a partition, the system
# disk, and an unconfirmed run; nothing is written when it refuses; over a
# node's disk it says that GW_STATE is kept, and writes none of it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d /tmp/gondwana-flashtest.XXXXXX)
loop=
cleanup() {
    umount "$work/mnt" 2>/dev/null || true
    [[ -n $loop ]] && losetup -d "$loop" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "flash-test: FAIL $*" >&2; exit 1; }
# A small "image": a partition table and random bytes, compressed like a release.
head -c $((8 * 1048576)) /dev/urandom >"$work/test.img"
printf 'label: dos\n1 : start=2048, type=83\n' | sfdisk --quiet "$work/test.img"
xz -T1 -0 -k "$work/test.img"
truncate -s 16M "$work/disk"
loop=$(losetup --find --show --partscan "$work/disk")

"$ROOT/scripts/flash" "$work/test.img.xz" "$loop" </dev/null >/dev/null 2>&1 && fail "flashed without confirmation"
cmp -s -n 1048576 "$work/disk" /dev/zero || fail "wrote without confirmation"
"$ROOT/scripts/flash" "$work/test.img.xz" "${loop}p1" --yes 2>/dev/null && fail "accepted a partition"
root_disk=$(lsblk -n -s -o NAME,TYPE "$(findmnt -n -o SOURCE /)" 2>/dev/null | awk '$2=="disk"{print $1}' | head -n1)
if [[ -n $root_disk && -b /dev/$root_disk ]]; then
    out=$("$ROOT/scripts/flash" "$work/test.img.xz" "/dev/$root_disk" --yes 2>&1) && fail "accepted the system disk"
    grep -q "running system" <<<"$out" || fail "system disk refusal unclear: $out"
fi
out=$("$ROOT/scripts/flash" "$work/test.img.xz" "$loop" --yes 2>&1) || fail "flash failed: $out"
grep -q "verified" <<<"$out" || fail "no verification: $out"
cmp -s -n $((8 * 1048576)) "$work/test.img" "$loop" || fail "written bytes differ"
# Mounted: make a filesystem on the (re-read) partition and mount it.
mkfs.ext4 -q -F "${loop}p1" 2>/dev/null || { partx -u "$loop"; mkfs.ext4 -q -F "${loop}p1"; }
mkdir -p "$work/mnt" && mount "${loop}p1" "$work/mnt"
out=$("$ROOT/scripts/flash" "$work/test.img.xz" "$loop" --yes 2>&1) && fail "flashed a mounted device"
grep -q "mounted" <<<"$out" || fail "mounted refusal unclear: $out"
umount "$work/mnt"
# A re-flash over a node: its GW_STATE partition, after the image's end, is
# named as kept, and its bytes are untouched.
printf 'label: dos\n1 : start=2048, size=14336, type=83\n2 : start=18432, type=83\n' | sfdisk --quiet "$loop" 2>/dev/null
partx -u "$loop" 2>/dev/null || true
mkfs.ext4 -q -F -L GW_STATE "${loop}p2"
before=$(tail -c +$((9 * 1048576 + 1)) "$work/disk" | sha256sum)
out=$("$ROOT/scripts/flash" "$work/test.img.xz" "$loop" --yes 2>&1) || fail "re-flash failed: $out"
grep -q "${loop}p2 (GW_STATE.*KEPT" <<<"$out" || fail "re-flash does not say the state is kept: $out"
[[ $(tail -c +$((9 * 1048576 + 1)) "$work/disk" | sha256sum) == "$before" ]] || fail "re-flash wrote into GW_STATE"
echo "flash-test: ok (writes + verifies; refuses unconfirmed, partition, system disk, mounted; says a re-flash keeps GW_STATE, and does)"

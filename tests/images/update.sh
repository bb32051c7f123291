#!/usr/bin/env bash
# tests/images/update.sh BOARD — A/B update with trial boot, mark-good and
# rollback on out/gondwana-BOARD.img in QEMU (docs/updates.md, "Tested").
# One VM, one medium, built images reused (scripts/build-images once):
#   1. first boot of a fresh copy: node id N, slot a running and good;
#   2. `gondwana update install` of a newer bundle (the image's own root
#      and boot files, a higher version: out/gondwana-BOARD.bundle
#      re-signed) from a second disk, reboot: the bootloader boots slot b
#      once on trial, the daemon finds it healthy and marks it good; status
#      says running b, good b, "succeeded"; node id still N;
#   3. a bundle whose daemon never gets healthy (its initramfs mounts the
#      state on a tmpfs instead of GW_STATE: "state partition not mounted
#      read-write"), installed into slot a, reboot: slot a boots on trial,
#      misses the deadline (45 s here: [update] trial_deadline_secs in the
#      operator config on GW_BOOT), reboots; the bootloader boots slot b,
#      the good one, by itself; status says "update to … failed: rolled
#      back (not healthy within 45 s: state partition not mounted
#      read-write)"; node id still N.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib/deps.sh
. "$ROOT/scripts/lib/deps.sh"
# shellcheck source=scripts/lib/qemu.sh
. "$ROOT/scripts/lib/qemu.sh"

board=$1
img=$ROOT/out/gondwana-$board.img
stage=$ROOT/out/images/$board
[[ -f $img && -f $ROOT/out/gondwana-$board.squashfs && -d $stage/boot/slot-a ]] ||
    GONDWANA_IMAGE_XZ=0 "$ROOT/scripts/build-images" "$board"
qemu_deps
need_apt dosfstools mtools cpio
# shellcheck disable=SC1090
. "$ROOT/board/$board/board.env"

work=$(mktemp -d "/tmp/gondwana-update-$board.XXXXXX")
QEMU_DIR=$work/vm
trap 'qemu_stop_all; rm -rf "$work"' EXIT
case $board in
mochabin) boot_secs=150 ;;
*) boot_secs=300 ;;
esac
deadline=45
t0=$SECONDS
ok() { printf 'update[%s]: ok   %s (%ss)\n' "$board" "$*" $((SECONDS - t0)); }
fail() {
    printf 'update[%s]: FAIL %s\n' "$board" "$*" >&2
    exit 1
}

# ---- the bundles (host) -------------------------------------------------
version=$(sed -n 's/^version=//p' "$stage/boot/slot-a/installed")
key=$ROOT/out/keys/release-dev.key
[[ -f $key ]] || fail "no $key (scripts/build-images makes it)"
release_tool() { (cd "$ROOT" && cargo run -q --locked -p gondwana-release -- "$@"); }
parts() { # SET_DIR -> --boot NAME=FILE…
    local p=(--boot "$KERNEL_FILE=$1/$KERNEL_FILE" --boot "initrd.img=$1/initrd.img")
    [[ -z $DTB ]] || p+=(--boot "dtbs/$DTB=$1/dtbs/$DTB")
    printf '%s\n' "${p[@]}"
}
mapfile -t good_parts < <(parts "$stage/boot/slot-a")
release_tool build --key "$key" --board "$BOARD_NAME" --version $((version + 1)) --label newer \
    --root "$ROOT/out/gondwana-$board.squashfs" "${good_parts[@]}" --out "$work/good.bundle" >/dev/null
# The sick one: its initramfs never mounts GW_STATE (state on tmpfs).
mkdir -p "$work/sick/set" "$work/sick/initrd"
cp -r "$stage/boot/slot-a/." "$work/sick/set/"
(cd "$work/sick/initrd" && gzip -dc "$stage/boot/slot-a/initrd.img" | cpio -i --quiet)
# shellcheck disable=SC2016 # the init's text, not ours to expand
grep -q '^if \[ -n "$state_dev" \]; then$' "$work/sick/initrd/init" || fail "the initramfs' init changed: update the sick bundle"
# shellcheck disable=SC2016
sed -i 's/^if \[ -n "$state_dev" \]; then$/why="test bundle: no state partition"; if false; then/' "$work/sick/initrd/init"
(cd "$work/sick/initrd" && find . | sort | cpio --quiet -o -H newc -R 0:0) | gzip -n -1 >"$work/sick/set/initrd.img"
mapfile -t sick_parts < <(parts "$work/sick/set")
release_tool build --key "$key" --board "$BOARD_NAME" --version $((version + 2)) --label sick \
    --root "$ROOT/out/gondwana-$board.squashfs" "${sick_parts[@]}" --out "$work/sick.bundle" >/dev/null
# Into the VM on a second disk: a FAT volume labelled GW_BUNDLE.
mb=$((($(stat -c %s "$work/good.bundle") + $(stat -c %s "$work/sick.bundle")) / 1048576 + 16))
truncate -s "${mb}M" "$work/bundles.img"
mkfs.vfat -n GW_BUNDLE "$work/bundles.img" >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -i "$work/bundles.img" "$work/good.bundle" "$work/sick.bundle" ::
ok "bundles: version $((version + 1)) (newer) and $((version + 2)) (sick initramfs)"

# ---- the VM -------------------------------------------------------------
cp --sparse=always "$img" "$work/disk.img"
image_grow "$work/disk.img" 512M
printf 'role = "node"\n[update]\ntrial_deadline_secs = %s\n' "$deadline" >"$work/gondwana.toml"
image_inject_file "$work/disk.img" "$work/gondwana.toml" gondwana/gondwana.toml
# (No boot files on it: U-Boot's distro boot and OVMF pass it by.)
# shellcheck disable=SC2054 # QEMU options, commas and all
bundle_disk=(-drive "if=none,id=bundles,format=raw,readonly=on,file=$work/bundles.img"
    -device virtio-blk-pci,drive=bundles)
qemu_boot vm "$board" "$work/disk.img" "${bundle_disk[@]}"

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
mount_bundles="mkdir -p /tmp/b; mountpoint -q /tmp/b || mount -t vfat -o ro \$(findfs LABEL=GW_BUNDLE) /tmp/b"

id=$(ready)
qemu_send vm "" # askfirst: Enter starts the console shell
s=$(status_json) || fail "no update status"
[[ $(field "$s" 'v["running_slot"], v["good_slot"], v["trial"]') == "a a None" ]] || fail "first boot: $s"
ok "first boot: node $id, slot a running and good"

# ---- A -> B, marked good ---------------------------------------------------
out=$(vm_sh "$mount_bundles; gondwana update install /tmp/b/good.bundle; gondwana update status") || fail "install: no answer"
grep -q 'reboot to boot it once on trial' <<<"$out" || fail "install: $out"
grep -q 'trial: slot b (version .*): armed' <<<"$out" || fail "status after install: $out"
qemu_mark vm
qemu_send vm "reboot"
qemu_wait vm 'gondwana: booting slot b once, on trial' "$boot_secs" >/dev/null || fail "the bootloader did not try slot b"
qemu_wait vm 'switching to root slot b' "$boot_secs" >/dev/null || fail "slot b's root not mounted"
id_b=$(ready)
[[ $id_b == "$id" ]] || fail "the node id changed on slot b: $id -> $id_b"
qemu_wait vm 'slot b marked good' "$((deadline + 30))" >/dev/null || fail "slot b was not marked good"
qemu_send vm ""
s=$(status_json) || fail "no update status"
[[ $(field "$s" 'v["running_slot"], v["good_slot"], v["trial"], v["last_update"]["ok"]') == "b b None True" ]] || fail "after A->B: $s"
ok "A -> B: slot b booted once on trial, healthy, marked good; node id $id kept ($(field "$s" 'v["last_update"]["text"]'))"

# A reboot now boots b as the good slot (no trial).
qemu_mark vm
qemu_send vm "reboot"
qemu_wait vm 'gondwana: slot b \(trial 0\)' "$boot_secs" >/dev/null || fail "the good slot b was not booted"
[[ $(ready) == "$id" ]] || fail "node id changed"
ok "reboot: slot b as the good slot"

# ---- B -> sick A, rolled back ----------------------------------------------
qemu_send vm ""
out=$(vm_sh "$mount_bundles; gondwana update install /tmp/b/sick.bundle") || fail "install: no answer"
grep -q 'into slot a' <<<"$out" || fail "install into a: $out"
qemu_mark vm
qemu_send vm "reboot"
qemu_wait vm 'gondwana: booting slot a once, on trial' "$boot_secs" >/dev/null || fail "the bootloader did not try slot a"
qemu_wait vm 'state on tmpfs' "$boot_secs" >/dev/null || fail "the sick initramfs did not run"
qemu_wait vm 'trial of slot a failed' "$((deadline + boot_secs))" >/dev/null || fail "the sick trial did not give up"
qemu_mark vm
qemu_wait vm 'gondwana: slot b \(trial 0\)' "$boot_secs" >/dev/null || fail "the bootloader did not return to slot b"
[[ $(ready) == "$id" ]] || fail "node id changed after the rollback"
qemu_send vm ""
s=$(status_json) || fail "no update status"
text=$(field "$s" 'v["last_update"]["text"]')
[[ $(field "$s" 'v["running_slot"], v["good_slot"], v["trial"], v["last_update"]["ok"]') == "b b None False" ]] || fail "after the rollback: $s"
[[ $text == *"failed: rolled back (not healthy within $deadline s: state partition not mounted read-write"* ]] || fail "status: $text"
ok "sick bundle: slot a on trial, not healthy, back on slot b by itself; node id $id kept; status: $text"
qemu_stop vm
echo "update[$board]: all checks passed in $((SECONDS - t0))s"

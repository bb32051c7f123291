#!/usr/bin/env bash
# tests/images/update.sh BOARD — A/B update with trial boot, mark-good and
# rollback on out/gondwana-BOARD.img in QEMU (docs/updates.md, "Tested").
# One VM, one medium, built images reused (scripts/build-images once):
#   1. first boot of a fresh copy: node id N, slot a running and good;
#   2. `update cancel` (on the real FAT GW_BOOT): release V+1 installed
#      into slot b, then cancelled: the boot environment has no gw_try and
#      names the arming in gw_cancel, status has no trial, slot b stays
#      installed, the last update says "cancelled" (no reboot of its own:
#      step 3 installs the release again and boots its trial);
#   3. A -> B: `gondwana update install` of release V+1 (the image's root
#      re-packed with /etc/gondwana/release saying V+1, the image's boot
#      files, signed with the image's key) from a second disk, reboot: the
#      bootloader boots slot b once on trial, the daemon finds it healthy
#      and marks it good; status says running b, good b, "succeeded", the
#      running release V+1; node id still N;
#   4. B -> A: release V+2 the same way into slot a: running a, good a,
#      release V+2, node id N;
#   5. a bundle whose kernel panics (its initramfs' init exits: "Attempted
#      to kill init", panic=10 on the command line reboots), installed into
#      slot b, reboot: slot b boots on trial and panics; the bootloader had
#      consumed the trial, so the next boot is slot a, the good one, by
#      itself; status says "update to … failed: rolled back (slot b never
#      started its daemon …)"; node id N;
#   6. a bundle whose daemon never gets healthy (its initramfs mounts the
#      state on a tmpfs instead of GW_STATE: "state partition not mounted
#      read-write"), installed into slot b, reboot: slot b boots on trial,
#      misses the deadline (45 s here: [update] trial_deadline_secs, set
#      in the operator config on GW_BOOT just before), reboots; the bootloader boots slot a,
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
need_apt dosfstools mtools cpio squashfs-tools lz4 zstd
# shellcheck disable=SC1090
. "$ROOT/board/$board/board.env"

deadline=45
t0=$SECONDS
ok() { printf 'update[%s]: ok   %s (%ss)\n' "$board" "$*" $((SECONDS - t0)); }
fail() {
    printf 'update[%s]: FAIL %s\n' "$board" "$*" >&2
    exit 1
}
# shellcheck source=tests/images/update-lib.sh
. "$ROOT/tests/images/update-lib.sh"
# shellcheck source=image/initrd.sh
. "$ROOT/image/initrd.sh"
vm_test_init update "$board"

# ---- the bundles (host) -------------------------------------------------
version=$(sed -n 's/^version=//p' "$stage/boot/slot-a/installed")
# A real newer release: the image's root with /etc/gondwana/release saying
# so, squashed with image/assemble's options.
unsquashfs -q -no-xattrs -d "$work/rootfs" "$ROOT/out/gondwana-$board.squashfs" >/dev/null
root_of() { # VERSION LABEL -> the squashfs path
    sed -i -e "s/^version=.*/version=$1/" -e "s/^label=.*/label=$2/" "$work/rootfs/etc/gondwana/release"
    env -u SOURCE_DATE_EPOCH mksquashfs "$work/rootfs" "$work/$2.sqfs" -noappend -quiet -no-progress \
        -comp xz -b 256K -all-root -all-time "$version" -mkfs-time "$version" -no-xattrs >/dev/null
    echo "$work/$2.sqfs"
}
v1=$((version + 1)) v2=$((version + 2)) v3=$((version + 3))
bundle next "$v1" "$(root_of "$v1" next)" "$stage/boot/slot-a"
bundle after "$v2" "$(root_of "$v2" after)" "$stage/boot/slot-a"
# Initramfs variants: the image's, unpacked once.
mkdir -p "$work/initrd"
(cd "$work/initrd" && initrd_cat "$stage/boot/slot-a/initrd.img" | cpio -i --quiet)
variant() { # NAME SED-SCRIPT: a boot-file set whose init is edited
    mkdir -p "$work/$1/set"
    cp -r "$stage/boot/slot-a/." "$work/$1/set/"
    cp -a "$work/initrd" "$work/$1/initrd"
    sed -i "$2" "$work/$1/initrd/init"
    (cd "$work/$1/initrd" && find . | sort | cpio --quiet -o -H newc -R 0:0) | gzip -n -1 >"$work/$1/set/initrd.img"
}
# The panicking one: its init exits at once, the kernel panics.
variant panic '2i echo "gondwana-initramfs: test bundle: init exits"; exit 1'
# The sick one: its initramfs never mounts GW_STATE (state on tmpfs).
# shellcheck disable=SC2016 # the init's text, not ours to expand
grep -q '^if \[ -n "$state_dev" \]; then$' "$work/initrd/init" || fail "the initramfs' init changed: update the sick bundle"
# shellcheck disable=SC2016
variant sick 's/^if \[ -n "$state_dev" \]; then$/why="test bundle: no state partition"; if false; then/'
bundle panic "$v3" "$ROOT/out/gondwana-$board.squashfs" "$work/panic/set"
bundle sick "$v3" "$ROOT/out/gondwana-$board.squashfs" "$work/sick/set"
# Into the VM on a second disk: a FAT volume labelled GW_BUNDLE.
bundle_disk "$work"/{next,after,panic,sick}.bundle
ok "bundles: $v1 (next), $v2 (after), $v3 (panic: init exits; sick: no state partition)"

# ---- the VM -------------------------------------------------------------
cp --sparse=always "$img" "$work/disk.img"
image_grow "$work/disk.img" 512M
printf 'role = "node"\n' >"$work/gondwana.toml"
image_inject_file "$work/disk.img" "$work/gondwana.toml" gondwana/gondwana.toml
qemu_boot vm "$board" "$work/disk.img" "${bundle_disk_opts[@]}"

id=$(ready)
qemu_send vm "" # askfirst: Enter starts the console shell
s=$(status_json) || fail "no update status"
[[ $(field "$s" 'v["running_slot"], v["good_slot"], v["trial"]') == "a a None" ]] || fail "first boot: $s"
ok "first boot: node $id, slot a running and good"

# ---- update cancel: armed, then disarmed (no reboot of its own) ------------
out=$(vm_sh "$mount_bundles; gondwana update install /tmp/b/next.bundle >/dev/null; gondwana update cancel; gondwana update status; grep -a '^gw_' /boot/gondwana/bootenv") ||
    fail "cancel: no answer"
grep -q "update to version $v1 (next) cancelled: slot b stays installed, not armed; the next boot is slot a" <<<"$out" || fail "cancel: $out"
! grep -q '^trial:' <<<"$out" || fail "a trial is still armed after the cancel: $out"
grep -q '^slot b: installed' <<<"$out" || fail "slot b is not installed after the cancel: $out"
grep -q '^gw_cancel=[0-9]' <<<"$out" || fail "no gw_cancel in the boot environment after the cancel: $out"
! grep -q '^gw_try=' <<<"$out" || fail "gw_try is still in the boot environment after the cancel: $out"
ok "update cancel: the trial of slot b disarmed (no gw_try, gw_cancel set), slot b still installed, status says cancelled"

# ---- A -> B, B -> A: each marked good, with its new release ----------------
update_to() { # SLOT NAME VERSION: install, reboot, trial, marked good
    local slot=$1 name=$2 ver=$3 out s rel
    out=$(vm_sh "$mount_bundles; gondwana update install /tmp/b/$name.bundle; gondwana update status") || fail "install: no answer"
    grep -q "into slot $slot" <<<"$out" || fail "install into $slot: $out"
    grep -q 'reboot to boot it once on trial' <<<"$out" || fail "install: $out"
    grep -q "trial: slot $slot (version $ver .*): armed" <<<"$out" || fail "status after install: $out"
    qemu_mark vm
    qemu_send vm "reboot"
    qemu_wait vm "gondwana: booting slot $slot once, on trial" "$boot_secs" >/dev/null || fail "the bootloader did not try slot $slot"
    qemu_wait vm "switching to root slot $slot" "$boot_secs" >/dev/null || fail "slot $slot's root not mounted"
    [[ $(ready) == "$id" ]] || fail "the node id changed on slot $slot"
    qemu_wait vm "slot $slot marked good" "$boot_secs" >/dev/null || fail "slot $slot was not marked good"
    qemu_send vm ""
    s=$(status_json) || fail "no update status"
    [[ $(field "$s" 'v["running_slot"], v["good_slot"], v["trial"], v["last_update"]["ok"]') == "$slot $slot None True" ]] || fail "after the update to $slot: $s"
    # The running root is the new release (its /etc/gondwana/release).
    rel=$(vm_sh "sed -n s/^version=//p /etc/gondwana/release") || fail "no release file"
    [[ $(field "$s" '[x["release"]["version"] for x in v["slots"] if x["running"]][0]') == "$ver" && $(tr -d '[:space:]' <<<"$rel") == "$ver" ]] ||
        fail "slot $slot runs release '$rel', not $ver: $s"
    ok "-> $slot: booted once on trial, healthy, marked good, runs release $ver; node id $id kept ($(field "$s" 'v["last_update"]["text"]'))"
}
update_to b next "$v1"
update_to a after "$v2"

# ---- rollbacks into slot b, by themselves -----------------------------------
rolled_back() { # NAME REASON: after the rollback to a, the status says why
    local s text
    [[ $(ready) == "$id" ]] || fail "node id changed after the rollback"
    qemu_send vm ""
    s=$(status_json) || fail "no update status"
    text=$(field "$s" 'v["last_update"]["text"]')
    [[ $(field "$s" 'v["running_slot"], v["good_slot"], v["trial"], v["last_update"]["ok"]') == "a a None False" ]] || fail "after the rollback: $s"
    [[ $text == *"version $v3 ($1) failed: rolled back ($2"* ]] || fail "status: $text"
    echo "$text"
}
install_b() { # NAME: install into slot b, reboot, the trial is taken
    local out
    out=$(vm_sh "$mount_bundles; gondwana update install /tmp/b/$1.bundle") || fail "install: no answer"
    grep -q 'into slot b' <<<"$out" || fail "install into b: $out"
    qemu_mark vm
    qemu_send vm "reboot"
    qemu_wait vm 'gondwana: booting slot b once, on trial' "$boot_secs" >/dev/null || fail "the bootloader did not try slot b"
}

install_b panic
qemu_wait vm 'Attempted to kill init' "$boot_secs" >/dev/null || fail "the panicking kernel did not panic"
qemu_mark vm
qemu_wait vm 'gondwana: slot a \(trial 0\)' "$boot_secs" >/dev/null || fail "the bootloader did not return to slot a"
text=$(rolled_back panic "slot b never started its daemon")
ok "panicking kernel: slot b on trial, panic, back on slot a by itself; node id $id kept; status: $text"

# The sick trial's deadline: 45 s instead of 300 (the healthy trials keep
# the default: a loaded machine's boot can take longer than 45 s).
vm_sh "mount -o remount,rw /boot && printf 'role = \"node\"\\n[update]\\ntrial_deadline_secs = $deadline\\n' >/boot/gondwana/gondwana.toml && mount -o remount,ro /boot && cat /boot/gondwana/gondwana.toml" |
    grep -q "^trial_deadline_secs = $deadline" || fail "could not set the trial deadline"
install_b sick
qemu_wait vm 'state on tmpfs' "$boot_secs" >/dev/null || fail "the sick initramfs did not run"
qemu_wait vm 'trial of slot b failed' "$((deadline + boot_secs))" >/dev/null || fail "the sick trial did not give up"
qemu_mark vm
qemu_wait vm 'gondwana: slot a \(trial 0\)' "$boot_secs" >/dev/null || fail "the bootloader did not return to slot a"
text=$(rolled_back sick "not healthy within $deadline s: state partition not mounted read-write")
ok "sick bundle: slot b on trial, not healthy, back on slot a by itself; node id $id kept; status: $text"
qemu_stop vm
echo "update[$board]: all checks passed in $((SECONDS - t0))s"

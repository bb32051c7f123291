#!/usr/bin/env bash
# tests/images/powercut.sh BOARD [CUTS] — power cuts (kill -9 of QEMU) during
# A/B updates on out/gondwana-BOARD.img (docs/updates.md, "Power cuts").
# One medium throughout. First one cut at a fixed moment: just after an
# install returned, the boot partition held read-write, and the new slot's
# status record and boot files read back from the medium on the host. Then
# each cut i (default 20) lands at a random moment in one of three windows,
# in turn:
#   0  the trial boot: a complete install, reboot, cut between the
#      bootloader's "booting slot X once, on trial" and the time a boot
#      takes to reach ready (so before, around or after mark-good);
#   1  the bundle written: `gondwana update install` from a second disk,
#      cut while the boot partition is writable (the slot, its boot files,
#      its status record and the arming are written in that time);
#   2  the boot environment switched: alternately the arming at the
#      install's end (the last third of the writable time and 1 s past it)
#      and mark-good in the trial boot (0–4 s after its GONDWANA-READY).
# Before each cut the box writes state and has it acknowledged (`identity
# rotate --wireguard`: an identity-log entry and an audit record in one
# transaction). After each cut the same medium boots again and must reach
# ready on a good slot (a boot that is a trial must be marked good), with
# the same node id, no trial pending, the good slot's release installed,
# the acknowledged identity-log entries and audit records all there, and
# `audit verify` and `identity verify` passing.
# POWERCUT_SEED replays a run's choices (window moments; the VM's own
# timing still varies); the seed is printed first.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib/deps.sh
. "$ROOT/scripts/lib/deps.sh"
# shellcheck source=scripts/lib/qemu.sh
. "$ROOT/scripts/lib/qemu.sh"

board=$1
cuts=${2:-20}
seed=${POWERCUT_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
RANDOM=$seed
img=$ROOT/out/gondwana-$board.img
stage=$ROOT/out/images/$board
[[ -f $img && -f $ROOT/out/gondwana-$board.squashfs && -d $stage/boot/slot-a ]] ||
    GONDWANA_IMAGE_XZ=0 "$ROOT/scripts/build-images" "$board"
qemu_deps
need_apt dosfstools mtools
# shellcheck disable=SC1090
. "$ROOT/board/$board/board.env"

echo "powercut[$board]: seed $seed ($cuts cuts; POWERCUT_SEED=$seed replays the choices)"
t0=$SECONDS
ok() { printf 'powercut[%s]: ok   %s (%ss)\n' "$board" "$*" $((SECONDS - t0)); }
fail() {
    printf 'powercut[%s]: FAIL (seed %s) %s\n' "$board" "$seed" "$*" >&2
    tail -n 40 "$QEMU_DIR/vm/serial.log" >&2 2>/dev/null || true
    # The medium as the failure left it, to read with mtools or fsck.fat -n.
    trap 'qemu_stop_all' EXIT
    printf 'powercut[%s]: kept %s (remove it when done)\n' "$board" "$work" >&2
    exit 1
}
# shellcheck source=tests/images/update-lib.sh
. "$ROOT/tests/images/update-lib.sh"
vm_test_init powercut "$board"

# One bundle: the image's root and boot files, one version higher. It is
# installed again and again, into whichever slot is not running.
version=$(sed -n 's/^version=//p' "$stage/boot/slot-a/installed")
bundle next $((version + 1)) "$ROOT/out/gondwana-$board.squashfs" "$stage/boot/slot-a"
# The console is a slow serial line that can drop characters of a long
# command line: what runs at the cut is a script on the same disk.
cat >"$work/go.sh" <<'EOF'
# The install in the background; says when the boot partition turns
# writable (the writes start) and when the install is done.
gondwana update install /tmp/b/next.bundle >/tmp/install.log 2>&1 &
echo GW-STARTED
while grep -q ' /boot vfat ro' /proc/mounts; do sleep 0.1; done
echo GW-WRITING
while ! grep -q ' /boot vfat ro' /proc/mounts; do sleep 0.1; done
wait
echo GW-WRITTEN
EOF
bundle_disk "$work/next.bundle" "$work/go.sh"

cp --sparse=always "$img" "$work/disk.img"
image_grow "$work/disk.img" 512M

rand_ms() { # LO_MS HI_MS -> a seeded random number in [LO, HI]
    echo $(($1 + (RANDOM * 32768 + RANDOM) % ($2 - $1 + 1)))
}
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
cut() { # WHAT: kill -9 of QEMU, now
    local pid=${_QEMU_PID[vm]}
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    unset "_QEMU_PID[vm]"
    echo "powercut[$board]:      cut $((i + 1))/$cuts: $1"
}

# ---- boot and check ------------------------------------------------------
id='' acked_log=0 acked_key='' acked_audit=0 boot_ms=0
boot_and_check() { # after a cut (or the first time): boot, then every check
    local start line s n st
    start=$(now_ms)
    qemu_boot vm "$board" "$work/disk.img" "${bundle_disk_opts[@]}"
    line=$(qemu_wait vm 'gondwana: slot [ab] \(trial [01]\)' "$boot_secs") || fail "the bootloader chose no slot"
    local got
    got=$(ready)
    [[ -z $id || $got == "$id" ]] || fail "the node id changed: $id -> $got"
    id=$got
    ((boot_ms)) || boot_ms=$(($(now_ms) - start))
    if [[ $line == *"(trial 1)"* ]]; then
        # A trial armed before the cut: it must become good by itself.
        qemu_wait vm 'slot [ab] marked good' 120 >/dev/null || fail "the trial boot was not marked good"
    fi
    qemu_send vm "" # askfirst: Enter starts the console shell
    st=$(status_json) || fail "no update status"
    local running out
    running=$(field "$st" 'v["running_slot"]')
    [[ $(field "$st" 'v["good_slot"], v["trial"]') == "$running None" ]] || fail "not on the good slot, or a trial pending: $st"
    [[ $(field "$st" '[x["state"] for x in v["slots"] if x["running"]][0]') == running ]] || fail "status: $st"
    # One round trip on the console: identity, audit records, both verifies.
    out=$(vm_sh "gondwana identity show --json; gondwana audit show --json; gondwana audit verify && gondwana identity verify && echo GW-VERIFIED") ||
        fail "no answer"
    s=$(grep -a '^{' <<<"$out" | tail -1)
    # Nothing rotates after the acknowledged rotation: exactly that log.
    [[ $acked_log == 0 || $(field "$s" 'v["log_entries"], v["wireguard_public_key"]') == "$acked_log $acked_key" ]] ||
        fail "identity: $acked_log entries and WireGuard key $acked_key were acknowledged: $s"
    n=$(field "$(grep -a '^\[' <<<"$out" | tail -1)" 'len(v)')
    ((n >= acked_audit)) || fail "$n audit records, $acked_audit were acknowledged"
    grep -q '^GW-VERIFIED' <<<"$out" || fail "audit or identity verify failed: $out"
    vm_sh "$mount_bundles" >/dev/null || fail "the bundle disk was not mounted"
    # The boot partition must read back without errors (the next update
    # writes it).
    ! grep -a -m1 'FAT-fs.*error' "$QEMU_DIR/vm/serial.log" || fail "the boot partition's FAT is damaged"
    last_update=$(field "$st" 'v["last_update"] and v["last_update"]["text"]')
    ok "boot: slot $running running and good, node $id, $acked_log log entries and $acked_audit audit records kept, verified (last update: $last_update)"
}
write_state() { # an acknowledged state write, just before the cut
    local s
    s=$(vm_sh "gondwana identity rotate --wireguard --json >/dev/null && gondwana identity show --json && gondwana audit show --json") ||
        fail "identity rotate: no answer"
    acked_log=$(field "$(grep -a '^{' <<<"$s" | tail -1)" 'v["log_entries"]')
    acked_key=$(field "$(grep -a '^{' <<<"$s" | tail -1)" 'v["wireguard_public_key"]')
    acked_audit=$(field "$(grep -a '^\[' <<<"$s" | tail -1)" 'len(v)')
}

install_start() { # the install in the background (go.sh), until its writes start
    local n
    qemu_mark vm
    for n in 1 2 3; do
        qemu_send vm "sh /tmp/b/go.sh"
        qemu_wait vm '^GW-STARTED$' 20 >/dev/null && break
        qemu_send vm $'\003'
        ((n < 3)) || fail "the install did not start"
    done
    qemu_wait vm '^GW-WRITING$' 120 >/dev/null || fail "the install did not start writing"
}
write_ms=0 # how long the boot partition stayed writable, measured on a whole install
install_whole() {
    local start out
    install_start
    start=$(now_ms)
    qemu_wait vm '^GW-WRITTEN$' 120 >/dev/null || fail "the install did not end"
    write_ms=$(($(now_ms) - start))
    out=$(vm_sh "cat /tmp/install.log") || fail "install: no answer"
    grep -q 'reboot to boot it once on trial' <<<"$out" || fail "install: $out"
}
trial_boot() { # reboot into the armed trial
    qemu_mark vm
    qemu_send vm "reboot"
    qemu_wait vm 'gondwana: booting slot [ab] once, on trial' "$boot_secs" >/dev/null || fail "the bootloader did not take the trial"
}

boot_and_check
ok "first boot: node $id, power-on to ready ${boot_ms} ms"

# First, one cut at a fixed moment: just after an install returned, before
# anything else writes out the boot partition (docs/updates.md, "Power
# cuts", seed 52114). The partition is made writable by hand first, so the
# install leaves it so (its remount read-only would write everything out);
# the cut follows the install's answer. The medium must then hold the new
# slot's status record (the arming is written after it, so the next boot
# takes the trial) and its boot files, as the install wrote them.
write_state
out=$(vm_sh "mount -o remount,rw /boot && gondwana update install /tmp/b/next.bundle") || fail "install: no answer"
i=-1
cut "just after the install returned (the boot partition held read-write)"
grep -q 'reboot to boot it once on trial' <<<"$out" || fail "install: $out"
off=$(image_part_offset "$work/disk.img" 1)
record=$(MTOOLS_SKIP_CHECK=1 mtype -i "$work/disk.img@@$off" ::slot-b/installed 2>&1) || true
grep -qx "version=$((version + 1))" <<<"$record" || {
    MTOOLS_SKIP_CHECK=1 mdir -i "$work/disk.img@@$off" ::slot-b >&2 || true
    fail "after the cut, slot-b/installed on the medium is not the record the install wrote: '$record'"
}
for f in $(cd "$stage/boot/slot-a" && find . -type f ! -name installed | sed 's|^\./||'); do
    MTOOLS_SKIP_CHECK=1 mcopy -n -i "$work/disk.img@@$off" "::slot-b/$f" "$work/check" ||
        fail "after the cut, slot-b/$f is not on the medium"
    cmp -s "$work/check" "$stage/boot/slot-a/$f" || fail "after the cut, slot-b/$f on the medium differs from the bundle's"
done
ok "cut just after the install: slot b's record and boot files on the medium"
boot_and_check
for ((i = 0; i < cuts; i++)); do
    write_state
    case $((i % 3)) in
    0)
        install_whole
        trial_boot
        ms=$(rand_ms 0 "$boot_ms")
        sleep_ms "$ms"
        cut "trial boot, ${ms} ms after the bootloader took the trial"
        ;;
    1)
        ((write_ms)) || fail "no install measured yet"
        ms=$(rand_ms 0 "$write_ms")
        install_start
        sleep_ms "$ms"
        cut "bundle written, ${ms} ms into ${write_ms} ms of writes"
        ;;
    2)
        if (((i / 3) % 2 == 0)); then
            ms=$(rand_ms $((write_ms * 2 / 3)) $((write_ms + 1000)))
            install_start
            sleep_ms "$ms"
            cut "boot environment (arming), ${ms} ms into ${write_ms} ms of writes"
        else
            install_whole
            trial_boot
            qemu_wait vm 'GONDWANA-READY node_id=gw:' "$boot_secs" >/dev/null || fail "the trial boot did not reach ready"
            ms=$(rand_ms 0 4000)
            sleep_ms "$ms"
            cut "boot environment (mark-good), ${ms} ms after the trial's ready"
        fi
        ;;
    esac
    boot_and_check
done
qemu_stop vm
echo "powercut[$board]: $cuts cuts, every later boot ready on a good slot, identity and state kept, in $((SECONDS - t0))s (seed $seed)"

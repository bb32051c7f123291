#!/usr/bin/env bash
# tests/images/boot.sh BOARD [CHECK...] — boot out/gondwana-BOARD.img in QEMU
# (scripts/lib/qemu.sh) and check, from the serial console:
#   first      first boot creates GW_STATE and an identity (persistent=true);
#              the root rejects writes; every module the initramfs and
#              rcS chose from their lists for the VM's devices is in
#              /proc/modules, the MOCHAbin's own drivers are not chosen,
#              and rcS's `gondwana modules load` reported none failed
#   reboot     powering that medium on again keeps the node id
#   reflash    writing the image again over that medium, grown to 768 MiB,
#              keeps the node id; GW_STATE is re-found (not formatted) and
#              grown to the medium's end
#   resets     system_reset while the state partition is made and while the
#              identity is provisioned: never a broken or a changed identity
#   readonly   a read-only medium boots with state on tmpfs: persistent=false
#   enrol      a fresh copy with enroll.toml injected into GW_BOOT enrols with
#              a hub on the host (our x86_64 binary) and has a node id other
#              than `first`'s (nothing identity-like in the image); then
#              kernel WireGuard in the VM: status says kernel/up, the
#              handshake with the hub completed, pings cross the tunnel both
#              ways, the VM's `wg show` agrees with our status and
#              `nft list table inet gondwana` shows our table. The hub and
#              that VM run in a network namespace made for the test: the
#              hub's (userspace) WireGuard interface and nftables table never
#              touch the host's network. Then the box (docs/ssh.md,
#              docs/logging.md): its hostname and DHCP name are the boxname
#              the token gave; SSH to its mesh address from the hub (a mesh
#              address, no grant: the image opens 22 to the mesh) logs in
#              with the key from GW_BOOT's gondwana/authorized_keys, another
#              key is refused, and
#              `gondwana logs` shows stamped lines; dropbear listens on the
#              mesh address only; SSH to the VM's LAN address, and to its
#              mesh address from the LAN, is refused.
#   watchdog   (amd64-live only, not in the default list: `scripts/test
#              --full`) the hardware watchdog resets a hung box: the
#              daemon, which pets the i6300esb, is frozen (kill -STOP from
#              the console); the VM resets by itself, boots the good slot
#              (slot a, trial 0), reaches ready with the same node id, and
#              the driver reports the card reset the CPU (bootstatus 32)
# Default checks: all. Each VM gets a fresh sparse copy of the image, grown
# to 512 MiB (the "medium"). Exit status non-zero on the first failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib/deps.sh
. "$ROOT/scripts/lib/deps.sh"
# shellcheck source=scripts/lib/qemu.sh
. "$ROOT/scripts/lib/qemu.sh"
# shellcheck source=image/initrd.sh
. "$ROOT/image/initrd.sh"

board=$1
shift
checks=("$@")
((${#checks[@]})) || checks=(first reboot reflash resets readonly enrol)
img=$ROOT/out/gondwana-$board.img
[[ -f $img ]] || GONDWANA_IMAGE_XZ=0 "$ROOT/scripts/build-images" "$board"
qemu_deps

work=$(mktemp -d "/tmp/gondwana-imgtest-$board.XXXXXX")
QEMU_DIR=$work/vm
# The hub's network namespace and WireGuard interface: unique per run.
netns=gwimg-$$ hub_if=wgt$$ netns_made=
cleanup() {
    qemu_stop_all
    if [[ -n $netns_made ]]; then
        # The hub and its boringtun device process (which outlives it).
        local pid
        for pid in $(ip netns pids "$netns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
        sleep 0.3
        for pid in $(ip netns pids "$netns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns delete "$netns" 2>/dev/null || true
        rm -f "/var/run/wireguard/$hub_if.sock" "/var/run/wireguard/$hub_if.log"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
case $board in
mochabin) boot_secs=120 ;;
*) boot_secs=300 ;; # OVMF + GRUB + amd64 kernel under TCG
esac

t0=$SECONDS
ok() { printf 'images[%s]: ok   %s (%ss)\n' "$board" "$*" $((SECONDS - t0)); }
fail() {
    printf 'images[%s]: FAIL %s\n' "$board" "$*" >&2
    exit 1
}
fresh() { cp --sparse=always "$img" "$work/$1.img" && image_grow "$work/$1.img" 512M; }
ready() { # VM -> "node_id persistent"
    local line
    line=$(qemu_wait "$1" 'GONDWANA-READY node_id=gw:' "$boot_secs") || fail "$1: no GONDWANA-READY"
    sed -n 's/.*node_id=\([^ ]*\) persistent=\([^ ]*\).*/\1 \2/p' <<<"$line"
}

first_id=
check_first() {
    fresh first
    qemu_boot first "$board" "$work/first.img"
    qemu_wait first 'creating the state partition' "$boot_secs" >/dev/null || fail "first boot did not create the state partition"
    read -r first_id persistent < <(ready first)
    [[ $persistent == true ]] || fail "first boot: persistent=$persistent"
    grep -aq 'GONDWANA-ROOT read-only' "$QEMU_DIR/first/serial.log" || fail "the root filesystem accepted a write"
    ok "first boot: state partition created, identity $first_id, persistent, root read-only"
    check_modules first
    qemu_stop first
}

# The kernel modules the board needs are loaded: the initramfs' list (busybox
# modprobe) and the root's (`gondwana modules load` from rcS, one process,
# nothing failed), each as far as modules-present kept it for the VM's
# devices (/run/gondwana/modules.initramfs, /run/gondwana/modules/load.list),
# every one of them in the VM's /proc/modules; the data plane's and the
# virtio NIC's always; the MOCHAbin's Ethernet, switch, PHY and eMMC
# drivers never (QEMU has none of those devices: docs/image.md "Only the
# modules of present devices").
check_modules() {
    local stage=$ROOT/out/images/$board want have m absent='' shipped
    grep -aEq 'gondwana: modules: [1-9][0-9]* loaded, [0-9]+ already there, 0 failed' "$QEMU_DIR/$1/serial.log" ||
        fail "rcS: no 'gondwana: modules: N loaded, … 0 failed' line: $(grep -a 'modules' "$QEMU_DIR/$1/serial.log")"
    shipped=$({
        cat "$stage"/rootfs/lib/modules/*/load.list
        initrd_cat "$stage/inputs/initrd.img" | cpio -i --quiet --to-stdout 'lib/modules/*/load.list'
    } | sed 's|.*/||; s|\.ko$||; s|-|_|g' | sort -u)
    qemu_send "$1" "" # askfirst: Enter starts the console shell
    want=$(vm_sh "$1" "cat /run/gondwana/modules.initramfs /run/gondwana/modules/load.list") ||
        fail "no answer on the VM's console"
    want=$(tr ' ' '\n' <<<"$want" | sed 's|.*/||; s|\.ko$||; s|-|_|g' | grep . | sort -u)
    # What each VM has (scripts/lib/qemu.sh): a virtio disk, or a USB stick
    # on xHCI and an i6300esb watchdog.
    local present="wireguard nf_tables tun virtio_net"
    [[ $board == mochabin ]] && present+=" virtio_blk" || present+=" xhci_pci usb_storage i6300esb"
    for m in $present; do
        grep -qx "$m" <<<"$want" || fail "the VM's module lists lack $m: $(tr '\n' ' ' <<<"$want")"
    done
    for m in $want; do grep -qx "$m" <<<"$shipped" || fail "$m is in no list the image ships"; done
    if [[ $board == mochabin ]]; then
        for m in mvpp2 mv88e6xxx marvell sdhci_xenon_driver libphy; do
            grep -qx "$m" <<<"$shipped" || fail "the image does not ship $m"
            ! grep -qx "$m" <<<"$want" || fail "$m chosen although QEMU has no such device"
        done
    fi
    have=$(vm_sh "$1" "cut -d' ' -f1 /proc/modules") || fail "no answer on the VM's console"
    for m in $want; do grep -qx "$m" <<<"$have" || absent+=" $m"; done
    [[ -z $absent ]] || fail "modules not loaded:$absent"
    ok "the $(wc -w <<<"$want") modules of present devices (of $(wc -w <<<"$shipped") shipped) loaded (wireguard, nf_tables, the NIC, …)"
    # The hardware watchdog (docs/updates.md, "Watchdog"): amd64's VM has an
    # i6300esb (scripts/lib/qemu.sh); the daemon holds it open and pets it.
    if [[ $board == amd64-live ]]; then
        have=$(vm_sh "$1" "cat /sys/class/watchdog/watchdog0/identity /sys/class/watchdog/watchdog0/state") ||
            fail "no answer on the VM's console"
        [[ $have == *i6300ESB*active* ]] || fail "the watchdog is not held open by the daemon: $have"
        ok "the daemon holds the hardware watchdog open: $(tr '\n' ' ' <<<"$have")"
    fi
}

# The watchdog's forced expiry (docs/updates.md, "Watchdog"). Only the
# daemon pets /dev/watchdog, and a stopped process keeps it open, so the
# kernel does not pet it either: after the i6300esb's two 30 s stages QEMU
# resets the VM (`-watchdog-action` defaults to reset). QEMU's i6300esb
# keeps a "previous reboot was mine" flag that the driver reads at probe:
# `bootstatus` 32 (WDIOF_CARDRESET) after that reset, 0 before it. The
# aarch64 VM (virt) has no watchdog: no such check there.
check_watchdog() {
    [[ $board == amd64-live ]] || fail "watchdog: QEMU's virt machine has no watchdog (docs/updates.md, \"Watchdog\")"
    [[ -n $first_id ]] || check_first
    qemu_boot first "$board" "$work/first.img"
    read -r id _ < <(ready first)
    [[ $id == "$first_id" ]] || fail "watchdog: the node id changed on a plain boot: $first_id -> $id"
    qemu_send first "" # askfirst: Enter starts the console shell
    local out bootstatus state pid frozen waited
    out=$(vm_sh first "cat /sys/class/watchdog/watchdog0/bootstatus /sys/class/watchdog/watchdog0/state; pidof gondwana") ||
        fail "no answer on the VM's console"
    read -r bootstatus state pid <<<"$(tr '\n' ' ' <<<"$out")"
    [[ $bootstatus == 0 && $state == active && $pid =~ ^[0-9]+$ ]] ||
        fail "watchdog: before the freeze want bootstatus 0, active, one daemon pid; the VM said: $out"
    qemu_mark first
    frozen=$SECONDS
    qemu_send first "kill -STOP $pid"
    qemu_wait first 'gondwana: slot a \(trial 0\)' $((boot_secs + 120)) >/dev/null ||
        fail "watchdog: no new boot of slot a after the daemon (pid $pid) was frozen"
    waited=$((SECONDS - frozen))
    # Sooner than the first stage's 30 s would be something else's reset.
    ((waited >= 30)) || fail "watchdog: the VM reset ${waited}s after the freeze, before the watchdog could expire"
    read -r id _ < <(ready first)
    [[ $id == "$first_id" ]] || fail "watchdog: the node id changed across the reset: $first_id -> $id"
    qemu_send first ""
    out=$(vm_sh first "cat /sys/class/watchdog/watchdog0/bootstatus /sys/class/watchdog/watchdog0/state") ||
        fail "no answer on the VM's console"
    read -r bootstatus state <<<"$(tr '\n' ' ' <<<"$out")"
    [[ $bootstatus == 32 && $state == active ]] ||
        fail "watchdog: after the reset want bootstatus 32 (the card reset the CPU) and active; the VM said: $out"
    ok "watchdog: the daemon frozen, the i6300esb reset the VM ${waited}s later; slot a booted, ready, same node id, bootstatus 32"
    qemu_stop first
}

check_reboot() {
    [[ -n $first_id ]] || check_first
    qemu_boot first "$board" "$work/first.img" # power off, power on
    qemu_wait first 'state partition /dev/[a-z0-9]*4 mounted' "$boot_secs" >/dev/null || fail "reboot: state not mounted"
    read -r id persistent < <(ready first)
    [[ $id == "$first_id" ]] || fail "reboot changed the node id: $first_id -> $id"
    ok "after a reboot: same node id"
    qemu_stop first
}

# Re-flashing the image over a medium that already holds a node (the
# operator's upgrade path), onto a bigger medium: the read-only part is
# replaced, the partition table loses GW_STATE's entry, and the next boot
# must re-create the entry over the same filesystem (never format it), grow
# it to the medium's new end, and be the same node.
check_reflash() {
    [[ -n $first_id ]] || check_first
    dd if="$img" of="$work/first.img" bs=4M conv=notrunc status=none
    image_grow "$work/first.img" 768M
    qemu_boot first "$board" "$work/first.img"
    qemu_wait first 'state partition /dev/[a-z0-9]*4 mounted' "$boot_secs" >/dev/null || fail "re-flash: state not mounted"
    read -r id persistent < <(ready first)
    qemu_stop first
    ! grep -aq 'formatting /dev' "$QEMU_DIR/first/serial.log" || fail "re-flash: the state partition was formatted"
    [[ $id == "$first_id" ]] || fail "re-flash changed the node id: $first_id -> $id"
    sfdisk --verify "$work/first.img" >/dev/null 2>&1 || fail "re-flash: the partition table does not verify: $(sfdisk --verify "$work/first.img" 2>&1)"
    python3 - "$work/first.img" <<'PY' || fail "re-flash: GW_STATE was not grown to the medium's end"
import json, subprocess, sys
img = sys.argv[1]
table = json.loads(subprocess.check_output(["sfdisk", "--json", img]))["partitiontable"]
part = [p for p in table["partitions"] if p["node"].endswith("4")][0]
medium = (768 << 20) // 512
# The entry reaches the medium's end (less the backup GPT on GPT media)...
assert part["start"] + part["size"] >= medium - 34 - 2048, (part, medium)
with open(img, "rb") as f:
    f.seek(part["start"] * 512 + 1024)
    sb = f.read(256)
blocks = int.from_bytes(sb[4:8], "little") | int.from_bytes(sb[0x150:0x154], "little") << 32
block_size = 1024 << int.from_bytes(sb[24:28], "little")
# ...and the filesystem fills the entry (resize2fs rounds down a little).
fs, entry = blocks * block_size, part["size"] * 512
assert entry - fs < 8 << 20, (fs, entry)
print(f"GW_STATE entry {entry >> 20} MiB, ext4 {fs >> 20} MiB")
PY
    ok "after re-flashing onto a bigger medium: same node id, GW_STATE kept (not formatted) and grown to the new end"
}

check_resets() {
    fresh resets
    qemu_boot resets "$board" "$work/resets.img"
    # Reset just after the partition table is written, during mkfs, and
    # while the daemon provisions the identity.
    local marker
    for marker in 'creating the state partition' 'formatting /dev' 'switching to root'; do
        qemu_mark resets
        qemu_wait resets "$marker" "$boot_secs" >/dev/null || fail "resets: no '$marker'"
        qemu_monitor resets system_reset
        ok "hard reset at '$marker'"
    done
    # A reset a moment after the daemon starts (identity commit in flight).
    qemu_mark resets
    qemu_wait resets 'GONDWANA-ROOT' "$boot_secs" >/dev/null || fail "resets: no root"
    sleep 0.$((RANDOM % 10))
    qemu_monitor resets system_reset
    qemu_mark resets
    read -r id1 _ < <(ready resets)
    qemu_mark resets
    qemu_monitor resets system_reset
    read -r id2 _ < <(ready resets)
    [[ -n $id1 && $id1 == "$id2" ]] || fail "identity changed across resets: $id1 -> $id2"
    ok "after 4 hard resets during first boot: one identity ($id1), stable across a reset"
    qemu_stop resets
}

check_readonly() {
    fresh ro
    QEMU_DRIVE_OPTS=readonly=on qemu_boot ro "$board" "$work/ro.img"
    qemu_wait ro 'state on tmpfs' "$boot_secs" >/dev/null || fail "read-only medium: no tmpfs fallback"
    read -r _ persistent < <(ready ro)
    [[ $persistent == false ]] || fail "read-only medium: persistent=$persistent"
    ok "read-only medium: state on tmpfs, persistent=false"
    qemu_stop ro
}

# VM COMMAND -> COMMAND's output, run on the VM's serial shell. The
# markers are split in the typed text so its echo never matches.
vm_seq=0
vm_sh() {
    local n log=$QEMU_DIR/$1/serial.log from
    for _ in 1 2 3; do
        n=$((++vm_seq))
        qemu_mark "$1"
        from=$(stat -c %s "$log")
        # The command starts after a second: output written while the serial
        # socket is being closed can come out with a byte doubled in QEMU's log.
        qemu_send "$1" "sleep 1; echo GW-OUT-\"\"$n; $2; echo GW-END-\"\"$n"
        if qemu_wait "$1" "^GW-OUT-$n\$" 20 >/dev/null 2>&1; then
            qemu_wait "$1" "^GW-END-$n\$" 90 >/dev/null || return 1
            tail -c +$((from + 1)) "$log" | tr -d '\r' | sed -n "/^GW-OUT-$n\$/,/^GW-END-$n\$/p" | sed '1d;$d'
            return 0
        fi
        # The typed line was cut (QEMU drops what the guest had not read yet
        # when the serial socket closes: seen on a loaded host): Ctrl-C
        # drops the partial line, then it is typed again.
        qemu_send "$1" $'\003'
    done
    return 1
}

check_enrol() {
    local bin=$ROOT/out/x86_64-unknown-linux-musl/gondwana port=$((30000 + RANDOM % 20000))
    [[ -x $bin ]] || "$ROOT/scripts/build" x86_64-unknown-linux-musl
    need_apt wireguard-tools iputils-ping iproute2 openssh-client
    ip netns add "$netns"
    netns_made=1
    ip -n "$netns" link set lo up
    mkdir -p "$work/hub"
    # QEMU user networking in the namespace: the guest reaches the
    # namespace's loopback as 10.0.2.2.
    cat >"$work/hub/gondwana.toml" <<TOML
role = "hub"
[hub]
public_endpoint = "10.0.2.2:51822"
enroll_listen = "127.0.0.1:$port"
public_url = "http://10.0.2.2:$port"
[api]
loopback = "127.0.0.1:$((port + 1))"
admin_socket = "$work/hub/admin.sock"
[mesh]
interface = "$hub_if"
[wireguard]
backend = "userspace"
TOML
    hub() { ip netns exec "$netns" "$bin" --config "$work/hub/gondwana.toml" --state-dir "$work/hub/state" "$@"; }
    hub run 2>"$work/hub/log" &
    for _ in $(seq 100); do grep -q running "$work/hub/log" 2>/dev/null && break; sleep 0.1; done
    hub token create --uses 1 --boxname "$boxname" --out "$work/enroll.toml" >/dev/null
    fresh enrol
    image_inject_enroll "$work/enrol.img" "$work/enroll.toml"
    # The operator's SSH key on GW_BOOT; the VM's LAN side (QEMU user
    # networking) forwarded from the namespace's 127.0.0.1:$lan_ssh.
    ssh-keygen -q -t ed25519 -N '' -C gondwana-test -f "$work/ssh_key"
    image_inject_file "$work/enrol.img" "$work/ssh_key.pub" gondwana/authorized_keys
    QEMU_NET_OPTS=hostfwd=tcp:127.0.0.1:$lan_ssh-:22 QEMU_NETNS=$netns qemu_boot enrol "$board" "$work/enrol.img"
    read -r id _ < <(ready enrol)
    if [[ -n $first_id ]]; then
        [[ $id != "$first_id" ]] || fail "two boots of the same image file gave the same node id $id"
        ok "a second copy of the image is another node ($id)"
    fi
    local line mesh_ip
    line=$(qemu_wait enrol 'GONDWANA-ENROLLED mesh_ip=' 120) || fail "the node did not enrol (hub log: $(tail -5 "$work/hub/log"))"
    mesh_ip=$(sed -n 's/.*mesh_ip=\([0-9.]*\).*/\1/p' <<<"$line")
    hub node list | grep -q "${id#gw:}" || hub node list | grep -q "gw-${id:3:10}" || fail "the hub does not list $id: $(hub node list)"
    ok "enroll.toml on GW_BOOT: enrolled with the hub ($mesh_ip)"
    check_kernel_wireguard "$mesh_ip"
    check_box "$id" "$mesh_ip"
    qemu_stop enrol
}

# The enrolled VM as an operator meets it: name, SSH over the mesh only, logs.
boxname=box-$$ lan_ssh=$((20000 + RANDOM % 10000))
check_box() {
    local id=$1 mesh_ip=$2 hub_ip out
    hub_ip=$(hub status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["dataplane"]["address"].split("/")[0])')
    vm_ssh() { # HOST [PORT] -- COMMAND: ssh from the hub's namespace with the GW_BOOT key (SSH_KEY)
        local host=$1 port=$2
        shift 2
        ip netns exec "$netns" timeout 30 ssh -i "${SSH_KEY:-$work/ssh_key}" -p "$port" -o BatchMode=yes -o ConnectTimeout=8 \
            -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "root@$host" "$@"
    }
    seen() { grep -aq "$1" "$QEMU_DIR/enrol/serial.log"; }
    # SSH itself is the check, not the console's GONDWANA-SSH line: under
    # TCG the serial console has garbled that line ("listening onn").
    local until=$((SECONDS + 60))
    while ((SECONDS < until)); do
        seen "GONDWANA-HOSTNAME $boxname" && vm_ssh "$mesh_ip" 22 true 2>/dev/null && break
        sleep 1
    done
    seen "GONDWANA-HOSTNAME $boxname" || fail "the VM was not named $boxname: $(grep -a GONDWANA- "$QEMU_DIR/enrol/serial.log")"
    vm_ssh "$mesh_ip" 22 true 2>/dev/null || fail "no SSH on the mesh address: $(grep -a -e GONDWANA- -e sshd "$QEMU_DIR/enrol/serial.log")"
    # Port 22 is open to the mesh (the image's firewall.mesh_open_ports), the
    # key is not optional.
    ssh-keygen -q -t ed25519 -N '' -C not-authorized -f "$work/other_key"
    ! SSH_KEY=$work/other_key vm_ssh "$mesh_ip" 22 true 2>/dev/null || fail "SSH over the mesh with a key not in authorized_keys"
    # shellcheck disable=SC2016 # expanded on the VM
    out=$(vm_ssh "$mesh_ip" 22 'hostname; cat /state/hostname; for p in /proc/[0-9]*; do tr "\000" " " <$p/cmdline; echo; done 2>/dev/null | grep -c "^udhcpc .*hostname:$(hostname)"; echo ---; gondwana logs -n 5; echo ---; gondwana logs -n 1 --json; echo ---; netstat -ltn | grep ":22 "') ||
        fail "SSH over the mesh from the hub with the GW_BOOT key: $out"
    python3 "$ROOT/tests/images/check_box.py" "$boxname" "$mesh_ip" <<<"$out" || fail "the box over SSH said: $out"
    ok "SSH over the mesh from the hub ($hub_ip, no grant) with the key from GW_BOOT, another key refused; hostname and DHCP name $boxname; gondwana logs stamped; dropbear on $mesh_ip:22 only"
    # The LAN side: nothing listens on the VM's LAN address...
    ! vm_ssh 127.0.0.1 "$lan_ssh" true 2>/dev/null || fail "SSH to the VM's LAN address succeeded"
    # ...and its mesh address routed from the LAN is dropped by the table.
    qemu_monitor enrol "hostfwd_add net0 tcp:127.0.0.1:$((lan_ssh + 1))-$mesh_ip:22"
    ! vm_ssh 127.0.0.1 $((lan_ssh + 1)) true 2>/dev/null || fail "SSH to the mesh address from the LAN succeeded"
    # (refused by the table's off-mesh guard, which counted it)
    out=$(vm_ssh "$mesh_ip" 22 'nft list chain inet gondwana input') || fail "SSH over the mesh after the LAN attempts: $out"
    grep -E 'iifname != "lo" counter packets [1-9]' <<<"$out" >/dev/null || fail "the off-mesh guard counted nothing: $out"
    ok "SSH refused from the LAN: to the LAN address (nothing listens) and to the mesh address (dropped by the table)"
}

# Kernel WireGuard in the enrolled VM, against the hub in $netns.
check_kernel_wireguard() {
    local mesh_ip=$1 hub_ip hub_key hs="" out=$work/vm-wg.txt
    hub_ip=$(hub status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["dataplane"]["address"].split("/")[0])')
    hub_key=$(ip netns exec "$netns" wg show "$hub_if" public-key)
    for _ in $(seq 60); do # the hub's side of the handshake
        hs=$(ip netns exec "$netns" wg show "$hub_if" latest-handshakes | awk '$2 > 0')
        [[ -n $hs ]] && break
        sleep 1
    done
    [[ -n $hs ]] || fail "no WireGuard handshake at the hub: $(ip netns exec "$netns" wg show "$hub_if")"
    ip netns exec "$netns" ping -c 2 -W 5 "$mesh_ip" >/dev/null || fail "the hub cannot ping the VM's mesh IP $mesh_ip"
    qemu_send enrol "" # askfirst: Enter starts the console shell
    # Status is refreshed every reconciler pass (10 s): wait for the handshake in it.
    for _ in $(seq 6); do
        vm_sh enrol "gondwana status --json" >"$out" || fail "no answer on the VM's console"
        grep -q '"last_handshake_unix":[0-9]' "$out" && break
        sleep 5
    done
    # Up to three readings: a serial console can garble a byte now and then.
    local attempt
    for attempt in 1 2 3; do
        vm_sh enrol "gondwana status --json; wg show wg-mesh public-key; wg show wg-mesh allowed-ips; wg show wg-mesh persistent-keepalive; ping -c 2 -W 5 $hub_ip >/dev/null && echo ping-ok; nft list table inet gondwana" >"$out" ||
            fail "no answer on the VM's console"
        python3 "$ROOT/tests/images/check_wg.py" "$out" "$hs" "$hub_key" && break
        ((attempt < 3)) || fail "kernel WireGuard in the VM; the VM said: $(cat "$out")"
    done
    ok "kernel WireGuard in the VM: up, handshake with the hub, pings both ways, wg show agrees, nft table inet gondwana"
}

# Not a check, a measurement (`scripts/bench paths`, not in the default
# list): kernel WireGuard memory per peer. A throwaway interface in the VM
# gets WGMEM_PEERS (1000) peers (a /32 and an endpoint each, from a file on
# GW_BOOT) in one `wg addconf`; /proc/meminfo before and after.
check_wgmem() {
    local n=${WGMEM_PEERS:-1000} out=$work/wgmem.out
    fresh wgmem
    python3 - "$n" >"$work/peers.conf" <<'PY'
import base64, os, sys
print("[Interface]\nListenPort = 51999")
for i in range(int(sys.argv[1])):
    print(f"[Peer]\nPublicKey = {base64.b64encode(os.urandom(32)).decode()}\n"
          f"AllowedIPs = 10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}/32\n"
          f"Endpoint = 198.51.100.{1 + i % 250}:{51820 + i % 4096}")
PY
    image_inject_file "$work/wgmem.img" "$work/peers.conf" gondwana/bench-peers.conf
    qemu_boot wgmem "$board" "$work/wgmem.img"
    ready wgmem >/dev/null
    qemu_send wgmem "" # askfirst: Enter starts the console shell
    local mem="grep -E '^(MemAvailable|Slab|SUnreclaim):' /proc/meminfo"
    vm_sh wgmem "ip link add wgmem type wireguard; sleep 2; echo before; $mem; wg addconf wgmem /boot/gondwana/bench-peers.conf; sleep 2; echo after; $mem; echo peers \$(wg show wgmem peers | wc -l); ip link del wgmem" >"$out" ||
        fail "no answer on the VM's console"
    python3 - "$out" "$n" <<'PY' || fail "wgmem: the VM said: $(cat "$out")"
import re, sys
text, n = open(sys.argv[1]).read(), int(sys.argv[2])
before, after = text.split("after", 1)
val = lambda part, k: int(re.search(rf"^{k}:\s+(\d+) kB", part, re.M).group(1))
peers = int(re.search(r"^peers (\d+)", after, re.M).group(1))
d = {k: val(after, k) - val(before, k) for k in ("Slab", "SUnreclaim")}
avail = val(before, "MemAvailable") - val(after, "MemAvailable")
print(f"wgmem: peers={peers} slab_delta_kib={d['Slab']} sunreclaim_delta_kib={d['SUnreclaim']} "
      f"memavailable_drop_kib={avail} slab_bytes_per_peer={d['Slab'] * 1024 // max(peers, 1)} "
      f"memavailable_bytes_per_peer={avail * 1024 // max(peers, 1)}")
PY
    qemu_stop wgmem
}

for c in "${checks[@]}"; do
    case $c in
    first | reboot | reflash | resets | readonly | enrol | watchdog | wgmem) "check_$c" ;;
    *) fail "unknown check '$c'" ;;
    esac
done
echo "images[$board]: all checks passed (${checks[*]}) in $((SECONDS - t0))s"

# shellcheck shell=bash
# scripts/lib/qemu.sh — boot Gondwana board images in QEMU, shared by
# tests/images/ and scripts/demo. Source it; needs ROOT.
#
#   qemu_deps                       install QEMU, U-Boot for virt, OVMF
#   image_grow IMG SIZE             make the "medium" bigger (truncate)
#   image_inject_enroll IMG FILE    mcopy FILE to gondwana/enroll.toml on GW_BOOT
#   image_inject_file IMG SRC DEST  mcopy SRC to DEST (e.g. gondwana/gondwana.toml,
#                                   the operator config) on GW_BOOT
#   qemu_boot NAME BOARD IMG [qemu args…]   start a VM in the background;
#                                   its files are in $QEMU_DIR/NAME/
#                                   (serial.log, serial.sock, monitor.sock)
#   qemu_wait NAME REGEX SECONDS    wait until the serial log (since the last
#                                   qemu_mark) has a line matching REGEX; print it
#   qemu_mark NAME                  later qemu_wait calls look only past here
#   qemu_send NAME TEXT             type TEXT (+ newline) on the serial console
#   qemu_monitor NAME COMMAND       a QEMU monitor command (system_reset, quit…)
#   qemu_stop NAME                  hard power-off (monitor quit), wait for exit
#
# Boards: mochabin -> qemu-system-aarch64 -M virt -cpu cortex-a72 with
# Debian's U-Boot (distro boot runs boot.scr from a virtio disk);
# amd64-live -> qemu-system-x86_64 -M q35 with OVMF, the image as a USB stick
# (qemu-xhci + usb-storage) and an i6300esb watchdog (the daemon pets
# /dev/watchdog). Both get user networking (the host is 10.0.2.2)
# and virtio-rng. QEMU_NET_OPTS adds options to that netdev (e.g.
# hostfwd=udp:127.0.0.1:5000-:51822), QEMU_DRIVE_OPTS to the disk (e.g.
# readonly=on); QEMU_NETNS runs QEMU in that network namespace (user
# networking then reaches the namespace's loopback as 10.0.2.2).

QEMU_DIR=${QEMU_DIR:-$ROOT/out/qemu}
declare -A _QEMU_PID _QEMU_MARK

qemu_deps() {
    # qemu-utils is pinned to the version of qemu-system-* (the preinstalled
    # backport conflicts with it).
    local want=1:7.2+dfsg-7+deb12u18+b3
    if ! dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -qxF "$want" ||
        ! command -v qemu-system-aarch64 >/dev/null || ! command -v qemu-system-x86_64 >/dev/null; then
        if [[ ${_GONDWANA_APT_UPDATED:-0} != 1 ]]; then
            _gw_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
            export _GONDWANA_APT_UPDATED=1
        fi
        _gw_deps_log "apt-get install qemu-system-x86 qemu-system-arm qemu-utils=$want"
        _gw_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            --allow-downgrades qemu-system-x86 qemu-system-arm "qemu-utils=$want" >/dev/null
    fi
    need_apt u-boot-qemu ovmf mtools fdisk python3
}

image_grow() { truncate -s "$2" "$1"; }

# Byte offset of partition N of a disk image.
image_part_offset() {
    local start
    start=$(sfdisk --dump "$1" 2>/dev/null | sed -n "s|^$1$2 : start= *\([0-9]*\),.*|\1|p")
    echo $((start * 512))
}

image_inject_enroll() {
    local img=$1 file=$2 off
    off=$(image_part_offset "$img" 1)
    MTOOLS_SKIP_CHECK=1 mcopy -o -i "$img@@$off" "$file" ::gondwana/enroll.toml
}

image_inject_file() {
    local img=$1 src=$2 dest=$3 off
    off=$(image_part_offset "$img" 1)
    MTOOLS_SKIP_CHECK=1 mcopy -o -i "$img@@$off" "$src" "::$dest"
}

qemu_boot() {
    local name=$1 board=$2 img=$3
    shift 3
    local d=$QEMU_DIR/$name
    rm -rf "$d"
    mkdir -p "$d"
    local common=(-m 512 -smp 2 -display none
        -chardev "socket,id=ser0,path=$d/serial.sock,server=on,wait=off,logfile=$d/serial.log"
        -serial chardev:ser0
        -monitor "unix:$d/monitor.sock,server=on,wait=off"
        -netdev "user,id=net0${QEMU_NET_OPTS:+,$QEMU_NET_OPTS}" -device virtio-net-pci,netdev=net0
        -device virtio-rng-pci)
    local cmd
    case $board in
    mochabin)
        cmd=(qemu-system-aarch64 -M virt -cpu cortex-a72 -bios /usr/lib/u-boot/qemu_arm64/u-boot.bin
            -drive "if=none,id=disk0,format=raw,file=$img${QEMU_DRIVE_OPTS:+,$QEMU_DRIVE_OPTS}"
            -device virtio-blk-pci,drive=disk0)
        ;;
    amd64-live)
        cp /usr/share/OVMF/OVMF_VARS_4M.fd "$d/vars.fd"
        cmd=(qemu-system-x86_64 -M q35
            -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
            -drive "if=pflash,format=raw,unit=1,file=$d/vars.fd"
            -drive "if=none,id=stick,format=raw,file=$img${QEMU_DRIVE_OPTS:+,$QEMU_DRIVE_OPTS}"
            -device qemu-xhci,id=xhci -device usb-storage,bus=xhci.0,drive=stick,removable=on
            -device i6300esb)
        # TCG by default (the figures are TCG; nested KVM is unreliable); opt in:
        [[ ${QEMU_KVM:-0} == 1 && -w /dev/kvm ]] && cmd+=(-accel kvm)
        ;;
    *)
        echo "qemu_boot: unknown board $board" >&2
        return 2
        ;;
    esac
    # `ip netns exec` execs QEMU: the pid stays QEMU's.
    [[ -z ${QEMU_NETNS:-} ]] || cmd=(ip netns exec "$QEMU_NETNS" "${cmd[@]}")
    "${cmd[@]}" "${common[@]}" "$@" >"$d/qemu.log" 2>&1 &
    _QEMU_PID[$name]=$!
    _QEMU_MARK[$name]=0
    echo "${_QEMU_PID[$name]}" >"$d/pid"
    local i
    for i in $(seq 50); do
        [[ -S $d/monitor.sock ]] && return 0
        sleep 0.1
    done
    cat "$d/qemu.log" >&2
    return 1
}

qemu_mark() {
    local log=$QEMU_DIR/$1/serial.log
    _QEMU_MARK[$1]=$(stat -c %s "$log" 2>/dev/null || echo 0)
}

qemu_wait() {
    local name=$1 re=$2 secs=$3 log=$QEMU_DIR/$1/serial.log line
    local deadline=$((SECONDS + secs))
    while ((SECONDS < deadline)); do
        if [[ -f $log ]]; then
            line=$(tail -c +$((${_QEMU_MARK[$name]:-0} + 1)) "$log" | tr -d '\r' | grep -a -E -m1 "$re") && {
                echo "$line"
                return 0
            }
        fi
        if ! kill -0 "${_QEMU_PID[$name]}" 2>/dev/null; then
            echo "qemu_wait($name): QEMU exited; $(cat "$QEMU_DIR/$name/qemu.log")" >&2
            return 1
        fi
        sleep 0.3
    done
    echo "qemu_wait($name): no /$re/ within ${secs}s; serial log tail:" >&2
    tail -n 25 "$log" >&2
    return 1
}

_qemu_sock_send() {
    python3 - "$1" "$2" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode())
time.sleep(0.3)
s.close()
PY
}

qemu_send() { _qemu_sock_send "$QEMU_DIR/$1/serial.sock" "$2"$'\r'; }
qemu_monitor() { _qemu_sock_send "$QEMU_DIR/$1/monitor.sock" "$2"$'\n'; }

qemu_stop() {
    local name=$1 pid=${_QEMU_PID[$1]:-}
    [[ -n $pid ]] || return 0
    qemu_monitor "$name" quit 2>/dev/null || kill "$pid" 2>/dev/null || true # (may have exited)
    local i
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "_QEMU_PID[$name]"
    return 0
}

# Stop every VM this shell started (for EXIT traps).
qemu_stop_all() {
    local name
    for name in "${!_QEMU_PID[@]}"; do qemu_stop "$name"; done
}

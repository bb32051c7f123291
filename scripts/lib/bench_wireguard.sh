# shellcheck shell=bash
# shellcheck disable=SC2154 # bin, work, report: set by scripts/bench
# scripts/lib/bench_wireguard.sh — the WireGuard sections of scripts/bench
# (sourced; uses its $bin, $work, $report and ratio()). All in network
# namespaces made here (unique names, removed on exit); devices stopped by
# the pid that serves their UAPI socket.
#
#   8b. Programming 1,000 peers into our userspace interface through the
#       daemon's code (`gondwana wireguard-bench`: open/adopt, configure,
#       apply_peers over UAPI), against `wg setconf` of the same peers on the
#       same interface; and both into a wireguard-go interface.
#   8c. iperf3 throughput through a tunnel between two namespaces (veth
#       underlay): our boringtun device process against wireguard-go
#       (Debian package), same keys, addresses, MTU 1420.
#   8d. RSS with 1,000 peers: the daemon side (holding the interface open
#       after applying) + the device process, against 24 MB.
#
# Knobs: BENCH_WG_PEERS (default 1000), BENCH_WG_RUNS (default 5),
# BENCH_WG_SECS (iperf3 seconds, default 5), BENCH_WG_ROUNDS (alternating
# iperf3 rounds, best of each is reported, default 2).

wg_netns=()
wg_sockets=()

# IFACE: pid of the process serving its UAPI socket (SO_PEERCRED).
wg_server_pid() {
    python3 - "/var/run/wireguard/$1.sock" <<'PY' 2>/dev/null
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
print(struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0])
PY
}

# IFACE: stops the device serving it. Ours: SIGTERM to the socket's server.
# wireguard-go daemonizes after opening its socket, so SO_PEERCRED names the
# launcher that has exited: it is found by name instead (the interface names
# here are unique to this run) and it also removes nothing itself.
wg_stop() {
    local pid
    pid=$(wg_server_pid "$1") || return 0
    if ! kill -0 "$pid" 2>/dev/null; then
        pid=$(pgrep -x -f "wireguard-go $1") || pid=
    fi
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "/var/run/wireguard/$1.sock"
}

wg_cleanup() {
    local s n
    for s in "${wg_sockets[@]}"; do wg_stop "$s"; done
    for n in "${wg_netns[@]}"; do ip netns del "$n" 2>/dev/null || true; done
    for s in "${wg_sockets[@]}"; do rm -f "/var/run/wireguard/$s.log"; done
}

# NS IFACE KIND(ours|go): starts a userspace device in NS.
wg_start() {
    wg_sockets+=("$2")
    case $3 in
    ours) ip netns exec "$1" "$bin" wireguard-userspace "$2" ;;
    go) ip netns exec "$1" wireguard-go "$2" >/dev/null 2>&1 ;;
    esac
}

ms_now() { date +%s%N; }
pss_kib() { awk '$1 == "Pss:" { print $2 }' "/proc/$1/smaps_rollup"; }

bench_wireguard() {
    need_apt iperf3 wireguard-go iputils-ping iproute2 wireguard-tools
    local peers=${BENCH_WG_PEERS:-1000} wruns=${BENCH_WG_RUNS:-5} secs=${BENCH_WG_SECS:-5}
    local rounds=${BENCH_WG_ROUNDS:-2}
    local tag=$(($$ % 100000)) a b t0 t1
    a=gwbench-$tag-a
    b=gwbench-$tag-b
    trap 'wg_cleanup; cleanup' EXIT
    for n in "$a" "$b"; do
        ip netns add "$n"
        wg_netns+=("$n")
        ip -n "$n" link set lo up
    done
    local d=$work/wg
    mkdir -p "$d"
    # A key, a port and PEERS random peers (/32 each), as wg-style files.
    python3 - "$d" "$peers" <<'PY'
import base64, os, sys
d, n = sys.argv[1], int(sys.argv[2])
k = lambda: base64.b64encode(os.urandom(32)).decode()
head = f"[Interface]\nPrivateKey = {k()}\nListenPort = 51830\n"
open(f"{d}/empty.conf", "w").write(head)
with open(f"{d}/peers.conf", "w") as f:
    f.write(head)
    for i in range(n):
        f.write(f"\n[Peer]\nPublicKey = {k()}\nAllowedIPs = 10.{200 + i // 65536}.{i // 256 % 256}.{i % 256}/32\n")
PY
    # The same for the wireguard-go device beside ours: another port.
    sed 's/^ListenPort = 51830/ListenPort = 51832/' "$d/empty.conf" >"$d/go-empty.conf"
    sed 's/^ListenPort = 51830/ListenPort = 51832/' "$d/peers.conf" >"$d/go-peers.conf"
    chmod 600 "$d"/*.conf

    # ---- 8b ---------------------------------------------------------------
    local ours=wgo$tag go=wgg$tag
    wg_start "$a" "$ours" ours
    wg_start "$a" "$go" go
    local our_ms=() our_apply=() set_ms=() go_set=() go_ours=()
    for _ in $(seq "$wruns"); do
        wg setconf "$ours" "$d/empty.conf"
        t0=$(ms_now)
        ip netns exec "$a" "$bin" wireguard-bench "$ours" "$d/peers.conf" >"$d/ours.json"
        t1=$(ms_now)
        our_ms+=($(((t1 - t0) / 1000)))
        our_apply+=("$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["apply_ms"]*1000))' "$d/ours.json")")
        wg setconf "$ours" "$d/empty.conf"
        t0=$(ms_now)
        wg setconf "$ours" "$d/peers.conf"
        t1=$(ms_now)
        set_ms+=($(((t1 - t0) / 1000)))
        wg setconf "$go" "$d/go-empty.conf"
        t0=$(ms_now)
        wg setconf "$go" "$d/go-peers.conf"
        t1=$(ms_now)
        go_set+=($(((t1 - t0) / 1000)))
        wg setconf "$go" "$d/go-empty.conf"
        t0=$(ms_now)
        ip netns exec "$a" "$bin" wireguard-bench "$go" "$d/go-peers.conf" >/dev/null
        t1=$(ms_now)
        go_ours+=($(((t1 - t0) / 1000)))
    done
    local n_ours n_go
    n_ours=$(wg show "$ours" peers | wc -l)
    n_go=$(wg show "$go" peers | wc -l)

    # ---- 8d (the device now holds PEERS peers) ------------------------------
    # The holder runs until its stdin (a fifo we hold open) closes.
    mkfifo "$d/hold.fifo"
    ip netns exec "$a" "$bin" wireguard-bench "$ours" "$d/peers.conf" --hold \
        <"$d/hold.fifo" >"$d/hold.json" 2>"$d/hold.err" &
    local holder=$! holdfd
    exec {holdfd}>"$d/hold.fifo"
    for _ in $(seq 100); do
        [[ -s $d/hold.json ]] && break
        sleep 0.1
    done
    local dev_pid daemon_rss daemon_hwm dev_rss
    dev_pid=$(wg_server_pid "$ours")
    daemon_rss=$(proc_kib "$holder" VmRSS)
    daemon_hwm=$(proc_kib "$holder" VmHWM)
    dev_rss=$(proc_kib "$dev_pid" VmRSS)
    # PSS counts the pages the two processes share (the same gondwana
    # binary's text) once between them: their sum is the memory they cost.
    local daemon_pss dev_pss go_pid go_rss=0 go_pss=0
    daemon_pss=$(pss_kib "$holder")
    dev_pss=$(pss_kib "$dev_pid")
    # The reference: wireguard-go holding the same number of peers (8b).
    if go_pid=$(pgrep -x -f "wireguard-go $go"); then
        go_rss=$(proc_kib "$go_pid" VmRSS)
        go_pss=$(pss_kib "$go_pid")
    fi
    exec {holdfd}>&-
    wait "$holder" || true
    wg_stop "$ours"
    wg_stop "$go"

    # ---- 8c ---------------------------------------------------------------
    ip -n "$a" link add va type veth peer name vb netns "$b"
    ip -n "$a" addr add 192.168.91.1/24 dev va
    ip -n "$b" addr add 192.168.91.2/24 dev vb
    ip -n "$a" link set va up
    ip -n "$b" link set vb up
    python3 - "$d" <<'PY'
import base64, os, subprocess, sys
d = sys.argv[1]
ka, kb = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
pub = lambda k: subprocess.run(["wg", "pubkey"], input=k, capture_output=True, text=True, check=True).stdout.strip()
open(f"{d}/a.conf", "w").write(f"[Interface]\nPrivateKey = {ka}\nListenPort = 51831\n\n[Peer]\nPublicKey = {pub(kb)}\nAllowedIPs = 10.91.0.2/32\nEndpoint = 192.168.91.2:51831\n")
open(f"{d}/b.conf", "w").write(f"[Interface]\nPrivateKey = {kb}\nListenPort = 51831\n\n[Peer]\nPublicKey = {pub(ka)}\nAllowedIPs = 10.91.0.0/24\nEndpoint = 192.168.91.1:51831\nPersistentKeepalive = 25\n")
PY
    chmod 600 "$d"/*.conf
    # Alternating rounds, best of each: the machine is shared and one
    # round's figure swings with the neighbours' load.
    local kind round bps_ours=0 bps_go=0
    for round in $(seq "$rounds"); do
        for kind in ours go; do
            local ia=t${kind:0:1}a$tag ib=t${kind:0:1}b$tag
            wg_start "$a" "$ia" "$kind"
            wg_start "$b" "$ib" "$kind"
            wg setconf "$ia" "$d/a.conf"
            wg setconf "$ib" "$d/b.conf"
            ip -n "$a" addr add 10.91.0.1/24 dev "$ia"
            ip -n "$b" addr add 10.91.0.2/24 dev "$ib"
            ip -n "$a" link set "$ia" mtu 1420 up
            ip -n "$b" link set "$ib" mtu 1420 up
            ip netns exec "$b" ping -c 3 -i 0.2 -W 2 10.91.0.1 >/dev/null
            ip netns exec "$a" iperf3 -s -1 -B 10.91.0.1 >/dev/null 2>&1 &
            local srv=$!
            sleep 0.5
            ip netns exec "$b" iperf3 -c 10.91.0.1 -t "$secs" -J >"$d/iperf-$kind-$round.json"
            wait "$srv" || true
            local v
            v=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$d/iperf-$kind-$round.json")
            if [[ $kind == ours ]]; then
                ((v > bps_ours)) && bps_ours=$v
            else
                ((v > bps_go)) && bps_go=$v
            fi
            wg_stop "$ia"
            wg_stop "$ib"
        done
    done

    python3 - "$peers" "$n_ours" "$n_go" "${our_ms[*]}" "${our_apply[*]}" "${set_ms[*]}" \
        "${go_set[*]}" "${go_ours[*]}" "$daemon_rss" "$daemon_hwm" "$dev_rss" \
        "$bps_ours" "$bps_go" "$secs" "$daemon_pss" "$dev_pss" "$go_rss" "$go_pss" >>"$report" <<'PY'
import statistics, sys
a = sys.argv
peers, n_ours, n_go = int(a[1]), int(a[2]), int(a[3])
med = lambda s: statistics.median(int(x) for x in s.split()) / 1000
ours, apply, setconf, go_set, go_ours = (med(a[i]) for i in range(4, 9))
drss, dhwm, vrss = int(a[9]), int(a[10]), int(a[11])
bo, bg, secs = int(a[12]), int(a[13]), a[14]
dpss, vpss, grss, gpss = (int(x) for x in a[15:19])
print()
print(f"## 8b. Programming {peers} peers into a userspace interface (median of runs, whole process)")
print()
print("| what | ms |")
print("|---|---|")
print(f"| gondwana (daemon code: open/adopt, configure, apply_peers) into our boringtun device | {ours:.1f} |")
print(f"| of which apply_peers | {apply:.1f} |")
print(f"| `wg setconf` into the same device (reference) | {setconf:.1f} |")
print(f"| `wg setconf` into wireguard-go | {go_set:.1f} |")
print(f"| gondwana into wireguard-go | {go_ours:.1f} |")
print()
print(f"ratio gondwana / wg setconf (same device): {ours / setconf:.2f}  (target <= 1.5); "
      f"peers present afterwards: ours {n_ours}, wireguard-go {n_go}")
print()
print(f"## 8c. Tunnel throughput, iperf3 {secs} s, two namespaces over a veth, MTU 1420 (best of alternating rounds)")
print()
print("| device | Mbit/s |")
print("|---|---|")
print(f"| gondwana userspace (boringtun device process) | {bo / 1e6:.0f} |")
print(f"| wireguard-go (Debian package, reference) | {bg / 1e6:.0f} |")
print()
print(f"ratio gondwana / wireguard-go: {bo / bg:.2f}  (target >= 0.8)")
print()
print(f"## 8d. Memory with {peers} peers")
print()
print("| process | VmRSS KiB | PSS KiB |")
print("|---|---|---|")
print(f"| daemon side (holding the interface after apply; peak RSS {dhwm}) | {drss} | {dpss} |")
print(f"| device process (boringtun) | {vrss} | {vpss} |")
print(f"| wireguard-go with the same peers (reference) | {grss} | {gpss} |")
print()
mib = lambda k: k / 1024
print(f"ours: RSS summed {mib(drss + vrss):.1f} MiB (the shared binary counted twice); "
      f"PSS summed {mib(dpss + vpss):.1f} MiB = {(dpss + vpss) * 1024 / 24e6:.2f} of the 24 MB target")
if gpss:
    print(f"ratio ours / wireguard-go (PSS): {(dpss + vpss) / gpss:.2f}")
PY
}

# shellcheck shell=bash
# shellcheck disable=SC2154 # bin, work: set by scripts/bench
# shellcheck disable=SC2129 # one result line at a time, as measured
# scripts/lib/bench_paths.sh — `scripts/bench paths` (sourced; uses its
# $bin and $work). On the topology of tests/paths-netns.sh
# (scripts/lib/paths_topology.sh: a hub on an "internet", n1 and n2 behind
# two cone NATs), userspace WireGuard (the gondwana binary's device):
#
#   P1. Hub hairpin, the topology docs/paths.md replaces, set up by hand
#       with `wg` and `gondwana wireguard-userspace` devices in the hub's,
#       n1's and n2's namespaces (the hub forwards on that interface only):
#       iperf3 n2 -> n1 through the hub, which decrypts, routes and
#       re-encrypts. These devices stay up beside the mesh: every sample
#       of a path below is taken right after a hairpin sample, and its
#       ratio is to that sample (the machine's speed drifts by ±20 % over
#       minutes). BENCH_PATHS_ROUNDS (5) pairs per path; the report gives
#       medians and ranges.
#   P1b. The direct path's reference: the same devices with n1 and n2
#       peers of each other by hand at their NATs' public addresses (added
#       for each sample, removed after it).
#   P2. The mesh: hub, n1 and n2 enrol; seconds from both nodes' data plane
#       up to a direct handshake n1<->n2 through both NATs (n1's device
#       shows a handshake with n2 at site 2's public address); iperf3
#       n2 -> n1 on that direct path.
#   P3. The relay: the internet drops site 1 <-> site 2 UDP, n1 and n2 lose
#       power and start again (their hairpin devices are made again);
#       once n1's device points n2 at the hub's address, iperf3 n2 -> n1
#       through the ciphertext relay.
#   P4. Memory per peer: RSS and PSS of a userspace device before and after
#       one `wg set` of BENCH_PATHS_PEERS (1000) peers (a /32 and an
#       endpoint each); the kernel backend's the same way in a VM of the
#       MOCHAbin image (`tests/images/boot.sh mochabin wgmem`: Slab and
#       MemAvailable before and after; BENCH_PATHS_KERNEL=0 leaves it out).
#
# A part the binary cannot do (no direct path, no relay) is reported as
# such, never measured through another path. Knobs: BENCH_PATHS_SECS
# (iperf3 seconds, default 5), BENCH_PATHS_ROUNDS (default 5),
# BENCH_PATHS_PEERS (default 1000).

bench_paths() {
    need_apt iperf3 wireguard-tools iproute2 nftables iputils-ping
    local secs=${BENCH_PATHS_SECS:-5} peers=${BENCH_PATHS_PEERS:-1000}
    ROUNDS=${BENCH_PATHS_ROUNDS:-5}
    ID=$(($$ % 100000))
    BIN=$bin
    WORK=$work/paths
    mkdir -p "$WORK"
    # shellcheck source=scripts/lib/paths_topology.sh
    . "$ROOT/scripts/lib/paths_topology.sh"
    trap 'topo_cleanup; cleanup' EXIT
    local out=$WORK/results
    : >"$out"
    topo_build
    if bench_paths_hairpin_setup; then
        bench_paths_rounds byhand "$secs" "$out" bench_paths_byhand_sample "$secs"
        bench_paths_mesh "$secs" "$out"
    else
        echo "round_byhand_1=no hairpin devices | -" >>"$out"
    fi
    bench_paths_memory "$peers" "$out"
    if [[ ${BENCH_PATHS_KERNEL:-1} != 0 ]]; then
        # One boot of the MOCHAbin image under QEMU (TCG, about 100 s).
        local line
        line=$(WGMEM_PEERS=$peers "$ROOT/tests/images/boot.sh" mochabin wgmem 2>&1 | grep '^wgmem:')
        echo "kernel=${line:-the VM measurement failed (tests/images/boot.sh mochabin wgmem)}" >>"$out"
    else
        echo "kernel=not run (BENCH_PATHS_KERNEL=0)" >>"$out"
    fi
    python3 - "$out" "$secs" "$peers" "$ROUNDS" <<'PY'
import statistics, sys
r = dict(line.rstrip("\n").split("=", 1) for line in open(sys.argv[1]) if "=" in line)
num = lambda k: float(r[k]) if r.get(k, "").replace(".", "", 1).isdigit() else None


def rounds(key):
    """[(hairpin bps, hairpin cpu, bps, cpu)] of the complete rounds, and
    the first reason a sample is missing."""
    got, why = [], None
    for k in sorted(k for k in r if k.startswith(f"round_{key}_")):
        h, x = (part.split() for part in r[k].split("|", 1))
        try:
            got.append((float(h[0]), float(h[1]), float(x[0]), float(x[1])))
        except (ValueError, IndexError):
            why = why or r[k]
    return got, why


def span(values, fmt):
    med = statistics.median(values)
    return f"{fmt(med)} ({fmt(min(values))}–{fmt(max(values))})" if len(values) > 1 else fmt(med)


mbit = lambda v: f"{v / 1e6:.0f}"
two = lambda v: f"{v:.2f}"
print(f"# gondwana paths benchmark (userspace WireGuard, iperf3 {sys.argv[2]} s, n2 -> n1, "
      f"{sys.argv[4]} rounds: each sample right after a hairpin sample; median (min–max))")
print()
print("| path | Mbit/s | its hairpin samples, Mbit/s | / hairpin (per round) | goal | CPU s per GB (devices, daemons, relay) | hairpin's CPU / this |")
print("|---|---|---|---|---|---|---|")
for name, key, goal in (("direct by hand (n1 and n2 peers of each other, same devices: the reference)", "byhand", "-"),
                        ("direct through two NATs (the mesh)", "direct", ">= 1.8"),
                        ("ciphertext relay on the hub", "relay", ">= 1.3")):
    got, why = rounds(key)
    if not got:
        print(f"| {name} | n/a ({why or 'not run'}) | | | {goal} | | |")
        continue
    print(f"| {name} | {span([g[2] for g in got], mbit)} | {span([g[0] for g in got], mbit)} "
          f"| **{span([g[2] / g[0] for g in got], two)}** | {goal} | {span([g[3] for g in got], two)} "
          f"| {span([g[1] / g[3] for g in got], two)} |")
print()
print("(The hairpin: the hub decrypts, routes and re-encrypts — three devices set up by hand with `wg`.)")
print()
t = num("direct_secs")
print("seconds from both nodes up to a direct handshake through two NATs: "
      + (f"{t:.1f} (goal <= 5)" if t is not None else f"n/a ({r.get('direct_secs', 'not run')})"))
print()
print(f"## memory per peer, {sys.argv[3]} peers, userspace device (one `wg set`)")
print()
print("| | VmRSS KiB | PSS KiB |")
print("|---|---|---|")
print(f"| before | {r['rss_before']} | {r['pss_before']} |")
print(f"| after | {r['rss_after']} | {r['pss_after']} |")
print()
n = int(sys.argv[3])
print(f"per peer: {(int(r['rss_after']) - int(r['rss_before'])) * 1024 / n:.0f} bytes (RSS), "
      f"{(int(r['pss_after']) - int(r['pss_before'])) * 1024 / n:.0f} bytes (PSS); peers in the device: {r['peers_listed']}")
print()
k = r.get("kernel", "not run")
f = dict(kv.split("=") for kv in k.split()[1:]) if k.startswith("wgmem:") else None
print()
print(f"## memory per peer, kernel backend (MOCHAbin image, arm64 kernel under QEMU; one `wg addconf` into a throwaway interface)")
print()
if f:
    print("| measure | KiB for all peers | bytes per peer |")
    print("|---|---|---|")
    print(f"| Slab delta | {f['slab_delta_kib']} | {f['slab_bytes_per_peer']} |")
    print(f"| MemAvailable drop | {f['memavailable_drop_kib']} | {f['memavailable_bytes_per_peer']} |")
    print()
    print(f"peers in the VM's device: {f['peers']}")
else:
    print(f"n/a ({k})")
PY
}

# iperf3 FROM TO_ADDR SECS: bits/s received, n2-style client in FROM's
# namespace, server in the namespace holding TO_ADDR (first argument
# SERVER_NS).
# Also writes the CPU the long-lived processes of the hub's, n1's and n2's
# namespaces (WireGuard devices, daemons, the relay) spent per GB received
# to $WORK/cpu: on a loaded 2-core machine throughput hides the hairpin's
# extra decryption and encryption (it runs on the other core), CPU does not.
bench_paths_iperf() {
    local server_ns=$1 client_ns=$2 addr=$3 secs=$4 srv pids t0 t1
    mapfile -t pids < <(ip netns pids "$NS_HUB"; ip netns pids "$NS_N1"; ip netns pids "$NS_N2")
    t0=$(bench_paths_ticks "${pids[@]}")
    in_ns "$server_ns" iperf3 -s -1 -B "$addr" >/dev/null 2>&1 &
    srv=$!
    sleep 0.5
    in_ns "$client_ns" iperf3 -c "$addr" -t "$secs" -J >"$WORK/iperf.json" 2>/dev/null
    kill "$srv" 2>/dev/null # gone already when a client came
    wait "$srv" 2>/dev/null
    t1=$(bench_paths_ticks "${pids[@]}")
    python3 - "$WORK/iperf.json" "$((t1 - t0))" "$(getconf CLK_TCK)" "$WORK/cpu" <<'PY' || echo "iperf3 failed"
import json, sys
end = json.load(open(sys.argv[1]))["end"]["sum_received"]
gb = end["bytes"] / 1e9
open(sys.argv[4], "w").write(f"{int(sys.argv[2]) / int(sys.argv[3]) / gb:.2f}" if gb else "n/a")
print(int(end["bits_per_second"]))
PY
}
# PID...: their user + system CPU time so far, in clock ticks.
bench_paths_ticks() {
    local p sum=0 t
    for p in "$@"; do
        t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) && sum=$((sum + t))
    done
    echo "$sum"
}

# kill_ns NS: every process in NS (only this bench's run there).
bench_paths_kill_ns() {
    local pid
    for pid in $(ip netns pids "$1"); do kill "$pid" 2>/dev/null; done
    for _ in $(seq 50); do
        [[ -z $(ip netns pids "$1") ]] && return
        sleep 0.1
    done
    for pid in $(ip netns pids "$1"); do kill -9 "$pid" 2>/dev/null; done
}

# The hairpin's devices (hub, n1, n2: names, addresses, ports, keys),
# set up once and kept up beside the mesh, so that every sample of a path
# is paired with a hairpin sample taken just before it, on the same
# namespaces in the same minute (the machine's speed drifts by ±20 % over
# minutes; a ratio of two samples minutes apart measured that drift).
declare -A HP_IF HP_NS HP_ADDR HP_PORT HP_PUB

# bench_paths_hairpin_node N: (re)create N's hairpin device (after a
# power cut of N's namespace too) with the hub, or N's peers, as peers.
bench_paths_hairpin_node() {
    local n=$1 m
    in_ns "${HP_NS[$n]}" "$bin" wireguard-userspace "${HP_IF[$n]}" || return 1
    in_ns "${HP_NS[$n]}" wg set "${HP_IF[$n]}" private-key "$WORK/hp-$n.key" listen-port "${HP_PORT[$n]}"
    in_ns "${HP_NS[$n]}" ip addr add "${HP_ADDR[$n]}/24" dev "${HP_IF[$n]}"
    in_ns "${HP_NS[$n]}" ip link set "${HP_IF[$n]}" mtu 1420 up
    if [[ $n == hub ]]; then
        for m in n1 n2; do
            in_ns "$NS_HUB" wg set "${HP_IF[hub]}" peer "${HP_PUB[$m]}" allowed-ips "${HP_ADDR[$m]}/32"
        done
    else
        in_ns "${HP_NS[$n]}" wg set "${HP_IF[$n]}" peer "${HP_PUB[hub]}" allowed-ips 10.99.0.0/24 \
            endpoint "$HUB_PUBLIC:${HP_PORT[hub]}" persistent-keepalive 25
        # Its handshake teaches the hub its endpoint.
        in_ns "${HP_NS[$n]}" ping -c 2 -i 0.3 -W 2 "${HP_ADDR[hub]}" >/dev/null || true
    fi
}

bench_paths_hairpin_setup() {
    local n
    HP_IF=([hub]=hph$ID [n1]=hp1$ID [n2]=hp2$ID) HP_NS=([hub]=$NS_HUB [n1]=$NS_N1 [n2]=$NS_N2)
    HP_ADDR=([hub]=10.99.0.1 [n1]=10.99.0.2 [n2]=10.99.0.3) HP_PORT=([hub]=51900 [n1]=51901 [n2]=51902)
    topo_ifaces+=("${HP_IF[@]}")
    for n in hub n1 n2; do
        (umask 077 && wg genkey >"$WORK/hp-$n.key")
        HP_PUB[$n]=$(wg pubkey <"$WORK/hp-$n.key")
    done
    for n in hub n1 n2; do bench_paths_hairpin_node "$n" || return 1; done
    # The hairpin: the hub routes between its peers — on this interface
    # only (IPv4 asks the incoming interface), so that the mesh's hub
    # keeps forwarding off as it runs in production.
    in_ns "$NS_HUB" sysctl -qw "net.ipv4.conf.${HP_IF[hub]}.forwarding=1"
}

# bench_paths_hairpin_sample: iperf3 n2 -> n1 through the hub; "BPS CPU".
bench_paths_hairpin_sample() {
    in_ns "$NS_N2" ping -c 3 -i 0.3 -W 2 "${HP_ADDR[n1]}" >/dev/null || { echo "no ping n2 -> n1 through the hub"; return; }
    bench_paths_sample "${HP_ADDR[n1]}" "$1"
}

# bench_paths_byhand on|off: n1 and n2 peers of each other by hand (the
# direct path's reference: the same devices, at the other NAT's public
# address; masquerade keeps the unique listen ports), or not (back to the
# hairpin: the hub's /24 carries n1 <-> n2 again). "on" waits for the
# handshake through both NATs (both send at once, so the handshakes cross
# and open both NATs).
bench_paths_byhand() {
    if [[ $1 == off ]]; then
        in_ns "$NS_N1" wg set "${HP_IF[n1]}" peer "${HP_PUB[n2]}" remove
        in_ns "$NS_N2" wg set "${HP_IF[n2]}" peer "${HP_PUB[n1]}" remove
        return 0
    fi
    in_ns "$NS_N1" wg set "${HP_IF[n1]}" peer "${HP_PUB[n2]}" allowed-ips "${HP_ADDR[n2]}/32" \
        endpoint "$NAT2_PUBLIC:${HP_PORT[n2]}" persistent-keepalive 1
    in_ns "$NS_N2" wg set "${HP_IF[n2]}" peer "${HP_PUB[n1]}" allowed-ips "${HP_ADDR[n1]}/32" \
        endpoint "$NAT1_PUBLIC:${HP_PORT[n1]}" persistent-keepalive 1
    in_ns "$NS_N1" ping -c 20 -i 0.5 -W 1 "${HP_ADDR[n2]}" >/dev/null 2>&1 &
    local ping1=$!
    in_ns "$NS_N2" ping -c 20 -i 0.5 -W 1 "${HP_ADDR[n1]}" >/dev/null 2>&1 &
    local ping2=$! hs=0
    for _ in $(seq 100); do
        hs=$(in_ns "$NS_N1" wg show "${HP_IF[n1]}" latest-handshakes | awk -v k="${HP_PUB[n2]}" '$1 == k { print $2 }')
        [[ ${hs:-0} != 0 ]] && break
        sleep 0.1
    done
    kill "$ping1" "$ping2" 2>/dev/null
    wait "$ping1" "$ping2" 2>/dev/null
    [[ ${hs:-0} != 0 ]]
}

# bench_paths_rounds KEY SECS OUT SAMPLE_CMD...: BENCH_PATHS_ROUNDS times a
# hairpin sample, then SAMPLE_CMD's ("BPS CPU", or a reason it has none);
# one line per round to OUT: "round_KEY=HAIRPIN_BPS HAIRPIN_CPU BPS CPU".
bench_paths_rounds() {
    local key=$1 secs=$2 out=$3 r h x
    shift 3
    for r in $(seq "$ROUNDS"); do
        h=$(bench_paths_hairpin_sample "$secs")
        x=$("$@")
        echo "round_${key}_$r=$h | $x" >>"$out"
    done
}

# The by-hand direct path's sample: peers on, iperf3, peers off.
bench_paths_byhand_sample() {
    bench_paths_byhand on || { bench_paths_byhand off; echo "no handshake through both NATs in 10 s"; return; }
    bench_paths_sample "${HP_ADDR[n1]}" "$1"
    bench_paths_byhand off
}

# bench_paths_sample ADDR SECS: iperf3 n2 -> n1 at ADDR (the hairpin's,
# the mesh's); "BPS CPU".
bench_paths_sample() {
    echo "$(bench_paths_iperf "$NS_N1" "$NS_N2" "$1" "$2") $(cat "$WORK/cpu" 2>/dev/null)"
}

# n1's device: n2's endpoint and latest handshake (Unix seconds).
bench_paths_n1_view() {
    local key=$1
    in_ns "$NS_N1" wg show "$IF_N1" dump 2>/dev/null | awk -v k="$key" '$1 == k { print $3, $5 }'
}

bench_paths_mesh() {
    local secs=$1 out=$2 t0 t1 key2 ep hs
    # The relay's per-pair bound (default 100 Mbit/s, docs/config.md) off
    # the scale: the benchmark measures the relay, not its limit.
    if ! TOPO_HUB_EXTRA=$'[relay]\nmax_kbit_per_pair = 100000000' topo_enrol n1 n2; then
        echo "direct_secs=hub or nodes did not come up" >>"$out"
        return
    fi
    # Both data planes up (topo_enrol waited for them): the clock starts.
    t0=$(date +%s.%N)
    key2=$(wg_pub n2 "$NS_N2")
    local mesh1 mesh2
    mesh1=$(status_field n1 "$NS_N1" "s['enrolment']['mesh_ip']")
    mesh2=$(status_field n2 "$NS_N2" "s['enrolment']['mesh_ip']")
    # n1's firewall admits n2 to iperf3's port only by a grant, as it would
    # any service (docs/firewall.md).
    gw n1 "$NS_N1" grant add --ip "$mesh2" --port 5201 >/dev/null
    t1=
    for _ in $(seq 300); do
        read -r ep hs <<<"$(bench_paths_n1_view "$key2")"
        if [[ ${ep%:*} == "$NAT2_PUBLIC" && ${hs:-0} != 0 ]]; then
            t1=$(date +%s.%N)
            break
        fi
        sleep 0.1
    done
    if [[ -n $t1 ]]; then
        echo "direct_secs=$(python3 -c "print(f'{$t1 - $t0:.2f}')")" >>"$out"
        bench_paths_rounds direct "$secs" "$out" bench_paths_sample "$mesh1" "$secs"
    else
        echo "direct_secs=no direct handshake within 30 s: n1's endpoint for n2 is '${ep:-no such peer}'" >>"$out"
        echo "round_direct_1=- | no direct path" >>"$out"
    fi
    # The relay: the internet stops carrying site 1 <-> site 2 UDP; both
    # boxes start again and must fall back.
    in_ns "$NS_INET" nft -f - <<EOF
table ip gpblock {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ip saddr $NAT1_PUBLIC ip daddr $NAT2_PUBLIC meta l4proto udp drop
        ip saddr $NAT2_PUBLIC ip daddr $NAT1_PUBLIC meta l4proto udp drop
    }
}
EOF
    topo_kill n1
    topo_kill n2
    topo_start n1 "$NS_N1"
    topo_start n2 "$NS_N2"
    # The power cut took the nodes' hairpin devices too.
    bench_paths_hairpin_node n1
    bench_paths_hairpin_node n2
    local relayed=
    for _ in $(seq 600); do
        read -r ep hs <<<"$(bench_paths_n1_view "$key2")"
        if [[ ${ep%:*} == "$HUB_PUBLIC" && ${hs:-0} != 0 ]]; then
            relayed=yes
            break
        fi
        sleep 0.1
    done
    if [[ -n $relayed ]]; then
        bench_paths_rounds relay "$secs" "$out" bench_paths_sample "$mesh1" "$secs"
    else
        echo "round_relay_1=- | no relay within 60 s: n1's endpoint for n2 is '${ep:-no such peer}'" >>"$out"
    fi
    in_ns "$NS_INET" nft delete table ip gpblock
    for n in hub n1 n2; do topo_kill "$n"; done
}

bench_paths_memory() {
    local peers=$1 out=$2 ifm=mp$ID pid
    topo_ifaces+=("$ifm")
    in_ns "$NS_N4" "$bin" wireguard-userspace "$ifm" || return 1
    pid=$(ip netns pids "$NS_N4" | head -1)
    in_ns "$NS_N4" wg set "$ifm" private-key <(wg genkey) listen-port 51910
    sleep 1
    echo "rss_before=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status")" >>"$out"
    echo "pss_before=$(awk '$1 == "Pss:" { print $2 }' "/proc/$pid/smaps_rollup")" >>"$out"
    python3 - "$peers" >"$WORK/peers.args" <<'PY'
import base64, os, sys
for i in range(int(sys.argv[1])):
    key = base64.b64encode(os.urandom(32)).decode()
    print(f"peer {key} allowed-ips 10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}/32 "
          f"endpoint 198.51.100.{1 + i % 250}:{51820 + i % 4096}")
PY
    # One `wg set` with every peer: one UAPI transaction.
    # shellcheck disable=SC2046 # one word per argument, by design
    in_ns "$NS_N4" wg set "$ifm" $(cat "$WORK/peers.args")
    sleep 2
    {
        echo "rss_after=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status")"
        echo "pss_after=$(awk '$1 == "Pss:" { print $2 }' "/proc/$pid/smaps_rollup")"
        echo "peers_listed=$(in_ns "$NS_N4" wg show "$ifm" peers | wc -l)"
    } >>"$out"
    bench_paths_kill_ns "$NS_N4"
}

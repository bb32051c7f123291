# shellcheck shell=bash
# shellcheck disable=SC2154 # bin, benchbin, work: set by scripts/bench
# scripts/lib/bench_services.sh — `scripts/bench services` (sourced; uses
# its $bin, $benchbin and $work). Lending a service (docs/services.md),
# root, in namespaces of its own (removed by exact name on exit):
#
#   S1. Time from `service subscribe` to the first successful connection
#       (auto mode): a hub, n1 and n2 on a flat LAN (userspace WireGuard,
#       the real nftables table); n2 offers `web` (auto) with a TCP
#       listener. From inside n1, BENCH_SERVICES_RUNS (10) times: start
#       `service subscribe web@n2`, then try a TCP connection to n2:8080
#       every 10 ms (200 ms timeout each) until one is answered; then
#       unsubscribe and wait until connections fail again. Reference, the
#       same number of times: n2's operator runs `grant add --ip <n1>
#       --port 8080` (through n2's admin socket), same connection loop,
#       then `grant del`. Reported: median, min, max and the ratio.
#   S2. Provider CPU per BENCH_SUBSCRIPTIONS (1000) subscriptions with the
#       grants in one batch, against as many `nft add element` processes:
#       `gondwana-bench lending` in a namespace of its own (the method is
#       in firmware/bench/src/lending.rs and docs/services.md, "Measured").
#
# Reported, never asserted; the load average is printed with the figures.

bench_services() {
    need_apt nftables iproute2 iputils-ping
    local runs=${BENCH_SERVICES_RUNS:-10} subs=${BENCH_SUBSCRIPTIONS:-1000}
    ID=$(($$ % 100000))
    BIN=$bin
    WORK=$work/services
    mkdir -p "$WORK"
    NS_U=b13u$ID NS_H=b13h$ID NS_1=b13a$ID NS_2=b13b$ID NS_F=b13f$ID
    IF_H=b13h$ID IF_1=b13a$ID IF_2=b13b$ID
    UNDERLAY=192.0.2
    SUBNET=10.79.0.0/24
    local port=8080 load_before
    # shellcheck source=scripts/lib/netns.sh
    . "$ROOT/scripts/lib/netns.sh"
    trap 'ip netns del "$NS_F" 2>/dev/null; netns_cleanup "$IF_H" "$IF_1" "$IF_2"; cleanup' EXIT
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)

    underlay_bridge "$NS_U"
    attach "$NS_H" 1
    attach "$NS_1" 2
    attach "$NS_2" 3
    box_config hub hub "$IF_H" "[hub]
public_endpoint = \"$UNDERLAY.1:51822\"
enroll_listen = \"$UNDERLAY.1:8799\"
public_url = \"http://$UNDERLAY.1:8799\""
    box_config n1 node "$IF_1" "boxname = \"n1\""
    box_config n2 node "$IF_2" "boxname = \"n2\""
    gw_start hub "$NS_H"
    wait_for 20 mesh_up hub "$NS_H" || return 1
    gw hub "$NS_H" token create --uses 2 --ttl 1h --out "$WORK/enroll.toml" >/dev/null 2>&1 || return 1
    cp "$WORK/enroll.toml" "$WORK/n1/enroll.toml"
    cp "$WORK/enroll.toml" "$WORK/n2/enroll.toml"
    gw_start n1 "$NS_1"
    gw_start n2 "$NS_2"
    wait_for 40 mesh_up n1 "$NS_1" && wait_for 40 mesh_up n2 "$NS_2" || return 1
    local ip1 ip2
    ip1=$(status_field n1 "$NS_1" "s['enrolment']['mesh_ip']")
    ip2=$(status_field n2 "$NS_2" "s['enrolment']['mesh_ip']")
    in_ns "$NS_2" python3 -c "
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', $port)); s.listen(64)
while True:
    c, _ = s.accept(); c.sendall(b'hello\n'); c.close()" &
    gw n2 "$NS_2" service offer web --port "$port" --approve auto >/dev/null 2>&1 || return 1
    # shellcheck disable=SC2317 # called through wait_for
    sees_web() { gw n1 "$NS_1" service list --json | python3 -c "import json,sys; assert any(o['name'] == 'web' for o in json.load(sys.stdin))"; }
    wait_for 20 sees_web || return 1
    # The first handshake n1 -> n2 is not what S1 measures: ping first.
    wait_for 20 in_ns "$NS_1" ping -c 1 -W 1 "$ip2" >/dev/null || return 1

    local n1=("$BIN" --state-dir "$WORK/n1/state" --config "$WORK/n1/gondwana.toml")
    local n2=(ip netns exec "$NS_2" "$BIN" --state-dir "$WORK/n2/state" --config "$WORK/n2/gondwana.toml")
    in_ns "$NS_1" python3 - "$runs" "$ip1" "$ip2" "$port" "${#n1[@]}" "${n1[@]}" "${n2[@]}" >"$WORK/s1.json" <<'PY'
import json, socket, statistics, subprocess, sys, time
runs, ip1, ip2, port = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
k = int(sys.argv[5])
n1, n2 = sys.argv[6:6 + k], sys.argv[6 + k:]

def connects():
    try:
        with socket.create_connection((ip2, port), timeout=0.2) as s:
            s.settimeout(0.5)
            return s.recv(16) == b"hello\n"
    except OSError:
        return False

def until(want, limit):
    t0 = time.monotonic()
    while connects() != want:
        if time.monotonic() - t0 > limit:
            raise SystemExit(f"no {'connection' if want else 'refusal'} within {limit} s")
        time.sleep(0.01)

def timed(open_cmd):
    t0 = time.monotonic()
    subprocess.run(open_cmd, check=True, stdout=subprocess.DEVNULL)
    until(True, 15)
    return time.monotonic() - t0

ours, ref = [], []
for _ in range(runs):
    ours.append(timed(n1 + ["service", "subscribe", "web@n2", "--duration", "1h"]))
    subprocess.run(n1 + ["service", "unsubscribe", "web@n2"], check=True, stdout=subprocess.DEVNULL)
    until(False, 15)
    ref.append(timed(n2 + ["grant", "add", "--ip", ip1, "--port", str(port), "--timeout", "1h"]))
    subprocess.run(n2 + ["grant", "del", "--ip", ip1, "--port", str(port)], check=True, stdout=subprocess.DEVNULL)
    until(False, 15)
stat = lambda v: {"median": statistics.median(v), "min": min(v), "max": max(v)}
print(json.dumps({"runs": runs, "subscribe": stat(ours), "grant_add": stat(ref)}))
PY
    [[ -s $WORK/s1.json ]] || return 1

    ip netns add "$NS_F"
    in_ns "$NS_F" ip link set lo up
    in_ns "$NS_F" "$benchbin" lending --gondwana "$bin" --count "$subs" >"$WORK/s2.json" || return 1
    ip netns del "$NS_F"

    python3 - "$WORK/s1.json" "$WORK/s2.json" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
s1, s2 = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ms = lambda s: f"{s * 1000:.0f}"
o, r = s1["subscribe"], s1["grant_add"]
print("# Lending a service (scripts/bench services)")
print()
print(f"## S1. `service subscribe` (auto) to the first answered connection, {s1['runs']} runs")
print()
print("| how | median ms | min ms | max ms |")
print("|---|---|---|---|")
print(f"| consumer: `service subscribe web@n2`, then connect every 10 ms | {ms(o['median'])} | {ms(o['min'])} | {ms(o['max'])} |")
print(f"| reference: provider's operator: `grant add`, then connect every 10 ms | {ms(r['median'])} | {ms(r['min'])} | {ms(r['max'])} |")
print()
print(f"subscribe takes {o['median'] / r['median']:.1f}x the operator's `grant add` (medians)")
print()
n = s2["count"]
ours = s2["book_cpu_s"] + s2["batch_cpu_s"]
print(f"## S2. Provider CPU for {n} subscriptions, grants in one batch")
print()
print("| how | CPU s (user + sys) | wall s |")
print("|---|---|---|")
print(f"| ProviderBook: verify, decide, seal the decision, serialise the book ({n} requests) | {s2['book_cpu_s']:.3f} | {s2['book_wall_s']:.3f} |")
print(f"| `gondwana firewall-bench`: the {n} grants in one netlink batch (whole process) | {s2['batch_cpu_s']:.3f} | {s2['batch_wall_s']:.3f} |")
print(f"| ours in total | {ours:.3f} | {s2['book_wall_s'] + s2['batch_wall_s']:.3f} |")
print(f"| reference: {n} `nft add element` processes | {s2['nft_cpu_s']:.3f} | {s2['nft_wall_s']:.3f} |")
print()
print(f"ours uses {s2['nft_cpu_s'] / ours:.1f}x less CPU than the {n} nft processes "
      f"({ours / n * 1000:.2f} ms per subscription against {s2['nft_cpu_s'] / n * 1000:.2f} ms); "
      f"granted by the book: {s2['granted']}, read back from the kernel: {s2['batch']['listed']}; "
      f"the saved book at the end: {s2['saved_book_bytes']} bytes")
print()
print(f"load average (1, 5, 15 min) before: {sys.argv[3]}, after: {sys.argv[4]}")
PY
}

#!/usr/bin/env bash
# tests/paths-netns.sh — docs/paths.md for real: a hub on an "internet" and
# four nodes behind three real NATs (scripts/lib/paths_topology.sh has the
# picture): n1 and n4 on one LAN behind a cone NAT, n2 behind another cone
# NAT, n3 behind a symmetric NAT. Userspace WireGuard (boringtun): this
# host's kernel has no WireGuard module.
#
# Checks: the NATs are what they claim (a UDP socket's mapping seen from two
# destinations); the four nodes enrol through them; every pair pings over
# the mesh; the real `wg show` lists the hub and every other node on each
# node; the paths (`gondwana status --json` peers' `path` and `endpoint`,
# and the device's endpoint): n1↔n4 `lan` at n4's LAN address, n1↔n2
# `direct` at n2's NAT public address, n1↔n3 `relay` at the hub's address
# on a relay port; on the hub no node↔node plaintext: IPv4 forwarding off,
# the forward chain's drop counter of `table inet gondwana` stays 0, and
# tcpdump on its WireGuard interface sees n1's pings to the hub but none of
# n1's pings to n2 or to n3 (relayed: the hub forwards only its
# ciphertext). Then the hub loses power (daemon and userspace device
# killed): n1↔n2 and n1↔n4 still pass traffic, n1↔n3 does not and n1's
# status says `hub unreachable`; n1 loses power and starts again with the
# hub still down: n1↔n2 and n1↔n4 come back; the hub starts again: n1↔n3
# passes again, nobody re-enrolled (same node ids, no new enrol audit
# record, four nodes). Then a node relay: n5, a public box (no NAT) with
# `relay.enabled = true`, enrols; the hub moves n1↔n3 to it (the real `wg
# show` on n1 and n3 points at n5's address on a relay port, status says
# `relay`, n5's /metrics counts one pair and its packets, the hub's none);
# the hub loses power again and n1↔n3 still pings through n5, with
# status `relay` and no `hub unreachable`. Last, the hub starts again and
# n1 and n3 get a LAN of their own (a veth between them, new addresses):
# the relayed pair re-probes at once and goes `lan` over it, without
# waiting for the next probe round.
#
# A check whose feature the binary lacks FAILS (with the reason on the next
# line); nothing is skipped.
#
# Usage: tests/paths-netns.sh [path/to/gondwana]   (root; default: out/x86_64…)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$ROOT/out/x86_64-unknown-linux-musl/gondwana}
[[ -x $BIN ]] || {
    echo "no gondwana binary at $BIN (run scripts/build)" >&2
    exit 2
}
[[ $(id -u) == 0 ]] || {
    echo "needs root (network namespaces)" >&2
    exit 2
}
for tool in nft ip wg tcpdump ping python3; do
    command -v "$tool" >/dev/null || {
        echo "paths-netns: $tool is missing (scripts/test installs it)" >&2
        exit 2
    }
done

ID=$$
WORK=$(mktemp -d /tmp/gw-paths.XXXXXX)
# shellcheck source=scripts/lib/paths_topology.sh
. "$ROOT/scripts/lib/paths_topology.sh"
RELAY_PORTS="56000 56999" # relay.port_range's default (docs/paths.md)

# check "what" command...: on failure, the command's last output line says why.
check() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$what"; else
        fail "$what"
        [[ -n $out ]] && printf '           %s\n' "$(tail -n 1 <<<"$out")"
    fi
}

cleanup() {
    topo_cleanup
    if ((failures)) || [[ -n ${KEEP_LOGS:-} ]]; then
        show_daemon_logs 30
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

start=$SECONDS
log "namespaces: internet, hub, three NAT routers, four nodes (id $ID)"
topo_build

# The NATs: one socket, two destinations. A cone NAT shows the same public
# port to both (and keeps the source port); a symmetric one two ports.
read -r m2a m2b <<<"$(topo_mapped_ports "$NS_N2")"
read -r m3a m3b <<<"$(topo_mapped_ports "$NS_N3")"
log "site 2 NAT maps $N2_LAN:40000 to ${m2a:-?} and ${m2b:-?}; site 3 NAT to ${m3a:-?} and ${m3b:-?}"
check "site 2 NAT is endpoint-independent (same mapping for both destinations)" \
    [ -n "${m2a:-}" -a "${m2a:-}" == "${m2b:-}" -a "${m2a:-}" == "$NAT2_PUBLIC:40000" ]
check "site 3 NAT is symmetric (another public port per destination)" \
    [ -n "${m3a:-}" -a -n "${m3b:-}" -a "${m3a%:*}" == "$NAT3_PUBLIC" -a "${m3a:-}" != "${m3b:-}" ]

log "the hub, then n1..n4 enrol through their NATs"
topo_enrol n1 n2 n3 n4
for n in n1 n2 n3 n4; do
    check "$n enrolled through its NAT, tunnel up" mesh_up "$n" "$(topo_nsof "$n")"
done
declare -A MESH NODE_ID KEY
for n in n1 n2 n3 n4; do
    read -r "MESH[$n]" "NODE_ID[$n]" "KEY[$n]" <<<"$(status_field "$n" "$(topo_nsof "$n")" \
        "s['enrolment']['mesh_ip'], s['node_id'], s['dataplane']['public_key']")"
done
KEY[hub]=$(wg_pub hub "$NS_HUB")
log "mesh addresses: n1 ${MESH[n1]}, n2 ${MESH[n2]}, n3 ${MESH[n3]}, n4 ${MESH[n4]}"
enrol_records() { # the hub's audit records of an enrolment
    gw hub "$NS_HUB" audit show --json |
        python3 -c "import json,sys; print(sum('enrol' in r.get('kind', '') for r in json.load(sys.stdin)))"
}
enrols_before=$(enrol_records)

# ---- paths ------------------------------------------------------------------

# peer_field NAME MESH_IP FIELD: that peer's field in NAME's status --json;
# fails (saying so) when status has no such peer or field.
peer_field() {
    status_field "$1" "$(topo_nsof "$1")" "
(lambda p: p[0]['$3'] if p and '$3' in p[0] else (_ for _ in ()).throw(SystemExit(
    'status --json has no peer $2' if not p else 'status --json peers have no \"$3\" field (docs/paths.md, Status)')))(
    [p for p in (s.get('peers') or []) if p.get('mesh_ip') == '$2'])"
}
# wg_endpoint NAME KEY: the device's endpoint for that peer (real wg show).
wg_endpoint() {
    in_ns "$(topo_nsof "$1")" wg show "$(topo_if "$1")" endpoints | awk -v k="$2" '$1 == k { print $2 }'
}
# paths_settled: every node has a path other than none for every other
# node (one status per node); 2 when status has no paths at all (waiting
# cannot help).
paths_settled() {
    local n m others
    for n in n1 n2 n3 n4; do
        others=()
        for m in n1 n2 n3 n4; do [[ $m == "$n" ]] || others+=("${MESH[$m]}"); done
        gw "$n" "$(topo_nsof "$n")" status --json 2>/dev/null | python3 -c "
import json, sys
peers = {p.get('mesh_ip'): p for p in json.load(sys.stdin).get('peers') or []}
if not any('path' in p for p in peers.values()):
    sys.exit(2)
sys.exit(0 if all(peers.get(ip, {}).get('path') in ('lan', 'direct', 'relay') for ip in sys.argv[1:]) else 1)
" "${others[@]}" || return $?
    done
}
log "waiting for the path machines (at most 40 s)"
deadline=$((SECONDS + 40))
until paths_settled; do
    (($? == 2 || SECONDS > deadline)) && break
    sleep 0.5
done
log "paths settled (or gave up) after $((SECONDS - start)) s in all"

# expect_path NAME PEER PATH ENDPOINT-REGEX: status and the device agree.
expect_path() {
    local path endpoint dev
    path=$(peer_field "$1" "${MESH[$2]}" path) || { echo "$path"; return 1; }
    endpoint=$(peer_field "$1" "${MESH[$2]}" endpoint) || { echo "$endpoint"; return 1; }
    dev=$(wg_endpoint "$1" "${KEY[$2]}")
    echo "status: path $path, endpoint $endpoint; wg show: endpoint ${dev:-none}"
    [[ $path == "$3" && $endpoint =~ $4 && $dev == "$endpoint" ]]
}
relay_port_ok() { # relay_port_ok NAME PEER: the endpoint's port is in the relay range
    local ep lo hi
    ep=$(wg_endpoint "$1" "${KEY[$2]}")
    read -r lo hi <<<"$RELAY_PORTS"
    echo "wg show endpoint: ${ep:-none}"
    [[ ${ep%:*} == "$HUB_PUBLIC" ]] && ((${ep##*:} >= lo && ${ep##*:} <= hi))
}
re() { printf '^%s:[0-9]+$' "${1//./\\.}"; }
check "n1 -> n4: lan, at n4's LAN address" expect_path n1 n4 lan "$(re "$N4_LAN")"
check "n4 -> n1: lan, at n1's LAN address" expect_path n4 n1 lan "$(re "$N1_LAN")"
check "n1 -> n2: direct, at n2's NAT public address" expect_path n1 n2 direct "$(re "$NAT2_PUBLIC")"
check "n2 -> n1: direct, at site 1's NAT public address" expect_path n2 n1 direct "$(re "$NAT1_PUBLIC")"
check "n1 -> n3: relay, at the hub's address" expect_path n1 n3 relay "$(re "$HUB_PUBLIC")"
check "n1 -> n3: the endpoint's port is a relay port ($RELAY_PORTS)" relay_port_ok n1 n3
check "n3 -> n1: relay, at the hub's address" expect_path n3 n1 relay "$(re "$HUB_PUBLIC")"

# ---- every pair, real wg show --------------------------------------------------
ping_ok() { # ping_ok FROM TO: FROM's namespace pings TO's mesh address
    wait_for 10 in_ns "$(topo_nsof "$1")" ping -c 1 -W 1 "${MESH[$2]}"
}
for pair in "n1 n2" "n1 n3" "n1 n4" "n2 n3" "n2 n4" "n3 n4"; do
    read -r a b <<<"$pair"
    check "$a pings $b over the mesh" ping_ok "$a" "$b"
    check "$b pings $a over the mesh" ping_ok "$b" "$a"
done
wg_peers_are() { # wg_peers_are NAME KEY...: wg show lists exactly these keys
    local have want
    have=$(in_ns "$(topo_nsof "$1")" wg show "$(topo_if "$1")" peers | sort)
    want=$(printf '%s\n' "${@:2}" | sort)
    echo "wg show lists $(wc -l <<<"$have") peers, expected $#-1"
    [[ $have == "$want" ]]
}
check "hub: wg show lists exactly n1..n4" wg_peers_are hub "${KEY[n1]}" "${KEY[n2]}" "${KEY[n3]}" "${KEY[n4]}"
for n in n1 n2 n3 n4; do
    others=()
    for m in n1 n2 n3 n4; do [[ $m == "$n" ]] || others+=("${KEY[$m]}"); done
    check "$n: wg show lists exactly the hub and the three other nodes" wg_peers_are "$n" "${KEY[hub]}" "${others[@]}"
done
peer_allowed_is() { # peer_allowed_is NAME PEER: that peer's allowed IPs are its /32
    local got
    got=$(in_ns "$(topo_nsof "$1")" wg show "$(topo_if "$1")" allowed-ips | awk -v k="${KEY[$2]}" '$1 == k { print $2 }')
    echo "allowed ips: ${got:-none}"
    [[ $got == "${MESH[$2]:-$HUB_MESH}/32" ]]
}
MESH[hub]=$HUB_MESH
check "n1: the hub's allowed IP is its /32 (not the subnet)" peer_allowed_is n1 hub
check "n1: n2's allowed IP is its /32" peer_allowed_is n1 n2

# ---- the hub carries no node-to-node plaintext ----------------------------------
forward_drops() { # the packet counter of the drop rule of the hub's forward chain
    local c
    c=$(in_ns "$NS_HUB" nft list chain inet gondwana forward 2>&1 |
        sed -nE 's/.*counter packets ([0-9]+) bytes [0-9]+ drop.*/\1/p' | head -1)
    [[ -n $c ]] || {
        echo "no 'counter … drop' rule in chain inet gondwana forward"
        return 1
    }
    echo "$c"
}
check "hub: IPv4 forwarding is off" [ "$(in_ns "$NS_HUB" sysctl -n net.ipv4.ip_forward)" == 0 ]
check "hub: table inet gondwana has a forward chain that counts and drops" forward_drops
log "tcpdump on the hub's WireGuard interface while n1 pings n2, n3 and the hub"
in_ns "$NS_HUB" timeout 10 tcpdump -i "$IF_HUB" -n -l -p icmp >"$WORK/hub-icmp.txt" 2>"$WORK/tcpdump.err" &
dump=$!
sleep 1.5
n1_to_n2_ok=no
in_ns "$NS_N1" ping -c 5 -i 0.2 -W 1 "${MESH[n2]}" >/dev/null 2>&1 && n1_to_n2_ok=yes
n1_to_n3_ok=no
in_ns "$NS_N1" ping -c 3 -i 0.2 -W 1 "${MESH[n3]}" >/dev/null 2>&1 && n1_to_n3_ok=yes
in_ns "$NS_N1" ping -c 3 -i 0.2 -W 1 "$HUB_MESH" >/dev/null 2>&1
sleep 0.5
kill "$dump" 2>/dev/null
wait "$dump" 2>/dev/null
seen_to_hub=$(grep -c "${MESH[n1]} > $HUB_MESH: ICMP echo request" "$WORK/hub-icmp.txt")
seen_to_n2=$(grep -c "${MESH[n1]} > ${MESH[n2]}: ICMP" "$WORK/hub-icmp.txt")
seen_to_n3=$(grep -c "${MESH[n1]} > ${MESH[n3]}: ICMP" "$WORK/hub-icmp.txt")
check "n1 pinged n2 meanwhile" [ $n1_to_n2_ok == yes ]
check "n1 pinged n3 (relayed) meanwhile" [ $n1_to_n3_ok == yes ]
check "tcpdump on the hub's interface works (saw n1's $seen_to_hub pings to the hub)" [ "$seen_to_hub" -gt 0 ]
check "the hub's WireGuard interface carried no n1 -> n2 packet (saw $seen_to_n2)" [ "$seen_to_n2" == 0 ]
check "the hub's WireGuard interface carried no n1 -> n3 packet: the relay forwards ciphertext (saw $seen_to_n3)" [ "$seen_to_n3" == 0 ]
drops=$(forward_drops 2>&1)
check "hub: the forward drop counter is 0 after all that traffic (${drops})" [ "$drops" == 0 ]

# ---- the hub loses power ----------------------------------------------------------
log "kill -9 the hub's daemon and its userspace WireGuard device"
topo_kill hub
check "nothing runs in the hub's namespace" [ -z "$(ip netns pids "$NS_HUB")" ]
check "n1 pings n2 with the hub down" ping_ok n1 n2
check "n1 pings n4 with the hub down" ping_ok n1 n4
check_not "n1 cannot reach n3 with the hub down (relayed)" in_ns "$NS_N1" ping -c 2 -W 1 "${MESH[n3]}"
says_why() { # n1's status: n3 is relayed and the hub is unreachable
    local p
    p=$(peer_field n1 "${MESH[n3]}" path) || { echo "$p"; return 1; }
    gw n1 "$NS_N1" status --json >"$WORK/n1-status.json" 2>/dev/null
    echo "path $p; status --json mentions 'hub unreachable': $(grep -c 'hub unreachable' "$WORK/n1-status.json")"
    [[ $p == relay ]] && grep -q 'hub unreachable' "$WORK/n1-status.json"
}
check "n1: status --json says n3 is relayed and the hub unreachable" wait_for 60 says_why
says_why 2>&1 | sed 's/^/           /'

log "n1 loses power too, and starts again with the hub still down"
topo_kill n1
topo_start n1 "$NS_N1"
check "n1 up again without its hub" wait_for 20 mesh_up n1 "$NS_N1"
check "n1 pings n2 after its restart, hub down" wait_for 20 in_ns "$NS_N1" ping -c 1 -W 1 "${MESH[n2]}"
check "n1 pings n4 after its restart, hub down" wait_for 20 in_ns "$NS_N1" ping -c 1 -W 1 "${MESH[n4]}"

log "the hub starts again"
topo_start hub "$NS_HUB"
check "hub up again" wait_for 20 mesh_up hub "$NS_HUB"
check "n1 pings n3 again (relay back)" wait_for 40 in_ns "$NS_N1" ping -c 1 -W 1 "${MESH[n3]}"
check "n1 -> n3: relay again" expect_path n1 n3 relay "$(re "$HUB_PUBLIC")"
same_ids() {
    local n id
    for n in n1 n2 n3 n4; do
        id=$(status_field "$n" "$(topo_nsof "$n")" "s['node_id']")
        [[ -n $id && $id == "${NODE_ID[$n]}" ]] || { echo "$n: node id ${NODE_ID[$n]} -> $id"; return 1; }
    done
}
check "nobody re-enrolled: the same node ids" same_ids
check "nobody re-enrolled: no new enrol audit record on the hub ($enrols_before)" [ "$(enrol_records)" == "$enrols_before" ]
check "the hub lists four nodes" [ "$(gw hub "$NS_HUB" node list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" == 4 ]

# ---- a node relay: relayed pairs that outlive the hub ---------------------------
phase=$SECONDS
metric() { # metric NS FAMILY: the sum of FAMILY's samples on that box's loopback /metrics
    in_ns "$1" python3 - "$2" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:8798/metrics", timeout=5).read().decode()
family = sys.argv[1]
print(int(sum(float(l.split()[-1]) for l in text.splitlines()
              if l.startswith(family + " ") or l.startswith(family + "{"))))
PY
}
# n3 (symmetric NAT) is relayed with every other node: the hub's pairs.
hub_pairs_before=$(metric "$NS_HUB" gondwana_relay_pairs)
log "n5, a public box (no NAT) with relay.enabled = true, enrols; n1 <-> n3 moves to it"
topo_public_host "$NS_N5" "$N5_PUBLIC"
gw hub "$NS_HUB" token create --uses 1 --ttl 1h --out "$WORK/enroll5.toml" >/dev/null
topo_config n5 node "$IF_N5" "[relay]
enabled = true"
cp "$WORK/enroll5.toml" "$WORK/n5/enroll.toml"
topo_start n5 "$NS_N5"
check "n5 enrolled (public, relay.enabled = true), tunnel up" wait_for 30 mesh_up n5 "$NS_N5"
at_n5() { # at_n5 NAME PEER: NAME's device has PEER at n5's address, on a relay port
    local ep lo hi
    ep=$(wg_endpoint "$1" "${KEY[$2]}")
    read -r lo hi <<<"$RELAY_PORTS"
    echo "wg show endpoint: ${ep:-none}"
    [[ ${ep%:*} == "$N5_PUBLIC" ]] && ((${ep##*:} >= lo && ${ep##*:} <= hi))
}
check "n1 -> n3: wg show endpoint is n5's address on a relay port" wait_for 20 at_n5 n1 n3
at_n5 n1 n3 2>&1 | sed 's/^/           /'
check "n3 -> n1: wg show endpoint is n5's address on a relay port" wait_for 5 at_n5 n3 n1
at_n5 n3 n1 2>&1 | sed 's/^/           /'
check "n1 -> n3: status says relay, at n5's address" expect_path n1 n3 relay "$(re "$N5_PUBLIC")"
both_ping() { # both_ping A B: A and B ping each other at once
    in_ns "$(topo_nsof "$2")" ping -c 2 -i 0.3 -W 1 "${MESH[$1]}" >/dev/null 2>&1 &
    local other=$! rc
    in_ns "$(topo_nsof "$1")" ping -c 1 -W 1 "${MESH[$2]}"
    rc=$?
    wait "$other"
    return "$rc"
}
check "n1 <-> n3 ping through n5" wait_for 15 both_ping n1 n3
n5_pairs=$(metric "$NS_N5" gondwana_relay_pairs)
n5_packets=$(metric "$NS_N5" gondwana_relay_packets_total)
hub_pairs=$(metric "$NS_HUB" gondwana_relay_pairs)
check "n5's relay carries every pair the hub relayed (gondwana_relay_pairs ${n5_pairs:-?}, the hub had ${hub_pairs_before:-?})" \
    [ "${n5_pairs:-0}" -gt 0 -a "${n5_pairs:-}" == "${hub_pairs_before:-}" ]
check "n5's relay passed packets (gondwana_relay_packets_total ${n5_packets:-?})" [ "${n5_packets:-0}" -gt 0 ]
check "the hub no longer relays it (its gondwana_relay_pairs ${hub_pairs:-?})" [ "${hub_pairs:-}" == 0 ]

log "kill -9 the hub again: n1 <-> n3 goes on through n5"
topo_kill hub
check "n1 pings n3 through n5 with the hub down" ping_ok n1 n3
check "n3 pings n1 through n5 with the hub down" ping_ok n3 n1
n5_after=$(metric "$NS_N5" gondwana_relay_packets_total)
check "n5's relay counted the traffic ($n5_packets -> ${n5_after:-?} packets)" [ "${n5_after:-0}" -gt "${n5_packets:-0}" ]
relay_no_note() { # NAME PEER: status says relay, at n5, with no path_note
    local p e note
    p=$(peer_field "$1" "${MESH[$2]}" path) || { echo "$p"; return 1; }
    e=$(peer_field "$1" "${MESH[$2]}" endpoint) || { echo "$e"; return 1; }
    note=$(peer_field "$1" "${MESH[$2]}" path_note) || { echo "$note"; return 1; }
    echo "path $p, endpoint $e, path_note $note"
    [[ $p == relay && ${e%:*} == "$N5_PUBLIC" && $note == None ]]
}
check "n1: status says n3 is relay (at n5), no 'hub unreachable'" wait_for 10 relay_no_note n1 n3
relay_no_note n1 n3 2>&1 | sed 's/^/           /'
check "n3: status says n1 is relay (at n5)" relay_no_note n3 n1
log "node relay phase: $((SECONDS - phase)) s"

# ---- a LAN appears under a relayed pair ---------------------------------------
phase=$SECONDS
log "the hub starts again; n1 and n3 get a LAN of their own (198.18.77.0/24)"
topo_start hub "$NS_HUB"
check "hub up again" wait_for 20 mesh_up hub "$NS_HUB"
# Created in the two namespaces: removed with them by the cleanup.
ip link add "gl1$ID" netns "$NS_N1" type veth peer name "gl3$ID" netns "$NS_N3"
in_ns "$NS_N1" ip addr add 198.18.77.1/24 dev "gl1$ID"
in_ns "$NS_N3" ip addr add 198.18.77.3/24 dev "gl3$ID"
in_ns "$NS_N1" ip link set "gl1$ID" up
in_ns "$NS_N3" ip link set "gl3$ID" up
# Their next reports carry the new address (within 5 s), the snapshot
# shows it, and each side re-probes the relayed pair there.
check "n1 -> n3: lan, at n3's new address" wait_for 40 expect_path n1 n3 lan '^198\.18\.77\.3:'
expect_path n1 n3 lan '^198\.18\.77\.3:' 2>&1 | sed 's/^/           /'
check "n3 -> n1: lan, at n1's new address" wait_for 15 expect_path n3 n1 lan '^198\.18\.77\.1:'
check "n1 pings n3 over it" ping_ok n1 n3
log "new LAN phase: $((SECONDS - phase)) s"

echo
echo "paths-netns: $((checks - failures)) of $checks checks passed in $((SECONDS - start)) s"
((failures == 0))

#!/usr/bin/env bash
# tests/mesh-netns.sh — the data plane for real: a hub and two nodes, each in
# its own network namespace, joined through an "underlay" namespace (a
# bridge and veths). Userspace WireGuard (boringtun), because this host's
# kernel has no WireGuard module; the kernel backend is tested in a VM.
#
# Checks: auto-enrolment over the underlay and tunnels up; the hub does not
# forward between mesh peers (ip_forward off, our forward chain); node1
# pings node2 (a peer per box: the endpoint comes from the hub's candidate
# snapshot, docs/paths.md); the real `wg show` lists exactly the expected peers and
# the real `nft list ruleset` shows our table; a LAN host that routes
# node1's mesh address via node1's underlay address is dropped (and counted)
# while node1's API on its underlay address (api.listen) answers it; grants
# open one port to one peer (add, del, timeout); revoking node2 removes its
# peer and stops its traffic, and node2 learns it from the hub's public
# listener (status revoked, /v1/ready 503, no peers); killing and restarting the hub daemon keeps tunnels passing
# traffic; restarting a node daemon adopts the same interface and key with no
# duplicate peers; an IPv6 allowed IP an operator adds to a peer is removed
# by the next reconciler pass; an attacker box that adopted node1's
# WireGuard private key is refused (wireguard_key_taken) and node1 keeps its
# tunnel and its hub peer; an overlapping subnet is refused with nothing
# configured.
#
# Usage: tests/mesh-netns.sh [path/to/gondwana]   (root; default: out/x86_64…)
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

ID=$$
WORK=$(mktemp -d /tmp/gw-mesh.XXXXXX)
NS_U=gwu$ID NS_H=gwh$ID NS_A=gwa$ID NS_B=gwb$ID NS_X=gwx$ID NS_L=gwl$ID NS_T=gwt$ID
# Interface names are unique per host: boringtun's UAPI socket path
# (/var/run/wireguard/<if>.sock) ignores network namespaces.
IF_H=wgh$ID IF_A=wga$ID IF_B=wgb$ID IF_T=wgt$ID
UNDERLAY=192.0.2
SUBNET=10.77.0.0/24
HUB_MESH=10.77.0.1
ENROLL_PORT=8799
API_PORT=8798
SERVICE_PORT=8080
# in_ns, netns_add, gw, gw_start, status_field, wait_for, log/pass/fail…
# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"

cleanup() {
    # Everything we started lives in our namespaces: kill by pid, then
    # delete the namespaces by their exact names.
    netns_cleanup "$IF_H" "$IF_A" "$IF_B" "$IF_T" "wgx$ID"
    if ((failures)) || [[ -n ${KEEP_LOGS:-} ]]; then
        show_daemon_logs 40
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The underlay: a bridge in its own namespace, one veth per box.
underlay_bridge "$NS_U"
attach "$NS_H" 1
attach "$NS_A" 2
attach "$NS_B" 3
# A LAN host on the underlay: no gondwana, just routes and TCP.
attach "$NS_L" 9
attach "$NS_T" 4

# config NAME ROLE IFACE [extra toml] [subnet] [extra [api] lines] [extra [wireguard] lines]
config() {
    local name=$1 role=$2 ifname=$3 extra=${4:-} subnet=${5:-$SUBNET} api_extra=${6:-} wg_extra=${7:-}
    mkdir -p "$WORK/$name"
    cat >"$WORK/$name/gondwana.toml" <<EOF
role = "$role"
$extra
[wireguard]
backend = "userspace"
$wg_extra
[mesh]
subnet = "$subnet"
interface = "$ifname"
[api]
admin_socket = "$WORK/$name/admin.sock"
$api_extra
[enroll]
search_paths = ["$WORK/$name/enroll.toml"]
retry_initial_secs = 0.5
retry_max_secs = 2
directory_pull_secs = 2
EOF
}
hub_handshake() {
    [[ $(status_field "$1" "$2" "(s['dataplane'].get('hub') or {}).get('last_handshake_unix') or ''") != "" ]]
}
tcp_open() { # tcp_open NS IP PORT: connect within 2 s
    in_ns "$1" python3 -c "import socket,sys; socket.create_connection(('$2',$3),timeout=2).close()"
}
wg_peers() { in_ns "$1" wg show "$2" peers | sort; }

config hub hub "$IF_H" "[hub]
public_endpoint = \"$UNDERLAY.1:51822\"
enroll_listen = \"$UNDERLAY.1:$ENROLL_PORT\"
public_url = \"http://$UNDERLAY.1:$ENROLL_PORT\""
# node1 also serves its API on its underlay ("LAN") address, and adopts an
# existing WireGuard key (as a box moved from a wg-quick setup would); the
# attacker below adopts the same file.
wg genkey >"$WORK/node1.key"
config node1 node "$IF_A" "" "$SUBNET" "listen = \"$UNDERLAY.2:$API_PORT\"" \
    "private_key_file = \"$WORK/node1.key\""
# node2 starts with the default subnet: its firewall must follow the one
# it enrols into.
config node2 node "$IF_B" "" 10.10.0.0/24

log "starting the hub in $NS_H"
gw_start hub "$NS_H"
wait_for 20 mesh_up hub "$NS_H" || fail "hub data plane up"
gw hub "$NS_H" token create --uses 2 --ttl 1h --out "$WORK/enroll.toml" >/dev/null ||
    fail "token create"
cp "$WORK/enroll.toml" "$WORK/node1/enroll.toml"
cp "$WORK/enroll.toml" "$WORK/node2/enroll.toml"
log "starting node1 and node2; they enrol by themselves over the underlay"
gw_start node1 "$NS_A"
gw_start node2 "$NS_B"

check "node1 enrolled, tunnel up" wait_for 40 mesh_up node1 "$NS_A"
check "node2 enrolled, tunnel up" wait_for 40 mesh_up node2 "$NS_B"
check "node1 handshake with the hub" wait_for 30 hub_handshake node1 "$NS_A"
check "node2 handshake with the hub" wait_for 30 hub_handshake node2 "$NS_B"
IP_A=$(status_field node1 "$NS_A" "s['enrolment']['mesh_ip']")
IP_B=$(status_field node2 "$NS_B" "s['enrolment']['mesh_ip']")
log "node1 = $IP_A, node2 = $IP_B"

check "node1 pings the hub" in_ns "$NS_A" ping -c 2 -W 2 "$HUB_MESH"
# The hub routes no plaintext between mesh peers (docs/paths.md): it leaves
# IPv4 forwarding as it found it (off in a fresh namespace) and its table
# drops wg-mesh → wg-mesh; node1 and node2 reach each other over their own
# peers.
check "hub: IPv4 forwarding left off" [ "$(in_ns "$NS_H" cat /proc/sys/net/ipv4/ip_forward)" == 0 ]
check "hub: the forward chain drops $IF_H → $IF_H" \
    bash -c "ip netns exec $NS_H nft list chain inet gondwana forward | grep -qF 'iifname \"$IF_H\" oifname \"$IF_H\" counter'"
check "node1 pings node2" in_ns "$NS_A" ping -c 2 -W 2 "$IP_B"
check "node2 pings node1" in_ns "$NS_B" ping -c 2 -W 2 "$IP_A"

log "status, node list and /metrics after that traffic"
# The peers as the device reports them now: named, with traffic both ways
# and a fresh handshake (online = a handshake within 180 s).
peer_ok() { # peer_ok NAME NS MESH_IP: status --json has that peer, online, rx/tx > 0
    status_field "$1" "$2" "[p for p in s['peers'] if p['mesh_ip'] == '$3' and p['online'] and p['rx_bytes'] > 0 and p['tx_bytes'] > 0 and p['handshake_age_secs'] < 180 and p['name'] and p['last_handshake'].endswith('Z')][0]['name']"
}
check "hub: status --json lists node1 with traffic and a fresh handshake" peer_ok hub "$NS_H" "$IP_A"
check "hub: status --json lists node2 with traffic and a fresh handshake" peer_ok hub "$NS_H" "$IP_B"
check "node1: status --json lists the hub with traffic" peer_ok node1 "$NS_A" "$HUB_MESH"
hub_status=$(gw hub "$NS_H" status 2>&1)
check "hub: status shows the data plane (backend, port, key)" \
    bash -c "grep -q 'data plane: up, userspace backend' <<<\"\$1\" && grep -qE '  port: +[0-9]+' <<<\"\$1\"" _ "$hub_status"
check "hub: status shows a peers table with a header and node1's row" \
    bash -c "grep -qE '^PEER +MESH IP +PATH +ENDPOINT +LAST HANDSHAKE +RX +TX' <<<\"\$1\" && grep -qE ' $IP_A +direct +$UNDERLAY\.2:[0-9]+ +[0-9]+s ago +[0-9.]+ (B|KiB)' <<<\"\$1\"" _ "$hub_status"
node_list=$(gw hub "$NS_H" node list 2>&1)
printf '%s\n' "---- gondwana status (hub)" "$hub_status" "---- gondwana node list (hub)" "$node_list" "----"
check "hub: node list says node1 and node2 are online" \
    bash -c "grep -E ' $IP_A +yes ' <<<\"\$1\" && grep -E ' $IP_B +yes ' <<<\"\$1\"" _ "$node_list"
online_in_node_list() { # online_in_node_list N: node list --json has N nodes online, each with a last handshake
    gw hub "$NS_H" node list --json |
        python3 -c "import json,sys; l=json.load(sys.stdin); assert sum(1 for n in l if n['online'] is True and n['last_handshake']) == $1, l"
}
check "hub: node list --json has online and last_handshake" online_in_node_list 2
# Endpoint candidates (docs/paths.md): both nodes report themselves over the
# mesh, the hub observes their handshakes and signs a snapshot, and each
# node holds it verified against its own directory.
candidates_hold() { # candidates_hold NAME NS N: status shows a snapshot with >= N nodes
    [[ $(status_field "$1" "$2" "(s.get('candidates') or {}).get('nodes', 0) >= $3") == True ]]
}
check "hub: its candidate snapshot lists node1 and node2" wait_for 20 candidates_hold hub "$NS_H" 2
check "node1: holds the hub's snapshot, verified" wait_for 20 candidates_hold node1 "$NS_A" 2
check "node2: holds the hub's snapshot, verified" wait_for 20 candidates_hold node2 "$NS_B" 2
peer_metrics_ok() { # peer_metrics_ok NS MESH_IP...: per-peer families, parsed by prometheus_client
    in_ns "$1" /usr/bin/python3 - "${@:2}" <<'PY'
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://127.0.0.1:8798/metrics", timeout=3).read().decode()
samples = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        samples.setdefault(s.name, []).append(s)
def value(name, ip):
    found = [s.value for s in samples.get(name, []) if s.labels.get("mesh_ip") == ip and s.labels.get("peer") and s.labels.get("public_key")]
    assert len(found) == 1, (name, ip, found)
    return found[0]
for ip in sys.argv[1:]:
    assert value("gondwana_peer_receive_bytes_total", ip) > 0, ip
    assert value("gondwana_peer_transmit_bytes_total", ip) > 0, ip
    assert value("gondwana_peer_last_handshake_age_seconds", ip) < 180, ip
assert samples["gondwana_peers_online"][0].value == len(sys.argv[1:]), samples["gondwana_peers_online"]
PY
}
check "hub: /metrics has per-peer bytes and handshake age for node1 and node2" peer_metrics_ok "$NS_H" "$IP_A" "$IP_B"
check "node1: /metrics has per-peer bytes and handshake age for the hub and node2" peer_metrics_ok "$NS_A" "$HUB_MESH" "$IP_B"

expected=$(printf '%s\n' "$(wg_pub node1 "$NS_A")" "$(wg_pub node2 "$NS_B")" | sort)
check "hub: wg show lists exactly node1 and node2" [ "$(wg_peers "$NS_H" "$IF_H")" == "$expected" ]
node1_expected=$(printf '%s\n' "$(wg_pub hub "$NS_H")" "$(wg_pub node2 "$NS_B")" | sort)
check "node1: wg show lists exactly the hub and node2 (a peer per box)" \
    [ "$(wg_peers "$NS_A" "$IF_A")" == "$node1_expected" ]
check "node1: wg show lists the hub's /32" \
    bash -c "ip netns exec $NS_A wg show $IF_A allowed-ips | grep -q '$HUB_MESH/32'"
check "node1: wg show keepalive 25" \
    bash -c "ip netns exec $NS_A wg show $IF_A persistent-keepalive | grep -qw 25"
check "node1: nft list ruleset shows table inet gondwana" \
    bash -c "ip netns exec $NS_A nft list ruleset | grep -q 'table inet gondwana'"
check "node2: its firewall follows the enrolment's subnet" \
    bash -c "ip netns exec $NS_B nft list table inet gondwana | grep -q 'ip saddr $SUBNET tcp dport'"
check "node1: the API answers on its mesh address from node2" \
    in_ns "$NS_B" python3 -c "import urllib.request; urllib.request.urlopen('http://$IP_A:$API_PORT/v1/health', timeout=3)"

log "a LAN host routes node1's mesh address via node1's underlay address"
guard_drops() { # guard_drops NS IFACE: the off-mesh guard rule's packet counter
    in_ns "$1" nft list chain inet gondwana input |
        sed -nE "s/.*ip daddr [0-9./]+ iifname != \"$2\" iifname != \"lo\" counter packets ([0-9]+) .*/\1/p"
}
in_ns "$NS_L" ip route add "$IP_A/32" via "$UNDERLAY.2"
drops_before=$(guard_drops "$NS_A" "$IF_A")
check "node1: nft shows the off-mesh guard with a counter" [ -n "$drops_before" ]
check_not "the LAN host cannot reach node1's API on its mesh address" \
    tcp_open "$NS_L" "$IP_A" $API_PORT
drops_after=$(guard_drops "$NS_A" "$IF_A")
check "node1: the guard counted it ($drops_before -> $drops_after)" \
    [ "${drops_after:-0}" -gt "${drops_before:-0}" ]
check "the LAN host reaches node1's API on its underlay address (api.listen)" \
    in_ns "$NS_L" python3 -c "import urllib.request; urllib.request.urlopen('http://$UNDERLAY.2:$API_PORT/v1/health', timeout=3)"
check "node2 still reaches node1's API on its mesh address" \
    in_ns "$NS_B" python3 -c "import urllib.request; urllib.request.urlopen('http://$IP_A:$API_PORT/v1/health', timeout=3)"

log "an attacker box adopts node1's WireGuard private key and enrols with a fresh token"
config thief node "$IF_T" "" "$SUBNET" "" "private_key_file = \"$WORK/node1.key\""
thief_token=$(gw hub "$NS_H" token create --uses 1 --ttl 1h --json --out "$WORK/thief/enroll.toml" |
    python3 -c "import json,sys; print(json.load(sys.stdin)['token_id'])")
key_a=$(wg_pub node1 "$NS_A")
gw_start thief "$NS_T"
thief_refused() {
    [[ $(status_field thief "$NS_T" "s['enrolment'].get('last_error') or ''") == *wireguard_key_taken* ]]
}
check "the attacker is refused: wireguard_key_taken" wait_for 30 thief_refused
check "the attacker holds node1's key" [ "$(gw thief "$NS_T" identity show --json |
    python3 -c "import json,sys; print(json.load(sys.stdin)['wireguard_public_key'])")" == "$key_a" ]
kill "${daemon_pid[thief]}"
wait "${daemon_pid[thief]}" 2>/dev/null
uses=$(gw hub "$NS_H" token list --json |
    python3 -c "import json,sys; print([t['uses'] for t in json.load(sys.stdin) if t['id'] == '$thief_token'][0])")
check "the attacker's token use is not spent" [ "$uses" == 0 ]
key_holders=$(gw hub "$NS_H" directory show --json |
    python3 -c "import json,sys; print(sum(n['wireguard_public_key'] == '$key_a' for n in json.load(sys.stdin)['nodes']))")
check "the directory names node1's key once" [ "$key_holders" == 1 ]
check "hub: wg show still lists node1's key with node1's /32" \
    bash -c "ip netns exec $NS_H wg show $IF_H allowed-ips | grep -qxF '$key_a	$IP_A/32'"
check "hub: still exactly node1 and node2" [ "$(wg_peers "$NS_H" "$IF_H")" == "$expected" ]
check "node1 still pings the hub through the tunnel" in_ns "$NS_A" ping -c 2 -W 2 "$HUB_MESH"
check "node1 still pings node2 through the tunnel" in_ns "$NS_A" ping -c 2 -W 2 "$IP_B"

log "grants: a service on node1:$SERVICE_PORT"
in_ns "$NS_A" python3 -c "
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', $SERVICE_PORT)); s.listen(16)
while True:
    c, _ = s.accept(); c.close()" &
sleep 0.5
check_not "node2 cannot reach node1:$SERVICE_PORT before a grant" tcp_open "$NS_B" "$IP_A" $SERVICE_PORT
check "grant add" gw node1 "$NS_A" grant add --ip "$IP_B" --port $SERVICE_PORT
check "node2 reaches node1:$SERVICE_PORT after grant add" tcp_open "$NS_B" "$IP_A" $SERVICE_PORT
check "grant list shows it" bash -c "ip netns exec $NS_A $BIN --state-dir $WORK/node1/state --config $WORK/node1/gondwana.toml grant list | grep -q '$IP_B'"
check "grant del" gw node1 "$NS_A" grant del --ip "$IP_B" --port $SERVICE_PORT
check_not "node2 cannot reach node1:$SERVICE_PORT after grant del" tcp_open "$NS_B" "$IP_A" $SERVICE_PORT
check "grant add --timeout 3s" gw node1 "$NS_A" grant add --ip "$IP_B" --port $SERVICE_PORT --timeout 3s
check "node2 reaches node1:$SERVICE_PORT within the timeout" tcp_open "$NS_B" "$IP_A" $SERVICE_PORT
sleep 4
check_not "node2 cannot reach node1:$SERVICE_PORT after the timeout" tcp_open "$NS_B" "$IP_A" $SERVICE_PORT
check "grants are in the audit log" bash -c "ip netns exec $NS_A $BIN --state-dir $WORK/node1/state --config $WORK/node1/gondwana.toml audit show | grep -q grant"

log "kill -9 the hub daemon: tunnels keep passing traffic"
kill -9 "${daemon_pid[hub]}"
wait "${daemon_pid[hub]}" 2>/dev/null
check "node1 pings node2 with the hub daemon dead" in_ns "$NS_A" ping -c 2 -W 2 "$IP_B"
gw_start hub "$NS_H"
check "hub restarted, data plane up" wait_for 20 mesh_up hub "$NS_H"
check "hub after restart: exactly the same peers" [ "$(wg_peers "$NS_H" "$IF_H")" == "$expected" ]
check "node1 pings node2 after the hub restart" in_ns "$NS_A" ping -c 2 -W 2 "$IP_B"

log "restart node1's daemon: same interface, same key, no duplicate peers"
key_before=$(wg_pub node1 "$NS_A")
kill "${daemon_pid[node1]}"
wait "${daemon_pid[node1]}" 2>/dev/null
check "node1 pings the hub while its daemon is down" in_ns "$NS_A" ping -c 1 -W 2 "$HUB_MESH"
gw_start node1 "$NS_A"
check "node1 restarted, data plane up" wait_for 20 mesh_up node1 "$NS_A"
check "node1: same key after restart" [ "$(wg_pub node1 "$NS_A")" == "$key_before" ]
check "node1: two peers after restart (hub, node2)" [ "$(wg_peers "$NS_A" "$IF_A" | wc -l)" == 2 ]
check "node1: one interface" [ "$(in_ns "$NS_A" ip -o link show | grep -c "$IF_A")" == 1 ]

log "an operator's IPv6 allowed IP on node1's hub peer: the next pass replaces it"
hub_key=$(wg_pub hub "$NS_H")
in_ns "$NS_A" wg set "$IF_A" peer "$hub_key" allowed-ips "$HUB_MESH/32,fd00:77::/64"
no_foreign_ip() { ! in_ns "$NS_A" wg show "$IF_A" allowed-ips | grep -q fd00:77; }
check "node1: the reconciler removes it" wait_for 25 no_foreign_ip
check "node1: the hub's /32 stays" bash -c "ip netns exec $NS_A wg show $IF_A allowed-ips | grep -q '$HUB_MESH/32'"
check "node1 pings node2 after the re-set" in_ns "$NS_A" ping -c 2 -W 2 "$IP_B"

log "revoke node2 on the hub"
key_b=$(wg_pub node2 "$NS_B")
NAME_B=$(status_field node2 "$NS_B" "s['boxname']")
revoke_start=$SECONDS
check "node revoke $NAME_B" gw hub "$NS_H" node revoke "$NAME_B" --reason "scenario test"
node2_state() { status_field node2 "$NS_B" "s['enrolment']['state']"; }
node2_revoked_now() { [[ $(node2_state) == revoked ]]; }
# The hub hands the signed Revoke to node2 over the tunnel before it
# removes node2's peer: node2 acts within seconds, not at its next pull.
check "node2 says revoked within 5 s of node revoke (the hub pushed it)" wait_for 5 node2_revoked_now
log "node2 revoked after $((SECONDS - revoke_start)) s"
no_peer_b() { ! wg_peers "$NS_H" "$IF_H" | grep -qF "$key_b"; }
check "hub removes node2's peer" wait_for 15 no_peer_b
check_not "node2 can no longer reach node1" in_ns "$NS_B" ping -c 2 -W 2 "$IP_A"
check_not "node2 can no longer reach the hub" in_ns "$NS_B" ping -c 1 -W 2 "$HUB_MESH"
check "node1 still pings the hub" in_ns "$NS_A" ping -c 1 -W 2 "$HUB_MESH"
ready_code() { # ready_code NS: the HTTP status of GET /v1/ready on loopback
    in_ns "$1" python3 -c "
import urllib.request, urllib.error
try: print(urllib.request.urlopen('http://127.0.0.1:$API_PORT/v1/ready', timeout=3).status)
except urllib.error.HTTPError as e: print(e.code)"
}
node2_says_revoked() {
    [[ $(ready_code "$NS_B") == 503 ]] &&
        [[ $(status_field node2 "$NS_B" "s['enrolment']['state']") == revoked ]]
}
# Its pulls through the tunnel time out (15 s) every 2 s; the first failure
# makes it ask the hub's public listener.
check "node2 learns it: ready 503, status revoked" wait_for 60 node2_says_revoked
check "node2: status has the revocation's reason" \
    [ "$(status_field node2 "$NS_B" "s['enrolment']['revocation']['reason']")" == "scenario test" ]
no_peers_b() { [ -z "$(wg_peers "$NS_B" "$IF_B")" ]; }
check "node2: wg show lists no peers" wait_for 15 no_peers_b
check "node2: data plane state revoked" \
    [ "$(status_field node2 "$NS_B" "s['dataplane']['state']")" == revoked ]
check "node2: its daemon keeps running" kill -0 "${daemon_pid[node2]}"
check "node1 still pings the hub after node2 learnt it" in_ns "$NS_A" ping -c 1 -W 2 "$HUB_MESH"
check "node1 still ready" [ "$(ready_code "$NS_A")" == 200 ]

log "a hub whose subnet overlaps the underlay is refused, nothing configured"
netns_add "$NS_X"
in_ns "$NS_X" ip link add dummy0 type veth peer name dummy1 2>/dev/null
in_ns "$NS_X" ip addr add 10.77.0.5/24 dev dummy0
in_ns "$NS_X" ip link set dummy0 up
config overlap hub wgx$ID "[hub]
public_endpoint = \"127.0.0.1:51822\""
gw overlap "$NS_X" run >"$WORK/overlap/daemon.log" 2>&1
rc=$?
check "overlapping hub exits 7" [ $rc == 7 ]
check "it names the overlap" grep -q 10.77.0 "$WORK/overlap/daemon.log"
check_not "no interface was created" in_ns "$NS_X" ip link show wgx$ID
check "no nftables table was created" [ -z "$(in_ns "$NS_X" nft list tables)" ]

echo
echo "mesh-netns: $((checks - failures)) of $checks checks passed"
((failures == 0))

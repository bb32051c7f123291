# shellcheck shell=bash
# shellcheck disable=SC2034 # addresses and names used by the sourcing script
# scripts/lib/paths_topology.sh — the namespaces of docs/paths.md's scenario,
# with real NAT, for tests/paths-netns.sh and `scripts/bench paths`
# (sourced; the caller sets BIN, WORK, ID and calls topo_cleanup on exit).
#
#                       internet (router, ip_forward)
#        203.0.113.254/24 ──┤├── br0 198.51.100.254/24
#   hub 203.0.113.1          │      │            │
#               nat1 .11 ────┘  nat2 .12     nat3 .13      (WAN side)
#   masquerade (cone)      masquerade (cone)   masquerade fully-random
#   LAN 192.168.1.0/24     192.168.2.0/24      192.168.3.0/24 (symmetric)
#     n1 .2, n4 .4           n2 .2               n3 .3
#
# On demand (topo_public_host, tests/paths-netns.sh's node relay phase):
# n5 on br0 at 198.51.100.50, a public box without NAT.
#
# Linux masquerade keeps a source port when it is unique and reuses the
# mapping for every destination (endpoint-independent: a cone NAT);
# `fully-random` picks a random port per new conntrack entry, that is per
# destination (symmetric). topo_nat_kinds verifies both with real UDP.
#
# Names carry ID (unique per run); everything is removed by exact name or
# by the pids `ip netns pids` lists. Interface names are unique per host
# too: boringtun's UAPI socket path (/var/run/wireguard/<if>.sock) ignores
# network namespaces. The helpers it shares with tests/mesh-netns.sh
# (in_ns, gw, status_field, wait_for, check counters…) are in
# scripts/lib/netns.sh.

# shellcheck source=scripts/lib/netns.sh
. "$(dirname "${BASH_SOURCE[0]}")/netns.sh"

HUB_PUBLIC=203.0.113.1
NAT1_PUBLIC=198.51.100.11
NAT2_PUBLIC=198.51.100.12
NAT3_PUBLIC=198.51.100.13
N1_LAN=192.168.1.2
N4_LAN=192.168.1.4
N2_LAN=192.168.2.2
N3_LAN=192.168.3.3
N5_PUBLIC=198.51.100.50
MESH_SUBNET=10.77.0.0/24
HUB_MESH=10.77.0.1
HUB_WG_PORT=51822
ENROLL_PORT=8799

NS_INET=gpi$ID NS_HUB=gph$ID NS_R1=gpr1$ID NS_R2=gpr2$ID NS_R3=gpr3$ID
NS_N1=gpn1$ID NS_N2=gpn2$ID NS_N3=gpn3$ID NS_N4=gpn4$ID NS_N5=gpn5$ID
IF_HUB=wph$ID IF_N1=wp1$ID IF_N2=wp2$ID IF_N3=wp3$ID IF_N4=wp4$ID IF_N5=wp5$ID
topo_ifaces=("$IF_HUB" "$IF_N1" "$IF_N2" "$IF_N3" "$IF_N4" "$IF_N5")
topo_veths=0

# topo_link NS_A NAME_A NS_B NAME_B: a veth between two namespaces, up.
topo_link() {
    topo_veths=$((topo_veths + 1))
    local a=gva$topo_veths$ID b=gvb$topo_veths$ID
    ip link add "$a" type veth peer name "$b"
    ip link set "$a" netns "$1"
    ip link set "$b" netns "$3"
    in_ns "$1" ip link set "$a" name "$2"
    in_ns "$3" ip link set "$b" name "$4"
    in_ns "$1" ip link set "$2" up
    in_ns "$3" ip link set "$4" up
}

# topo_nat NS WAN_ADDR LAN_PREFIX MASQUERADE_FLAGS: a NAT router.
topo_nat() {
    local ns=$1 wan=$2 lan=$3 flags=$4
    netns_add "$ns"
    topo_link "$ns" wan "$NS_INET" "u$ns"
    in_ns "$NS_INET" ip link set "u$ns" master br0
    in_ns "$ns" ip addr add "$wan/24" dev wan
    in_ns "$ns" ip route add default via 198.51.100.254
    in_ns "$ns" ip link add lan type bridge
    in_ns "$ns" ip addr add "$lan.1/24" dev lan
    in_ns "$ns" ip link set lan up
    in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1
    in_ns "$ns" nft -f - <<EOF
table ip gpnat {
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" masquerade $flags
    }
    # As a home router: nothing unsolicited from the WAN for the router
    # itself. Dropped here, such a packet leaves no conntrack entry; without
    # this, a probe that arrives before the box behind sent its own would
    # leave one, and the box's later packet to that sender would get another
    # public port (the mapping clashes): not a cone any more.
    chain in {
        type filter hook input priority filter; policy accept;
        iifname "wan" ct state new drop
    }
}
EOF
}

# topo_host NS ROUTER_NS ADDR: a box on a NAT router's LAN.
topo_host() {
    local ns=$1 router=$2 addr=$3
    netns_add "$ns"
    topo_link "$ns" eth0 "$router" "l$ns"
    in_ns "$router" ip link set "l$ns" master lan
    in_ns "$ns" ip addr add "$addr/24" dev eth0
    in_ns "$ns" ip route add default via "${addr%.*}.1"
}

# topo_public_host NS ADDR: a box on the internet's bridge, no NAT.
topo_public_host() {
    netns_add "$1"
    topo_link "$1" eth0 "$NS_INET" "u$1"
    in_ns "$NS_INET" ip link set "u$1" master br0
    in_ns "$1" ip addr add "$2/24" dev eth0
    in_ns "$1" ip route add default via 198.51.100.254
}

topo_build() {
    netns_add "$NS_INET"
    in_ns "$NS_INET" sysctl -qw net.ipv4.ip_forward=1
    in_ns "$NS_INET" ip link add br0 type bridge
    in_ns "$NS_INET" ip addr add 198.51.100.254/24 dev br0
    in_ns "$NS_INET" ip link set br0 up
    netns_add "$NS_HUB"
    topo_link "$NS_HUB" eth0 "$NS_INET" hub
    in_ns "$NS_INET" ip addr add 203.0.113.254/24 dev hub
    in_ns "$NS_HUB" ip addr add "$HUB_PUBLIC/24" dev eth0
    in_ns "$NS_HUB" ip route add default via 203.0.113.254
    topo_nat "$NS_R1" "$NAT1_PUBLIC" 192.168.1 ""
    topo_nat "$NS_R2" "$NAT2_PUBLIC" 192.168.2 ""
    topo_nat "$NS_R3" "$NAT3_PUBLIC" 192.168.3 fully-random
    topo_host "$NS_N1" "$NS_R1" "$N1_LAN"
    topo_host "$NS_N4" "$NS_R1" "$N4_LAN"
    topo_host "$NS_N2" "$NS_R2" "$N2_LAN"
    topo_host "$NS_N3" "$NS_R3" "$N3_LAN"
}

# topo_mapped_ports NS: from one UDP socket (port 40000) in NS to two ports
# of the hub's public address; prints the two source ports the hub saw.
topo_mapped_ports() {
    in_ns "$NS_HUB" python3 - <<'PY' &
import socket
socks = []
for port in (40001, 40002):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port)); s.settimeout(5); socks.append(s)
for s in socks:
    data, peer = s.recvfrom(100)
    s.sendto(f"{peer[0]}:{peer[1]}".encode(), peer)
PY
    local server=$!
    sleep 0.3
    in_ns "$1" python3 - "$HUB_PUBLIC" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40000)); s.settimeout(3)
seen = []
for port in (40001, 40002):
    s.sendto(b"x", (sys.argv[1], port))
    seen.append(s.recvfrom(100)[0].decode())
print(" ".join(seen))
PY
    wait "$server" 2>/dev/null
}

topo_cleanup() { netns_cleanup "${topo_ifaces[@]}"; }

# ---- gondwana on the topology ----------------------------------------------

# topo_config NAME ROLE IFACE [extra top-level toml]: box_config
# (scripts/lib/netns.sh) on the mesh subnet, pulling every 2 s.
topo_config() { SUBNET=$MESH_SUBNET DIRECTORY_PULL_SECS=2 box_config "$@"; }

topo_start() { gw_start "$@"; } # topo_start NAME NS (scripts/lib/netns.sh)

# topo_kill NAME: kill -9 everything in NAME's namespace (its daemon and its
# userspace WireGuard device: the box loses power), and wait until it is gone.
topo_kill() {
    local pid ns
    ns=$(topo_nsof "$1")
    for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null; done
    wait "${daemon_pid[$1]}" 2>/dev/null
    for _ in $(seq 50); do
        [[ -z $(ip netns pids "$ns") ]] && break
        sleep 0.1
    done
    rm -f "/var/run/wireguard/$(topo_if "$1").sock"
}

# topo_enrol NODE...: the hub up, then each NODE (n1..n4) enrolled through
# its NAT with one token. Returns non-zero when a box does not come up.
topo_enrol() {
    topo_config hub hub "$IF_HUB" "[hub]
public_endpoint = \"$HUB_PUBLIC:$HUB_WG_PORT\"
enroll_listen = \"$HUB_PUBLIC:$ENROLL_PORT\"
public_url = \"http://$HUB_PUBLIC:$ENROLL_PORT\"
${TOPO_HUB_EXTRA:-}"
    topo_start hub "$NS_HUB"
    wait_for 20 mesh_up hub "$NS_HUB" || return 1
    gw hub "$NS_HUB" token create --uses $# --ttl 1h --out "$WORK/enroll.toml" >/dev/null || return 1
    local n ns
    for n in "$@"; do
        topo_config "$n" node "$(topo_if "$n")"
        cp "$WORK/enroll.toml" "$WORK/$n/enroll.toml"
        topo_start "$n" "$(topo_nsof "$n")"
    done
    for n in "$@"; do
        ns=$(topo_nsof "$n")
        wait_for 40 mesh_up "$n" "$ns" || return 1
    done
}
topo_nsof() { local v=NS_${1^^}; echo "${!v}"; }
topo_if() { local v=IF_${1^^}; echo "${!v}"; }

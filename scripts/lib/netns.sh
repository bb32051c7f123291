# shellcheck shell=bash
# shellcheck disable=SC2034 # daemon_pid and the counters: read by the sourcing script
# scripts/lib/netns.sh — what the namespace scenarios share
# (tests/mesh-netns.sh, tests/services-netns.sh; tests/paths-netns.sh and `scripts/bench paths`
# through scripts/lib/paths_topology.sh): namespaces created and removed
# with everything started in them, gondwana's daemon and CLI of a box in
# its namespace, its status, waiting, and counting checks.
#
# Sourced; the caller sets BIN (the gondwana binary) and WORK (one
# directory per run: $WORK/NAME holds box NAME's gondwana.toml, state and
# daemon.log). Everything is removed by exact name or by the pids
# `ip netns pids` lists, never by a process name.

# ---- checks ------------------------------------------------------------------

failures=0
checks=0
log() { printf '%s  %s\n' "$(date +%T)" "$*"; }
pass() {
    checks=$((checks + 1))
    log "ok   $*"
}
fail() {
    checks=$((checks + 1))
    failures=$((failures + 1))
    log "FAIL $*"
}
check() { # check "what" command...: passes when the command succeeds
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}
check_not() { # check_not "what" command...: passes when the command fails
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then fail "$what"; else pass "$what"; fi
}

# wait_for SECONDS command...: true once command succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.3
    done
}

# show_daemon_logs LINES: the last LINES of every box's daemon.log (a
# cleanup trap shows them after a failure).
show_daemon_logs() {
    local f
    for f in "$WORK"/*/daemon.log; do
        echo "---- $f"
        tail -n "$1" "$f"
    done
}

# ---- namespaces ----------------------------------------------------------------

in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

netns_created=()
netns_add() { # netns_add NS: a namespace with its loopback up, removed by netns_cleanup
    ip netns add "$1" && netns_created+=("$1")
    in_ns "$1" ip link set lo up
}

# netns_cleanup IFACE...: kills what runs in the namespaces netns_add made
# (TERM, then KILL), deletes them, and removes the userspace WireGuard
# sockets of IFACE... (boringtun's UAPI socket path,
# /var/run/wireguard/<if>.sock, ignores network namespaces).
netns_cleanup() {
    local ns pid ifname
    for ns in "${netns_created[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
    done
    sleep 0.5
    for ns in "${netns_created[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
        ip netns delete "$ns" 2>/dev/null
    done
    for ifname in "$@"; do
        rm -f "/var/run/wireguard/$ifname.sock" "/var/run/wireguard/$ifname.log"
    done
}

# ---- gondwana in a namespace ---------------------------------------------------

gw() { # gw NAME NS args...: the CLI of box NAME inside its namespace
    local name=$1 ns=$2
    shift 2
    in_ns "$ns" "$BIN" --state-dir "$WORK/$name/state" --config "$WORK/$name/gondwana.toml" "$@"
}

declare -A daemon_pid
gw_start() { # gw_start NAME NS: box NAME's daemon, in the background
    local name=$1 ns=$2
    # `ip netns exec` execs the daemon: $! is the daemon's pid (a shell
    # function in the background would be a subshell's).
    ip netns exec "$ns" "$BIN" --state-dir "$WORK/$name/state" --config "$WORK/$name/gondwana.toml" \
        run >>"$WORK/$name/daemon.log" 2>&1 &
    daemon_pid[$name]=$!
}

status_field() { # status_field NAME NS python-expression-on-s
    gw "$1" "$2" status --json 2>/dev/null |
        python3 -c "import json,sys; s=json.load(sys.stdin); print($3)"
}
mesh_up() { [[ $(status_field "$1" "$2" "s['dataplane']['state']") == up ]]; }
wg_pub() { status_field "$1" "$2" "s['dataplane']['public_key']"; }

# box_config NAME ROLE IFACE [extra toml]: $WORK/NAME/gondwana.toml for a box
# on $SUBNET with userspace WireGuard, its admin socket and enrolment file
# in $WORK/NAME, and fast retries and directory pulls (every
# ${DIRECTORY_PULL_SECS:-1} s).
box_config() {
    local name=$1 role=$2 ifname=$3 extra=${4:-}
    mkdir -p "$WORK/$name"
    cat >"$WORK/$name/gondwana.toml" <<EOF
role = "$role"
$extra
[wireguard]
backend = "userspace"
[mesh]
subnet = "$SUBNET"
interface = "$ifname"
[api]
admin_socket = "$WORK/$name/admin.sock"
[enroll]
search_paths = ["$WORK/$name/enroll.toml"]
retry_initial_secs = 0.5
retry_max_secs = 2
directory_pull_secs = ${DIRECTORY_PULL_SECS:-1}
EOF
}

# ---- one flat LAN --------------------------------------------------------------

# underlay_bridge NS: namespace NS holding bridge br0, the boxes' shared LAN.
underlay_bridge() {
    netns_add "$1"
    in_ns "$1" ip link add br0 type bridge
    in_ns "$1" ip link set br0 up
}

# attach NS HOSTNUM: a new namespace NS whose eth0 is on the bridge of
# $NS_U, at $UNDERLAY.HOSTNUM/24.
attach() {
    local ns=$1 n=$2
    netns_add "$ns"
    ip link add "v$ns" type veth peer name "u$ns"
    ip link set "v$ns" netns "$ns"
    ip link set "u$ns" netns "$NS_U"
    in_ns "$NS_U" ip link set "u$ns" master br0 up
    in_ns "$ns" ip link set "v$ns" name eth0
    in_ns "$ns" ip addr add "$UNDERLAY.$n/24" dev eth0
    in_ns "$ns" ip link set eth0 up
}

#!/usr/bin/env bash
# tests/static-binaries.sh — check the release binaries written by scripts/build.
#
# For out/x86_64-unknown-linux-musl/gondwana and
#     out/aarch64-unknown-linux-musl/gondwana:
#   1. `file` says it is a fully static ELF for the right architecture;
#   2. it runs (natively when the host has that architecture, else under
#      qemu-<arch>-static, installed from Debian's qemu-user-static if missing):
#      in a fresh state directory,
#        gondwana --state-dir DIR firstboot --json       -> node_id "gw:..."
#        gondwana --state-dir DIR identity show --json   -> the same node_id
#        gondwana --state-dir DIR firstboot --json       -> the same node_id
#                                                          (first boot is idempotent)
#
# Usage: tests/static-binaries.sh [TARGET...]   (default: both targets)
# Build first with scripts/build. The last line is
# "static-binaries: N passed, M failed"; the exit status is non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/deps.sh
. "$ROOT/scripts/lib/deps.sh"

ALL_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
RUN_TIMEOUT=${RUN_TIMEOUT:-120} # seconds per invocation (qemu is slow)

targets=("$@")
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")

passed=0
failed=0
ok() {
    passed=$((passed + 1))
    printf 'ok    %s\n' "$*"
}
bad() {
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$*"
}

tmpdirs=()
cleanup() {
    local d
    for d in "${tmpdirs[@]}"; do rm -rf -- "$d"; done
}
trap cleanup EXIT

need_cmd file
need_cmd python3

# Print the node_id found in the JSON document on stdin: the top-level
# "node_id" key, or else the only distinct "node_id" anywhere in the document.
# Exits non-zero (with a reason on stderr) if it is not JSON or has no node_id.
json_node_id() {
    python3 -c '
import json, sys
try:
    doc = json.load(sys.stdin)
except ValueError as e:
    sys.exit("not JSON: %s" % e)
if isinstance(doc, dict) and isinstance(doc.get("node_id"), str):
    print(doc["node_id"]); sys.exit(0)
found = set()
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "node_id" and isinstance(x, str):
                found.add(x)
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(doc)
if len(found) != 1:
    sys.exit("expected one node_id in the JSON, found %d: %r" % (len(found), sorted(found)))
print(found.pop())
'
}

# show WHAT — print the first 20 lines of stdin, indented and labelled.
show() { head -n 20 | sed "s/^/      $1: /"; }

# run_json LABEL OUTVAR CMD... — run CMD, require exit 0 and a node_id starting
# with "gw:" in its JSON stdout; store the node_id in OUTVAR.
run_json() {
    local label=$1 outvar=$2
    shift 2
    local out err rc=0 id
    err=$(mktemp)
    out=$(timeout "$RUN_TIMEOUT" "$@" 2>"$err") || rc=$?
    if ((rc != 0)); then
        bad "$label: exit status $rc"
        show stderr <"$err"
        [[ -z $out ]] || show stdout <<<"$out"
        rm -f "$err"
        return 1
    fi
    rm -f "$err"
    if ! id=$(json_node_id 2>&1 <<<"$out"); then
        bad "$label: $id"
        show stdout <<<"$out"
        return 1
    fi
    if [[ $id != gw:* ]]; then
        bad "$label: node_id '$id' does not start with 'gw:'"
        return 1
    fi
    printf -v "$outvar" '%s' "$id"
    return 0
}

host_arch=$(uname -m)

for t in "${targets[@]}"; do
    bin="out/$t/gondwana"
    case $t in
    x86_64-unknown-linux-musl) arch=x86_64 want="x86-64" ;;
    aarch64-unknown-linux-musl) arch=aarch64 want="ARM aarch64" ;;
    *)
        bad "$t: unknown target"
        continue
        ;;
    esac

    if [[ ! -f $bin ]]; then
        bad "$t: $bin missing (run scripts/build)"
        continue
    fi

    # 1. static? (same rule as scripts/build)
    desc=$(file -b "$bin")
    if [[ $desc == ELF* && $desc == *"$want"* &&
        $desc == *"statically linked"* &&
        $desc != *"dynamically linked"* && $desc != *interpreter* ]]; then
        ok "$t: static $want executable ($desc)"
    else
        bad "$t: not a static $want executable: $desc"
        continue
    fi

    # 2. run it.
    runner=()
    if [[ $arch != "$host_arch" ]]; then
        need_cmd "qemu-$arch-static" qemu-user-static
        runner=("qemu-$arch-static")
    fi
    state=$(mktemp -d)
    tmpdirs+=("$state")
    gw=("${runner[@]}" "$bin" --state-dir "$state")
    how=${runner[0]:-native}

    id1='' id2='' id3=''
    run_json "$t ($how): firstboot --json" id1 "${gw[@]}" firstboot --json || continue
    ok "$t ($how): firstboot --json -> $id1"

    run_json "$t ($how): identity show --json" id2 "${gw[@]}" identity show --json || continue
    if [[ $id2 == "$id1" ]]; then
        ok "$t ($how): identity show --json reports the same node_id"
    else
        bad "$t ($how): identity show --json reports $id2, firstboot reported $id1"
    fi

    run_json "$t ($how): second firstboot --json" id3 "${gw[@]}" firstboot --json || continue
    if [[ $id3 == "$id1" ]]; then
        ok "$t ($how): second firstboot --json is idempotent (same node_id)"
    else
        bad "$t ($how): second firstboot --json reports $id3, first reported $id1"
    fi
done

echo "static-binaries: $passed passed, $failed failed"
((failed == 0))

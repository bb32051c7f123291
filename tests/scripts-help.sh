#!/usr/bin/env bash
# tests/scripts-help.sh — every script under scripts/ answers `--help` (and
# `-h`): exit status 0, its usage on stdout starting with its own name,
# within a few seconds (it printed help instead of installing, building or
# running anything).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
n=0
for s in scripts/*; do
    [[ -f $s && -x $s ]] || continue
    for flag in --help -h; do
        start=$SECONDS
        out=$(timeout 10 "$s" "$flag" </dev/null 2>&1) || {
            echo "scripts-help: FAIL $s $flag: exit $?: $(head -n 5 <<<"$out")" >&2
            exit 1
        }
        [[ $(head -n 1 <<<"$out") == "$s"* ]] ||
            { echo "scripts-help: FAIL $s $flag: help does not start with '$s': $(head -n 2 <<<"$out")" >&2; exit 1; }
        ((SECONDS - start <= 5)) || { echo "scripts-help: FAIL $s $flag took $((SECONDS - start)) s" >&2; exit 1; }
    done
    n=$((n + 1))
done
echo "scripts-help: ok   $n scripts print their help and exit 0"

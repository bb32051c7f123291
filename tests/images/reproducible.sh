#!/usr/bin/env bash
# tests/images/reproducible.sh [BOARD] — build the image again from the same
# inputs (same SOURCE_DATE_EPOCH, cached packages) and compare the bytes
# with the image already in out/ (scripts/test builds it just before; with
# REPRO_TWICE=1, or when there is none, it is built here first).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
board=${1:-mochabin}
export GONDWANA_IMAGE_XZ=0
if [[ ${REPRO_TWICE:-0} == 1 || ! -f $ROOT/out/gondwana-$board.img ]]; then
    "$ROOT/scripts/build-images" "$board" >/dev/null 2>&1
fi
a=$(sha256sum <"$ROOT/out/gondwana-$board.img")
sleep 1 # a different wall clock second for the second build
"$ROOT/scripts/build-images" "$board" >/dev/null 2>&1
b=$(sha256sum <"$ROOT/out/gondwana-$board.img")
if [[ $a != "$b" ]]; then
    echo "reproducible[$board]: FAIL two builds differ: ${a%% *} vs ${b%% *}" >&2
    exit 1
fi
echo "reproducible[$board]: ok, two builds give ${a%% *}"

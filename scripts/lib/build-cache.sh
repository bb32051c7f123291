# shellcheck shell=bash
# scripts/lib/build-cache.sh — one build cache per machine, shared by clones.
#
#   share_build_cache   in a clone without its own target/, make target/,
#                       firmware/fuzz/target/ and out/cache/ symlinks into
#                       ~/.cache/gondwana/ (XDG_CACHE_HOME is honoured).
#
# Why: CI runs the suite on a fresh clone every time. Without this, every
# run compiles every third-party crate three ways (clippy's check, the test
# build, the two musl release builds) and downloads the image packages
# again, about a third of the run. Cargo keeps the cache honest: its
# fingerprints cover sources, flags, features and the toolchain, a clone at
# another path gets its own workspace artefacts, and a fresh clone's sources
# are newer than anything built before, so what is ours is always rebuilt.
#
# A clone that already has target/ (a developer's) keeps it. Two suites run
# at once from two clones would share target/debug/gondwana: do not.
# GONDWANA_SHARED_CACHE=0 turns the sharing off. Over 40 GiB (workspace
# artefacts of old clones pile up) the cache starts again empty.

share_build_cache() {
    [[ ${GONDWANA_SHARED_CACHE:-1} == 1 ]] || return 0
    local base=${XDG_CACHE_HOME:-$HOME/.cache}/gondwana
    [[ -e target || -L target ]] && return 0
    mkdir -p "$base"
    local kib
    kib=$(du -sk "$base" 2>/dev/null | cut -f1)
    if ((${kib:-0} > 40 * 1024 * 1024)); then
        printf 'build-cache: %s is over 40 GiB: starting it again empty\n' "$base" >&2
        rm -rf "$base/target" "$base/fuzz-target"
    fi
    _gw_cache_link target "$base/target"
    _gw_cache_link firmware/fuzz/target "$base/fuzz-target"
    _gw_cache_link out/cache "$base/out-cache"
    printf 'build-cache: target/, firmware/fuzz/target/ and out/cache/ are in %s\n' "$base" >&2
}

_gw_cache_link() {
    local path=$1 dir=$2
    [[ -e $path || -L $path ]] && return 0
    mkdir -p "$dir" "$(dirname "$path")"
    ln -s "$dir" "$path"
}

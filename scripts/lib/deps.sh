# shellcheck shell=bash
# scripts/lib/deps.sh — small, idempotent "make sure this is installed" helpers.
#
# Source it from a script (which should itself run with `set -euo pipefail`):
#     . "$ROOT/scripts/lib/deps.sh"
#
#   need_apt PKG...           install the Debian packages that are not installed
#                             yet; `apt-get update` runs at most once (per script
#                             and its children) and only when something must
#                             actually be installed.
#   need_cmd CMD [PKG]        make sure CMD is on PATH; if not, need_apt PKG
#                             (default PKG = CMD). Use this instead of need_apt
#                             when the tool may come from elsewhere (pyenv's
#                             python3, rustup, a hand-installed qemu, ...).
#   need_rust_target TRIPLE...  `rustup target add` the targets not installed yet.
#
# Everything is quiet when nothing has to be done; installs print one line each
# to stderr, and the tool's full output only when it fails. Every helper
# returns non-zero on failure (so `set -e` callers stop).

# Sourcing twice is harmless.
if [[ -n "${_GONDWANA_DEPS_SH:-}" ]]; then return 0; fi
_GONDWANA_DEPS_SH=1
# Exported once set, so child scripts (scripts/test -> scripts/build) do not
# run `apt-get update` a second time.
_GONDWANA_APT_UPDATED=${_GONDWANA_APT_UPDATED:-0}

_gw_deps_log() { printf 'deps: %s\n' "$*" >&2; }

# Run as root: directly when we are root, through sudo otherwise.
_gw_as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _gw_deps_log "need root (and there is no sudo) to run: $*"
        return 1
    fi
}

# Run "$@" with its output in a log that is shown only if it fails.
_gw_quietly() {
    local log rc=0
    log=$(mktemp)
    "$@" >"$log" 2>&1 || rc=$?
    if ((rc != 0)); then
        _gw_deps_log "failed (exit $rc): $*"
        cat "$log" >&2
    fi
    rm -f "$log"
    return "$rc"
}

# need_apt PKG... — install only the missing Debian packages.
need_apt() {
    local pkg missing=()
    for pkg in "$@"; do
        # "ii" = desired install, currently installed (same test as `dpkg -s`
        # reporting "install ok installed", without parsing its prose).
        if ! dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii'; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]} == 0)) && return 0

    if ! command -v apt-get >/dev/null 2>&1; then
        _gw_deps_log "missing Debian packages (${missing[*]}) and no apt-get to install them"
        return 1
    fi
    if [[ $_GONDWANA_APT_UPDATED != 1 ]]; then
        _gw_deps_log "apt-get update"
        _gw_quietly _gw_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        export _GONDWANA_APT_UPDATED=1
    fi
    _gw_deps_log "apt-get install ${missing[*]}"
    _gw_quietly _gw_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# need_cmd CMD [PKG] — CMD on PATH, else install Debian package PKG (default CMD).
need_cmd() {
    local cmd=$1 pkg=${2:-$1}
    command -v "$cmd" >/dev/null 2>&1 && return 0
    need_apt "$pkg" || return 1
    hash -r
    if ! command -v "$cmd" >/dev/null 2>&1; then
        _gw_deps_log "installed $pkg but '$cmd' is still not on PATH"
        return 1
    fi
}

# need_rust_target TRIPLE... — add the missing rustup targets (for the toolchain
# that is active in the current directory, so rust-toolchain files are honoured).
need_rust_target() {
    local t installed
    if ! command -v rustup >/dev/null 2>&1; then
        # No rustup: accept a toolchain that already ships the target's std.
        local sysroot
        sysroot=$(rustc --print sysroot) || return 1
        for t in "$@"; do
            if [[ ! -d "$sysroot/lib/rustlib/$t/lib" ]]; then
                _gw_deps_log "rust target $t missing and no rustup to add it"
                return 1
            fi
        done
        return 0
    fi
    installed=$(rustup target list --installed) || return 1
    for t in "$@"; do
        if ! grep -qxF "$t" <<<"$installed"; then
            _gw_deps_log "rustup target add $t"
            _gw_quietly rustup target add "$t" || return 1
        fi
    done
}

#!/usr/bin/env bash
# image/modules.sh MODDIR NAME... — print the modules to load, as paths
# relative to MODDIR (/lib/modules/<version>), dependencies first, each once.
# Works on a foreign architecture's modules: `modinfo -F depends` reads the
# .ko's own .modinfo section. Built-in modules (modules.builtin) are
# skipped; a name that is neither a module nor built in is an error.
set -euo pipefail
moddir=$1
shift
declare -A path_of seen
while IFS= read -r rel; do
    base=${rel##*/}
    base=${base%.ko}
    path_of[${base//-/_}]=$rel
done < <(cd "$moddir" && find kernel -name '*.ko' | LC_ALL=C sort)
declare -A builtin
while IFS= read -r rel; do
    base=${rel##*/}
    base=${base%.ko}
    builtin[${base//-/_}]=1
done <"$moddir/modules.builtin"

visit() {
    local key=${1//-/_}
    [[ -n ${seen[$key]:-} ]] && return 0
    seen[$key]=1
    if [[ -z ${path_of[$key]:-} ]]; then
        [[ -n ${builtin[$key]:-} ]] && return 0
        echo "modules.sh: no module or built-in named '$1' in $moddir" >&2
        return 1
    fi
    local dep deps
    deps=$(modinfo -F depends "$moddir/${path_of[$key]}")
    for dep in ${deps//,/ }; do visit "$dep"; done
    echo "${path_of[$key]}"
}
for name in "$@"; do visit "$name"; done

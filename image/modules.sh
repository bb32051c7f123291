#!/usr/bin/env bash
# image/modules.sh [--when=DIR] MODDIR SPEC... — print the modules to load,
# as paths relative to MODDIR (/lib/modules/<version>), dependencies first,
# each once.
# Works on a foreign architecture's modules: `modinfo -F depends` reads the
# .ko's own .modinfo section. Built-in modules (modules.builtin) are
# skipped; a name that is neither a module nor built in is an error.
#
# A SPEC is NAME or NAME:PARENT[,PARENT...]. With --when=DIR it also writes
# what the boot needs to load only the modules of present devices
# (docs/image.md "Only the modules of present devices"):
#   DIR/gates.sed  a sed -E script printing the gate modules a modalias
#                  matches: each gate's device aliases (pci:, of:, acpi:,
#                  platform: — the buses whose devices exist before any
#                  module loads), the kernel's globs as anchored EREs;
#   DIR/gates.ids  `pci:vVVVVVVVVdDDDDDDDD GATE`: those aliases of them
#                  that name one PCI vendor and device and nothing else
#                  (looked up in a hash, not matched as patterns);
#   DIR/load.when  `PATH GATE...`: a module loaded only if one of these
#                  gates' devices is present. A module missing here is
#                  always loaded.
# NAME with device aliases of those buses is its own gate; NAME:PARENTS
# is loaded whenever one of its PARENTS would be (the devices it drives
# appear only once a parent probed: PHYs and switches on MDIO, USB
# storage behind xHCI, virtio devices behind virtio-pci). A PARENT that
# is not among the SPECs' modules (or their dependencies) is ignored.
# Dependencies inherit the gates of the modules that pull them in; one
# ungated puller makes them ungated. No device alias, a built-in parent,
# no known parent: always loaded (the safe side: one module too many).
set -euo pipefail
when_dir=
if [[ ${1:-} == --when=* ]]; then
    when_dir=${1#--when=}
    shift
fi
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

declare -A deps_of
# deps KEY: the module's direct dependencies (keys), cached.
deps() {
    local key=$1
    if [[ -z ${deps_of[$key]+x} ]]; then
        local d
        d=$(modinfo -F depends "$moddir/${path_of[$key]}")
        d=${d//,/ }
        deps_of[$key]=${d//-/_}
    fi
}

order=()
visit() {
    local key=${1//-/_}
    [[ -n ${seen[$key]:-} ]] && return 0
    seen[$key]=1
    if [[ -z ${path_of[$key]:-} ]]; then
        [[ -n ${builtin[$key]:-} ]] && return 0
        echo "modules.sh: no module or built-in named '$1' in $moddir" >&2
        return 1
    fi
    deps "$key"
    local dep
    for dep in ${deps_of[$key]}; do visit "$dep"; done
    order+=("$key")
}
declare -A parents_of
for spec in "$@"; do
    name=${spec%%:*}
    [[ $spec == *:* ]] && parents_of[${name//-/_}]=${spec#*:}
    visit "$name"
done
for key in "${order[@]}"; do echo "${path_of[$key]}"; done
[[ -n $when_dir ]] || exit 0

# ---- gates (--when) ---------------------------------------------------------
declare -A gates_memo
# gates_of KEY: "-" (always loaded) or the gate keys, space-separated.
gates_of() {
    local key=$1 g p out=
    if [[ -n ${gates_memo[$key]:-} ]]; then
        REPLY=${gates_memo[$key]}
        return
    fi
    gates_memo[$key]=- # a parent cycle ends on the safe side
    if [[ -n ${parents_of[$key]:-} ]]; then
        for p in ${parents_of[$key]//,/ }; do
            p=${p//-/_}
            [[ -n ${seen[$p]:-} ]] || continue # not among these modules
            gates_of "$p"
            [[ $REPLY == - ]] && { out=-; break; }
            for g in $REPLY; do [[ " $out " == *" $g "* ]] || out+=" $g"; done
        done
        out=${out# }
    elif [[ -n ${path_of[$key]:-} ]] &&
        # grep -c reads all of modinfo's output: -q would exit at the first
        # match and, with pipefail, modinfo's SIGPIPE would fail the test
        # at random (a gated module then counted as always loaded).
        modinfo -F alias "$moddir/${path_of[$key]}" | grep -Ec '^(pci|of|acpi\*?|platform):' >/dev/null; then
        out=$key
    fi
    [[ -n $out ]] || out=-
    gates_memo[$key]=$out
    REPLY=$out
}
declare -A when_of # module key -> gates ("-": always)
mark() {           # mark KEY GATES: KEY and its dependencies
    local key=$1 g dep cur
    [[ -n ${path_of[$key]:-} ]] || return 0
    cur=${when_of[$key]:-}
    if [[ $2 == - || $cur == - ]]; then
        [[ $cur == - ]] && return 0
        when_of[$key]=-
    else
        for g in $2; do [[ " $cur " == *" $g "* ]] || cur+=" $g"; done
        [[ $cur == "${when_of[$key]:-}" ]] && return 0
        when_of[$key]=${cur# }
    fi
    for dep in ${deps_of[$key]}; do mark "$dep" "$2"; done
}
for spec in "$@"; do
    name=${spec%%:*}
    name=${name//-/_}
    gates_of "$name"
    mark "$name" "$REPLY"
done
mkdir -p "$when_dir"
declare -A used
for key in "${order[@]}"; do
    [[ ${when_of[$key]:-} != - ]] || continue
    echo "${path_of[$key]} ${when_of[$key]}"
    for g in ${when_of[$key]}; do used[$g]=1; done
done >"$when_dir/load.when"
# The kernel's alias globs (*, ?, [...]) as anchored EREs, in a sed
# script that prints the gate's name for a modalias matching one (`t`: on
# to the next modalias). sed compiles each once; awk's dynamic regexes
# were compiled again for every line (seconds under TCG). A PCI alias
# naming one vendor and device and nothing else (`pci:vVVVVVVVVdDDDDDDDDsv*sd*bc*sc*i*`,
# 382 of amd64's 392) goes to gates.ids instead, `pci:vVVVVVVVVdDDDDDDDD
# GATE`, looked up by modules-present (awk, a hash) before sed sees the
# few patterns left: 392 regexes tried on each modalias took 0.2 s of
# the initramfs under QEMU. The script's first line passes those gate
# names (no `:` in them) through.
exact='^pci:v[0-9A-F]{8}d[0-9A-F]{8}sv\*sd\*bc\*sc\*i\*$'
: >"$when_dir/gates.ids"
echo '/:/!{p;d}' >"$when_dir/gates.sed"
for g in $(printf '%s\n' "${!used[@]}" | LC_ALL=C sort); do
    aliases=$(modinfo -F alias "$moddir/${path_of[$g]}" | grep -E '^(pci|of|acpi\*?|platform):' | grep -v '#' || true)
    [[ -n $aliases ]] || continue
    grep -E "$exact" <<<"$aliases" | sed "s/sv\*.*\$/ $g/" >>"$when_dir/gates.ids" || true
    grep -vE "$exact" <<<"$aliases" |
        sed -e 's/[.^$+(){}|\\]/\\&/g' -e 's/\*/.*/g' -e 's/?/./g' -e 's/\[!/[^/g' \
            -e "s/^/s#^/" -e "s/\$/\$#$g#p\nt/" >>"$when_dir/gates.sed" || true
done

# shellcheck shell=bash
# image/elf.sh — install_elf, shared by scripts/build-images (Debian's
# unpacked packages) and image/compose (those, or Buildroot's TARGET_DIR).
#
#   install_elf SYSROOT TREE LIBDIR FILE...
#       copy each FILE's shared libraries (DT_NEEDED, recursively, found by
#       name anywhere under SYSROOT) and its ELF interpreter into TREE: the
#       libraries into TREE/LIBDIR, or, with LIBDIR "", where SYSROOT keeps
#       them (SYSROOT = unpacked Debian packages, DEBS/<package>/lib/...:
#       the path below the package name, on ld.so's default search path).
#       The interpreter goes to its own path (Debian: from the libc6
#       package; a root filesystem: from the same path under SYSROOT).

_elf_log() { printf 'install_elf: %s\n' "$*" >&2; }

install_elf() {
    local sysroot=$1 tree=$2 libdir=$3
    shift 3
    local queue=("$@") f lib path dest interp src
    local -A seen=()
    while ((${#queue[@]})); do
        f=${queue[0]}
        queue=("${queue[@]:1}")
        interp=$(readelf -l "$f" | sed -n 's/.*interpreter: \(.*\)]/\1/p')
        if [[ -n $interp && ! -e $tree$interp ]]; then
            src=$sysroot/libc6$interp
            [[ -e $src ]] || src=$sysroot$interp
            [[ -e $src ]] || { _elf_log "no interpreter $interp (needed by ${f#"$tree"}) in $sysroot"; return 1; }
            mkdir -p "$tree$(dirname "$interp")"
            cp -L "$src" "$tree$interp"
        fi
        for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            [[ -z ${seen[$lib]:-} && $lib != ld-linux* ]] || continue # ld.so: the interpreter
            seen[$lib]=1
            # Not from a kernel package's or a root's modules (never libraries).
            path=$(find "$sysroot" \( -path "$sysroot/linux-image-*" -o -path "$sysroot/lib/modules" \) -prune \
                -o -name "$lib" -print | LC_ALL=C sort | head -n1)
            [[ -n $path ]] || { _elf_log "no $lib (needed by ${f#"$tree"}) in $sysroot"; return 1; }
            if [[ -n $libdir ]]; then
                dest=$tree$libdir/$lib
            else # <package>/lib/<triplet>/libX.so.N -> TREE/lib/<triplet>/libX.so.N
                dest=$tree/${path#"$sysroot"/*/}
            fi
            mkdir -p "$(dirname "$dest")"
            cp -L "$path" "$dest"
            queue+=("$dest")
        done
    done
}

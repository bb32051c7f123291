# shellcheck shell=bash
# image/debs.sh — fetch and unpack the Debian packages an offline image is
# made of (kernel, busybox-static, e2fsprogs/sfdisk with their libraries),
# cached under out/cache/debs/<arch>/ so later builds need no network.
#
#   fetch_debs ARCH DEST   -> DEST/<package>/ unpacked trees, DEST/kernel-version
#   install_elf DEBS TREE LIBDIR FILE...
#                          copy each FILE's shared libraries (DT_NEEDED,
#                          recursively, from the unpacked DEBS trees) and its
#                          ELF interpreter into TREE: the libraries into
#                          TREE/LIBDIR, or, with LIBDIR "", where Debian
#                          puts them (on ld.so's default search path)

# Packages whose files go into the initramfs (sfdisk, mke2fs, e2fsck,
# tune2fs, resize2fs and their shared libraries) and the rootfs (busybox;
# wg and nft for operators, with their libraries).
DEBS_TOOLS="busybox-static e2fsprogs fdisk libc6 libblkid1 libcom-err2 libext2fs2 libfdisk1 libreadline8 libsmartcols1 libtinfo6 libuuid1
 wireguard-tools nftables libnftables1 libmnl0 libnftnl11 libjansson4 libxtables12 libgmp10 libedit2 libbsd0 libmd0"

_debs_log() { printf 'build-images: %s\n' "$*" >&2; }

ensure_foreign_arch() {
    local arch=$1
    [[ $arch == "$(dpkg --print-architecture)" ]] && return 0
    if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
        _debs_log "dpkg --add-architecture $arch"
        dpkg --add-architecture "$arch"
        _GONDWANA_APT_UPDATED=0
    fi
    if [[ ${_GONDWANA_APT_UPDATED:-0} != 1 ]] && ! apt-cache show "busybox-static:$arch" >/dev/null 2>&1; then
        _debs_log "apt-get update (for $arch)"
        apt-get update -qq
        export _GONDWANA_APT_UPDATED=1
    fi
}

fetch_debs() {
    local arch=$1 dest=$2
    local cache=$ROOT/out/cache/debs/$arch
    mkdir -p "$cache" "$dest"
    # The kernel package the metapackage points at (e.g. linux-image-6.1.0-56-arm64);
    # remembered in the cache so an offline rebuild takes the same one.
    local kpkg
    if [[ -s $cache/kernel-package ]]; then
        kpkg=$(cat "$cache/kernel-package")
    else
        ensure_foreign_arch "$arch"
        kpkg=$(apt-cache depends "linux-image-$arch:$arch" | sed -n 's/^ *Depends: \(linux-image-[^:]*\).*/\1/p' | head -n1)
        [[ -n $kpkg ]] || { _debs_log "cannot resolve linux-image-$arch"; return 1; }
        echo "$kpkg" >"$cache/kernel-package"
    fi
    local pkg missing=()
    for pkg in $kpkg $DEBS_TOOLS; do
        compgen -G "$cache/${pkg}_*.deb" >/dev/null || missing+=("$pkg:$arch")
    done
    if ((${#missing[@]})); then
        ensure_foreign_arch "$arch"
        _debs_log "apt-get download ${missing[*]}"
        (cd "$cache" && apt-get download -q "${missing[@]}" >/dev/null)
    fi
    for pkg in $kpkg $DEBS_TOOLS; do
        local deb
        deb=$(compgen -G "$cache/${pkg}_*.deb" | LC_ALL=C sort | tail -n1)
        if [[ ! -d $dest/$pkg ]]; then
            dpkg-deb -x "$deb" "$dest/$pkg.tmp" && mv "$dest/$pkg.tmp" "$dest/$pkg"
        fi
    done
    ls "$dest/$kpkg/lib/modules" >"$dest/kernel-version"
    echo "$kpkg" >"$dest/kernel-package"
}

install_elf() {
    local debs=$1 tree=$2 libdir=$3
    shift 3
    local queue=("$@") f lib path dest interp
    local -A seen=()
    while ((${#queue[@]})); do
        f=${queue[0]}
        queue=("${queue[@]:1}")
        interp=$(readelf -l "$f" | sed -n 's/.*interpreter: \(.*\)]/\1/p')
        if [[ -n $interp && ! -e $tree$interp ]]; then
            mkdir -p "$tree$(dirname "$interp")"
            cp -L "$debs/libc6$interp" "$tree$interp"
        fi
        for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            [[ -z ${seen[$lib]:-} && $lib != ld-linux* ]] || continue # ld.so: the interpreter
            seen[$lib]=1
            path=$(find "$debs" -path "$debs/linux-image-*" -prune -o -name "$lib" -print | LC_ALL=C sort | head -n1)
            [[ -n $path ]] || { _debs_log "install_elf: no $lib (needed by ${f#"$tree"}) in $debs"; return 1; }
            if [[ -n $libdir ]]; then
                dest=$tree$libdir/$lib
            else # <package>/lib/<triplet>/libX.so.N -> TREE/lib/<triplet>/libX.so.N
                dest=$tree/${path#"$debs"/*/}
            fi
            mkdir -p "$(dirname "$dest")"
            cp -L "$path" "$dest"
            queue+=("$dest")
        done
    done
}

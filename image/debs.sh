# shellcheck shell=bash
# image/debs.sh — fetch and unpack the Debian packages an offline image is
# made of (kernel, busybox-static, e2fsprogs/sfdisk with their libraries),
# cached under out/cache/debs/<arch>/ so later builds need no network.
#
#   fetch_debs ARCH DEST   -> DEST/<package>/ unpacked trees, DEST/kernel-version
#   debs_install_programs DEBS LISTER BIN ROOTFS
#                          what Buildroot's packages put into its target, from
#                          the unpacked DEBS: busybox with its applet links
#                          (LISTER: a busybox this host runs, for
#                          --list-full), BIN as /usr/bin/gondwana, wg, nft and
#                          dropbear with their libraries. image/compose does
#                          the rest.
#   (install_elf, which copies a program's libraries out of them, is in
#   image/elf.sh: image/compose uses it on Buildroot's target too)

# install_elf (image/elf.sh) is needed by debs_install_programs.
# Packages whose files go into the initramfs (sfdisk, mke2fs, e2fsck,
# tune2fs, resize2fs, fsck.fat and their shared libraries) and the rootfs (busybox;
# wg and nft for operators, dropbear for SSH over the mesh, with their
# libraries).
DEBS_TOOLS="busybox-static dosfstools e2fsprogs fdisk libc6 libblkid1 libcom-err2 libext2fs2 libfdisk1 libreadline8 libsmartcols1 libtinfo6 libuuid1
 wireguard-tools nftables libnftables1 libmnl0 libnftnl11 libjansson4 libxtables12 libgmp10 libedit2 libbsd0 libmd0
 dropbear-bin libcrypt1 libtomcrypt1 libtommath1 zlib1g"

_debs_log() { printf 'build-images: %s\n' "$*" >&2; }

# cached_deb CACHE PKG -> the newest PKG_*.deb in CACHE.
cached_deb() { compgen -G "$1/${2}_*.deb" | LC_ALL=C sort | tail -n1; }

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
        deb=$(cached_deb "$cache" "$pkg")
        if [[ ! -d $dest/$pkg ]]; then
            dpkg-deb -x "$deb" "$dest/$pkg.tmp" && mv "$dest/$pkg.tmp" "$dest/$pkg"
        fi
    done
    ls "$dest/$kpkg/lib/modules" >"$dest/kernel-version"
    echo "$kpkg" >"$dest/kernel-package"
}

debs_install_programs() {
    local debs=$1 lister=$2 bin=$3 r=$4 path
    install -D -m 0755 "$debs/busybox-static/bin/busybox" "$r/bin/busybox"
    # The amd64 and arm64 debs are built from one config: the host-runnable
    # one lists the applets.
    "$lister" --list-full | while read -r path; do
        [[ -e $r/$path || -L $r/$path ]] && continue
        mkdir -p "$r/$(dirname "$path")"
        ln -s /bin/busybox "$r/$path"
    done
    install -D -m 0755 "$bin" "$r/usr/bin/gondwana"
    # wg and nft for operators (`wg show`, `nft list ruleset`; the daemon
    # itself speaks netlink): Debian's, with their libraries and ld.so.
    install -D -m 0755 "$debs/wireguard-tools/usr/bin/wg" "$r/usr/bin/wg"
    install -D -m 0755 "$debs/nftables/usr/sbin/nft" "$r/usr/sbin/nft"
    # SSH over the mesh (docs/ssh.md): Debian's dropbear (dynamically
    # linked: libcrypt, libtomcrypt, libtommath, zlib) and its key generator.
    install -D -m 0755 "$debs/dropbear-bin/usr/sbin/dropbear" "$r/usr/sbin/dropbear"
    install -D -m 0755 "$debs/dropbear-bin/usr/bin/dropbearkey" "$r/usr/bin/dropbearkey"
    install_elf "$debs" "$r" "" "$r/usr/bin/wg" "$r/usr/sbin/nft" "$r/usr/sbin/dropbear" "$r/usr/bin/dropbearkey"
}

# fetch_linux_source ARCH -> path of Debian's linux-source-X.Y deb of the
# same version as the kernel fetch_debs ARCH took (cached beside it), for
# image/bzimage-lz4. Fails clearly when the archive has moved on to
# another version than the cached kernel's.
fetch_linux_source() {
    local arch=$1 cache=$ROOT/out/cache/debs/$1 kdeb version pkg
    kdeb=$(cached_deb "$cache" "$(cat "$cache/kernel-package")")
    version=$(dpkg-deb -f "$kdeb" Version)
    pkg=linux-source-$(cut -d. -f1-2 <<<"$version")
    if ! compgen -G "$cache/${pkg}_${version}_all.deb" >/dev/null; then
        _debs_log "apt-get download $pkg=$version"
        (cd "$cache" && apt-get download -q "$pkg=$version" >/dev/null) ||
            { _debs_log "cannot fetch $pkg=$version, the source of the cached kernel $kdeb" \
                "(the archive may have moved on: remove $cache/kernel-package to take its current kernel)"; return 1; }
    fi
    compgen -G "$cache/${pkg}_${version}_all.deb"
}

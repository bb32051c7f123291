#!/usr/bin/env bash
# tests/package-deb.sh — the Debian package (scripts/package-deb,
# docs/debian.md), for real:
#   1. without the generated completions/man pages the build fails and
#      names them;
#   2. amd64 and arm64 packages from out/<target>/gondwana: the binary in
#      the package is byte for byte the one scripts/build made, the file
#      list, the conffile, the architecture;
#   3. lintian (Debian's) passes both with no error, warning or info tag
#      (overrides only in packaging/debian/lintian-overrides, each with its
#      reason);
#   4. the amd64 package installed with dpkg into a scratch root (the
#      maintainer scripts run with DPKG_ROOT, touching nothing on this
#      host): the packaged binary runs; `systemd-analyze verify` accepts
#      the unit against the host's systemd units; `systemd-analyze security
#      --offline` rates its exposure at most 3.0;
#   5. an edited conffile survives a reinstall and a remove; purge removes
#      it and the enable-link record, and keeps /var/lib/gondwana.
# Needs out/<target>/gondwana for both targets (scripts/build) and
# out/completions, out/man (the build-time generator). About a minute.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/deps.sh
. "$ROOT/scripts/lib/deps.sh"
need_apt lintian
need_cmd systemd-analyze systemd
need_cmd dpkg-deb dpkg

work=$(mktemp -d /tmp/gondwana-deb-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() {
    printf 'package-deb: FAIL %s\n' "$*" >&2
    exit 1
}
ok() { printf 'package-deb: ok   %s\n' "$*"; }

# 1. The generated documentation is required.
mkdir -p "$work/empty"
if GONDWANA_COMPLETIONS_DIR=$work/empty GONDWANA_MAN_DIR=$work/empty GONDWANA_DEB_DIR=$work/none \
    scripts/package-deb x86_64-unknown-linux-musl >"$work/nodocs.log" 2>&1; then
    fail "built a package without completions and man pages"
fi
grep -q "missing generated completions/man pages: .*gondwana.bash.*gondwana.1" "$work/nodocs.log" ||
    fail "no clear error without completions/man pages: $(cat "$work/nodocs.log")"
[[ ! -e $work/none ]] || fail "a failed build left $work/none behind"
ok "refuses to build without out/completions and out/man, naming the files"

for f in out/completions/gondwana.bash out/completions/_gondwana out/completions/gondwana.fish out/man/gondwana.1; do
    [[ -s $f ]] || fail "$f missing: generate the completions and man pages first (docs/debian.md)"
done
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    [[ -x out/$t/gondwana ]] || fail "out/$t/gondwana missing: run scripts/build first"
done

# 2. Both packages, from the build's binaries.
GONDWANA_DEB_DIR=$work/debs scripts/package-deb >"$work/debs.list" 2>"$work/build.log" ||
    { cat "$work/build.log" >&2; fail "scripts/package-deb"; }
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
for pair in amd64:x86_64-unknown-linux-musl arm64:aarch64-unknown-linux-musl; do
    arch=${pair%%:*} t=${pair#*:}
    deb=$work/debs/gondwana_${version}_$arch.deb
    [[ -f $deb ]] || fail "no $deb"
    [[ $(dpkg-deb -f "$deb" Architecture) == "$arch" ]] || fail "$deb: Architecture $(dpkg-deb -f "$deb" Architecture)"
    dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/gondwana | cmp -s - "out/$t/gondwana" ||
        fail "$deb: usr/bin/gondwana differs from out/$t/gondwana"
    [[ $(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles) == /etc/gondwana/gondwana.toml ]] ||
        fail "$deb: conffiles is not /etc/gondwana/gondwana.toml"
    files=$(dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -v '/$' | LC_ALL=C sort | tr '\n' ' ')
    for want in ./usr/bin/gondwana ./usr/lib/systemd/system/gondwana.service ./etc/gondwana/gondwana.toml \
        ./usr/share/man/man1/gondwana.1.gz ./usr/share/bash-completion/completions/gondwana \
        ./usr/share/zsh/vendor-completions/_gondwana ./usr/share/fish/vendor_completions.d/gondwana.fish \
        ./usr/share/doc/gondwana/copyright ./usr/share/doc/gondwana/changelog.gz; do
        [[ " $files" == *" $want "* ]] || fail "$deb lacks $want (has: $files)"
    done
    ok "$arch: out/$t/gondwana unchanged, unit, conffile, completions, man pages"
done

# 3. lintian.
lintian --fail-on error,warning,info "$work"/debs/*.deb >"$work/lintian.log" 2>&1 ||
    { cat "$work/lintian.log" >&2; fail "lintian"; }
ok "lintian: no error, warning or info tag ($(grep -c '^gondwana:' packaging/debian/lintian-overrides) overrides, each with its reason)"

# 4. Installed into a scratch root. The host's systemd units stand in for
# the systemd package there (verify needs sysinit.target & co.) and its
# /bin/kill for procps (the unit's ExecReload).
R=$work/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/usr/lib/systemd/system" "$R/bin"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
cp -a /usr/lib/systemd/system/. "$R/usr/lib/systemd/system/"
cp /bin/kill "$R/bin/kill"
deb=$work/debs/gondwana_${version}_amd64.deb
dpkg_root() { dpkg --root="$R" --force-script-chrootless --force-not-root --force-depends --log="$work/dpkg.log" "$@"; }
dpkg_root -i "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "dpkg -i"; }
dpkg --root="$R" -s gondwana | grep -qx 'Status: install ok installed' || fail "not installed in the scratch root"
[[ $("$R/usr/bin/gondwana" version) == "gondwana $version "* ]] || fail "the packaged binary: $("$R/usr/bin/gondwana" version)"
[[ -f $R/var/lib/systemd/deb-systemd-helper-enabled/gondwana.service.dsh-also ]] ||
    fail "postinst did not record the unit's enable links (deb-systemd-helper update-state)"
[[ ! -e $R/etc/systemd/system/multi-user.target.wants/gondwana.service ]] || fail "the unit was enabled on install"
ok "installed into a scratch root with dpkg (maintainer scripts under DPKG_ROOT); not enabled"
systemd-analyze verify --man=no --root="$R" gondwana.service >"$work/verify.log" 2>&1 ||
    { cat "$work/verify.log" >&2; fail "systemd-analyze verify"; }
[[ ! -s $work/verify.log ]] || { cat "$work/verify.log" >&2; fail "systemd-analyze verify printed warnings"; }
ok "systemd-analyze verify: clean"
systemd-analyze security --offline=yes --threshold=30 --root="$R" gondwana.service >"$work/security.log" 2>&1 ||
    { tail -n 40 "$work/security.log" >&2; fail "systemd-analyze security: exposure above 3.0"; }
ok "systemd-analyze security: $(grep -o 'exposure level for gondwana.service: [0-9.]* [A-Z]*' "$work/security.log")"

# 5. Conffile and state across reinstall, remove and purge.
echo '# edited by the operator' >>"$R/etc/gondwana/gondwana.toml"
mkdir -p "$R/var/lib/gondwana" && echo state >"$R/var/lib/gondwana/marker"
dpkg_root --force-confold -i "$deb" >>"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "reinstall"; }
grep -q 'edited by the operator' "$R/etc/gondwana/gondwana.toml" || fail "reinstall replaced the edited conffile"
dpkg_root -r gondwana >>"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "dpkg -r"; }
[[ ! -e $R/usr/bin/gondwana && -f $R/etc/gondwana/gondwana.toml ]] || fail "remove: binary still there or conffile gone"
dpkg_root -P gondwana >>"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "dpkg -P"; }
[[ ! -e $R/etc/gondwana/gondwana.toml ]] || fail "purge kept the conffile"
[[ ! -e $R/var/lib/systemd/deb-systemd-helper-enabled/gondwana.service.dsh-also ]] || fail "purge kept the enable-link record"
[[ -f $R/var/lib/gondwana/marker ]] || fail "purge removed /var/lib/gondwana"
ok "edited conffile kept on reinstall and remove; purge removes it and keeps /var/lib/gondwana"

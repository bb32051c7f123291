#!/usr/bin/env bash
# tests/images/buildroot-pins.sh — buildroot/ against the pinned Buildroot
# release (docs/building-with-buildroot.md), without Buildroot or network:
#   - every BR2_ symbol our defconfigs set or unset is defined by that
#     release's Kconfig files (buildroot/known-symbols.txt, generated from
#     its sources by buildroot/gen-known-symbols) or by our external tree;
#     a defconfig naming the made-up BR2_PACKAGE_UTIL_LINUX_FDISKS is shown
#     to fail the same check;
#   - the release's Rust is at least the workspace's rust-version, and the
#     docs name the release;
#   - the package passes the workspace's [profile.release] to cargo over
#     Buildroot's own profile settings, links statically (crt-static, no
#     PIE) with LLVM's machine outliner (binary size), sets LIBCLANG_PATH for bindgen, and is pinned to a commit (an
#     ancestor of HEAD when the history is there) whose archive's sha256 is
#     in gondwana.hash;
#   - the kernel version is pinned, with its tarball's sha256 in our global
#     patch directory and the matching headers series.
# That the defconfigs' assignments also survive the release's dependencies
# was checked with `buildroot/gen-known-symbols --resolve` (needs the
# release's tree; not run here).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BR=$ROOT/buildroot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
    echo "buildroot-pins: FAIL $*" >&2
    exit 1
}

# The package makefile's values, under stand-ins for Buildroot's variables.
cat >"$work/Makefile" <<MK
BR2_EXTERNAL_GONDWANA_PATH := $BR
BR2_PACKAGE_GONDWANA_SITE := "https://example.invalid/gondwana.git"
RUSTC_TARGET_NAME := aarch64-unknown-linux-musl
BR2_aarch64 := y
HOST_DIR := /HOST
STAGING_DIR := /STAGING
qstrip = \$(strip \$(subst ",,\$(1)))
UPPERCASE = \$(shell echo \$(1) | tr a-z- A-Z_)
cargo-package =
include $BR/external.mk
env: ; @echo '\$(GONDWANA_CARGO_ENV)'
version: ; @echo '\$(GONDWANA_VERSION)'
MK
cargo_env=$(make -s -f "$work/Makefile" env)
version=$(make -s -f "$work/Makefile" version)

python3 - "$ROOT/Cargo.toml" "$cargo_env" <<'PY' || fail "package cargo environment"
import shlex, sys, tomllib
profile = tomllib.load(open(sys.argv[1], "rb"))["profile"]["release"]
env = dict(a.split("=", 1) for a in shlex.split(sys.argv[2]))
for key in ("opt-level", "lto", "codegen-units", "panic", "strip"):
    var = "CARGO_PROFILE_RELEASE_" + key.upper().replace("-", "_")
    want = str(profile[key]).lower()
    assert env.get(var) == want, f"gondwana.mk: {var}={env.get(var)!r}, Cargo.toml [profile.release] {key} = {want!r}"
flags = env.get("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS", "")
for flag in ("target-feature=+crt-static", "relocation-model=static", "enable-machine-outliner=always"):
    assert flag in flags, f"gondwana.mk: target RUSTFLAGS lack {flag}: {flags!r}"
assert env.get("LIBCLANG_PATH") == "/HOST/lib", f"gondwana.mk: LIBCLANG_PATH={env.get('LIBCLANG_PATH')!r}"
PY
echo "buildroot-pins: ok   package: Cargo.toml's size profile over Buildroot's, static musl flags, LIBCLANG_PATH"

[[ $version =~ ^[0-9a-f]{40}$ ]] || fail "gondwana.mk: GONDWANA_VERSION '$version' is not a commit id"
grep -qE "^sha256 +[0-9a-f]{64} +gondwana-$version-git4-cargo5\.tar\.gz$" "$BR/package/gondwana/gondwana.hash" ||
    fail "gondwana.hash: no sha256 for gondwana-$version-git4-cargo5.tar.gz (buildroot/pin-gondwana)"
grep -qE '^sha256 +[0-9a-f]{64} +LICENSE$' "$BR/package/gondwana/gondwana.hash" || fail "gondwana.hash: no LICENSE"
if git -C "$ROOT" cat-file -e "$version^{commit}" 2>/dev/null; then
    git -C "$ROOT" merge-base --is-ancestor "$version" HEAD || fail "gondwana.mk: $version is not an ancestor of HEAD"
fi
echo "buildroot-pins: ok   package pinned to $version with its archive's sha256"

known=$BR/known-symbols.txt
release=$(sed -n 's/^# release: //p' "$known")
release_rust=$(sed -n 's/^# rust: //p' "$known")
[[ -n $release && -n $release_rust ]] || fail "$known: no release/rust header"
grep -q "Buildroot $release" "$ROOT/docs/building-with-buildroot.md" ||
    fail "docs/building-with-buildroot.md does not name Buildroot $release"
need_rust=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml")
[[ $(printf '%s\n' "$need_rust" "$release_rust" | sort -V | head -n1) == "$need_rust" ]] ||
    fail "Buildroot $release ships Rust $release_rust, the workspace needs $need_rust"
ours=$(sed -n 's/^[[:space:]]*\(menu\)\{0,1\}config[[:space:]]\{1,\}\(BR2_[A-Za-z0-9_]*\).*/\2/p' \
    "$BR"/Config.in "$BR"/package/*/Config.in)
# DEFCONFIG: the BR2_ symbols it names that neither Buildroot nor we define.
unknown_symbols() {
    sed -n 's/^\(BR2_[A-Za-z0-9_]*\)=.*/\1/p; s/^# \(BR2_[A-Za-z0-9_]*\) is not set$/\1/p' "$1" |
        LC_ALL=C sort -u | LC_ALL=C comm -23 - <( (grep -v '^#' "$known" && echo "$ours") | LC_ALL=C sort -u)
}
for d in "$BR"/configs/*_defconfig; do
    bad=$(unknown_symbols "$d")
    [[ -z $bad ]] || fail "${d#"$ROOT"/}: not Buildroot $release symbols: $bad"
done
printf 'BR2_x86_64=y\nBR2_PACKAGE_UTIL_LINUX_FDISKS=y\n# BR2_TARGET_GENERIC_GETTY is not set\n' >"$work/bad_defconfig"
[[ $(unknown_symbols "$work/bad_defconfig") == BR2_PACKAGE_UTIL_LINUX_FDISKS ]] ||
    fail "the symbol check does not catch BR2_PACKAGE_UTIL_LINUX_FDISKS"
echo "buildroot-pins: ok   every BR2_ symbol of the defconfigs is in Buildroot $release (Rust $release_rust >= $need_rust)"

for d in "$BR"/configs/*_defconfig; do
    kver=$(sed -n 's/^BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE="\(.*\)"$/\1/p' "$d")
    if [[ -z $kver ]] || ! grep -qx 'BR2_LINUX_KERNEL_CUSTOM_VERSION=y' "$d"; then
        fail "${d#"$ROOT"/}: kernel version not pinned"
    fi
    series=$(cut -d. -f1,2 <<<"$kver" | tr . _)
    grep -qx "BR2_PACKAGE_HOST_LINUX_HEADERS_CUSTOM_$series=y" "$d" || fail "${d#"$ROOT"/}: headers series is not $series"
    # shellcheck disable=SC2016 # the literal make reference
    grep -qxF 'BR2_GLOBAL_PATCH_DIR="$(BR2_EXTERNAL_GONDWANA_PATH)/patches"' "$d" ||
        fail "${d#"$ROOT"/}: BR2_GLOBAL_PATCH_DIR is not buildroot/patches"
    for h in linux/linux.hash linux-headers/linux-headers.hash; do
        grep -qE "^sha256 +[0-9a-f]{64} +linux-${kver//./\\.}\.tar\.xz$" "$BR/patches/$h" ||
            fail "buildroot/patches/$h: no sha256 for linux-$kver.tar.xz"
    done
done
echo "buildroot-pins: ok   kernel $kver pinned, with its tarball's sha256"

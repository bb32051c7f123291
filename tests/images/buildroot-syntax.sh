#!/usr/bin/env bash
# tests/images/buildroot-syntax.sh — what can be checked of buildroot/
# without buildroot and the internet: the Kconfig parses (kconfiglib, with
# stubs for the buildroot symbols it uses), the package makefile evaluates
# under make (stub cargo-package infrastructure), the defconfigs name only
# BR2_ options and existing files, the GRUB modules Buildroot builds into
# BOOTX64.EFI are the board's GRUB_MODULES (what scripts/build-images
# builds and the QEMU tests boot), the scripts pass `bash -n`. That the
# post-build/post-image scripts compose the same trees as the offline path
# is tests/images/buildroot-compose.sh; the pins against a real Buildroot
# release are tests/images/buildroot-pins.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BR=$ROOT/buildroot
python3 -c 'import kconfiglib' 2>/dev/null || python3 -m pip install --quiet kconfiglib
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/Kconfig" <<KC
config BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS
	def_bool y
config BR2_PACKAGE_HOST_RUSTC
	bool
config BR2_TOOLCHAIN_USES_MUSL
	def_bool y
menu "External options"
source "$BR/Config.in"
endmenu
KC
BR2_EXTERNAL_GONDWANA_PATH=$BR python3 - "$work/Kconfig" <<'PY'
import sys, kconfiglib
k = kconfiglib.Kconfig(sys.argv[1], warn_to_stderr=True)
k.syms["BR2_PACKAGE_GONDWANA"].set_value(2)
assert k.syms["BR2_PACKAGE_HOST_RUSTC"].tri_value == 2, "gondwana must select host-rustc"
assert k.syms["BR2_PACKAGE_GONDWANA"].tri_value == 2, "gondwana must be selectable with musl"
assert k.syms["BR2_PACKAGE_GONDWANA_SITE"].str_value
print("kconfig: ok")
PY
cat >"$work/Makefile" <<MK
BR2_EXTERNAL_GONDWANA_PATH := $BR
BR2_PACKAGE_GONDWANA_SITE := "https://example.invalid/gondwana.git"
qstrip = \$(strip \$(subst ",,\$(1)))
cargo-package = \$(info cargo-package gondwana site=\$(GONDWANA_SITE) version=\$(GONDWANA_VERSION) opts=\$(GONDWANA_CARGO_BUILD_OPTS))
include $BR/external.mk
all: ; @\$(if \$(GONDWANA_INSTALL_TARGET_CMDS),echo "make: ok",false)
MK
make -s -f "$work/Makefile" all
for d in "$BR"/configs/*_defconfig; do
    bad=$(grep -vE '^(#|$|BR2_[A-Za-z0-9_]+=)' "$d" || true)
    [[ -z $bad ]] || { echo "defconfig $d: bad lines: $bad" >&2; exit 1; }
    for f in $(sed -n 's|.*\$(BR2_EXTERNAL_GONDWANA_PATH)/\([^" ]*\).*|\1|p' "$d"); do
        [[ -e $BR/$f ]] || { echo "defconfig $d: missing $f" >&2; exit 1; }
    done
done
echo "defconfigs: ok"
grub_modules=$(sed -n 's/^BR2_TARGET_GRUB2_BUILTIN_MODULES_EFI="\(.*\)"$/\1/p' "$BR/configs/gondwana_amd64_live_defconfig")
# shellcheck disable=SC1091
board_grub_modules=$(. "$ROOT/board/amd64-live/board.env" && echo "$GRUB_MODULES")
[[ $grub_modules == "$board_grub_modules" ]] || {
    echo "grub: defconfig builds '$grub_modules' into BOOTX64.EFI, board.env GRUB_MODULES is '$board_grub_modules'" >&2
    exit 1
}
echo "grub modules: ok"
for s in "$BR"/board/*.sh "$ROOT"/image/compose "$ROOT"/board/*/hook.sh; do bash -n "$s"; done
echo "buildroot-syntax: ok"

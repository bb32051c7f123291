################################################################################
#
# gondwana
#
################################################################################

# Pinned: a commit of this repository, built from an archive whose sha256
# is in gondwana.hash (Buildroot's git download + cargo vendoring,
# gondwana-$(GONDWANA_VERSION)-git4-cargo5.tar.gz). Bump both with
# buildroot/pin-gondwana (docs/building-with-buildroot.md).
GONDWANA_VERSION = bf25066434c13a3b10c0ff41bd8c25c9b3b40623
GONDWANA_SITE = $(call qstrip,$(BR2_PACKAGE_GONDWANA_SITE))
GONDWANA_SITE_METHOD = git
GONDWANA_LICENSE = GPL-3.0-or-later
GONDWANA_LICENSE_FILES = LICENSE

# rustables' build script runs bindgen, which loads host-clang's libclang.
# lz4 and zstd: image/compose compresses the initramfs with the board's
# INITRD_COMPRESSION (board.env) in post-image.sh, which finds them in
# HOST_DIR/bin.
GONDWANA_DEPENDENCIES = host-clang host-lz4 host-zstd

# The workspace root holds Cargo.lock; build only the node binary. The
# cargo infrastructure runs `cargo build --offline --locked --release` on
# the crates it vendored at download time (support/download/cargo-post-
# process, which also replaces the repository's .cargo/config.toml: its
# target flags are therefore given here).
GONDWANA_CARGO_BUILD_OPTS = --package gondwana-node --bin gondwana

# Buildroot's PKG_CARGO_ENV sets every CARGO_PROFILE_RELEASE_* from
# BR2_OPTIMIZE_*/BR2_ENABLE_LTO (opt-level 3 or s, 16 codegen units, no LTO).
# GONDWANA_CARGO_ENV comes after it on the command line, so these win: the
# workspace's [profile.release] (Cargo.toml; its per-crate opt-level
# overrides are untouched), which the binary's 4 MiB budget depends on.
# tests/images/buildroot-syntax.sh checks they equal Cargo.toml.
GONDWANA_PROFILE_ENV = \
	CARGO_PROFILE_RELEASE_OPT_LEVEL="s" \
	CARGO_PROFILE_RELEASE_LTO="true" \
	CARGO_PROFILE_RELEASE_CODEGEN_UNITS="1" \
	CARGO_PROFILE_RELEASE_PANIC="abort" \
	CARGO_PROFILE_RELEASE_STRIP="true"

# A fully static executable, as scripts/build makes it (.cargo/config.toml):
# musl's libc linked in, not a PIE, no unwind tables (panic = "abort"),
# and on aarch64 LLVM's machine outliner (binary size: docs/architecture.md;
# not on x86_64, where it slowed the userspace WireGuard data path).
GONDWANA_RUSTFLAGS = \
	-C target-feature=+crt-static \
	-C relocation-model=static \
	-C force-unwind-tables=no
ifeq ($(BR2_aarch64),y)
GONDWANA_RUSTFLAGS += -C llvm-args=-enable-machine-outliner=always
endif

GONDWANA_CARGO_ENV = \
	$(GONDWANA_PROFILE_ENV) \
	CARGO_TARGET_$(call UPPERCASE,$(RUSTC_TARGET_NAME))_RUSTFLAGS="$(GONDWANA_RUSTFLAGS)" \
	LIBCLANG_PATH="$(HOST_DIR)/lib" \
	BINDGEN_EXTRA_CLANG_ARGS="--sysroot=$(STAGING_DIR)" \
	GONDWANA_GIT_COMMIT="$(shell echo $(GONDWANA_VERSION) | cut -c1-12)"

# The release binary (the infrastructure builds without --release only
# with BR2_ENABLE_DEBUG, which the defconfigs do not set). Refused unless
# fully static: no program interpreter, no shared library.
define GONDWANA_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)/gondwana \
		$(TARGET_DIR)/usr/bin/gondwana
	if $(TARGET_READELF) -lW $(TARGET_DIR)/usr/bin/gondwana | grep -q INTERP || \
		$(TARGET_READELF) -dW $(TARGET_DIR)/usr/bin/gondwana | grep -q NEEDED; then \
		echo "gondwana: the binary is not fully static" >&2; exit 1; \
	fi
endef

$(eval $(cargo-package))

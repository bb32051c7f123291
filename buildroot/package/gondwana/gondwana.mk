################################################################################
#
# gondwana
#
################################################################################

GONDWANA_VERSION = $(call qstrip,$(BR2_PACKAGE_GONDWANA_VERSION))
GONDWANA_SITE = $(call qstrip,$(BR2_PACKAGE_GONDWANA_SITE))
GONDWANA_SITE_METHOD = git
GONDWANA_LICENSE = GPL-3.0-or-later
GONDWANA_LICENSE_FILES = LICENSE

# The workspace root holds Cargo.lock; build only the node binary. The
# cargo infrastructure runs `cargo build --offline --locked` on the
# crates it vendored at download time (support/download/cargo-post-process).
GONDWANA_CARGO_BUILD_OPTS = --package gondwana-node --bin gondwana
# rustables' build script runs bindgen (docs/ in the repository).
GONDWANA_DEPENDENCIES = host-clang
GONDWANA_CARGO_ENV = \
	BINDGEN_EXTRA_CLANG_ARGS="--sysroot=$(STAGING_DIR)"

define GONDWANA_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)/gondwana \
		$(TARGET_DIR)/usr/bin/gondwana
endef

$(eval $(cargo-package))

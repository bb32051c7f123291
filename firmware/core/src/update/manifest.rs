//! What a bundle claims (the signed manifest) and whether a box may
//! install it (the running release against the bundle).

use serde::{Deserialize, Serialize};

use super::{BundleError, FORMAT};
use crate::hash::Hash32;
use crate::keys::PublicKey;

/// Parts one bundle may carry: the root and a few boot files.
pub const MAX_PARTS: usize = 8;
/// Longest boot file name (a relative path on the boot partition).
pub const MAX_NAME: usize = 128;

/// The signed description of a bundle. Field order is the wire order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u8,
    /// The board name (`BOARD_NAME` of `board/<board>/board.env`).
    pub board: String,
    /// The order of releases: higher is newer.
    pub version: u64,
    /// For people (`v1.2`, a commit): never compared.
    pub label: String,
    /// This bundle installs only over a running release of at least this
    /// version, and once it runs it refuses bundles below it: the
    /// anti-rollback floor.
    pub min_version: u64,
    /// The key that signs this manifest.
    pub release_key: PublicKey,
    /// The root part first, then boot files; the bundle's parts in this order.
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub target: Target,
    pub size: u64,
    /// BLAKE2b-256 of the part's bytes.
    pub blake2b: Hash32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// The root filesystem image (squashfs), written raw to the slot's
    /// partition.
    RootSlot,
    /// A file of the slot's boot-file set: its path relative to the set's
    /// directory (`Image`, `initrd.img`, `dtbs/marvell/…dtb`).
    BootFile(String),
}

/// The release a box runs (`/etc/gondwana/release` in its root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub board: String,
    pub version: u64,
    pub min_version: u64,
    pub label: String,
}

fn bad(why: impl Into<String>) -> BundleError {
    BundleError::BadManifest(why.into())
}

impl Manifest {
    /// Shape rules beyond the encoding: one root part, first; boot file
    /// names that stay inside their directory; nothing unbounded.
    pub fn check(&self) -> Result<(), BundleError> {
        if self.format != FORMAT {
            return Err(BundleError::UnknownFormat(self.format));
        }
        check_release_fields(&self.board, &self.label, self.version, self.min_version)?;
        if self.parts.is_empty() || self.parts.len() > MAX_PARTS {
            return Err(bad(format!("1 to {MAX_PARTS} parts")));
        }
        if self.parts[0].target != Target::RootSlot || self.parts[0].size == 0 {
            return Err(bad("the first part must be a non-empty root"));
        }
        let mut names = Vec::new();
        for part in &self.parts[1..] {
            let Target::BootFile(name) = &part.target else {
                return Err(bad("only one root part"));
            };
            if !valid_name(name) {
                return Err(bad(format!(
                    "boot file name {name:?}: a relative path of [A-Za-z0-9._-] components"
                )));
            }
            if names.contains(&name) {
                return Err(bad(format!("boot file {name:?} twice")));
            }
            names.push(name);
        }
        Ok(())
    }

    /// Total bytes of the parts: what follows the head.
    pub fn parts_len(&self) -> u64 {
        // Saturating: sizes come from the bundle (signed, but still bounded here).
        self.parts
            .iter()
            .fold(0u64, |sum, p| sum.saturating_add(p.size))
    }

    pub fn root(&self) -> &Part {
        &self.parts[0]
    }
}

/// The rules a manifest and a release record share: board, label, versions.
pub(super) fn check_release_fields(
    board: &str,
    label: &str,
    version: u64,
    min_version: u64,
) -> Result<(), BundleError> {
    if !valid_board(board) {
        return Err(bad("board must be 1-32 of [a-z0-9-]"));
    }
    if label.len() > 64 || label.chars().any(|c| c.is_control()) {
        return Err(bad("label must be at most 64 printable bytes"));
    }
    if min_version > version {
        return Err(bad("min_version is above version"));
    }
    Ok(())
}

fn valid_board(board: &str) -> bool {
    (1..=32).contains(&board.len())
        && board
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `a/b.c`: no empty, `.` or `..` component, no leading `/`, only
/// `[A-Za-z0-9._-]`; the reserved status file name is refused too.
fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name != crate::update::STATUS_FILE
        && name.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// May a box running `running` install `manifest`? Board, anti-rollback
/// floor, and the oldest release the bundle replaces. Sizes are the
/// installer's (it knows the slot).
pub fn check_install(manifest: &Manifest, running: &Release) -> Result<(), BundleError> {
    check_replaces(
        &manifest.board,
        manifest.version,
        manifest.min_version,
        running,
    )
}

/// [`check_install`] for a release named by its board and versions (a
/// release record before its bundle is here).
pub fn check_replaces(
    board: &str,
    version: u64,
    min_version: u64,
    running: &Release,
) -> Result<(), BundleError> {
    if board != running.board {
        return Err(BundleError::WrongBoard {
            bundle: board.to_string(),
            running: running.board.clone(),
        });
    }
    if version < running.min_version {
        return Err(BundleError::Downgrade {
            bundle: version,
            floor: running.min_version,
        });
    }
    if running.version < min_version {
        return Err(BundleError::RunningTooOld {
            min: min_version,
            running: running.version,
        });
    }
    Ok(())
}

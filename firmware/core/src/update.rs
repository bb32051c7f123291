//! Signed update bundles (byte layout: docs/updates.md, "Bundle format").
//!
//! A bundle is `MAGIC || head_len (u32 LE) || head || parts`: the head
//! carries the postcard [`Manifest`] exactly as signed, the release key's
//! signature over `gondwana/v1/update-manifest\0 || manifest`, and the
//! key-rotation records that lead from a box's baked-in release keys to the
//! key that signed. The parts follow raw, in manifest order, so an
//! installer verifies everything it needs before the first byte of a part
//! and hashes each part while it writes it.
//!
//! This module decides; it reads and writes nothing. The installer
//! (`gondwana update install`) and the bundle builder (`gondwana-release`)
//! supply the bytes.

mod manifest;
mod release;
pub mod rollout;
mod rotation;
mod text;
mod trial;

#[cfg(test)]
mod release_tests;
#[cfg(test)]
mod tests;

pub use manifest::{Manifest, Part, Release, Target, check_install, check_replaces};
pub use release::{
    MAX_SIGNED_RELEASE, ReleaseBody, SignedRelease, Wave, record_rotations, seal_release,
    verify_release, wave_share, wave_time,
};
pub use rotation::{RotationBody, SignedRotation, seal_rotation, trusted_after};
pub use text::{parse_release, parse_release_keys, release_text};
pub use trial::{ENV_BLOCK_LEN, EnvError, Health, Trial, Verdict, encode_env, parse_env};

use serde::{Deserialize, Serialize};

use crate::envelope::{DecodeError, decode_canonical, encode, signed_message, tag};
use crate::keys::{PublicKey, SignatureBytes, SigningSecret, verify_signature};

/// The first 8 bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"GWBUNDLE";
/// Magic and the head's length.
pub const PREFIX_LEN: usize = 12;
/// Largest head: a manifest, a signature and up to [`MAX_ROTATIONS`]
/// rotation records fit many times over.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest encoded manifest.
pub const MAX_MANIFEST: usize = 4096;
/// Rotation records one bundle may carry.
pub const MAX_ROTATIONS: usize = 16;
/// The status record in a slot's boot-file set, written last by an
/// install once every hash matched (docs/updates.md).
pub const STATUS_FILE: &str = "installed";
/// The manifest and rotation format this code reads and writes.
pub const FORMAT: u8 = 1;

/// The bundle's head as encoded after the prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The postcard [`Manifest`], exactly the bytes signed.
    pub manifest: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: SignatureBytes,
    /// Oldest first: each signed by a key the box trusts once the records
    /// before it are applied.
    pub rotations: Vec<SignedRotation>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not an update bundle (no GWBUNDLE magic)")]
    NotABundle,
    #[error("bundle head of {0} bytes is over the limit of {MAX_HEAD}")]
    HeadTooLarge(usize),
    #[error("bundle head: {0}")]
    Malformed(DecodeError),
    #[error("bundle format {0} is not supported (this release reads format {FORMAT})")]
    UnknownFormat(u8),
    #[error("manifest: {0}")]
    BadManifest(String),
    #[error("signed by release key {0}, which this box does not trust")]
    UnknownReleaseKey(String),
    #[error("manifest signature does not verify")]
    BadSignature,
    #[error("key rotation record {index}: {why}")]
    BadRotation { index: usize, why: String },
    #[error("bundle is for board {bundle}, this box is {running}")]
    WrongBoard { bundle: String, running: String },
    #[error(
        "version {bundle} is below {floor}, the lowest version the running release accepts (downgrade)"
    )]
    Downgrade { bundle: u64, floor: u64 },
    #[error("bundle replaces version {min} or later; this box runs {running}")]
    RunningTooOld { min: u64, running: u64 },
}

/// Signs `manifest` with `key` and returns the bundle's first bytes
/// (prefix and head); the caller appends the parts in manifest order.
pub fn seal(
    manifest: &Manifest,
    key: &SigningSecret,
    rotations: &[SignedRotation],
) -> Result<Vec<u8>, BundleError> {
    manifest.check()?;
    if manifest.release_key != key.public_key() {
        return Err(BundleError::BadManifest(
            "release_key is not the signing key".into(),
        ));
    }
    let body = encode(manifest);
    if body.len() > MAX_MANIFEST {
        return Err(BundleError::HeadTooLarge(body.len()));
    }
    let head = Head {
        signature: key.sign(&signed_message(tag::UPDATE_MANIFEST, &body)),
        manifest: body,
        rotations: rotations.to_vec(),
    };
    let head = encode(&head);
    if head.len() > MAX_HEAD {
        return Err(BundleError::HeadTooLarge(head.len()));
    }
    let mut out = Vec::with_capacity(PREFIX_LEN + head.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    Ok(out)
}

/// The head's length from the bundle's first [`PREFIX_LEN`] bytes.
pub fn head_len(prefix: &[u8; PREFIX_LEN]) -> Result<usize, BundleError> {
    if prefix[..8] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    let len = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as usize;
    if len > MAX_HEAD {
        return Err(BundleError::HeadTooLarge(len));
    }
    Ok(len)
}

/// Decodes the head, applies its rotation records to `baked` (the box's
/// release keys), checks the manifest's signature by a key trusted after
/// them, then decodes and checks the manifest. Nothing of the manifest is
/// believed before its signature holds.
pub fn verify_head(head: &[u8], baked: &[PublicKey]) -> Result<Manifest, BundleError> {
    let head: Head = decode_canonical(head, MAX_HEAD).map_err(BundleError::Malformed)?;
    if head.rotations.len() > MAX_ROTATIONS {
        return Err(BundleError::BadManifest(format!(
            "{} rotation records, at most {MAX_ROTATIONS}",
            head.rotations.len()
        )));
    }
    let trusted = trusted_after(baked, &head.rotations)?;
    // The signer is named inside the signed bytes; read it only to pick
    // the key, then verify before decoding anything else.
    let signer = signer_of(&head.manifest)?;
    if !trusted.contains(&signer) {
        return Err(BundleError::UnknownReleaseKey(crate::hash::to_hex(&signer)));
    }
    if !verify_signature(
        &signer,
        &signed_message(tag::UPDATE_MANIFEST, &head.manifest),
        &head.signature,
    ) {
        return Err(BundleError::BadSignature);
    }
    let manifest: Manifest =
        decode_canonical(&head.manifest, MAX_MANIFEST).map_err(BundleError::Malformed)?;
    manifest.check()?;
    Ok(manifest)
}

/// A bundle head's rotation records, unverified: what a box stores once
/// the bundle verified and installed ([`verify_head`] checks them).
pub fn head_rotations(head: &[u8]) -> Result<Vec<SignedRotation>, BundleError> {
    let head: Head = decode_canonical(head, MAX_HEAD).map_err(BundleError::Malformed)?;
    Ok(head.rotations)
}

/// The manifest's bytes as signed, from a bundle's head, unverified: what a
/// release record's `manifest_blake2b` hashes. Verify with [`verify_head`].
pub fn head_manifest_bytes(head: &[u8]) -> Result<Vec<u8>, BundleError> {
    let head: Head = decode_canonical(head, MAX_HEAD).map_err(BundleError::Malformed)?;
    Ok(head.manifest)
}

/// The `release_key` field of an encoded manifest, read without trusting
/// the rest: `format` (one byte), then the fields before the key.
fn signer_of(manifest: &[u8]) -> Result<PublicKey, BundleError> {
    #[derive(Deserialize)]
    struct Prefix {
        format: u8,
        _board: String,
        _version: u64,
        _label: String,
        _min_version: u64,
        release_key: PublicKey,
    }
    let (prefix, _) = postcard::take_from_bytes::<Prefix>(manifest)
        .map_err(|e| BundleError::Malformed(DecodeError::Malformed(e)))?;
    if prefix.format != FORMAT {
        return Err(BundleError::UnknownFormat(prefix.format));
    }
    Ok(prefix.release_key)
}

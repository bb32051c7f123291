//! The release record: what the directory says about a bundle
//! (docs/updates.md, "Release record"). Signed by a release key like the
//! bundle's manifest, so a box checks it against its own trusted release
//! keys alone, offline, whoever handed it the record; the hub only appends
//! what verifies against its keys. It names the whole bundle file by size
//! and BLAKE2b-256, so a box can fetch the file from any box and know it
//! got the right bytes, and carries the rollout's wave plan.

use serde::{Deserialize, Serialize};

use super::manifest::check_release_fields;
use super::rotation::{SignedRotation, trusted_after};
use super::{BundleError, FORMAT, Manifest};
use crate::envelope::{decode_canonical, encode, signed_message, tag};
use crate::hash::{Hash32, blake2b256};
use crate::keys::{PublicKey, SignatureBytes, SigningSecret, verify_signature};

/// Largest encoded [`ReleaseBody`] (a maximal one is about 330 bytes).
pub const MAX_RELEASE_BODY: usize = 384;
/// Rotation records a release record may carry: fewer than a bundle, so
/// the record fits one directory entry.
pub const MAX_RELEASE_ROTATIONS: usize = 3;
/// Largest encoded [`SignedRelease`]: fits a directory entry's envelope.
pub const MAX_SIGNED_RELEASE: usize = 900;
/// Waves one rollout has at most.
pub const MAX_WAVES: usize = 8;

/// The signed statement "release `version` for `board` is the bundle of
/// `bundle_size` bytes hashing to `bundle_blake2b`". Field order is the
/// wire order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseBody {
    /// [`FORMAT`].
    pub format: u8,
    pub board: String,
    pub version: u64,
    pub min_version: u64,
    pub label: String,
    /// Unix seconds: the rollout's zero; wave delays count from here.
    pub start: u64,
    /// The whole bundle file's length and BLAKE2b-256.
    pub bundle_size: u64,
    pub bundle_blake2b: Hash32,
    /// BLAKE2b-256 of the bundle's manifest bytes, as signed in its head.
    pub manifest_blake2b: Hash32,
    /// The key that signs this record.
    pub release_key: PublicKey,
    /// Empty: every box at `start`. Else percentages strictly increasing,
    /// delays not decreasing, the last wave 100 %.
    pub waves: Vec<Wave>,
}

/// "Boxes whose share is below `percent` may take the release
/// `after_secs` after the start."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    pub percent: u8,
    pub after_secs: u64,
}

/// The record as the directory carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRelease {
    /// The encoded [`ReleaseBody`], exactly as signed.
    pub body: Vec<u8>,
    /// ed25519 by `body.release_key` over
    /// `gondwana/v1/release-record\0 || body`.
    #[serde(with = "serde_bytes")]
    pub signature: SignatureBytes,
    /// From the keys boxes were built with to `release_key`, oldest first.
    pub rotations: Vec<SignedRotation>,
}

fn bad(why: impl Into<String>) -> BundleError {
    BundleError::BadManifest(format!("release record: {}", why.into()))
}

impl ReleaseBody {
    /// The record for a bundle: the manifest's release, the file's size and
    /// hash, the manifest bytes' hash.
    pub fn for_bundle(
        manifest: &Manifest,
        manifest_bytes: &[u8],
        bundle_size: u64,
        bundle_blake2b: Hash32,
        start: u64,
        waves: Vec<Wave>,
    ) -> ReleaseBody {
        ReleaseBody {
            format: FORMAT,
            board: manifest.board.clone(),
            version: manifest.version,
            min_version: manifest.min_version,
            label: manifest.label.clone(),
            start,
            bundle_size,
            bundle_blake2b,
            manifest_blake2b: blake2b256(manifest_bytes),
            release_key: manifest.release_key,
            waves,
        }
    }

    pub fn check(&self) -> Result<(), BundleError> {
        if self.format != FORMAT {
            return Err(BundleError::UnknownFormat(self.format));
        }
        check_release_fields(&self.board, &self.label, self.version, self.min_version)?;
        if self.bundle_size == 0 {
            return Err(bad("bundle_size is 0"));
        }
        check_waves(&self.waves)
    }

    /// Does `manifest` (with its bytes as signed) describe this release?
    pub fn matches(&self, manifest: &Manifest, manifest_bytes: &[u8]) -> Result<(), BundleError> {
        if blake2b256(manifest_bytes) != self.manifest_blake2b
            || manifest.board != self.board
            || manifest.version != self.version
            || manifest.min_version != self.min_version
            || manifest.label != self.label
        {
            return Err(bad("the bundle's manifest is not the one the record names"));
        }
        Ok(())
    }
}

fn check_waves(waves: &[Wave]) -> Result<(), BundleError> {
    if waves.len() > MAX_WAVES {
        return Err(bad(format!("at most {MAX_WAVES} waves")));
    }
    for pair in waves.windows(2) {
        if pair[1].percent <= pair[0].percent || pair[1].after_secs < pair[0].after_secs {
            return Err(bad(
                "waves: percentages must increase and delays must not decrease",
            ));
        }
    }
    match (waves.first(), waves.last()) {
        (Some(first), _) if first.percent == 0 => Err(bad("a wave of 0 %")),
        (_, Some(last)) if last.percent != 100 => Err(bad("the last wave must be 100 %")),
        _ => Ok(()),
    }
}

/// Signs `body` with `key`: the record's bytes as the directory carries
/// them.
pub fn seal_release(
    body: &ReleaseBody,
    key: &SigningSecret,
    rotations: &[SignedRotation],
) -> Result<Vec<u8>, BundleError> {
    body.check()?;
    if body.release_key != key.public_key() {
        return Err(bad("release_key is not the signing key"));
    }
    if rotations.len() > MAX_RELEASE_ROTATIONS {
        return Err(bad(format!(
            "at most {MAX_RELEASE_ROTATIONS} rotation records"
        )));
    }
    let bytes = encode(body);
    if bytes.len() > MAX_RELEASE_BODY {
        return Err(bad(format!("body of {} bytes", bytes.len())));
    }
    let signed = encode(&SignedRelease {
        signature: key.sign(&signed_message(tag::RELEASE_RECORD, &bytes)),
        body: bytes,
        rotations: rotations.to_vec(),
    });
    if signed.len() > MAX_SIGNED_RELEASE {
        return Err(bad(format!("record of {} bytes", signed.len())));
    }
    Ok(signed)
}

/// A record's rotation records, unverified: what a box stores once the
/// record verified ([`verify_release`] checks them).
pub fn record_rotations(bytes: &[u8]) -> Result<Vec<SignedRotation>, BundleError> {
    let signed: SignedRelease =
        decode_canonical(bytes, MAX_SIGNED_RELEASE).map_err(BundleError::Malformed)?;
    Ok(signed.rotations)
}

/// Checks a record against `baked` (the box's release keys): its rotation
/// records, the signature by a key trusted after them, the body's rules.
pub fn verify_release(bytes: &[u8], baked: &[PublicKey]) -> Result<ReleaseBody, BundleError> {
    let signed: SignedRelease =
        decode_canonical(bytes, MAX_SIGNED_RELEASE).map_err(BundleError::Malformed)?;
    if signed.rotations.len() > MAX_RELEASE_ROTATIONS {
        return Err(bad(format!(
            "at most {MAX_RELEASE_ROTATIONS} rotation records"
        )));
    }
    let trusted = trusted_after(baked, &signed.rotations)?;
    let body: ReleaseBody =
        decode_canonical(&signed.body, MAX_RELEASE_BODY).map_err(BundleError::Malformed)?;
    if !trusted.contains(&body.release_key) {
        return Err(BundleError::UnknownReleaseKey(crate::hash::to_hex(
            &body.release_key,
        )));
    }
    if !verify_signature(
        &body.release_key,
        &signed_message(tag::RELEASE_RECORD, &signed.body),
        &signed.signature,
    ) {
        return Err(BundleError::BadSignature);
    }
    body.check()?;
    Ok(body)
}

/// This box's place in a release's rollout, 0–99: the first 8 bytes of
/// BLAKE2b-256(`gondwana/v1/release-wave\0` || bundle hash || node id),
/// little-endian, mod 100. Per release, so the same boxes are not always
/// first.
pub fn wave_share(node_id: &str, bundle_blake2b: &Hash32) -> u8 {
    let mut input = b"gondwana/v1/release-wave\0".to_vec();
    input.extend_from_slice(bundle_blake2b);
    input.extend_from_slice(node_id.as_bytes());
    let h = blake2b256(&input);
    let first = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    (first % 100) as u8
}

/// When a box with `share` may take the release: unix seconds.
pub fn wave_time(body: &ReleaseBody, share: u8) -> u64 {
    let delay = body
        .waves
        .iter()
        .find(|w| share < w.percent)
        .map_or(0, |w| w.after_secs);
    body.start.saturating_add(delay)
}

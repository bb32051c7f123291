//! Release key rotation: the old key signs the new one, with a sequence
//! number, so boxes move to a new release key without a re-flash. A box
//! starts from the keys baked into its root (`/etc/gondwana/release-keys`);
//! a bundle carries the records from there to the key that signed it.

use serde::{Deserialize, Serialize};

use super::{BundleError, FORMAT};
use crate::envelope::{decode_canonical, encode, signed_message, tag};
use crate::keys::{PublicKey, SignatureBytes, SigningSecret, verify_signature};

/// Largest encoded [`RotationBody`] (it is 75 bytes at most).
const MAX_BODY: usize = 128;

/// "From `seq` on, `new_key` replaces `old_key`", signed by `old_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationBody {
    /// [`FORMAT`].
    pub format: u8,
    /// Strictly increasing along a chain.
    pub seq: u64,
    pub old_key: PublicKey,
    pub new_key: PublicKey,
}

/// The body as signed and the old key's signature over
/// `gondwana/v1/release-key-rotation\0 || body`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRotation {
    pub body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: SignatureBytes,
}

/// The old key hands over to `new_key` at `seq`: the signed record.
pub fn seal_rotation(
    seq: u64,
    old: &SigningSecret,
    new_key: PublicKey,
) -> Result<SignedRotation, String> {
    let body = RotationBody {
        format: FORMAT,
        seq,
        old_key: old.public_key(),
        new_key,
    };
    if body.old_key == body.new_key {
        return Err("a key cannot rotate to itself".into());
    }
    let bytes = encode(&body);
    Ok(SignedRotation {
        signature: old.sign(&signed_message(tag::RELEASE_KEY_ROTATION, &bytes)),
        body: bytes,
    })
}

/// The release keys trusted after applying `records` in order to `baked`:
/// each record must be signed by a key trusted at that point, carry a
/// higher `seq` than the record before it, and replaces its old key by its
/// new one (the old key is no longer trusted). Any bad record refuses the
/// whole chain — except one this box is already past: its old key no
/// longer trusted and its new key trusted (the box stored that record
/// before, or runs an image that bakes the new key). Skipping it changes
/// no trust: applying it could only remove a key that is not there.
pub fn trusted_after(
    baked: &[PublicKey],
    records: &[SignedRotation],
) -> Result<Vec<PublicKey>, BundleError> {
    let mut trusted = baked.to_vec();
    let mut last_seq = None;
    for (index, record) in records.iter().enumerate() {
        let fail = |why: String| BundleError::BadRotation { index, why };
        let body: RotationBody =
            decode_canonical(&record.body, MAX_BODY).map_err(|e| fail(e.to_string()))?;
        if body.format != FORMAT {
            return Err(fail(format!("format {} is not supported", body.format)));
        }
        if !trusted.contains(&body.old_key) {
            if trusted.contains(&body.new_key) {
                continue;
            }
            return Err(fail(format!(
                "signed by {}, which this box does not trust",
                crate::hash::to_hex(&body.old_key)
            )));
        }
        if !verify_signature(
            &body.old_key,
            &signed_message(tag::RELEASE_KEY_ROTATION, &record.body),
            &record.signature,
        ) {
            return Err(fail("signature does not verify".into()));
        }
        if last_seq.is_some_and(|last| body.seq <= last) {
            return Err(fail(format!(
                "seq {} does not follow the record before",
                body.seq
            )));
        }
        if body.old_key == body.new_key {
            return Err(fail("a key cannot rotate to itself".into()));
        }
        last_seq = Some(body.seq);
        trusted.retain(|k| *k != body.old_key);
        if !trusted.contains(&body.new_key) {
            trusted.push(body.new_key);
        }
    }
    Ok(trusted)
}

//! Signed bytes: domain tags and canonical, size-bounded decoding.
//!
//! A signature always covers `domain_tag || body` where `body` is the exact
//! byte string received. Bodies are decoded only after the signature holds,
//! and only if they are canonical: postcard's decoder alone accepts overlong
//! varints and trailing bytes, so we re-encode and compare.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::keys::{PublicKey, SignatureBytes, SigningSecret, verify_signature};

/// Domain tags: one per signed message type, NUL-terminated so no tag is a
/// prefix of another.
pub mod tag {
    pub const IDENTITY_ENTRY: &[u8] = b"gondwana/v1/identity-entry\0";
    /// The second signature on a signing-key rotation, made by the new key.
    pub const IDENTITY_ROTATE_NEW_KEY: &[u8] = b"gondwana/v1/identity-rotate-new-key\0";
    pub const ENROL_REQUEST: &[u8] = b"gondwana/v1/enrol-request\0";
    /// Proof of the enrolment token: the token key's signature on the request body.
    pub const ENROL_TOKEN_PROOF: &[u8] = b"gondwana/v1/enrol-token-proof\0";
    pub const ENROL_GRANT: &[u8] = b"gondwana/v1/enrol-grant\0";
    pub const DIRECTORY_ENTRY: &[u8] = b"gondwana/v1/directory-entry\0";
    /// A hub's command to add or remove a firewall grant on a node.
    pub const GRANT_COMMAND: &[u8] = b"gondwana/v1/grant-command\0";
    /// A node's endpoint candidates (docs/paths.md).
    pub const CANDIDATE_REPORT: &[u8] = b"gondwana/v1/candidate-report\0";
    /// The hub's snapshot of every node's candidates and the relay pairs.
    pub const CANDIDATE_SNAPSHOT: &[u8] = b"gondwana/v1/candidate-snapshot\0";
    /// A release key's signature on an update bundle's manifest (docs/updates.md).
    pub const UPDATE_MANIFEST: &[u8] = b"gondwana/v1/update-manifest\0";
    /// The old release key's signature handing over to a new one.
    pub const RELEASE_KEY_ROTATION: &[u8] = b"gondwana/v1/release-key-rotation\0";
    /// A provider's service offer or withdrawal (docs/protocol.md, "Lending").
    pub const LENDING_PUBLICATION: &[u8] = b"gondwana/v1/lending-publication\0";
    /// A consumer's subscription or unsubscribe, sent to the provider.
    pub const LENDING_REQUEST: &[u8] = b"gondwana/v1/lending-request\0";
    /// The provider's decision on a lending request.
    pub const LENDING_DECISION: &[u8] = b"gondwana/v1/lending-decision\0";
    /// A release record (docs/updates.md, "Release record"), signed by a
    /// release key.
    pub const RELEASE_RECORD: &[u8] = b"gondwana/v1/release-record\0";
    /// Not a signature tag: the domain of a token's stored verifier hash.
    pub const TOKEN_VERIFIER: &[u8] = b"gondwana/v1/token-verifier\0";
    /// Not a signature tag: the domain of the MAC that proves possession of
    /// a WireGuard private key (`wg_proof`).
    pub const WIREGUARD_PROOF: &[u8] = b"gondwana/v1/wireguard-proof\0";

    pub const ALL: [&[u8]; 17] = [
        IDENTITY_ENTRY,
        IDENTITY_ROTATE_NEW_KEY,
        ENROL_REQUEST,
        ENROL_TOKEN_PROOF,
        ENROL_GRANT,
        DIRECTORY_ENTRY,
        GRANT_COMMAND,
        CANDIDATE_REPORT,
        CANDIDATE_SNAPSHOT,
        UPDATE_MANIFEST,
        RELEASE_KEY_ROTATION,
        LENDING_PUBLICATION,
        LENDING_REQUEST,
        LENDING_DECISION,
        RELEASE_RECORD,
        TOKEN_VERIFIER,
        WIREGUARD_PROOF,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("encoding is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed encoding: {0}")]
    Malformed(postcard::Error),
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
    #[error("non-canonical encoding (re-encoding gives different bytes)")]
    NonCanonical,
}

/// The bytes a signature covers.
pub fn signed_message(domain_tag: &[u8], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(domain_tag.len() + body.len());
    msg.extend_from_slice(domain_tag);
    msg.extend_from_slice(body);
    msg
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own types into a Vec cannot fail: no maps of unknown
    // length, no custom serializers that error.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Decodes `bytes` as exactly one canonical `T` of at most `max` bytes.
pub fn decode_canonical<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    if encode(&value) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// Largest body of a generic envelope (enrol messages, directory entries).
pub const MAX_ENVELOPE_BODY: usize = 1024;
/// Body, length prefix, signer, signature and its length prefix.
pub const MAX_ENVELOPE_BYTES: usize = MAX_ENVELOPE_BODY + 3 + 32 + 65;

/// `{ body, signer, sig }`: the signature covers `domain_tag || body`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub body: heapless::Vec<u8, MAX_ENVELOPE_BODY>,
    pub signer: PublicKey,
    #[serde(with = "serde_bytes")]
    pub sig: SignatureBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope: {0}")]
    Envelope(DecodeError),
    #[error("signature does not verify")]
    BadSignature,
    #[error("signed by an unexpected key")]
    WrongSigner,
    #[error("body: {0}")]
    Body(DecodeError),
    #[error("body of {0} bytes exceeds the envelope limit")]
    BodyTooLarge(usize),
}

impl Envelope {
    /// Encodes `value`, signs it under `domain_tag` and encodes the envelope.
    pub fn seal<T: Serialize>(
        domain_tag: &[u8],
        value: &T,
        signer: &SigningSecret,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let body_bytes = encode(value);
        let body = heapless::Vec::from_slice(&body_bytes)
            .map_err(|_| EnvelopeError::BodyTooLarge(body_bytes.len()))?;
        let envelope = Envelope {
            sig: signer.sign(&signed_message(domain_tag, &body)),
            signer: signer.public_key(),
            body,
        };
        Ok(encode(&envelope))
    }

    /// Decodes an envelope, checks its signature over the body as received,
    /// and returns it; the body is not decoded yet.
    pub fn verify(domain_tag: &[u8], bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let envelope: Envelope =
            decode_canonical(bytes, MAX_ENVELOPE_BYTES).map_err(EnvelopeError::Envelope)?;
        if !verify_signature(
            &envelope.signer,
            &signed_message(domain_tag, &envelope.body),
            &envelope.sig,
        ) {
            return Err(EnvelopeError::BadSignature);
        }
        Ok(envelope)
    }

    /// [`Self::verify`], a check that the signer is `expected` (when given),
    /// then the canonical decoding of the body.
    pub fn open<T: Serialize + DeserializeOwned>(
        domain_tag: &[u8],
        bytes: &[u8],
        expected: Option<&PublicKey>,
    ) -> Result<(T, Envelope), EnvelopeError> {
        let envelope = Self::verify(domain_tag, bytes)?;
        if expected.is_some_and(|k| *k != envelope.signer) {
            return Err(EnvelopeError::WrongSigner);
        }
        let body =
            decode_canonical(&envelope.body, MAX_ENVELOPE_BODY).map_err(EnvelopeError::Body)?;
        Ok((body, envelope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_trailing_overlong_and_oversized() {
        let good = encode(&300u32);
        assert_eq!(decode_canonical::<u32>(&good, 16), Ok(300));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            decode_canonical::<u32>(&trailing, 16),
            Err(DecodeError::TrailingBytes(1))
        );
        // 5 as an overlong two-byte varint: 0x85 0x00.
        assert_eq!(
            decode_canonical::<u32>(&[0x85, 0x00], 16),
            Err(DecodeError::NonCanonical)
        );
        assert_eq!(
            decode_canonical::<u32>(&good, 1),
            Err(DecodeError::TooLarge { len: 2, max: 1 })
        );
        assert!(matches!(
            decode_canonical::<u32>(&[], 16),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn tags_are_prefix_free() {
        for a in tag::ALL {
            for b in tag::ALL {
                if a != b {
                    assert!(!a.starts_with(b));
                }
            }
        }
    }
}

#[cfg(test)]
mod envelope_tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let key = SigningSecret::from_seed([3; 32]);
        let bytes = Envelope::seal(tag::ENROL_GRANT, &(7u32, 9u8), &key).unwrap();
        let (value, env) =
            Envelope::open::<(u32, u8)>(tag::ENROL_GRANT, &bytes, Some(&key.public_key())).unwrap();
        assert_eq!(value, (7, 9));
        assert_eq!(env.signer, key.public_key());
        // Another domain, another key, a flipped bit: all refused.
        assert_eq!(
            Envelope::open::<(u32, u8)>(tag::ENROL_REQUEST, &bytes, None).err(),
            Some(EnvelopeError::BadSignature)
        );
        let other = SigningSecret::from_seed([4; 32]).public_key();
        assert_eq!(
            Envelope::open::<(u32, u8)>(tag::ENROL_GRANT, &bytes, Some(&other)).err(),
            Some(EnvelopeError::WrongSigner)
        );
        for i in 0..bytes.len() {
            let mut m = bytes.clone();
            m[i] ^= 0x40;
            assert!(
                Envelope::open::<(u32, u8)>(tag::ENROL_GRANT, &m, None).is_err(),
                "byte {i}"
            );
        }
    }
}

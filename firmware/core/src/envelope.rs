//! Signed bytes: domain tags and canonical, size-bounded decoding.
//!
//! A signature always covers `domain_tag || body` where `body` is the exact
//! byte string received. Bodies are decoded only after the signature holds,
//! and only if they are canonical: postcard's decoder alone accepts overlong
//! varints and trailing bytes, so we re-encode and compare.

use serde::{Serialize, de::DeserializeOwned};

/// Domain tags: one per signed message type, NUL-terminated so no tag is a
/// prefix of another.
pub mod tag {
    pub const IDENTITY_ENTRY: &[u8] = b"gondwana/v1/identity-entry\0";
    /// The second signature on a signing-key rotation, made by the new key.
    pub const IDENTITY_ROTATE_NEW_KEY: &[u8] = b"gondwana/v1/identity-rotate-new-key\0";
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
        let tags = [tag::IDENTITY_ENTRY, tag::IDENTITY_ROTATE_NEW_KEY];
        for a in tags {
            for b in tags {
                if a != b {
                    assert!(!a.starts_with(b));
                }
            }
        }
    }
}

//! Node id (the DID): `gw:` + lowercase unpadded base32 of BLAKE2b-256 over
//! the genesis signing public key. Self-certifying and permanent.

use core::fmt;

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};

use crate::hash::blake2b256;

pub const PREFIX: &str = "gw:";
/// 32 bytes in unpadded base32 are 52 characters.
const ENCODED_LEN: usize = 52;
pub const NODE_ID_LEN: usize = PREFIX.len() + ENCODED_LEN;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "heapless::String<NODE_ID_LEN>",
    into = "heapless::String<NODE_ID_LEN>"
)]
pub struct NodeId(heapless::String<NODE_ID_LEN>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    #[error("node id must start with \"gw:\"")]
    MissingPrefix,
    #[error("node id must be 52 lowercase base32 characters after \"gw:\"")]
    BadEncoding,
}

impl NodeId {
    pub fn from_genesis_key(signing_public_key: &[u8; 32]) -> Self {
        let digest = blake2b256(signing_public_key);
        let encoded = BASE32_NOPAD.encode(&digest).to_ascii_lowercase();
        let mut s = heapless::String::new();
        // Lengths are constants: PREFIX (3) + 52 == NODE_ID_LEN.
        let _ = s.push_str(PREFIX);
        let _ = s.push_str(&encoded);
        NodeId(s)
    }

    pub fn parse(text: &str) -> Result<Self, NodeIdError> {
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or(NodeIdError::MissingPrefix)?;
        let valid = rest.len() == ENCODED_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
            && BASE32_NOPAD
                .decode(rest.to_ascii_uppercase().as_bytes())
                .is_ok_and(|d| d.len() == 32);
        if !valid {
            return Err(NodeIdError::BadEncoding);
        }
        let mut s = heapless::String::new();
        s.push_str(text).map_err(|_| NodeIdError::BadEncoding)?;
        Ok(NodeId(s))
    }

    /// Whether this id belongs to `signing_public_key` (anyone can check).
    pub fn is_for_key(&self, signing_public_key: &[u8; 32]) -> bool {
        *self == Self::from_genesis_key(signing_public_key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The base32 part without `gw:`.
    pub fn suffix(&self) -> &str {
        &self.0[PREFIX.len()..]
    }
}

impl TryFrom<heapless::String<NODE_ID_LEN>> for NodeId {
    type Error = NodeIdError;
    fn try_from(s: heapless::String<NODE_ID_LEN>) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<NodeId> for heapless::String<NODE_ID_LEN> {
    fn from(id: NodeId) -> Self {
        id.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{SigningSecret, decode_hex32};

    /// Published in docs/identity.md. Keys are RFC 8032 section 7.1 TEST 1
    /// and TEST 2; the ids were computed independently with Python's
    /// hashlib.blake2b(pk, digest_size=32) and base64.b32encode.
    pub(crate) const VECTORS: &[(&str, &str, &str)] = &[
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "gw:pbe2ymcjnaf6d33wf37a2nxac4z4grsowdd4kwatrlhsjozghpjq",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "gw:n3e6svnbtor4t4zykaebud3d7jo7dxhy7lipvkxuyz365o45et5q",
        ),
    ];

    #[test]
    fn published_vectors() {
        for (seed, public, id) in VECTORS {
            let secret = SigningSecret::from_seed(decode_hex32(seed).unwrap());
            let pk = secret.public_key();
            assert_eq!(crate::hash::to_hex(&pk), *public);
            let node_id = NodeId::from_genesis_key(&pk);
            assert_eq!(node_id.as_str(), *id);
            assert_eq!(NodeId::parse(id).unwrap(), node_id);
            assert!(node_id.is_for_key(&pk));
        }
    }

    #[test]
    fn parse_rejects_malformed() {
        let good = VECTORS[0].2;
        assert_eq!(NodeId::parse(&good[3..]), Err(NodeIdError::MissingPrefix));
        assert_eq!(
            NodeId::parse(&good.to_uppercase()),
            Err(NodeIdError::MissingPrefix)
        );
        assert_eq!(NodeId::parse(&good[..20]), Err(NodeIdError::BadEncoding));
        let upper = format!("gw:{}", good[3..].to_uppercase());
        assert_eq!(NodeId::parse(&upper), Err(NodeIdError::BadEncoding));
        let with_pad = format!("{good}====");
        assert_eq!(NodeId::parse(&with_pad), Err(NodeIdError::BadEncoding));
        let with_digit = format!("gw:1{}", &good[4..]);
        assert_eq!(NodeId::parse(&with_digit), Err(NodeIdError::BadEncoding));
    }
}

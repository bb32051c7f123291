//! A node's own revocation as a standalone proof: the directory entry that
//! revoked it, exactly as the hub stored it in the directory. The hub
//! serves it on its public listener (`GET /v1/enroll/revocation`) to a node
//! whose tunnel it has already removed; the node checks it against the hub
//! key it pinned at enrolment.
//!
//! The entry's place in the chain (`seq`, `prev`) is not checked: the node
//! may not hold the entries before it, and need not. The hub never
//! re-admits a revoked node id (a re-flashed box is a new identity, and a
//! revoked identity re-presenting is refused with `node_revoked`), so a
//! hub-signed revocation of a node id is final whenever it was made and
//! cannot be replayed against a later enrolment of the same id.

use crate::directory::{Entry, Record, VERSION};
use crate::envelope::{
    Envelope, EnvelopeError, MAX_ENVELOPE_BODY, MAX_ENVELOPE_BYTES, decode_canonical, tag,
};
use crate::keys::PublicKey;
use crate::node_id::NodeId;

/// What a verified revocation says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The entry's position in the hub's directory.
    pub seq: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    #[error("revocation record: {0}")]
    Envelope(EnvelopeError),
    #[error("revocation record: unknown directory entry version {0}")]
    UnknownVersion(u8),
    #[error("revocation record: directory entry {0} is not a revocation")]
    NotARevocation(u64),
    #[error("revocation record: it revokes {0}, not this node")]
    OtherNode(String),
}

/// Verifies `raw` as a directory entry signed by `hub_key` that revokes
/// `node_id`.
pub fn open(
    raw: &[u8],
    hub_key: &PublicKey,
    node_id: &NodeId,
) -> Result<Revocation, RevocationError> {
    let (entry, _) = Envelope::open::<Entry>(tag::DIRECTORY_ENTRY, raw, Some(hub_key))
        .map_err(RevocationError::Envelope)?;
    if entry.version != VERSION {
        return Err(RevocationError::UnknownVersion(entry.version));
    }
    match revokes(&entry, node_id) {
        Some(r) => Ok(r),
        None => match entry.record {
            Record::Revoke { node_id: other, .. } => {
                Err(RevocationError::OtherNode(other.as_str().to_string()))
            }
            _ => Err(RevocationError::NotARevocation(entry.seq)),
        },
    }
}

/// The revocation of `node_id` an (already verified) entry holds, if any.
pub fn revokes(entry: &Entry, node_id: &NodeId) -> Option<Revocation> {
    match &entry.record {
        Record::Revoke {
            node_id: revoked,
            reason,
        } if revoked == node_id => Some(Revocation {
            seq: entry.seq,
            reason: reason.to_string(),
        }),
        _ => None,
    }
}

/// A stored directory entry decoded without checking its signature: to
/// find a record among entries that were verified when they were stored
/// (a match is then opened with [`open`] where it matters).
pub fn decode_unverified(raw: &[u8]) -> Option<Entry> {
    let envelope: Envelope = decode_canonical(raw, MAX_ENVELOPE_BYTES).ok()?;
    decode_canonical(&envelope.body, MAX_ENVELOPE_BODY).ok()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::Boxname;
    use crate::directory::{Head, append};
    use crate::keys::SigningSecret;

    fn hub() -> SigningSecret {
        SigningSecret::from_seed([42; 32])
    }

    fn id(n: u8) -> NodeId {
        NodeId::from_genesis_key(&[n; 32])
    }

    fn revoke(signer: &SigningSecret, who: &NodeId, seq: u64) -> Vec<u8> {
        let head = Head {
            len: seq,
            tip: [7; 32],
        };
        let record = Record::Revoke {
            node_id: who.clone(),
            reason: heapless::String::try_from("stolen").unwrap(),
        };
        append(&head, signer, record).unwrap().0
    }

    #[test]
    fn opens_the_hubs_revocation_of_this_node() {
        let raw = revoke(&hub(), &id(2), 9);
        assert_eq!(
            open(&raw, &hub().public_key(), &id(2)),
            Ok(Revocation {
                seq: 9,
                reason: "stolen".into()
            })
        );
    }

    #[test]
    fn refuses_forged_foreign_and_other_records() {
        let key = hub().public_key();
        let impostor = SigningSecret::from_seed([1; 32]);
        assert_eq!(
            open(&revoke(&impostor, &id(2), 9), &key, &id(2)),
            Err(RevocationError::Envelope(EnvelopeError::WrongSigner))
        );
        assert_eq!(
            open(&revoke(&hub(), &id(3), 9), &key, &id(2)),
            Err(RevocationError::OtherNode(id(3).as_str().to_string()))
        );
        let node = Record::Node {
            node_id: id(2),
            boxname: Boxname::parse("box-2").unwrap(),
            signing_key: [2; 32],
            wireguard_key: [3; 32],
            mesh_ip: Ipv4Addr::new(10, 10, 0, 2),
            endpoint_hint: None,
        };
        let (raw, _) = append(&Head::default(), &hub(), node).unwrap();
        assert_eq!(
            open(&raw, &key, &id(2)),
            Err(RevocationError::NotARevocation(0))
        );
        // Another domain tag: a grant signed by the hub is not an entry.
        let other_tag = Envelope::seal(tag::ENROL_GRANT, &7u32, &hub()).unwrap();
        assert!(matches!(
            open(&other_tag, &key, &id(2)),
            Err(RevocationError::Envelope(EnvelopeError::BadSignature))
        ));
        let good = revoke(&hub(), &id(2), 9);
        for i in 0..good.len() {
            let mut m = good.clone();
            m[i] ^= 0x20;
            assert!(open(&m, &key, &id(2)).is_err(), "byte {i}");
        }
        assert!(open(&[], &key, &id(2)).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(open(&trailing, &key, &id(2)).is_err());
    }
}

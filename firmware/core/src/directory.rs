//! The mesh directory: a signed, append-only, hash-chained log of records
//! written by the hub and replicated by pull. Every node verifies each entry
//! (hub signature, hash link, sequence) before appending, so a copy received
//! from anyone — the hub, a peer, a file — is as good as the hub's.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::boxname::Boxname;
use crate::envelope::{
    DecodeError, Envelope, EnvelopeError, MAX_ENVELOPE_BODY, MAX_ENVELOPE_BYTES, decode_canonical,
    encode, tag,
};
use crate::hash::{Hash32, blake2b256};
use crate::keys::{PublicKey, SigningSecret};
use crate::lending_records::{Catalog, MAX_PUBLICATION_BYTES, MAX_TAG_LEN};
use crate::node_id::NodeId;

pub const VERSION: u8 = 1;
pub const MAX_REASON_LEN: usize = 128;
pub const MAX_HINT_LEN: usize = 255;
pub const MAX_SERVICE_LEN: usize = 63;
/// Entries one pull answer carries at most.
pub const MAX_PAGE: usize = 256;
pub const BUNDLE_FORMAT: u8 = 1;
/// Bound of an exported bundle (a mesh of 10,000 nodes with churn fits).
pub const MAX_BUNDLE_BYTES: usize = 64 << 20;
/// Release records a [`View`] keeps: the newest ones (older releases are
/// of no use to a box that looks for a newer one).
pub const MAX_VIEW_RELEASES: usize = 8;
/// Tags a [`Record::Tags`] carries at most (a token holds no more).
pub const MAX_NODE_TAGS: usize = 16;
/// One tag: 1–63 printable ASCII characters, as `token create --tag`.
pub type Tag = heapless::String<MAX_TAG_LEN>;

// Records are decoded one at a time and folded into a View; boxing the
// large variant would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// A node joined (or re-joined with a new key under its boxname).
    Node {
        node_id: NodeId,
        boxname: Boxname,
        signing_key: PublicKey,
        wireguard_key: PublicKey,
        mesh_ip: Ipv4Addr,
        endpoint_hint: Option<heapless::String<MAX_HINT_LEN>>,
    },
    /// A node is out: its keys must no longer be accepted.
    Revoke {
        node_id: NodeId,
        reason: heapless::String<MAX_REASON_LEN>,
    },
    /// Legacy, with no producer: a hub-signed service entry. Kept so
    /// that the variant indices of the records after it stay fixed and an
    /// old log still decodes; the [`View`] ignores it, since only the hub
    /// signed it and it cannot be checked against the provider alone.
    /// Offers are [`Record::Lending`] now.
    Service {
        node_id: NodeId,
        name: heapless::String<MAX_SERVICE_LEN>,
        port: u16,
    },
    /// A provider-signed offer or withdrawal (`lending::Publication`),
    /// exactly as the provider sealed it: the hub's signature around it
    /// orders it in the log, the provider's inside it makes it true.
    Lending(heapless::Vec<u8, MAX_PUBLICATION_BYTES>),
    /// A release of the firmware: a release record as its release key
    /// signed it (`update::SignedRelease`, docs/updates.md). The hub
    /// appends only records that verify against its release keys; every
    /// box verifies them again against its own.
    Release { signed: Vec<u8> },
    /// The tags of a node's enrolment token, as the hub holds them: the
    /// hub appends it after each `Node` record of a node whose token had
    /// tags, and a `Node` record clears the node's tags, so the newest
    /// `Tags` after a node's newest `Node` is what it has. Providers check
    /// `allow:tag:NAME` against it (docs/services.md).
    Tags {
        node_id: NodeId,
        tags: heapless::Vec<Tag, MAX_NODE_TAGS>,
    },
    /// A record of an index above [`LAST_KNOWN_INDEX`] (a newer hub's),
    /// in a hub-signed entry: accepted as a link of the chain (ordered,
    /// hashed) and ignored by the view, so a box whose code predates the
    /// record keeps following the directory — and sees the release that
    /// updates it. Never encoded or decoded by serde: `verify_next` makes
    /// it, and sealing one fails.
    #[serde(skip)]
    Unknown { index: u32 },
}

/// The highest record index this code decodes (`Tags`).
pub const LAST_KNOWN_INDEX: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u8,
    pub seq: u64,
    pub prev: Hash32,
    pub record: Record,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Head {
    pub len: u64,
    pub tip: Hash32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory entry {seq}: {source}")]
    Envelope { seq: u64, source: EnvelopeError },
    #[error("directory entry {seq}: a record of unknown index {index} is only ever read")]
    UnknownRecord { seq: u64, index: u32 },
    #[error("directory entry {seq}: unknown version {version}")]
    UnknownVersion { seq: u64, version: u8 },
    #[error("directory entry {seq}: sequence {found}")]
    BadSequence { seq: u64, found: u64 },
    #[error("directory entry {seq}: hash link does not match")]
    BrokenLink { seq: u64 },
    #[error("directory bundle: {0}")]
    Bundle(DecodeError),
    #[error("directory bundle: unknown format {0}")]
    UnknownFormat(u8),
    #[error("directory bundle is signed by another hub")]
    WrongAuthority,
    #[error("directory bundle ends at {found:?}, expected {expected:?}")]
    HeadMismatch { expected: Head, found: Head },
}

/// Verifies one entry after `head`, signed by `authority` (the hub's key).
pub fn verify_next(
    head: &Head,
    authority: &PublicKey,
    raw: &[u8],
) -> Result<(Entry, Head), DirectoryError> {
    let seq = head.len;
    let failed = |source| DirectoryError::Envelope { seq, source };
    let envelope = Envelope::verify(tag::DIRECTORY_ENTRY, raw).map_err(failed)?;
    if envelope.signer != *authority {
        return Err(failed(EnvelopeError::WrongSigner));
    }
    let entry = match decode_canonical::<Entry>(&envelope.body, MAX_ENVELOPE_BODY) {
        Ok(entry) => entry,
        Err(e) => newer_record(&envelope.body).ok_or(failed(EnvelopeError::Body(e)))?,
    };
    if entry.version != VERSION {
        return Err(DirectoryError::UnknownVersion {
            seq,
            version: entry.version,
        });
    }
    if entry.seq != seq {
        return Err(DirectoryError::BadSequence {
            seq,
            found: entry.seq,
        });
    }
    if entry.prev != head.tip {
        return Err(DirectoryError::BrokenLink { seq });
    }
    let next = Head {
        len: seq + 1,
        tip: blake2b256(raw),
    };
    Ok((entry, next))
}

/// An entry whose record index is above every one this code knows: its
/// head (version, seq, prev) and the index, the rest unread.
fn newer_record(body: &[u8]) -> Option<Entry> {
    #[derive(Deserialize)]
    struct EntryHead {
        version: u8,
        seq: u64,
        prev: Hash32,
    }
    let (head, rest) = postcard::take_from_bytes::<EntryHead>(body).ok()?;
    let (index, _) = postcard::take_from_bytes::<u32>(rest).ok()?;
    (index > LAST_KNOWN_INDEX).then_some(Entry {
        version: head.version,
        seq: head.seq,
        prev: head.prev,
        record: Record::Unknown { index },
    })
}

/// Hub side: the next entry's bytes and the new head.
pub fn append(
    head: &Head,
    hub: &SigningSecret,
    record: Record,
) -> Result<(Vec<u8>, Head), DirectoryError> {
    if let Record::Unknown { index } = record {
        return Err(DirectoryError::UnknownRecord {
            seq: head.len,
            index,
        });
    }
    let entry = Entry {
        version: VERSION,
        seq: head.len,
        prev: head.tip,
        record,
    };
    let raw = Envelope::seal(tag::DIRECTORY_ENTRY, &entry, hub).map_err(|source| {
        DirectoryError::Envelope {
            seq: head.len,
            source,
        }
    })?;
    let tip = blake2b256(&raw);
    Ok((
        raw,
        Head {
            len: head.len + 1,
            tip,
        },
    ))
}

/// One pull answer, or a whole exported log (then `after` is 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: u8,
    pub authority: PublicKey,
    /// Entries start at this sequence number.
    pub after: u64,
    /// The serving side's head when it answered.
    pub head: Head,
    pub entries: Vec<heapless::Vec<u8, MAX_ENVELOPE_BYTES>>,
}

pub fn encode_bundle(
    authority: &PublicKey,
    after: u64,
    head: Head,
    entries: &[Vec<u8>],
) -> Vec<u8> {
    let entries = entries
        .iter()
        .filter_map(|e| heapless::Vec::from_slice(e).ok())
        .collect();
    encode(&Bundle {
        format: BUNDLE_FORMAT,
        authority: *authority,
        after,
        head,
        entries,
    })
}

/// Verifies a bundle's entries as the continuation of `head`. Entries that
/// verify before the first failure are returned with the failure, so a pull
/// keeps what holds and stops at what does not.
pub fn verify_bundle(
    bytes: &[u8],
    authority: &PublicKey,
    head: &Head,
) -> Result<Vec<(Entry, Vec<u8>, Head)>, DirectoryError> {
    let bundle: Bundle =
        decode_canonical(bytes, MAX_BUNDLE_BYTES).map_err(DirectoryError::Bundle)?;
    if bundle.format != BUNDLE_FORMAT {
        return Err(DirectoryError::UnknownFormat(bundle.format));
    }
    if bundle.authority != *authority {
        return Err(DirectoryError::WrongAuthority);
    }
    if bundle.after != head.len {
        return Err(DirectoryError::BadSequence {
            seq: head.len,
            found: bundle.after,
        });
    }
    let mut out = Vec::with_capacity(bundle.entries.len());
    let mut at = *head;
    for raw in &bundle.entries {
        let (entry, next) = verify_next(&at, authority, raw)?;
        out.push((entry, raw.to_vec(), next));
        at = next;
    }
    Ok(out)
}

/// What the directory says now: the live node records by id, revocations
/// applied, the current service offers. Pure fold over verified entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub nodes: BTreeMap<NodeId, NodeRecord>,
    pub revoked: BTreeMap<NodeId, String>,
    /// Offers verified against their provider's record (lending::Catalog).
    pub lending: Catalog,
    /// Release records as signed, oldest first, at most
    /// [`MAX_VIEW_RELEASES`]; unverified here (the release keys are the
    /// box's, not the directory's).
    pub releases: Vec<Vec<u8>>,
    /// Each node's tags, from its newest [`Record::Tags`] (none: no tags).
    pub tags: BTreeMap<NodeId, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub boxname: Boxname,
    pub signing_key: PublicKey,
    pub wireguard_key: PublicKey,
    pub mesh_ip: Ipv4Addr,
    pub endpoint_hint: Option<String>,
}

impl View {
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::Node {
                node_id,
                boxname,
                signing_key,
                wireguard_key,
                mesh_ip,
                endpoint_hint,
            } => {
                self.revoked.remove(node_id);
                self.tags.remove(node_id);
                self.lending.key_changed(node_id, signing_key);
                self.nodes.insert(
                    node_id.clone(),
                    NodeRecord {
                        boxname: boxname.clone(),
                        signing_key: *signing_key,
                        wireguard_key: *wireguard_key,
                        mesh_ip: *mesh_ip,
                        endpoint_hint: endpoint_hint.as_ref().map(|h| h.to_string()),
                    },
                );
            }
            Record::Revoke { node_id, reason } => {
                self.nodes.remove(node_id);
                self.tags.remove(node_id);
                self.lending.remove_provider(node_id);
                self.revoked.insert(node_id.clone(), reason.to_string());
            }
            Record::Service { .. } | Record::Unknown { .. } => {}
            Record::Lending(signed) => {
                let nodes = &self.nodes;
                self.lending
                    .apply(signed, |id| nodes.get(id).map(|n| n.signing_key));
            }
            // Only for a node in the directory: a revoked or unknown one
            // has no tags to be checked.
            Record::Tags { node_id, tags } if self.nodes.contains_key(node_id) => {
                self.tags.insert(
                    node_id.clone(),
                    tags.iter().map(|t| t.to_string()).collect(),
                );
            }
            Record::Tags { .. } => {}
            Record::Release { signed } => {
                self.releases.retain(|r| r != signed);
                self.releases.push(signed.clone());
                if self.releases.len() > MAX_VIEW_RELEASES {
                    self.releases.remove(0);
                }
            }
        }
    }

    /// A node's tags (its enrolment token's, as the hub published them).
    pub fn tags_of(&self, node_id: &NodeId) -> Vec<&str> {
        self.tags
            .get(node_id)
            .map(|t| t.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// A node's current directory signing key (`None`: not in the
    /// directory, or revoked) — what lending records verify against.
    pub fn signing_key(&self, node_id: &NodeId) -> Option<PublicKey> {
        self.nodes.get(node_id).map(|n| n.signing_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> SigningSecret {
        SigningSecret::from_seed([42; 32])
    }

    fn node_record(n: u8) -> Record {
        Record::Node {
            node_id: NodeId::from_genesis_key(&[n; 32]),
            boxname: Boxname::parse(&format!("box-{n}")).unwrap(),
            signing_key: [n; 32],
            wireguard_key: [n ^ 1; 32],
            mesh_ip: Ipv4Addr::new(10, 10, 0, n),
            endpoint_hint: None,
        }
    }

    fn log(n: u8) -> (Vec<Vec<u8>>, Head) {
        let mut head = Head::default();
        let mut out = Vec::new();
        for i in 2..2 + n {
            let (raw, next) = append(&head, &hub(), node_record(i)).unwrap();
            out.push(raw);
            head = next;
        }
        (out, head)
    }

    #[test]
    fn bundle_round_trip_and_incremental_pull() {
        let (entries, head) = log(5);
        let key = hub().public_key();
        let all = encode_bundle(&key, 0, head, &entries);
        let verified = verify_bundle(&all, &key, &Head::default()).unwrap();
        assert_eq!(verified.len(), 5);
        assert_eq!(verified.last().unwrap().2, head);
        // A pull after 3 continues from the third head.
        let third = verified[2].2;
        let rest = encode_bundle(&key, 3, head, &entries[3..]);
        assert_eq!(verify_bundle(&rest, &key, &third).unwrap().len(), 2);
        // The same page offered at the wrong position is refused.
        assert!(verify_bundle(&rest, &key, &Head::default()).is_err());
    }

    #[test]
    fn forged_reordered_and_foreign_entries_are_refused() {
        let (entries, head) = log(3);
        let key = hub().public_key();
        let impostor = SigningSecret::from_seed([1; 32]);
        let (forged, _) = append(&Head::default(), &impostor, node_record(9)).unwrap();
        assert!(matches!(
            verify_next(&Head::default(), &key, &forged),
            Err(DirectoryError::Envelope {
                source: EnvelopeError::WrongSigner,
                ..
            })
        ));
        let swapped = vec![entries[1].clone(), entries[0].clone()];
        assert!(
            verify_bundle(
                &encode_bundle(&key, 0, head, &swapped),
                &key,
                &Head::default()
            )
            .is_err()
        );
        let foreign = encode_bundle(&impostor.public_key(), 0, head, &entries);
        assert_eq!(
            verify_bundle(&foreign, &key, &Head::default()).err(),
            Some(DirectoryError::WrongAuthority)
        );
        let bundle = encode_bundle(&key, 0, head, &entries);
        for i in 0..bundle.len() {
            let mut m = bundle.clone();
            m[i] ^= 0x10;
            if let Ok(v) = verify_bundle(&m, &key, &Head::default()) {
                // Only the unsigned `head` hint may change without detection.
                assert_eq!(v.len(), 3, "byte {i}");
                assert_eq!(v.last().unwrap().2, head, "byte {i}");
            }
        }
    }

    /// What a newer hub's entry looks like to this code: the entry's head,
    /// then a record index it does not know and that record's bytes.
    #[derive(Serialize)]
    struct FutureEntry {
        version: u8,
        seq: u64,
        prev: Hash32,
        index: u32,
        payload: Vec<u8>,
    }

    fn future(head: &Head, index: u32, key: &SigningSecret) -> Vec<u8> {
        let entry = FutureEntry {
            version: VERSION,
            seq: head.len,
            prev: head.tip,
            index,
            payload: b"a record from a newer hub".to_vec(),
        };
        Envelope::seal(tag::DIRECTORY_ENTRY, &entry, key).unwrap()
    }

    #[test]
    fn a_newer_hubs_record_is_a_link_the_view_ignores() {
        let (entries, head) = log(2);
        let key = hub().public_key();
        let raw = future(&head, LAST_KNOWN_INDEX + 1, &hub());
        let (entry, after) = verify_next(&head, &key, &raw).unwrap();
        assert_eq!(entry.record, Record::Unknown { index: 6 });
        assert_eq!(after.len, 3);
        assert_eq!(after.tip, blake2b256(&raw));
        // The log goes on after it, and the view is what the known records make.
        let (next, end) = append(&after, &hub(), node_record(9)).unwrap();
        let mut all = entries.clone();
        all.extend([raw.clone(), next]);
        let verified = verify_bundle(&encode_bundle(&key, 0, end, &all), &key, &Head::default());
        let verified = verified.unwrap();
        assert_eq!(verified.len(), 4);
        let mut view = View::default();
        for (entry, _, _) in &verified {
            view.apply(&entry.record);
        }
        assert_eq!(view.nodes.len(), 3);
        // Only signed by the hub, at its place, of the entry version we know.
        let impostor = SigningSecret::from_seed([1; 32]);
        assert!(verify_next(&head, &key, &future(&head, 6, &impostor)).is_err());
        assert!(verify_next(&Head::default(), &key, &raw).is_err());
        // A known index with bytes that do not decode stays refused.
        assert!(matches!(
            verify_next(&head, &key, &future(&head, 1, &hub())),
            Err(DirectoryError::Envelope {
                source: EnvelopeError::Body(_),
                ..
            })
        ));
        // This code never writes one.
        assert!(append(&head, &hub(), Record::Unknown { index: 6 }).is_err());
    }

    #[test]
    fn view_applies_revocations() {
        let mut view = View::default();
        view.apply(&node_record(2));
        view.apply(&node_record(3));
        let id2 = NodeId::from_genesis_key(&[2; 32]);
        view.apply(&Record::Revoke {
            node_id: id2.clone(),
            reason: heapless::String::try_from("stolen").unwrap(),
        });
        assert_eq!(view.nodes.len(), 1);
        assert!(view.revoked.contains_key(&id2));
    }
}

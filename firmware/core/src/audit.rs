//! The audit chain: every state change that matters, hash-chained.
//!
//! Records are stored as their exact encoded bytes under their sequence
//! number; each carries the hash of the previous record. The store also keeps
//! a head (count and tip hash) written in the same transaction as each
//! record, so removing records from the end is detected too.

use serde::{Deserialize, Serialize};

use crate::envelope::{self, DecodeError, decode_canonical};
use crate::hash::{Hash32, blake2b256};

/// Records written before typed fields: a free-text `detail`. Still
/// decoded and verified (the chain hashes the bytes as written), never
/// written any more.
pub const RECORD_VERSION_TEXT: u8 = 1;
/// Records with typed fields (docs/audit.md): what [`AuditHead::next_record`]
/// writes.
pub const RECORD_VERSION: u8 = 2;
pub const MAX_KIND_LEN: usize = 32;
pub const MAX_DETAIL_LEN: usize = 256;
pub const MAX_FIELDS: usize = 8;
pub const MAX_FIELD_NAME_LEN: usize = 24;
pub const MAX_FIELD_TEXT_LEN: usize = 160;
const HEADER_BYTES: usize = 1 + 10 + 32 + 10 + 2 + MAX_KIND_LEN;
const FIELD_BYTES: usize = 1 + MAX_FIELD_NAME_LEN + 1 + 2 + MAX_FIELD_TEXT_LEN;
/// The larger of the two versions' bounds.
pub const MAX_RECORD_BYTES: usize = HEADER_BYTES + 1 + MAX_FIELDS * FIELD_BYTES;

/// Kinds of audit records (a string on the wire so later features add kinds
/// without a format change).
pub mod kind {
    pub const IDENTITY_GENESIS: &str = "identity.genesis";
    pub const IDENTITY_ADOPT_WIREGUARD: &str = "identity.adopt-wireguard";
    pub const IDENTITY_ROTATE_SIGNING: &str = "identity.rotate-signing";
    pub const IDENTITY_ROTATE_WIREGUARD: &str = "identity.rotate-wireguard";
    pub const STATE_MIGRATED: &str = "state.migrated";
}

/// One decoded record, of either version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub version: u8,
    pub seq: u64,
    pub prev: Hash32,
    /// Seconds since the Unix epoch by the node's clock, which may be wrong
    /// (boards without an RTC boot in 1970): informational only.
    pub unix_time: u64,
    pub kind: heapless::String<MAX_KIND_LEN>,
    pub body: Body,
}

/// What a record says beyond its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Version 1: free text (at most [`MAX_DETAIL_LEN`] bytes).
    Text(String),
    /// Version 2: named, typed fields in the order they were written (at
    /// most [`MAX_FIELDS`]).
    Fields(Vec<Field>),
}

/// A named value. Names are `snake_case` constants of the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: heapless::String<MAX_FIELD_NAME_LEN>,
    pub value: FieldValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldValue {
    /// Text (an id, an address, a reason), cut at its bound.
    Text(heapless::String<MAX_FIELD_TEXT_LEN>),
    /// A count, a port, a sequence number.
    Uint(u64),
    /// A point in time, Unix seconds (shown as RFC 3339).
    Time(u64),
}

impl Field {
    pub fn text(name: &str, value: &str) -> Field {
        Field::new(name, FieldValue::Text(truncated(value)))
    }

    pub fn uint(name: &str, value: u64) -> Field {
        Field::new(name, FieldValue::Uint(value))
    }

    pub fn time(name: &str, unix: u64) -> Field {
        Field::new(name, FieldValue::Time(unix))
    }

    fn new(name: &str, value: FieldValue) -> Field {
        Field {
            name: truncated(name),
            value,
        }
    }
}

/// The wire form: postcard, fields in this order ([state.md] "Audit
/// chain"); `body` is the version-1 detail text or the version-2 fields.
#[derive(Serialize, Deserialize)]
struct Wire<B> {
    version: u8,
    seq: u64,
    prev: Hash32,
    unix_time: u64,
    kind: heapless::String<MAX_KIND_LEN>,
    body: B,
}

type TextBody = heapless::String<MAX_DETAIL_LEN>;
type FieldsBody = heapless::Vec<Field, MAX_FIELDS>;

impl AuditRecord {
    /// The exact bytes of this record (as stored and hashed).
    pub fn encode(&self) -> Vec<u8> {
        match &self.body {
            Body::Text(detail) => envelope::encode(&self.wire::<TextBody>(truncated(detail))),
            Body::Fields(fields) => envelope::encode(
                &self.wire::<FieldsBody>(fields.iter().take(MAX_FIELDS).cloned().collect()),
            ),
        }
    }

    fn wire<B>(&self, body: B) -> Wire<B> {
        Wire {
            version: self.version,
            seq: self.seq,
            prev: self.prev,
            unix_time: self.unix_time,
            kind: self.kind.clone(),
            body,
        }
    }
}

/// Count and tip hash of the chain, kept beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditHead {
    pub len: u64,
    pub tip: Hash32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("audit record {seq}: {source}")]
    Decode { seq: u64, source: DecodeError },
    #[error("audit record {seq}: unknown version {version}")]
    UnknownVersion { seq: u64, version: u8 },
    #[error("audit record stored at {key} says it is record {found}")]
    BadSequence { key: u64, found: u64 },
    #[error(
        "audit record {seq}: hash link does not match the previous record (altered, removed or reordered)"
    )]
    BrokenLink { seq: u64 },
    #[error("audit chain has {found} records but its head says {expected}")]
    LengthMismatch { expected: u64, found: u64 },
    #[error("audit chain tip does not match its head (last record altered)")]
    TipMismatch,
}

impl AuditHead {
    /// Builds the next record. The kind, names and texts are cut to their
    /// bounds at a character boundary and fields past [`MAX_FIELDS`]
    /// dropped, rather than refused: auditing must not fail.
    pub fn next_record(
        &self,
        unix_time: u64,
        kind: &str,
        fields: &[Field],
    ) -> (Vec<u8>, AuditHead) {
        let record = AuditRecord {
            version: RECORD_VERSION,
            seq: self.len,
            prev: self.tip,
            unix_time,
            kind: truncated(kind),
            body: Body::Fields(fields.iter().take(MAX_FIELDS).cloned().collect()),
        };
        let raw = record.encode();
        let head = AuditHead {
            len: self.len + 1,
            tip: blake2b256(&raw),
        };
        (raw, head)
    }
}

fn truncated<const N: usize>(text: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    for c in text.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// Decodes a record of either version (the first byte is the version).
pub fn decode_record(raw: &[u8], seq: u64) -> Result<AuditRecord, AuditError> {
    match raw.first().copied() {
        Some(RECORD_VERSION_TEXT) => {
            decode_as::<TextBody>(raw, seq, |text| Body::Text(text.to_string()))
        }
        Some(RECORD_VERSION) => decode_as::<FieldsBody>(raw, seq, |fields| {
            Body::Fields(fields.into_iter().collect())
        }),
        Some(version) => Err(AuditError::UnknownVersion { seq, version }),
        None => Err(AuditError::Decode {
            seq,
            source: DecodeError::Malformed(postcard::Error::DeserializeUnexpectedEnd),
        }),
    }
}

fn decode_as<B: Serialize + serde::de::DeserializeOwned>(
    raw: &[u8],
    seq: u64,
    body: impl FnOnce(B) -> Body,
) -> Result<AuditRecord, AuditError> {
    let w: Wire<B> = decode_canonical(raw, MAX_RECORD_BYTES)
        .map_err(|source| AuditError::Decode { seq, source })?;
    Ok(AuditRecord {
        version: w.version,
        seq: w.seq,
        prev: w.prev,
        unix_time: w.unix_time,
        kind: w.kind,
        body: body(w.body),
    })
}

/// Verifies `(key, bytes)` pairs in key order against the stored head.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
    head: AuditHead,
) -> Result<AuditHead, AuditError> {
    let mut at = AuditHead::default();
    for (key, raw) in records {
        let record = decode_record(raw, key)?;
        if record.seq != key || key != at.len {
            return Err(AuditError::BadSequence {
                key,
                found: record.seq,
            });
        }
        if record.prev != at.tip {
            return Err(AuditError::BrokenLink { seq: key });
        }
        at = AuditHead {
            len: at.len + 1,
            tip: blake2b256(raw),
        };
    }
    if at.len != head.len {
        return Err(AuditError::LengthMismatch {
            expected: head.len,
            found: at.len,
        });
    }
    if at.tip != head.tip {
        return Err(AuditError::TipMismatch);
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> (Vec<Vec<u8>>, AuditHead) {
        let mut head = AuditHead::default();
        let mut out = Vec::new();
        for i in 0..n {
            let (raw, next) = head.next_record(
                1_700_000_000 + i,
                kind::IDENTITY_GENESIS,
                &[Field::text("x", "y"), Field::uint("n", i)],
            );
            out.push(raw);
            head = next;
        }
        (out, head)
    }

    fn verify(records: &[Vec<u8>], head: AuditHead) -> Result<AuditHead, AuditError> {
        verify_chain(
            records
                .iter()
                .enumerate()
                .map(|(i, r)| (i as u64, r.as_slice())),
            head,
        )
    }

    #[test]
    fn intact_chain_verifies() {
        let (records, head) = chain(5);
        assert_eq!(verify(&records, head), Ok(head));
        assert_eq!(verify(&[], AuditHead::default()), Ok(AuditHead::default()));
    }

    #[test]
    fn detects_alteration_removal_and_reordering() {
        let (records, head) = chain(5);
        let mut altered = records.clone();
        let mut rec = decode_record(&altered[2], 2).unwrap();
        rec.body = Body::Fields([Field::text("x", "forged")].into_iter().collect());
        altered[2] = rec.encode();
        assert_eq!(
            verify(&altered, head),
            Err(AuditError::BrokenLink { seq: 3 })
        );

        let mut removed = records.clone();
        removed.remove(1);
        assert!(verify(&removed, head).is_err());

        let mut reordered = records.clone();
        reordered.swap(1, 2);
        assert!(verify(&reordered, head).is_err());

        let truncated_tail = records[..4].to_vec();
        assert_eq!(
            verify(&truncated_tail, head),
            Err(AuditError::LengthMismatch {
                expected: 5,
                found: 4
            })
        );

        let mut last_altered = records.clone();
        let mut rec = decode_record(&last_altered[4], 4).unwrap();
        rec.unix_time += 1;
        last_altered[4] = rec.encode();
        assert_eq!(verify(&last_altered, head), Err(AuditError::TipMismatch));
    }

    #[test]
    fn long_text_is_cut_at_a_char_boundary() {
        let long = "é".repeat(300);
        let fields: Vec<Field> = (0..12).map(|_| Field::text(&long, &long)).collect();
        let (raw, _) = AuditHead::default().next_record(0, &long, &fields);
        let rec = decode_record(&raw, 0).unwrap();
        let Body::Fields(fields) = rec.body else {
            panic!("a new record has fields")
        };
        assert_eq!(fields.len(), MAX_FIELDS);
        assert_eq!(fields[0].name.chars().count(), MAX_FIELD_NAME_LEN / 2);
        let FieldValue::Text(text) = &fields[0].value else {
            panic!("text")
        };
        assert_eq!(text.chars().count(), MAX_FIELD_TEXT_LEN / 2);
        assert!(raw.len() <= MAX_RECORD_BYTES);
    }

    /// A version-1 record exactly as gondwana wrote it before typed fields.
    fn text_record(seq: u64, prev: Hash32, detail: &str) -> Vec<u8> {
        envelope::encode(&Wire::<TextBody> {
            version: RECORD_VERSION_TEXT,
            seq,
            prev,
            unix_time: 1_700_000_000,
            kind: truncated("token.create"),
            body: truncated(detail),
        })
    }

    #[test]
    fn old_text_records_still_decode_and_verify_before_new_ones() {
        let first = text_record(0, [0; 32], "token abc uses 1 expires Some(1796582688)");
        let second = text_record(1, blake2b256(&first), "genesis");
        let head = AuditHead {
            len: 2,
            tip: blake2b256(&second),
        };
        let (third, head) = head.next_record(5, "token.revoke", &[Field::text("token", "abc")]);
        let records = [first.clone(), second, third.clone()];
        assert_eq!(verify(&records, head), Ok(head));
        let old = decode_record(&first, 0).unwrap();
        assert_eq!(old.version, RECORD_VERSION_TEXT);
        assert_eq!(
            old.body,
            Body::Text("token abc uses 1 expires Some(1796582688)".into())
        );
        assert_eq!(old.encode(), first);
        // The version-1 layout, byte by byte, as older binaries wrote it.
        let mut by_hand = vec![1, 0];
        by_hand.extend([0; 32]);
        by_hand.extend([0x80, 0xe2, 0xcf, 0xaa, 0x06]); // 1_700_000_000
        by_hand.push(12);
        by_hand.extend(b"token.create");
        by_hand.push(41);
        by_hand.extend(b"token abc uses 1 expires Some(1796582688)");
        assert_eq!(first, by_hand);
        let new = decode_record(&third, 2).unwrap();
        assert_eq!(new.version, RECORD_VERSION);
        assert_eq!(new.encode(), third);
        assert_eq!(
            decode_record(&[9, 0], 0),
            Err(AuditError::UnknownVersion { seq: 0, version: 9 })
        );
        assert!(decode_record(&[], 0).is_err());
    }
}

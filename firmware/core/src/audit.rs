//! The audit chain: every state change that matters, hash-chained.
//!
//! Records are stored as their exact encoded bytes under their sequence
//! number; each carries the hash of the previous record. The store also keeps
//! a head (count and tip hash) written in the same transaction as each
//! record, so removing records from the end is detected too.

use serde::{Deserialize, Serialize};

use crate::envelope::{self, DecodeError, decode_canonical};
use crate::hash::{Hash32, blake2b256};

pub const RECORD_VERSION: u8 = 1;
pub const MAX_KIND_LEN: usize = 32;
pub const MAX_DETAIL_LEN: usize = 256;
pub const MAX_RECORD_BYTES: usize = 8 + 10 + 32 + 10 + MAX_KIND_LEN + 2 + MAX_DETAIL_LEN + 2;

/// Kinds of audit records (a string on the wire so later features add kinds
/// without a format change).
pub mod kind {
    pub const IDENTITY_GENESIS: &str = "identity.genesis";
    pub const IDENTITY_ADOPT_WIREGUARD: &str = "identity.adopt-wireguard";
    pub const IDENTITY_ROTATE_SIGNING: &str = "identity.rotate-signing";
    pub const IDENTITY_ROTATE_WIREGUARD: &str = "identity.rotate-wireguard";
    pub const STATE_MIGRATED: &str = "state.migrated";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub version: u8,
    pub seq: u64,
    pub prev: Hash32,
    /// Seconds since the Unix epoch by the node's clock, which may be wrong
    /// (boards without an RTC boot in 1970): informational only.
    pub unix_time: u64,
    pub kind: heapless::String<MAX_KIND_LEN>,
    pub detail: heapless::String<MAX_DETAIL_LEN>,
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
    /// Builds the next record. `kind` and `detail` are cut to their bounds
    /// at a character boundary rather than refused: auditing must not fail.
    pub fn next_record(&self, unix_time: u64, kind: &str, detail: &str) -> (Vec<u8>, AuditHead) {
        let record = AuditRecord {
            version: RECORD_VERSION,
            seq: self.len,
            prev: self.tip,
            unix_time,
            kind: truncated(kind),
            detail: truncated(detail),
        };
        let raw = envelope::encode(&record);
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

pub fn decode_record(raw: &[u8], seq: u64) -> Result<AuditRecord, AuditError> {
    let record: AuditRecord = decode_canonical(raw, MAX_RECORD_BYTES)
        .map_err(|source| AuditError::Decode { seq, source })?;
    if record.version != RECORD_VERSION {
        return Err(AuditError::UnknownVersion {
            seq,
            version: record.version,
        });
    }
    Ok(record)
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
            let (raw, next) = head.next_record(1_700_000_000 + i, kind::IDENTITY_GENESIS, "x");
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
        rec.detail = truncated("forged");
        altered[2] = envelope::encode(&rec);
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
        last_altered[4] = envelope::encode(&rec);
        assert_eq!(verify(&last_altered, head), Err(AuditError::TipMismatch));
    }

    #[test]
    fn long_text_is_cut_at_a_char_boundary() {
        let long = "é".repeat(300);
        let (raw, _) = AuditHead::default().next_record(0, "k", &long);
        let rec = decode_record(&raw, 0).unwrap();
        assert_eq!(rec.detail.chars().count(), MAX_DETAIL_LEN / 2);
        assert!(raw.len() <= MAX_RECORD_BYTES);
    }
}

//! Revocation in the store, both sides.
//!
//! Node: the hub-signed directory entry that revoked it, kept as received
//! (so it can be verified again at every read) in the `enrolment` table,
//! with the time this node learned of it. Written once, with its audit
//! record, in one transaction; never removed (the hub never re-admits a
//! revoked node id).
//!
//! Hub: the stored directory entry that revoked a node, looked up for
//! `GET /v1/enroll/revocation`. Read-only: answering stores nothing.

use super::schema::{DIRECTORY, ENROLMENT, NODE_RECORDS};
use super::{StateStore, StoreError, append_audit};
use gondwana_core::audit::Field;
use gondwana_core::directory::Record;
use gondwana_core::revocation::{self, Revocation};

const KEY_REVOCATION: &str = "revocation";
const KEY_REVOKED_AT: &str = "revoked_at";
pub const AUDIT_REVOKED: &str = "enrol.revoked";

/// A node's stored revocation, verified again when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRevocation {
    /// When this node verified and stored it (its own clock: the directory
    /// entry carries no time).
    pub at_unix: u64,
    /// The entry's position in the hub's directory.
    pub seq: u64,
    pub reason: String,
}

/// Node: stores a revocation already verified against the pinned hub key
/// and this node's id, with its audit record. `false` (nothing written)
/// when one is already stored.
pub fn save_revocation(
    store: &StateStore,
    raw: &[u8],
    verified: &Revocation,
    now: u64,
) -> Result<bool, StoreError> {
    let txn = store.write()?;
    {
        let mut t = txn.open(ENROLMENT)?;
        if t.contains(KEY_REVOCATION)? {
            return Ok(false);
        }
        t.insert(KEY_REVOCATION, raw)?;
        t.insert(KEY_REVOKED_AT, &now.to_le_bytes()[..])?;
    }
    append_audit(
        &txn,
        AUDIT_REVOKED,
        &[
            Field::uint("directory_seq", verified.seq),
            Field::text("reason", &verified.reason),
        ],
        now,
    )?;
    store.commit(txn)?;
    Ok(true)
}

impl StateStore {
    /// Node: its stored revocation, verified again against the pinned hub
    /// key and its own node id (from the stored grant).
    pub fn revocation(&self) -> Result<Option<NodeRevocation>, StoreError> {
        let (raw, at) = {
            let txn = self.read()?;
            // A hub's file or one never enrolled has no such table.
            let Some(t) = txn.open_if_exists(ENROLMENT)? else {
                return Ok(None);
            };
            let Some(raw) = t.get(KEY_REVOCATION)? else {
                return Ok(None);
            };
            let at = t
                .get(KEY_REVOKED_AT)?
                .and_then(|v| v.value().try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0);
            (raw.value().to_vec(), at)
        };
        let corrupt = |detail: String| self.corrupt(detail);
        let enrolment = self
            .enrolment()?
            .ok_or_else(|| corrupt("a revocation is stored but no enrolment".into()))?;
        let verified = revocation::open(&raw, &enrolment.hub_key, &enrolment.grant.node_id)
            .map_err(|e| corrupt(format!("stored {e}")))?;
        Ok(Some(NodeRevocation {
            at_unix: at,
            seq: verified.seq,
            reason: verified.reason,
        }))
    }
}

/// Hub: the directory entry that revoked `node_id`, as stored, or `None`
/// when the registry does not hold it as revoked. The registry answers
/// first (one lookup), so only a revoked id costs a walk of the directory,
/// from its end back (a revoked node asks soon after its revocation).
pub fn revocation_entry(store: &StateStore, node_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let corrupt = |detail: String| store.corrupt(detail);
    let txn = store.read()?;
    let Some(entry) = txn.records(NODE_RECORDS)?.get(node_id)? else {
        return Ok(None);
    };
    if !entry.revoked {
        return Ok(None);
    }
    let directory = txn.open(DIRECTORY)?;
    for item in directory.iter()?.rev() {
        let (seq, raw) = directory.entry(item)?;
        let raw = raw.value();
        // Stored entries were signed here; decoding is enough to find it.
        let entry = revocation::decode_unverified(raw)
            .ok_or_else(|| corrupt(format!("directory entry {}", seq.value())))?;
        if let Record::Revoke { node_id: id, .. } = &entry.record
            && id.as_str() == node_id
        {
            return Ok(Some(raw.to_vec()));
        }
    }
    Err(corrupt(format!(
        "node {node_id} is revoked but the directory has no revocation of it"
    )))
}

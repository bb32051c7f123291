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

use gondwana_core::directory::Record;
use gondwana_core::revocation::{self, Revocation};
use redb::ReadableTable;

use super::registry::NodeEntry;
use super::schema::{DIRECTORY, ENROLMENT, NODES};
use super::{StateStore, StoreError, append_audit};

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
        let mut t = txn.open_table(ENROLMENT).map_err(|e| store.io_error(e))?;
        if t.get(KEY_REVOCATION)
            .map_err(|e| store.io_error(e))?
            .is_some()
        {
            return Ok(false);
        }
        t.insert(KEY_REVOCATION, raw)
            .map_err(|e| store.io_error(e))?;
        t.insert(KEY_REVOKED_AT, &now.to_le_bytes()[..])
            .map_err(|e| store.io_error(e))?;
    }
    append_audit(
        store,
        &txn,
        AUDIT_REVOKED,
        &format!(
            "revoked by the hub (directory entry {}): {}",
            verified.seq, verified.reason
        ),
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
            let t = match txn.open_table(ENROLMENT) {
                Ok(t) => t,
                // A hub's file or one never enrolled has no such table.
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(self.io_error(e)),
            };
            let Some(raw) = t.get(KEY_REVOCATION).map_err(|e| self.io_error(e))? else {
                return Ok(None);
            };
            let at = t
                .get(KEY_REVOKED_AT)
                .map_err(|e| self.io_error(e))?
                .and_then(|v| v.value().try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0);
            (raw.value().to_vec(), at)
        };
        let corrupt = |detail: String| StoreError::Corrupt {
            path: self.path().to_path_buf(),
            detail,
        };
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
    let corrupt = |detail: String| StoreError::Corrupt {
        path: store.path().to_path_buf(),
        detail,
    };
    let txn = store.read()?;
    let nodes = txn.open_table(NODES).map_err(|e| store.io_error(e))?;
    let Some(value) = nodes.get(node_id).map_err(|e| store.io_error(e))? else {
        return Ok(None);
    };
    let entry: NodeEntry =
        postcard::from_bytes(value.value()).map_err(|e| corrupt(format!("node {node_id}: {e}")))?;
    if !entry.revoked {
        return Ok(None);
    }
    let directory = txn.open_table(DIRECTORY).map_err(|e| store.io_error(e))?;
    for item in directory.iter().map_err(|e| store.io_error(e))?.rev() {
        let (seq, raw) = item.map_err(|e| store.io_error(e))?;
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

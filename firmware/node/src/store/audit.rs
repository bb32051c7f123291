//! The audit chain in the store. Records are appended in the caller's write
//! transaction, so an audited change and its record commit together.

use std::time::{SystemTime, UNIX_EPOCH};

use gondwana_core::audit::{AuditError, AuditHead, verify_chain};
use redb::{ReadableTable, WriteTransaction};

use super::schema::{AUDIT, KEY_AUDIT_HEAD, META};
use super::{StateStore, StoreError};

pub fn append_audit(
    store: &StateStore,
    txn: &WriteTransaction,
    kind: &str,
    detail: &str,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META).map_err(|e| store.io_error(e))?;
    let head = match meta.get(KEY_AUDIT_HEAD).map_err(|e| store.io_error(e))? {
        Some(v) => decode_head(store, v.value())?,
        None => AuditHead::default(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (raw, next) = head.next_record(now, kind, detail);
    let mut audit = txn.open_table(AUDIT).map_err(|e| store.io_error(e))?;
    audit
        .insert(head.len, raw.as_slice())
        .map_err(|e| store.io_error(e))?;
    meta.insert(KEY_AUDIT_HEAD, encode_head(&next).as_slice())
        .map_err(|e| store.io_error(e))?;
    Ok(())
}

/// Stored audit records as `(key, bytes)`, in key order.
pub type AuditRecords = Vec<(u64, Vec<u8>)>;

/// Every stored record, plus the stored head.
pub fn audit_records(store: &StateStore) -> Result<(AuditRecords, AuditHead), StoreError> {
    let txn = store.read()?;
    let meta = txn.open_table(META).map_err(|e| store.io_error(e))?;
    let head = match meta.get(KEY_AUDIT_HEAD).map_err(|e| store.io_error(e))? {
        Some(v) => decode_head(store, v.value())?,
        None => AuditHead::default(),
    };
    let table = txn.open_table(AUDIT).map_err(|e| store.io_error(e))?;
    let mut records = Vec::new();
    for item in table.iter().map_err(|e| store.io_error(e))? {
        let (k, v) = item.map_err(|e| store.io_error(e))?;
        records.push((k.value(), v.value().to_vec()));
    }
    Ok((records, head))
}

pub fn verify_audit(records: &[(u64, Vec<u8>)], head: AuditHead) -> Result<AuditHead, AuditError> {
    verify_chain(records.iter().map(|(k, v)| (*k, v.as_slice())), head)
}

fn encode_head(head: &AuditHead) -> [u8; 40] {
    super::head::encode(head.len, &head.tip)
}

fn decode_head(store: &StateStore, bytes: &[u8]) -> Result<AuditHead, StoreError> {
    let (len, tip) = super::head::decode(bytes).ok_or_else(|| StoreError::Corrupt {
        path: store.path().to_path_buf(),
        detail: "audit head is malformed".into(),
    })?;
    Ok(AuditHead { len, tip })
}

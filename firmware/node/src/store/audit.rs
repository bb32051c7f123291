//! The audit chain in the store. Records are appended in the caller's write
//! transaction, so an audited change and its record commit together.

use gondwana_core::audit::{AuditError, AuditHead, Field, verify_chain};

use super::schema::{AUDIT, KEY_AUDIT_HEAD, META};
use super::{StateStore, StoreError, WriteTxn, head};

/// Appends a record with typed `fields`, stamped `now` (Unix seconds), in
/// `txn` (the record format: docs/audit.md).
pub fn append_audit(
    txn: &WriteTxn<'_>,
    kind: &str,
    fields: &[Field],
    now: u64,
) -> Result<(), StoreError> {
    let mut meta = txn.open(META)?;
    let (len, tip) = head::read(&meta, KEY_AUDIT_HEAD, "audit")?;
    let (raw, next) = AuditHead { len, tip }.next_record(now, kind, fields);
    txn.open(AUDIT)?.insert(len, raw.as_slice())?;
    head::write(&mut meta, KEY_AUDIT_HEAD, next.len, &next.tip)
}

/// Stored audit records as `(key, bytes)`, in key order.
pub type AuditRecords = Vec<(u64, Vec<u8>)>;

/// Every stored record, plus the stored head.
pub fn audit_records(store: &StateStore) -> Result<(AuditRecords, AuditHead), StoreError> {
    let txn = store.read()?;
    let (len, tip) = head::read(&txn.open(META)?, KEY_AUDIT_HEAD, "audit")?;
    let table = txn.open(AUDIT)?;
    let mut records = Vec::new();
    for item in table.iter()? {
        let (k, v) = table.entry(item)?;
        records.push((k.value(), v.value().to_vec()));
    }
    Ok((records, AuditHead { len, tip }))
}

pub fn verify_audit(records: &[(u64, Vec<u8>)], head: AuditHead) -> Result<AuditHead, AuditError> {
    verify_chain(records.iter().map(|(k, v)| (*k, v.as_slice())), head)
}

//! The audit log's use cases: list and verify.

use gondwana_core::hash::to_hex;
use serde_json::{Value, json};

use super::error::Result;
use super::views;
use crate::store::{self, StateStore};

pub fn rows(store: &StateStore) -> Result<Value> {
    let (records, _) = store::audit_records(store)?;
    Ok(Value::Array(
        records
            .iter()
            .map(|(key, raw)| views::audit_record(*key, raw))
            .collect(),
    ))
}

/// `{"verified": true, "records", "tip"}`, or `{"verified": false, "error"}`
/// (the CLI turns the latter into its verification exit code).
pub fn verify(store: &StateStore) -> Result<Value> {
    let (records, head) = store::audit_records(store)?;
    Ok(match store::verify_audit(&records, head) {
        Ok(v) => json!({"verified": true, "records": v.len, "tip": to_hex(&v.tip)}),
        Err(e) => json!({"verified": false, "error": format!("audit log: {e}")}),
    })
}

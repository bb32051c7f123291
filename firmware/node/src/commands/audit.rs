//! `gondwana audit show|verify`.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use gondwana_core::audit::decode_record;
use gondwana_core::hash::to_hex;
use serde_json::json;

use crate::exit::VerifyFailed;
use crate::store::{self, OpenMode, StateStore};

pub fn show(state_dir: &Path, json: bool) -> anyhow::Result<()> {
    let store = StateStore::open(state_dir, OpenMode::ReadOnly)?;
    let (records, _) = store::audit_records(&store)?;
    let mut rows = Vec::new();
    for (key, raw) in &records {
        // Show what can be decoded; `audit verify` is the judge of the chain.
        match decode_record(raw, *key) {
            Ok(r) => {
                let time = humantime::format_rfc3339_seconds(
                    UNIX_EPOCH + Duration::from_secs(r.unix_time),
                );
                if json {
                    rows.push(
                        json!({"seq": r.seq, "unix_time": r.unix_time, "time": time.to_string(),
                        "kind": r.kind.as_str(), "detail": r.detail.as_str()}),
                    );
                } else {
                    println!(
                        "{:>5}  {}  {:<28} {}",
                        r.seq,
                        time,
                        r.kind.as_str(),
                        r.detail.as_str()
                    );
                }
            }
            Err(e) => {
                if json {
                    rows.push(json!({"seq": key, "error": e.to_string()}));
                } else {
                    println!("{key:>5}  <undecodable: {e}>");
                }
            }
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
    }
    Ok(())
}

pub fn verify(state_dir: &Path, json: bool) -> anyhow::Result<()> {
    let store = StateStore::open(state_dir, OpenMode::ReadOnly)?;
    let (records, head) = store::audit_records(&store)?;
    let verified =
        store::verify_audit(&records, head).map_err(|e| VerifyFailed(format!("audit log: {e}")))?;
    if json {
        println!(
            "{}",
            json!({"verified": true, "records": verified.len, "tip": to_hex(&verified.tip)})
        );
    } else {
        println!(
            "audit log verified: {} records, tip {}",
            verified.len,
            to_hex(&verified.tip)
        );
    }
    Ok(())
}

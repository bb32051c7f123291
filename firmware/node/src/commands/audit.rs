//! `gondwana audit show|verify`.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use gondwana_core::audit::decode_record;
use gondwana_core::hash::to_hex;
use serde_json::{Value, json};

use crate::admin;
use crate::config::Config;
use crate::exit::VerifyFailed;
use crate::store::{self, OpenMode, StateStore};

/// Every audit record as JSON (undecodable ones with their error);
/// `audit verify` is the judge of the chain.
pub fn rows(store: &StateStore) -> anyhow::Result<Vec<Value>> {
    let (records, _) = store::audit_records(store)?;
    Ok(records
        .iter()
        .map(|(key, raw)| match decode_record(raw, *key) {
            Ok(r) => {
                let time = humantime::format_rfc3339_seconds(
                    UNIX_EPOCH + Duration::from_secs(r.unix_time),
                );
                json!({"seq": r.seq, "unix_time": r.unix_time, "time": time.to_string(),
                       "kind": r.kind.as_str(), "detail": r.detail.as_str()})
            }
            Err(e) => json!({"seq": key, "error": e.to_string()}),
        })
        .collect())
}

/// `{"verified": true, "records", "tip"}`, or `{"verified": false, "error"}`.
pub fn verify_json(store: &StateStore) -> anyhow::Result<Value> {
    let (records, head) = store::audit_records(store)?;
    Ok(match store::verify_audit(&records, head) {
        Ok(v) => json!({"verified": true, "records": v.len, "tip": to_hex(&v.tip)}),
        Err(e) => json!({"verified": false, "error": format!("audit log: {e}")}),
    })
}

/// While the daemon runs it holds the state: ask it over the admin socket.
pub fn show(state_dir: &Path, config: &Config, json: bool) -> anyhow::Result<()> {
    let rows = match admin::client::call(config, "GET", "/admin/audit", None)? {
        Some(Value::Array(rows)) => rows,
        Some(other) => anyhow::bail!("the daemon answered {other}"),
        None => rows(&StateStore::open(state_dir, OpenMode::ReadOnly)?)?,
    };
    if json {
        println!("{}", Value::Array(rows));
        return Ok(());
    }
    for r in &rows {
        let seq = r["seq"].as_u64().unwrap_or_default();
        match r["error"].as_str() {
            Some(e) => println!("{seq:>5}  <undecodable: {e}>"),
            None => println!(
                "{seq:>5}  {}  {:<28} {}",
                r["time"].as_str().unwrap_or(""),
                r["kind"].as_str().unwrap_or(""),
                r["detail"].as_str().unwrap_or("")
            ),
        }
    }
    Ok(())
}

pub fn verify(state_dir: &Path, config: &Config, json: bool) -> anyhow::Result<()> {
    let v = match admin::client::call(config, "GET", "/admin/audit/verify", None)? {
        Some(v) => v,
        None => verify_json(&StateStore::open(state_dir, OpenMode::ReadOnly)?)?,
    };
    if v["verified"] != true {
        return Err(VerifyFailed(v["error"].as_str().unwrap_or("audit log").to_string()).into());
    }
    if json {
        println!("{v}");
    } else {
        println!(
            "audit log verified: {} records, tip {}",
            v["records"],
            v["tip"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

//! `gondwana audit show|verify`.

use std::path::Path;

use serde_json::Value;

use super::call;
use crate::config::Config;
use crate::exit::VerifyFailed;
use crate::service::Request;

pub fn show(state_dir: &Path, config: &Config, json: bool) -> anyhow::Result<()> {
    let rows = match call(state_dir, config, Request::Audit)? {
        Value::Array(rows) => rows,
        other => anyhow::bail!("the daemon answered {other}"),
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
    let v = call(state_dir, config, Request::AuditVerify)?;
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

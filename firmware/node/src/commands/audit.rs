//! `gondwana audit show|verify`.

use std::path::Path;

use serde_json::Value;

use super::call;
use super::output::{Table, print_json};
use crate::config::Config;
use crate::exit::VerifyFailed;
use crate::service::Request;

pub fn show(state_dir: &Path, config: &Config, json: bool) -> anyhow::Result<()> {
    let rows = match call(state_dir, config, Request::Audit)? {
        Value::Array(rows) => rows,
        other => anyhow::bail!("the daemon answered {other}"),
    };
    if json {
        print_json(&Value::Array(rows));
        return Ok(());
    }
    let mut table = Table::new(&["SEQ", "TIME", "KIND", "DETAIL"]);
    for r in &rows {
        let seq = r["seq"].as_u64().unwrap_or_default().to_string();
        let text = |k: &str| r[k].as_str().unwrap_or("").to_string();
        match r["error"].as_str() {
            Some(e) => table.row(vec![
                seq,
                String::new(),
                String::new(),
                format!("<undecodable: {e}>"),
            ]),
            None => table.row(vec![seq, text("time"), text("kind"), text("detail")]),
        }
    }
    table.print();
    Ok(())
}

pub fn verify(state_dir: &Path, config: &Config, json: bool) -> anyhow::Result<()> {
    let v = call(state_dir, config, Request::AuditVerify)?;
    if v["verified"] != true {
        return Err(VerifyFailed(v["error"].as_str().unwrap_or("audit log").to_string()).into());
    }
    if json {
        print_json(&v);
    } else {
        println!(
            "audit log verified: {} records, tip {}",
            v["records"],
            v["tip"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

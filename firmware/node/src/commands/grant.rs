//! `gondwana grant add|del|list`: through the running daemon's admin socket
//! when there is one (it owns the table and the store), else directly on
//! the store and the kernel. `--node` (hub) always goes through the daemon:
//! it signs the command with the hub key and sends it to the node.

use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use super::call;
use super::output::{self, Table};
use crate::cli::GrantCommand;
use crate::config::Config;
use crate::net::firewall::Firewall;
use crate::net::firewall::plan::Ruleset;
use crate::service::Request;
use crate::service::request::GrantRequest;

pub fn run(state_dir: &Path, config: &Config, command: &GrantCommand) -> anyhow::Result<()> {
    let (request, as_json) = match command {
        GrantCommand::Add {
            ip,
            port,
            timeout,
            node,
            json: j,
        } => (
            Request::GrantAdd(GrantRequest {
                ip: *ip,
                port: *port,
                timeout_secs: timeout.map(|d| d.as_secs().max(1)),
                node: node.clone(),
            }),
            *j,
        ),
        GrantCommand::Del {
            ip,
            port,
            node,
            json: j,
        } => (
            Request::GrantDel(GrantRequest {
                ip: *ip,
                port: *port,
                timeout_secs: None,
                node: node.clone(),
            }),
            *j,
        ),
        GrantCommand::List { json: j } => (Request::GrantList, *j),
    };
    let v = call(state_dir, config, request)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let GrantCommand::List { .. } = command {
        print_list(&v);
    } else if v.get("node").is_some() {
        // Hub: the node's own answer, relayed.
        println!(
            "{} ({}): {}",
            v["node"].as_str().unwrap_or(""),
            v["mesh_ip"].as_str().unwrap_or(""),
            outcome(&v["result"])
        );
    } else {
        println!("{}", outcome(&v));
    }
    Ok(())
}

/// One line for an added or removed grant.
fn outcome(v: &Value) -> String {
    if v.get("revoked").is_some() {
        format!(
            "revoked {}:{}",
            v["revoked"]["ip"].as_str().unwrap_or(""),
            v["revoked"]["port"]
        )
    } else {
        let left = match v["expires_in_secs"].as_u64() {
            Some(s) => format!("expires in {}", output::short_duration(s)),
            None => "no timeout".into(),
        };
        format!(
            "granted {}:{} ({left})",
            v["ip"].as_str().unwrap_or(""),
            v["port"]
        )
    }
}

fn print_list(v: &Value) {
    let mut table = Table::new(&["IP", "PROTO", "PORT", "TIMEOUT", "EXPIRES", "ORIGIN"]);
    for g in v.as_array().into_iter().flatten() {
        let timeout = g["timeout_secs"]
            .as_u64()
            .map_or("none".into(), output::short_duration);
        let expires = g["expires_in_secs"].as_u64().map_or("never".into(), |s| {
            format!("in {}", output::short_duration(s))
        });
        table.row(vec![
            g["ip"].as_str().unwrap_or("").into(),
            g["proto"].as_str().unwrap_or("tcp").into(),
            g["port"].to_string(),
            timeout,
            expires,
            origin(&g["origin"]),
        ]);
    }
    table.print();
}

/// `operator`, `hub`, `web from <consumer node id>`, `-` (unknown).
fn origin(v: &Value) -> String {
    if let Some(text) = v.as_str() {
        return text.into();
    }
    match v.get("subscription") {
        Some(s) => format!(
            "{} from {}",
            s["service"].as_str().unwrap_or(""),
            s["consumer"].as_str().unwrap_or("")
        ),
        None => "-".into(),
    }
}

/// `gondwana firewall-bench` (hidden; scripts/bench runs it in a namespace
/// of its own): applies the base table, then adds `count` grants in one
/// batch and prints the time that took as JSON.
pub fn bench(count: u32, table: &str) -> anyhow::Result<()> {
    let subnet = "10.64.0.0/10".parse()?;
    let iface = gondwana_core::InterfaceName::parse("wg-bench")?;
    let fw = Firewall::new(Ruleset::new(table, &iface, subnet, 8798)?);
    fw.apply(&[])?;
    let grants: Vec<_> = (0..count)
        .map(|i| {
            let ip = std::net::Ipv4Addr::from(0x0a40_0001 + i);
            Ok((fw.check(ip, 8000)?, Some(3600)))
        })
        .collect::<anyhow::Result<_>>()?;
    let start = Instant::now();
    fw.kernel_add_many(&grants)?;
    let secs = start.elapsed().as_secs_f64();
    let listed = fw.list()?.len();
    println!(
        "{}",
        json!({"count": count, "seconds": secs, "listed": listed})
    );
    Ok(())
}

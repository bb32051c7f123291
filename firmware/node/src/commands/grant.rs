//! `gondwana grant add|del|list`: through the running daemon's admin socket
//! when there is one (it owns the table and the store), else directly on
//! the store and the kernel. `--node` (hub) always goes through the daemon:
//! it signs the command with the hub key and sends it to the node.

use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use serde_json::{Value, json};

use crate::admin;
use crate::cli::GrantCommand;
use crate::clock::now_unix;
use crate::config::Config;
use crate::daemon::grants::{live_json, mesh_subnet};
use crate::net::firewall::plan::Ruleset;
use crate::net::firewall::{Firewall, LiveGrant};
use crate::store::{OpenMode, StateStore};

pub fn run(state_dir: &Path, config: &Config, command: &GrantCommand) -> anyhow::Result<()> {
    let (path, method, body, as_json) = match command {
        GrantCommand::Add {
            ip,
            port,
            timeout,
            node,
            json: j,
        } => (
            "/admin/grant/add",
            "POST",
            Some(
                json!({"ip": ip, "port": port, "timeout_secs": timeout.map(|d| d.as_secs().max(1)), "node": node}),
            ),
            *j,
        ),
        GrantCommand::Del {
            ip,
            port,
            node,
            json: j,
        } => (
            "/admin/grant/del",
            "POST",
            Some(json!({"ip": ip, "port": port, "node": node})),
            *j,
        ),
        GrantCommand::List { json: j } => ("/admin/grants", "GET", None, *j),
    };
    let v = match admin::client::call(config, method, path, body)? {
        Some(v) => v,
        None => direct(state_dir, config, command)?,
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let GrantCommand::List { .. } = command {
        for g in v.as_array().into_iter().flatten() {
            println!("{}", line(g));
        }
    } else if v.get("revoked").is_some() {
        println!(
            "revoked {}:{}",
            v["revoked"]["ip"].as_str().unwrap_or(""),
            v["revoked"]["port"]
        );
    } else if v.get("node").is_some() {
        println!(
            "{} ({}): {}",
            v["node"].as_str().unwrap_or(""),
            v["mesh_ip"].as_str().unwrap_or(""),
            v["result"]
        );
    } else {
        println!("granted {}", line(&v));
    }
    Ok(())
}

fn line(g: &Value) -> String {
    let left = match g["expires_in_secs"].as_u64() {
        Some(s) => format!(
            "expires in {}",
            humantime::format_duration(std::time::Duration::from_secs(s))
        ),
        None => "no timeout".into(),
    };
    format!("{}:{}  {left}", g["ip"].as_str().unwrap_or(""), g["port"])
}

/// No daemon: this process programs the table (which the daemon applied
/// at its last start) and keeps the store.
fn direct(state_dir: &Path, config: &Config, command: &GrantCommand) -> anyhow::Result<Value> {
    if !config.firewall.enabled {
        bail!("the firewall is disabled ([firewall] enabled = false)");
    }
    let mode = match command {
        GrantCommand::List { .. } => OpenMode::ReadOnly,
        _ => OpenMode::ExistingOnly,
    };
    let store = StateStore::open(state_dir, mode)?;
    let fw = Firewall::new(Ruleset::new(
        &config.firewall.table,
        &config.mesh.interface,
        mesh_subnet(config, &store),
        config.mesh.api_port,
    )?);
    Ok(match command {
        GrantCommand::Add { node: Some(_), .. } | GrantCommand::Del { node: Some(_), .. } => {
            bail!("--node needs the hub's daemon running (it signs and sends the command)")
        }
        GrantCommand::Add {
            ip, port, timeout, ..
        } => {
            let g = fw.grant(
                &store,
                *ip,
                *port,
                timeout.map(|d| d.as_secs().max(1)),
                now_unix(),
                "cli",
            )?;
            live_json(&g)
        }
        GrantCommand::Del { ip, port, .. } => {
            fw.revoke(&store, *ip, *port, "cli")?;
            json!({"revoked": {"ip": ip.to_string(), "port": port}})
        }
        GrantCommand::List { .. } => Value::Array(
            fw.list()?
                .iter()
                .map(|g: &LiveGrant| live_json(g))
                .collect(),
        ),
    })
}

/// `gondwana firewall-bench` (hidden; scripts/bench runs it in a namespace
/// of its own): applies the base table, then adds `count` grants in one
/// batch and prints the time that took as JSON.
pub fn bench(count: u32, table: &str) -> anyhow::Result<()> {
    let subnet = "10.64.0.0/10".parse()?;
    let fw = Firewall::new(Ruleset::new(table, "wg-bench", subnet, 8798)?);
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

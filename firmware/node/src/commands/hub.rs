//! `gondwana token …` and `gondwana node …` (hub only): through the running
//! daemon's admin socket when there is one, else on the store directly.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use crate::admin::{self, ops};
use crate::cli::{NodeCommand, TokenCommand};
use crate::config::Config;
use crate::store::{OpenMode, StateStore};

fn via_daemon_or_store(
    state_dir: &Path,
    config: &Config,
    method: &str,
    path: &str,
    body: Option<Value>,
    direct: impl FnOnce(&StateStore) -> anyhow::Result<Value>,
) -> anyhow::Result<Value> {
    if let Some(v) = admin::client::call(config, method, path, body)? {
        return Ok(v);
    }
    let mode = if method == "GET" || path.ends_with("/show") {
        OpenMode::ReadOnly
    } else {
        OpenMode::ExistingOnly
    };
    let store = StateStore::open(state_dir, mode)?;
    direct(&store)
}

pub fn token(state_dir: &Path, config: &Config, command: &TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            uses,
            ttl,
            boxname,
            tag,
            replace,
            out,
            json: as_json,
        } => {
            let spec = ops::TokenCreate {
                uses: *uses,
                ttl_secs: ttl.map(|d| d.as_secs()),
                boxname: boxname.clone(),
                tags: tag.clone(),
                replace: *replace,
            };
            let body = serde_json::to_value(&spec)?;
            let v = via_daemon_or_store(
                state_dir,
                config,
                "POST",
                "/admin/token/create",
                Some(body),
                |s| ops::token_create(s, config, spec),
            )?;
            if let Some(out) = out {
                let text = v["enroll_toml"].as_str().unwrap_or_default();
                write_private(out, text)?;
                eprintln!(
                    "wrote {} (copy it to the box's boot partition as gondwana/enroll.toml)",
                    out.display()
                );
            }
            if *as_json {
                println!("{v}");
            } else {
                println!(
                    "token {} (shown once; the hub keeps only a hash):",
                    v["token_id"].as_str().unwrap_or("")
                );
                println!("{}", v["token"].as_str().unwrap_or(""));
            }
        }
        TokenCommand::List { json: as_json } => {
            let v = via_daemon_or_store(state_dir, config, "GET", "/admin/tokens", None, |s| {
                ops::token_list(s, config)
            })?;
            if *as_json {
                println!("{v}");
            } else {
                for t in v.as_array().into_iter().flatten() {
                    println!(
                        "{}  uses {}/{}  expires {}  boxname {}  tags {}{}",
                        t["id"].as_str().unwrap_or(""),
                        t["uses"],
                        t["max_uses"],
                        t["expires_unix"],
                        t["boxname"],
                        t["tags"],
                        if t["revoked"] == true {
                            "  REVOKED"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let body = json!({"id": id});
            let v = via_daemon_or_store(
                state_dir,
                config,
                "POST",
                "/admin/token/revoke",
                Some(body),
                |s| ops::token_revoke(s, config, id),
            )?;
            println!("{v}");
        }
    }
    Ok(())
}

pub fn node(state_dir: &Path, config: &Config, command: &NodeCommand) -> anyhow::Result<()> {
    let v = match command {
        NodeCommand::List { json: as_json } => {
            let v = via_daemon_or_store(state_dir, config, "GET", "/admin/nodes", None, |s| {
                ops::node_list(s, config)
            })?;
            if !*as_json {
                for n in v.as_array().into_iter().flatten() {
                    println!(
                        "{:<15} {:<24} {}{}",
                        n["mesh_ip"].as_str().unwrap_or(""),
                        n["boxname"].as_str().unwrap_or(""),
                        n["node_id"].as_str().unwrap_or(""),
                        if n["revoked"] == true {
                            "  REVOKED"
                        } else {
                            ""
                        }
                    );
                }
                return Ok(());
            }
            v
        }
        NodeCommand::Show { who } => via_daemon_or_store(
            state_dir,
            config,
            "POST",
            "/admin/node/show",
            Some(json!({"who": who})),
            |s| ops::node_show(s, config, who),
        )?,
        NodeCommand::Revoke { who, reason } => {
            let body = json!({"who": who, "reason": reason});
            via_daemon_or_store(
                state_dir,
                config,
                "POST",
                "/admin/node/revoke",
                Some(body),
                |s| {
                    let identity = s.require_identity()?;
                    ops::node_revoke(s, config, &identity, who, reason)
                },
            )?
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// enroll.toml holds a secret: 0600 from its first byte.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

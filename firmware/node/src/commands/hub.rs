//! `gondwana token …` and `gondwana node …` (hub only): through the running
//! daemon's admin socket when there is one, else on the store directly.

use std::path::Path;

use anyhow::Context;

use crate::cli::{NodeCommand, TokenCommand, TokenTtl};
use crate::config::Config;
use crate::service::Request;
use crate::service::request::{NodeRef, NodeRevoke, TokenCreate, TokenId};

use super::call;

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
            let spec = TokenCreate {
                uses: *uses,
                ttl_secs: match ttl {
                    Some(TokenTtl::Secs(s)) => Some(*s),
                    Some(TokenTtl::Never) | None => None,
                },
                never_expires: *ttl == Some(TokenTtl::Never),
                boxname: boxname.clone(),
                tags: tag.clone(),
                replace: *replace,
            };
            let v = call(state_dir, config, Request::TokenCreate(spec))?;
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
            let v = call(state_dir, config, Request::TokenList)?;
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
            let v = call(
                state_dir,
                config,
                Request::TokenRevoke(TokenId { id: id.clone() }),
            )?;
            println!("{v}");
        }
    }
    Ok(())
}

pub fn node(state_dir: &Path, config: &Config, command: &NodeCommand) -> anyhow::Result<()> {
    let v = match command {
        NodeCommand::List { json: as_json } => {
            let v = call(state_dir, config, Request::NodeList)?;
            if !*as_json {
                println!("{}", node_table(&v, crate::clock::now_unix()));
                return Ok(());
            }
            v
        }
        NodeCommand::Show { who } => call(
            state_dir,
            config,
            Request::NodeShow(NodeRef { who: who.clone() }),
        )?,
        NodeCommand::Revoke { who, reason } => {
            let request = NodeRevoke {
                who: who.clone(),
                reason: reason.clone(),
            };
            call(state_dir, config, Request::NodeRevoke(request))?
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `node list`: one row per node; ONLINE is a handshake within 180 s as
/// the hub's WireGuard device reports it (docs/cli.md), `-` without a
/// running daemon to ask.
fn node_table(v: &serde_json::Value, now: u64) -> String {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let online = if n["revoked"] == true {
                "revoked".to_string()
            } else if n["this_box"] == true {
                "this hub".to_string()
            } else {
                match n["online"].as_bool() {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "-".into(),
                }
            };
            let handshake = n["last_handshake_unix"]
                .as_u64()
                .map_or("-".into(), |t| super::human::ago(now.saturating_sub(t)));
            vec![
                n["boxname"].as_str().unwrap_or("").to_string(),
                n["mesh_ip"].as_str().unwrap_or("").to_string(),
                online,
                handshake,
                n["node_id"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    super::human::table(
        &["BOXNAME", "MESH IP", "ONLINE", "LAST HANDSHAKE", "NODE ID"],
        &rows,
    )
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

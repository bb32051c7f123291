//! `gondwana token …` and `gondwana node …` (hub only): through the running
//! daemon's admin socket when there is one, else on the store directly.

use std::path::Path;

use serde_json::Value;

use crate::cli::{NodeCommand, TokenCommand, TokenTtl};
use crate::config::Config;
use crate::service::Request;
use crate::service::request::{NodeRef, NodeRevoke, TokenCreate, TokenId};

use super::call;
use super::output::{self, Table, print_json};

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
            print_created(&v, out.as_deref(), *as_json)?;
        }
        TokenCommand::List { json: as_json } => {
            let v = call(state_dir, config, Request::TokenList)?;
            output::print(&v, *as_json, print_tokens);
        }
        TokenCommand::Revoke { id, json: as_json } => {
            let request = Request::TokenRevoke(TokenId { id: id.clone() });
            output::print(&call(state_dir, config, request)?, *as_json, |_| {
                println!("token {id} revoked: it enrols no further node")
            });
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
        NodeCommand::Show { who, json: as_json } => {
            let request = Request::NodeShow(NodeRef { who: who.clone() });
            output::print(&call(state_dir, config, request)?, *as_json, print_node);
            return Ok(());
        }
        NodeCommand::Revoke {
            who,
            reason,
            json: as_json,
        } => {
            let request = NodeRevoke {
                who: who.clone(),
                reason: reason.clone(),
            };
            let v = call(state_dir, config, Request::NodeRevoke(request))?;
            output::print(&v, *as_json, |v| {
                println!(
                    "revoked {} ({}, {}): its address is free, the directory says why",
                    text(&v["boxname"]),
                    text(&v["node_id"]),
                    text(&v["mesh_ip"])
                )
            });
            return Ok(());
        }
    };
    print_json(&v);
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

/// `token create`: the token (and `--out`'s enroll.toml) once. With
/// `--out -` the enroll.toml alone goes to standard output (the summary to
/// standard error), so it can be piped.
fn print_created(v: &Value, out: Option<&Path>, as_json: bool) -> anyhow::Result<()> {
    if let Some(out) = out {
        let text = v["enroll_toml"].as_str().unwrap_or_default();
        if !(as_json && output::is_stdio(out)) {
            output::write_output(out, text.as_bytes(), false, true)?;
        }
        if !output::is_stdio(out) {
            eprintln!(
                "wrote {} (copy it to the box's boot partition as gondwana/enroll.toml)",
                out.display()
            );
        }
    }
    if as_json {
        print_json(v);
    } else if out.is_some_and(output::is_stdio) {
        eprintln!(
            "token {} (shown once; the hub keeps only a hash)",
            text(&v["token_id"])
        );
    } else {
        println!(
            "token {} (shown once; the hub keeps only a hash):",
            text(&v["token_id"])
        );
        println!("{}", text(&v["token"]));
    }
    Ok(())
}

fn print_tokens(v: &Value) {
    let now = crate::clock::now_unix();
    let mut table = Table::new(&["ID", "USES", "EXPIRES", "STATE", "BOXNAME", "TAGS"]);
    for t in v.as_array().into_iter().flatten() {
        let expires = t["expires_unix"].as_u64();
        let state = if t["revoked"] == true {
            "revoked"
        } else if expires.is_some_and(|e| e <= now) {
            "expired"
        } else if t["uses"].as_u64() >= t["max_uses"].as_u64() {
            "used up"
        } else {
            "active"
        };
        let tags: Vec<String> = t["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        table.row(vec![
            text(&t["id"]),
            format!("{}/{}", t["uses"], t["max_uses"]),
            expires.map_or("never".into(), |e| output::relative(e, now)),
            state.into(),
            t["boxname"].as_str().unwrap_or("-").into(),
            tags.join(","),
        ]);
    }
    table.print();
}

fn print_node(v: &Value) {
    let now = crate::clock::now_unix();
    let tags: Vec<String> = v["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let enrolled = v["enrolled_unix"].as_u64().map_or(String::new(), |t| {
        format!("{} ({})", output::rfc3339(t), output::relative(t, now))
    });
    println!("node {}", text(&v["boxname"]));
    println!("  node id:        {}", text(&v["node_id"]));
    println!("  mesh address:   {}", text(&v["mesh_ip"]));
    println!(
        "  state:          {}",
        if v["revoked"] == true {
            "REVOKED"
        } else {
            "enrolled"
        }
    );
    println!("  enrolled:       {enrolled}");
    println!("  token:          {}", text(&v["token_id"]));
    println!("  tags:           {}", tags.join(","));
    println!("  signing key:    {}", text(&v["signing_public_key"]));
    println!("  wireguard key:  {}", text(&v["wireguard_public_key"]));
    println!(
        "  identity log:   {} entries, tip {} (hub mirror {})",
        v["identity_log_len"],
        text(&v["identity_log_tip"]),
        v["identity_log_entries"]
    );
}

/// A JSON string as text (other values as JSON).
fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

//! `gondwana directory show|verify|export|import`.

use std::path::Path;

use anyhow::{Context, bail};
use gondwana_core::directory::{self, Head, View};
use gondwana_core::hash::to_hex;
use gondwana_core::keys::wg_key_to_base64;
use serde_json::{Value, json};

use crate::admin;
use crate::cli::DirectoryCommand;
use crate::config::{Config, Role};
use crate::exit::VerifyFailed;
use crate::store::{OpenMode, StateStore};

pub fn view_json(view: &View, head: &Head) -> Value {
    let nodes: Vec<Value> = view
        .nodes
        .iter()
        .map(|(id, n)| {
            json!({
                "node_id": id.as_str(), "boxname": n.boxname.as_str(), "mesh_ip": n.mesh_ip.to_string(),
                "signing_public_key": to_hex(&n.signing_key),
                "wireguard_public_key": wg_key_to_base64(&n.wireguard_key),
                "endpoint_hint": n.endpoint_hint,
            })
        })
        .collect();
    let revoked: Vec<Value> = view
        .revoked
        .iter()
        .map(|(id, reason)| json!({"node_id": id.as_str(), "reason": reason}))
        .collect();
    json!({"entries": head.len, "tip": to_hex(&head.tip), "nodes": nodes, "revoked": revoked})
}

/// The key this store's directory must be signed with.
fn authority(store: &StateStore, config: &Config) -> anyhow::Result<[u8; 32]> {
    if config.role == Role::Hub {
        return Ok(store.require_identity()?.state.signing_key);
    }
    match store.enrolment()? {
        Some(e) => Ok(e.hub_key),
        None => bail!("not enrolled: no directory (and no hub key to verify one)"),
    }
}

pub fn run(state_dir: &Path, config: &Config, command: &DirectoryCommand) -> anyhow::Result<()> {
    if let DirectoryCommand::Show { json: as_json } = command
        && let Some(v) = admin::client::call(config, "GET", "/admin/directory", None)?
    {
        print_view(&v, *as_json);
        return Ok(());
    }
    let mode = match command {
        DirectoryCommand::Import { .. } => OpenMode::ExistingOnly,
        _ => OpenMode::ReadOnly,
    };
    let store = StateStore::open(state_dir, mode)?;
    let key = authority(&store, config)?;
    match command {
        DirectoryCommand::Show { json: as_json } => {
            let (view, head) = store.directory_view(&key)?;
            print_view(&view_json(&view, &head), *as_json);
        }
        DirectoryCommand::Verify => {
            let (view, head) = store
                .directory_view(&key)
                .map_err(|e| VerifyFailed(e.to_string()))?;
            println!(
                "directory verified: {} entries, {} nodes, {} revoked, tip {}",
                head.len,
                view.nodes.len(),
                view.revoked.len(),
                to_hex(&head.tip)
            );
        }
        DirectoryCommand::Export { out } => {
            let (entries, head) = store.directory_page(0, usize::MAX)?;
            let bundle = directory::encode_bundle(&key, 0, head, &entries);
            std::fs::write(out, bundle).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "exported {} directory entries to {}",
                head.len,
                out.display()
            );
        }
        DirectoryCommand::Import { file } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let head = store.directory_head()?;
            // The bundle starts at 0; verify it all, then keep what is new.
            let all = directory::verify_bundle(&bytes, &key, &Head::default())
                .map_err(|e| VerifyFailed(format!("{}: {e}", file.display())))?;
            let known = usize::try_from(head.len).unwrap_or(usize::MAX);
            if all.len() >= known && known > 0 && all[known - 1].2 != head {
                return Err(VerifyFailed(format!(
                    "{} diverges from the local directory at entry {}",
                    file.display(),
                    known - 1
                ))
                .into());
            }
            let new: Vec<_> = all.into_iter().skip(known).collect();
            let added = new.len();
            store.append_directory(&new, head)?;
            println!(
                "imported {added} new directory entries from {}",
                file.display()
            );
        }
    }
    Ok(())
}

fn print_view(v: &Value, as_json: bool) {
    if as_json {
        println!("{v}");
        return;
    }
    println!(
        "directory: {} entries, tip {}",
        v["entries"],
        v["tip"].as_str().unwrap_or("")
    );
    if let Some(nodes) = v["nodes"].as_array() {
        for n in nodes {
            println!(
                "  {:<16} {:<24} {}",
                n["mesh_ip"].as_str().unwrap_or(""),
                n["boxname"].as_str().unwrap_or(""),
                n["node_id"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(revoked) = v["revoked"].as_array() {
        for r in revoked {
            println!(
                "  revoked          {} ({})",
                r["node_id"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or("")
            );
        }
    }
}

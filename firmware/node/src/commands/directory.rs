//! `gondwana directory show|verify|export|import`.

use std::path::Path;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::call;
use crate::cli::DirectoryCommand;
use crate::config::Config;
use crate::service::Request;
use crate::service::request::Bundle;

/// Every subcommand works while the daemon runs (it answers on the admin
/// socket) and without one (on the store).
pub fn run(state_dir: &Path, config: &Config, command: &DirectoryCommand) -> anyhow::Result<()> {
    match command {
        DirectoryCommand::Show { json: as_json } => {
            print_view(&call(state_dir, config, Request::Directory)?, *as_json);
        }
        DirectoryCommand::Verify => {
            let v = call(state_dir, config, Request::DirectoryVerify)?;
            println!(
                "directory verified: {} entries, {} nodes, {} revoked, tip {}",
                v["entries"],
                v["nodes"],
                v["revoked"],
                v["tip"].as_str().unwrap_or("")
            );
        }
        DirectoryCommand::Export { out } => {
            let v = call(state_dir, config, Request::DirectoryExport)?;
            let bundle = STANDARD
                .decode(v["bundle_base64"].as_str().unwrap_or(""))
                .map_err(|e| anyhow::anyhow!("the directory bundle is not base64: {e}"))?;
            std::fs::write(out, bundle).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "exported {} directory entries to {}",
                v["entries"],
                out.display()
            );
        }
        DirectoryCommand::Import { file } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let request = Request::DirectoryImport(Bundle {
                bundle_base64: STANDARD.encode(bytes),
            });
            let v = call(state_dir, config, request)
                .with_context(|| format!("importing {}", file.display()))?;
            println!(
                "imported {} new directory entries from {}",
                v["imported"],
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

//! `gondwana directory show|verify|export|import`.

use std::path::Path;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::call;
use super::output::{self, Table, print_json};
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
        DirectoryCommand::Verify(flag) => {
            let v = call(state_dir, config, Request::DirectoryVerify)?;
            if flag.json {
                print_json(&v);
            } else {
                println!(
                    "directory verified: {} entries, {} nodes, {} revoked, tip {}",
                    v["entries"],
                    v["nodes"],
                    v["revoked"],
                    v["tip"].as_str().unwrap_or("")
                );
            }
        }
        DirectoryCommand::Export(args) => {
            let mut v = call(state_dir, config, Request::DirectoryExport)?;
            let bundle = STANDARD
                .decode(v["bundle_base64"].as_str().unwrap_or(""))
                .map_err(|e| anyhow::anyhow!("the directory bundle is not base64: {e}"))?;
            output::export_bundle(&mut v, &bundle, args, "directory entries")?;
        }
        DirectoryCommand::Import { file, json } => {
            let bytes = output::read_input(file)?;
            let request = Request::DirectoryImport(Bundle {
                bundle_base64: STANDARD.encode(bytes),
            });
            let v = call(state_dir, config, request)
                .with_context(|| format!("importing {}", output::describe(file)))?;
            if *json {
                print_json(&v);
            } else {
                println!(
                    "imported {} new directory entries from {}",
                    v["imported"],
                    output::describe(file)
                );
            }
        }
    }
    Ok(())
}

fn print_view(v: &Value, as_json: bool) {
    if as_json {
        print_json(v);
        return;
    }
    println!(
        "directory: {} entries, tip {}",
        v["entries"],
        v["tip"].as_str().unwrap_or("")
    );
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut table = Table::new(&["MESH IP", "BOXNAME", "NODE ID", "STATE"]);
    for n in v["nodes"].as_array().into_iter().flatten() {
        table.row(vec![
            s(&n["mesh_ip"]),
            s(&n["boxname"]),
            s(&n["node_id"]),
            "live".into(),
        ]);
    }
    for r in v["revoked"].as_array().into_iter().flatten() {
        table.row(vec![
            "-".into(),
            "-".into(),
            s(&r["node_id"]),
            format!("revoked: {}", s(&r["reason"])),
        ]);
    }
    table.print();
}

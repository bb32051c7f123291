//! `gondwana identity …`. Public material only: no code path here can reach
//! a secret's bytes except rotation, which writes them to the store.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::bail;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gondwana_core::identity_log::{IdentityState, import_bundle};
use serde_json::json;

use super::call;
use super::output::{self, print_json};
use crate::cli::{ExportArgs, RotateArgs, VerifyArgs};
use crate::config::Config;
use crate::exit::VerifyFailed;
use crate::service::request::Rotate;
use crate::service::{Request, local, socket, views};

/// `--json` of identity commands: the service's identity view.
pub fn state_json(state: &IdentityState) -> serde_json::Value {
    views::identity(state)
}

pub fn print_state(state: &IdentityState) {
    print_state_json(&state_json(state));
}

/// The text form of [`state_json`] (the daemon answers with the JSON).
pub fn print_state_json(v: &serde_json::Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    println!("  node id:        {}", s("node_id"));
    println!("  boxname:        {}", s("boxname"));
    println!("  signing key:    {}", s("signing_public_key"));
    println!("  wireguard key:  {}", s("wireguard_public_key"));
    println!(
        "  identity log:   {} entries, tip {}",
        v["log_entries"],
        s("log_tip")
    );
    if v["retired"] == true {
        println!("  RETIRED");
    }
}

pub fn show(state_dir: &Path, config: &Config, json: bool) -> anyhow::Result<()> {
    let mut v = call(state_dir, config, Request::Identity)?;
    if json {
        v["state_dir"] = json!(state_dir);
        println!("{v}");
    } else {
        println!("identity ({})", state_dir.display());
        print_state_json(&v);
    }
    Ok(())
}

/// `gondwana identity rotate`: through the daemon when it runs (it holds
/// the state and syncs the hub's mirror), else directly, then a best-effort
/// push to the hub's mirror.
pub fn rotate(state_dir: &Path, config: &Config, args: &RotateArgs) -> anyhow::Result<()> {
    let request = Request::IdentityRotate(Rotate {
        signing: args.signing,
        wireguard: args.wireguard,
    });
    if let Some(v) = socket::send(config, state_dir, &request).map_err(|e| e.into_anyhow())? {
        if args.json {
            print_json(&v);
        } else {
            println!(
                "rotated {} through the running daemon (it syncs the hub's mirror)",
                rotated(args)
            );
            print_state_json(&v);
        }
        return Ok(());
    }
    let v = local::run(state_dir, config, &request).map_err(|e| e.into_anyhow())?;
    if args.json {
        print_json(&v);
    } else {
        println!("rotated {}", rotated(args));
        print_state_json(&v);
    }
    let store = local::open(state_dir, &request).map_err(|e| e.into_anyhow())?;
    if let Some(warning) = crate::commands::enroll::push_mirror_now(&store, config)? {
        eprintln!("gondwana: warning: {warning}");
    }
    Ok(())
}

fn rotated(args: &RotateArgs) -> &'static str {
    if args.signing {
        "the signing key"
    } else {
        "the wireguard key"
    }
}

pub fn verify(state_dir: &Path, config: &Config, args: &VerifyArgs) -> anyhow::Result<()> {
    let (mut v, source) = match &args.file {
        Some(file) => {
            let bytes = output::read_input(file)?;
            let (_, state) = import_bundle(&bytes)
                .map_err(|e| VerifyFailed(format!("{}: {e}", output::describe(file))))?;
            (views::identity(&state), output::describe(file))
        }
        // Through the daemon when it runs: it holds the store.
        None => (
            call(state_dir, config, Request::IdentityVerify)?,
            state_dir.display().to_string(),
        ),
    };
    if args.json {
        v["verified"] = json!(true);
        v["source"] = json!(source);
        println!("{v}");
    } else {
        println!("identity log verified ({source})");
        print_state_json(&v);
    }
    Ok(())
}

pub fn export(state_dir: &Path, config: &Config, args: &ExportArgs) -> anyhow::Result<()> {
    if output::is_stdio(&args.out) && !args.json && std::io::stdout().is_terminal() {
        bail!("refusing to write a binary file to a terminal: use --out FILE");
    }
    let mut v = call(state_dir, config, Request::IdentityExport)?;
    let bundle = STANDARD
        .decode(v["bundle_base64"].as_str().unwrap_or(""))
        .map_err(|e| anyhow::anyhow!("the identity bundle is not base64: {e}"))?;
    let what = format!(
        "identity-log entries of {}",
        v["node_id"].as_str().unwrap_or("")
    );
    output::export_bundle(&mut v, &bundle, args, &what)
}

//! `gondwana identity …`. Public material only: no code path here can reach
//! a secret's bytes except rotation, which writes them to the store.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, bail};
use gondwana_core::audit::kind;
use gondwana_core::hash::to_hex;
use gondwana_core::identity_log::{
    IdentityEvent, IdentityState, build, export_bundle, import_bundle,
};
use gondwana_core::keys::{SigningSecret, WireguardSecret, wg_key_to_base64};
use serde_json::json;

use crate::admin;
use crate::cli::{ExportArgs, RotateArgs, VerifyArgs};
use crate::config::Config;
use crate::exit::VerifyFailed;
use crate::random;
use crate::store::{self, OpenMode, StateStore};

pub fn state_json(state: &IdentityState) -> serde_json::Value {
    json!({
        "node_id": state.node_id.as_str(),
        "boxname": state.boxname.as_str(),
        "signing_public_key": to_hex(&state.signing_key),
        "genesis_signing_public_key": to_hex(&state.genesis_signing_key),
        "wireguard_public_key": wg_key_to_base64(&state.wireguard_key),
        "retired": state.retired,
        "log_entries": state.len,
        "log_tip": to_hex(&state.tip),
    })
}

pub fn print_state(state: &IdentityState) {
    print_state_json(&state_json(state));
}

/// The text form of [`state_json`] (the daemon answers with the JSON).
fn print_state_json(v: &serde_json::Value) {
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

/// While the daemon runs it holds the state: ask it over the admin socket.
pub fn show(state_dir: &Path, config: &Config, json: bool) -> anyhow::Result<()> {
    let mut v = match admin::client::call(config, "GET", "/admin/identity", None)? {
        Some(v) => v,
        None => state_json(
            &StateStore::open(state_dir, OpenMode::ReadOnly)?
                .require_identity()?
                .state,
        ),
    };
    if json {
        v["state_dir"] = json!(state_dir);
        println!("{v}");
    } else {
        println!("identity ({})", state_dir.display());
        print_state_json(&v);
    }
    Ok(())
}

/// One rotation in one transaction: log entry, secret and audit record.
pub fn rotate_in_store(store: &StateStore, signing: bool) -> anyhow::Result<IdentityState> {
    let txn = store.write()?;
    let identity = store::identity_in(&txn)?;
    if identity.state.retired {
        bail!("this identity is retired; nothing can be rotated");
    }
    let state = &identity.state;
    let (next, audit_kind) = if signing {
        let new = SigningSecret::from_seed(*random::seed()?);
        let event = IdentityEvent::RotateSigning {
            new_signing_key: new.public_key(),
        };
        let (raw, next) = build::next(state, &identity.signing, event, Some(&new))
            .context("building the rotation entry")?;
        store::record_identity_entry(&txn, state.len, &raw, Some(&new), None)?;
        (next, kind::IDENTITY_ROTATE_SIGNING)
    } else {
        let new = WireguardSecret::from_bytes(*random::seed()?);
        let event = IdentityEvent::RotateWireguard {
            new_wireguard_key: new.public_key(),
        };
        let (raw, next) = build::next(state, &identity.signing, event, None)
            .context("building the rotation entry")?;
        store::record_identity_entry(&txn, state.len, &raw, None, Some(&new))?;
        (next, kind::IDENTITY_ROTATE_WIREGUARD)
    };
    let detail = format!("entry {} tip {}", state.len, to_hex(&next.tip));
    store::append_audit(&txn, audit_kind, &detail, crate::clock::now_unix())?;
    store.commit(txn)?;
    Ok(next)
}

/// `gondwana identity rotate`: through the daemon when it runs (it holds
/// the state and syncs the hub's mirror), else directly, then a best-effort
/// push to the hub's mirror.
pub fn rotate(state_dir: &Path, config: &Config, args: &RotateArgs) -> anyhow::Result<()> {
    let body = json!({"signing": args.signing, "wireguard": args.wireguard});
    if let Some(v) = admin::client::call(config, "POST", "/admin/identity/rotate", Some(body))? {
        println!("rotated through the running daemon (it syncs the hub's mirror)");
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if args.signing && config.role == crate::config::Role::Hub {
        bail!(
            "rotating a hub's signing key is not supported yet: every enroll.toml pins it and it signs the directory"
        );
    }
    let store = StateStore::open(state_dir, OpenMode::ExistingOnly)?;
    let next = rotate_in_store(&store, args.signing)?;
    println!(
        "rotated ({})",
        if args.signing {
            "signing key"
        } else {
            "wireguard key"
        }
    );
    print_state(&next);
    if let Some(warning) = crate::commands::enroll::push_mirror_now(&store, config)? {
        eprintln!("gondwana: warning: {warning}");
    }
    Ok(())
}

pub fn verify(state_dir: &Path, args: &VerifyArgs) -> anyhow::Result<()> {
    let (state, source) = match &args.file {
        Some(file) => {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let (_, state) = import_bundle(&bytes)
                .map_err(|e| VerifyFailed(format!("{}: {e}", file.display())))?;
            (state, file.display().to_string())
        }
        None => {
            let store = StateStore::open(state_dir, OpenMode::ReadOnly)?;
            // Loading verifies the log and that the secrets match it.
            let identity = store.require_identity().map_err(|e| match e {
                store::StoreError::Corrupt { detail, .. } => {
                    anyhow::Error::new(VerifyFailed(detail))
                }
                other => other.into(),
            })?;
            (identity.state, state_dir.display().to_string())
        }
    };
    if args.json {
        let mut v = state_json(&state);
        v["verified"] = json!(true);
        v["source"] = json!(source);
        println!("{v}");
    } else {
        println!("identity log verified ({source})");
        print_state(&state);
    }
    Ok(())
}

pub fn export(state_dir: &Path, args: &ExportArgs) -> anyhow::Result<()> {
    let store = StateStore::open(state_dir, OpenMode::ReadOnly)?;
    let identity = store.require_identity()?;
    let bundle = export_bundle(&identity.log).context("encoding the identity log")?;
    if args.out.as_os_str() == "-" {
        let mut stdout = std::io::stdout();
        if stdout.is_terminal() {
            bail!("refusing to write a binary file to a terminal: use --out FILE");
        }
        stdout.write_all(&bundle)?;
        stdout.flush()?;
    } else {
        std::fs::write(&args.out, &bundle)
            .with_context(|| format!("writing {}", args.out.display()))?;
        eprintln!(
            "exported {} identity-log entries of {} to {}",
            identity.state.len,
            identity.state.node_id,
            args.out.display()
        );
    }
    Ok(())
}

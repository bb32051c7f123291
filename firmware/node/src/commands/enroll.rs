//! `gondwana enroll` and `gondwana status`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{call, output};
use crate::boot::enroll_file::EnrollFile;
use crate::boot::firstboot;
use crate::cli::EnrollArgs;
use crate::config::Config;
use crate::daemon::enrol_task;
use crate::exit::BadArgument;
use crate::runtime::current_thread as runtime;
use crate::service::{Request, socket, status, views};
use crate::store::{OpenMode, StateStore};

pub fn enroll(state_dir: &Path, config: &Config, args: &EnrollArgs) -> anyhow::Result<()> {
    let file = EnrollFile {
        hub_url: args.hub.clone(),
        hub_key: args.hub_key.clone(),
        token: args.token.clone(),
        boxname: args.boxname.clone(),
    };
    let request = Request::Enroll(file.clone());
    let result = match socket::send(config, &request).map_err(|e| e.into_anyhow())? {
        Some(v) => v,
        None => {
            // A malformed --hub, --hub-key, --token or --boxname: exit 2,
            // as the daemon's answer (bad_request) gives too.
            let plan = file
                .into_plan("gondwana enroll".into())
                .map_err(|e| BadArgument(e.to_string()))?;
            // Enrolling a box that never booted provisions it first.
            firstboot::run(state_dir, config)?;
            let store = Arc::new(StateStore::open(state_dir, OpenMode::ExistingOnly)?);
            if let Some(e) = store.enrolment()? {
                let mut v = status::enrolment_json(&store, &e);
                v["already_enrolled"] = json!(true);
                print_enrolment(&v, args.json);
                return Ok(());
            }
            let e = runtime()?.block_on(enrol_task::enrol_once(&store, config, &plan))?;
            views::enrolment(&e)
        }
    };
    print_enrolment(&result, args.json);
    Ok(())
}

fn print_enrolment(v: &Value, as_json: bool) {
    if as_json {
        output::print_json(v);
        return;
    }
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let what = if v["already_enrolled"] == true {
        "already enrolled (nothing changed)"
    } else {
        "enrolled"
    };
    match v["state"].as_str() {
        Some("revoked") => println!(
            "{what}, but REVOKED by the hub: was {} in {} (hub {})",
            s("mesh_ip"),
            s("subnet"),
            s("hub")
        ),
        _ => println!(
            "{what}: {} as {} in {} via {} (hub {})",
            s("boxname"),
            s("mesh_ip"),
            s("subnet"),
            s("hub"),
            s("hub_node_id")
        ),
    }
}

/// After a rotation without a daemon: try the hub's mirror once. A hub that
/// is down is a warning, not a failure; the daemon syncs later.
pub fn push_mirror_now(store: &StateStore, config: &Config) -> anyhow::Result<Option<String>> {
    let Some(enrolment) = store.enrolment()? else {
        return Ok(None);
    };
    let url = enrol_task::hub_api_url(config, &enrolment);
    let identity = store.require_identity()?;
    let hub_wireguard_key = store.hub_wireguard_key()?;
    let outcome = runtime()?.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(10),
            enrol_task::push_mirror_of(&identity, hub_wireguard_key.as_ref(), &url),
        )
        .await
    });
    Ok(match outcome {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!(
            "the rotation is done, but the hub's mirror could not be updated ({e:#}); it syncs when the daemon runs and the hub is reachable"
        )),
        Err(_) => {
            Some("the rotation is done, but the hub did not answer; its mirror syncs later".into())
        }
    })
}

pub fn status(state_dir: &Path, config: &Config, json_out: bool) -> anyhow::Result<()> {
    let v = call(state_dir, config, Request::Status)?;
    if json_out {
        println!("{v}");
    } else {
        print_status(&v);
    }
    Ok(())
}

fn print_status(v: &Value) {
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    println!(
        "{} {} ({})",
        s(&v["role"]),
        s(&v["boxname"]),
        s(&v["node_id"])
    );
    println!(
        "  daemon:     {}",
        if v["daemon"]["running"] == true {
            "running"
        } else {
            "not running"
        }
    );
    if v["persistent"] == false {
        println!("  persistent: false (state on tmpfs: this identity is lost at reboot)");
    }
    if v["hub"].is_object() {
        let h = &v["hub"];
        println!(
            "  hub:        subnet {}, {} nodes ({} revoked), endpoint {}",
            s(&h["subnet"]),
            h["nodes"],
            h["revoked_nodes"],
            s(&h["public_endpoint"])
        );
    }
    let e = &v["enrolment"];
    match e["state"].as_str() {
        Some("enrolled") => println!(
            "  enrolment:  enrolled as {} in {} via {} (hub {}) since {}",
            s(&e["mesh_ip"]),
            s(&e["subnet"]),
            s(&e["hub"]),
            s(&e["hub_node_id"]),
            s(&e["since_unix"])
        ),
        Some("enrolling") => println!(
            "  enrolment:  enrolling from {} — {} attempts, last error: {}",
            s(&e["source"]),
            e["attempts"],
            s(&e["last_error"])
        ),
        Some("revoked") => println!(
            "  enrolment:  REVOKED by the hub (learned at {}, directory entry {}): {} — was {} in {}",
            s(&e["revocation"]["revoked_unix"]),
            s(&e["revocation"]["directory_seq"]),
            s(&e["revocation"]["reason"]),
            s(&e["mesh_ip"]),
            s(&e["subnet"])
        ),
        Some(other) => println!("  enrolment:  {other}"),
        None => {}
    }
    let i = &v["identity"];
    if i.is_object() {
        println!(
            "  identity:   local log {} entries (tip {}), hub mirror {}",
            i["local_entries"],
            &s(&i["local_tip"])[..16.min(s(&i["local_tip"]).len())],
            if i["hub_entries"].is_null() {
                "unknown".into()
            } else {
                i["hub_entries"].to_string()
            }
        );
        if let Some(w) = i["warning"].as_str() {
            println!("  WARNING:    {w}");
        }
    }
    println!("  directory:  {} entries", v["directory"]["entries"]);
}

//! `gondwana enroll`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use serde_json::Value;

use super::output;
use crate::boot::enroll_file::{EnrollFile, parse_file};
use crate::boot::firstboot;
use crate::cli::EnrollArgs;
use crate::config::Config;
use crate::daemon::enrol_task;
use crate::exit::BadArgument;
use crate::runtime::current_thread as runtime;
use crate::service::{Request, socket, status, views};
use crate::store::{OpenMode, StateStore};

pub fn enroll(state_dir: &Path, config: &Config, args: &EnrollArgs) -> anyhow::Result<()> {
    let file = enroll_file(args)?;
    let request = Request::Enroll(file.clone());
    let result = match socket::send(config, state_dir, &request).map_err(|e| e.into_anyhow())? {
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

/// What to enrol with: the FILE (`-`: standard input), checked here so a
/// malformed one is refused before anything starts, or the flags.
fn enroll_file(args: &EnrollArgs) -> anyhow::Result<EnrollFile> {
    let mut file = match (&args.file, &args.hub, &args.hub_key, &args.token) {
        (Some(path), ..) => {
            let (text, source) = read_enroll_text(path)?;
            parse_file(&text, &source)?
        }
        (None, Some(hub), Some(hub_key), Some(token)) => EnrollFile {
            hub_url: hub.clone(),
            hub_key: hub_key.clone(),
            token: token.clone(),
            boxname: None,
        },
        // clap requires FILE or all three flags.
        _ => anyhow::bail!("give an enroll.toml (or --hub, --hub-key and --token)"),
    };
    if args.boxname.is_some() {
        file.boxname = args.boxname.clone();
    }
    Ok(file)
}

/// An enroll.toml is a few hundred bytes; more is not one.
const MAX_ENROLL_FILE: u64 = 64 * 1024;

fn read_enroll_text(path: &Path) -> anyhow::Result<(String, String)> {
    use std::io::Read;
    let (reader, source): (Box<dyn Read>, String) = if path == Path::new("-") {
        (Box::new(std::io::stdin()), "standard input".into())
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        (Box::new(f), path.display().to_string())
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_ENROLL_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {source}"))?;
    if bytes.len() as u64 > MAX_ENROLL_FILE {
        anyhow::bail!("{source}: larger than {MAX_ENROLL_FILE} bytes: not an enroll.toml");
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{source}: not UTF-8 text: not an enroll.toml"))?;
    Ok((text, source))
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

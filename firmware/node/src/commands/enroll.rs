//! `gondwana enroll`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::boot::enroll_file::EnrollFile;
use crate::boot::firstboot;
use crate::cli::EnrollArgs;
use crate::config::Config;
use crate::daemon::enrol_task;
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
            let plan = file.into_plan("gondwana enroll".into())?;
            // Enrolling a box that never booted provisions it first.
            firstboot::run(state_dir, config)?;
            let store = Arc::new(StateStore::open(state_dir, OpenMode::ExistingOnly)?);
            if let Some(e) = store.enrolment()? {
                let mut v = status::enrolment_json(&store, &e);
                v["already_enrolled"] = json!(true);
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let e = runtime()?.block_on(enrol_task::enrol_once(&store, config, &plan))?;
            views::enrolment(&e)
        }
    };
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
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

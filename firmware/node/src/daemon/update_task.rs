//! Releases over the mesh on a running box (docs/updates.md, "Over the
//! mesh"): every few seconds, or at the time the decision said to wait
//! for, look at the directory's release records, let
//! `gondwana_core::update::rollout` decide, and take the step — download
//! (`update_fetch`), install (the `update install` code), or ask for the
//! reboot into the new slot ([`crate::update::request_trial_reboot`]).
//! Each step's outcome goes to `<state>/updates/last.json` for `update
//! status`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gondwana_core::directory::View;
use gondwana_core::update::rollout::Step;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{CONTENT_TYPE_OCTETS, client};
use crate::daemon::drive::CALL_TIMEOUT;
use crate::service::request::UpdatePublish;
use crate::service::{self, ServiceError};

use crate::clock::now_unix;
use crate::config::{Config, Role};
use crate::daemon::app::App;
use crate::daemon::drive::{blocking, joined};
use crate::daemon::sync_task::hub_api_url;
use crate::daemon::update_fetch;
use crate::update::{self, held, mesh};

/// How often the directory is looked at when nothing is pending.
const LOOK_EVERY: Duration = Duration::from_secs(5);
/// After a failed download: 5 s, doubling up to 10 minutes.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(600);
/// A reboot that could not be requested is asked again after this long.
const REBOOT_RETRY: Duration = Duration::from_secs(3600);

pub async fn run(app: Arc<App>) {
    let mut failures = 0u32;
    loop {
        let wait = step(&app, &mut failures).await;
        tokio::time::sleep(wait).await;
    }
}

fn remember_rotations(store: &crate::store::StateStore, signed: &[u8]) {
    let Ok(rotations) = gondwana_core::update::record_rotations(signed) else {
        return;
    };
    match store.remember_rotations(&rotations, now_unix()) {
        Ok(0) => {}
        Ok(n) => info!("update: {n} release-key rotation record(s) stored"),
        Err(e) => warn!("update: storing rotation records: {e}"),
    }
}

fn retry_after(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
        .min(RETRY_MAX)
}

async fn step(app: &Arc<App>, failures: &mut u32) -> Duration {
    let config = app.config();
    let Some(view) = directory_view(app, &config).await else {
        return LOOK_EVERY;
    };
    let (cfg, state_dir) = (config.update.clone(), app.state_dir.clone());
    let node_id = app.identity().node_id.to_string();
    let records = view.releases.clone();
    let store = app.store.clone();
    let assessed = blocking(move || {
        let stored = store.release_rotations().unwrap_or_default();
        let a = mesh::assess(&cfg, &state_dir, &stored, &records, &node_id, now_unix());
        // The newest release verified here: its rotations are this box's
        // from now on (docs/updates.md, "Rotating the release key").
        if let Some(r) = &a.release {
            remember_rotations(&store, &r.signed);
        }
        (a, stored)
    })
    .await;
    let Ok((assessed, stored_now)) = assessed else {
        return LOOK_EVERY;
    };
    let Some(release) = assessed.release else {
        return LOOK_EVERY;
    };
    let body = release.body;
    let at = now_unix();
    match assessed.step {
        Step::Idle { .. } => LOOK_EVERY,
        Step::Wait { at: until, .. } => {
            Duration::from_secs(until.saturating_sub(at)).clamp(Duration::from_secs(1), LOOK_EVERY)
        }
        Step::Download => {
            let keys = match mesh::release_keys(&config.update, &stored_now) {
                Ok(k) => k,
                Err(_) => return LOOK_EVERY,
            };
            let sources = sources(app, &config, &view);
            match update_fetch::download(&app.state_dir, &body, &keys, &sources).await {
                Ok(source) => {
                    *failures = 0;
                    held::write_last(
                        &app.state_dir,
                        &json!({"step": "download", "at": at, "version": body.version, "source": source}),
                    );
                    Duration::ZERO
                }
                Err(e) => {
                    *failures += 1;
                    let again = retry_after(*failures);
                    warn!(
                        "update: fetching version {} failed (again in {}s): {e}",
                        body.version,
                        again.as_secs()
                    );
                    held::write_last(
                        &app.state_dir,
                        &json!({"step": "download", "at": at, "version": body.version, "error": e, "retry_at": at + again.as_secs()}),
                    );
                    again
                }
            }
        }
        Step::Install => {
            let (cfg, state_dir, a) = (config.update.clone(), app.state_dir.clone(), app.clone());
            let hash = body.bundle_blake2b;
            let version = body.version;
            let installed = joined(
                blocking(move || {
                    let result = update::install(
                        &cfg,
                        Some(&a.store),
                        &held::bundle_path(&state_dir, &hash),
                    );
                    if let Err(e) = &result {
                        // Not again by itself: an operator looks first.
                        if let Err(io) = held::mark_failed(&state_dir, &hash, &e.to_string()) {
                            warn!("update: cannot record the failure: {io}");
                        }
                    }
                    result
                })
                .await,
            );
            let last = match &installed {
                Ok(_) => json!({"step": "install", "at": at, "version": version}),
                Err(e) => {
                    warn!("update: installing version {version} failed: {e}");
                    json!({"step": "install", "at": at, "version": version, "error": e})
                }
            };
            held::write_last(&app.state_dir, &last);
            Duration::ZERO
        }
        Step::Reboot => {
            let result = update::request_trial_reboot(&config.update);
            let last = match &result {
                Ok(()) => json!({"step": "reboot", "at": at, "version": body.version}),
                Err(e) => {
                    warn!(
                        "update: version {} installed, reboot not possible: {e}",
                        body.version
                    );
                    json!({"step": "reboot", "at": at, "version": body.version, "error": e.to_string()})
                }
            };
            held::write_last(&app.state_dir, &last);
            REBOOT_RETRY
        }
    }
}

/// `update publish` on a node: the bundle checked and kept where this box
/// serves it, then the record sent to the hub, which appends it once it
/// verifies against the hub's keys (`POST /v1/update/release`). Boxes
/// then find the bundle here (the hub answers 404 for it).
pub async fn publish_via_hub(app: &Arc<App>, r: UpdatePublish) -> service::Result<Value> {
    let (a, paths) = (app.clone(), r.clone());
    let stored = blocking(move || {
        crate::service::update::store_for_publish(
            &a.store,
            &a.config(),
            &paths.bundle,
            &paths.record,
        )
    })
    .await
    .map_err(|e| ServiceError::Fault(anyhow::anyhow!("publish task: {e}")))??;
    let config = app.config();
    let Some(enrolment) = app.store.enrolment()? else {
        return Err(ServiceError::Conflict(
            "not enrolled: no hub to publish to".into(),
        ));
    };
    let url = format!("{}/v1/update/release", hub_api_url(&config, &enrolment));
    let (status, body) = client::request(
        Method::POST,
        &url,
        Some(CONTENT_TYPE_OCTETS),
        Bytes::from(stored.signed.clone()),
        CALL_TIMEOUT,
        64 * 1024,
    )
    .await
    .map_err(|e| ServiceError::Upstream(format!("{url}: {e}")))?;
    if status != StatusCode::OK {
        return Err(ServiceError::Upstream(format!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fresh = answer["published"] == true;
    let mut v = crate::service::update::published_json(
        &app.store,
        &stored,
        fresh,
        answer["directory_entries"].as_u64(),
    );
    v["hub"] = json!(url);
    Ok(v)
}

async fn directory_view(app: &Arc<App>, config: &Arc<Config>) -> Option<Arc<View>> {
    let (store, config) = (app.store.clone(), config.clone());
    let view = blocking(move || -> anyhow::Result<Option<View>> {
        let Some(authority) = crate::service::directory::authority(&store, &config)? else {
            return Ok(None);
        };
        Ok(Some(store.directory_view(&authority)?.0))
    })
    .await;
    match view {
        Ok(Ok(Some(v))) if !v.releases.is_empty() => Some(Arc::new(v)),
        _ => None,
    }
}

/// Where to fetch from, in order (docs/updates.md, "Where a box fetches
/// from"): `update.fetch_from` when set; else the hub (it holds every
/// bundle it published), then every other active node of the directory
/// in the order of their mesh addresses — any of them may hold it, and
/// those that do not answer 404 at once.
fn sources(app: &App, config: &Config, view: &View) -> Vec<String> {
    if !config.update.fetch_from.is_empty() {
        return config.update.fetch_from.clone();
    }
    let mut out = Vec::new();
    if config.role == Role::Node
        && let Ok(Some(enrolment)) = app.store.enrolment()
    {
        out.push(hub_api_url(config, &enrolment));
    }
    let me = app.identity().node_id;
    let mut peers: Vec<_> = view
        .nodes
        .iter()
        .filter(|(id, _)| **id != me)
        .map(|(_, n)| n.mesh_ip)
        .collect();
    peers.sort();
    for ip in peers {
        let url = format!("http://{ip}:{}", config.mesh.api_port);
        if !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off() {
        assert_eq!(retry_after(1), Duration::from_secs(5));
        assert_eq!(retry_after(2), Duration::from_secs(10));
        assert_eq!(retry_after(50), RETRY_MAX);
    }
}

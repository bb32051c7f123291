//! The node's enrolment and directory replication.
//!
//! Unenrolled: look for an enrolment instruction, try, back off (capped,
//! jittered), try again — forever, while the API keeps serving. Enrolled:
//! pull the directory from the hub every `directory_pull_secs` and push the
//! identity log to the hub's mirror when it is behind.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gondwana_core::backoff;
use gondwana_core::directory;
use gondwana_core::enrol::{self, EnrolRequest};
use gondwana_core::hash::to_hex;
use gondwana_core::identity_log::export_bundle;
use gondwana_core::keys::PublicKey;
use gondwana_core::wg_proof;
use http::Method;

use crate::admin::ops::now_unix;
use crate::api::client;
use crate::boot::enroll_source::{self, EnrollPlan};
use crate::config::Config;
use crate::daemon::app::{App, EnrolStatus};
use crate::daemon::revocation;
use crate::net::host_addrs::host_subnets;
use crate::store::enrolment::{Enrolment, save_enrolment};
use crate::store::registry::WIREGUARD_PROOF_HEADER;
use crate::store::{StateStore, StoredIdentity};
use gondwana_core::mesh;

const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// One enrolment exchange; on success the grant is durably stored.
pub async fn enrol_once(
    store: &Arc<StateStore>,
    config: &Config,
    plan: &EnrollPlan,
) -> anyhow::Result<Enrolment> {
    let app_store = store.clone();
    let store = store.clone();
    let identity = tokio::task::spawn_blocking(move || store.require_identity()).await??;

    let url = format!("{}/v1/enroll/nonce", plan.hub_url);
    let (status, body) =
        client::request(Method::GET, &url, None, Bytes::new(), CALL_TIMEOUT, 4096).await?;
    if !status.is_success() {
        anyhow::bail!(
            "hub answered {status} to the nonce request: {}",
            error_text(&body)
        );
    }
    let answer = serde_json::from_slice::<serde_json::Value>(&body)?;
    // A hub that names another key than our pin would only hand us a grant
    // we must refuse, after spending a use of our token: stop here.
    if let Some(key) = answer["hub_key"].as_str()
        && key != to_hex(&plan.hub_key)
    {
        anyhow::bail!(
            "the hub at {} says its key is {key}, but the pinned hub key is {}: not submitting",
            plan.hub_url,
            to_hex(&plan.hub_key)
        );
    }
    let nonce_hex = answer["nonce"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("hub's nonce answer has no nonce"))?;
    let hub_nonce = gondwana_core::keys::decode_hex32(&nonce_hex)?;
    // Unauthenticated like `hub_key`: a substituted key only makes the
    // proof of our WireGuard key fail at the hub.
    let hub_wireguard_key = answer["hub_wireguard_key"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("hub's nonce answer has no hub_wireguard_key"))
        .and_then(|k| Ok(gondwana_core::keys::decode_hex32(k)?))?;

    let request = EnrolRequest {
        version: enrol::VERSION,
        hub_nonce,
        wireguard_key: identity.state.wireguard_key,
        boxname: plan
            .boxname
            .clone()
            .unwrap_or_else(|| identity.state.boxname.clone()),
        token_key: plan.token.public_key(),
    };
    let submission = enrol::build_submission(
        &identity.signing,
        &identity.wireguard,
        &hub_wireguard_key,
        &identity.log,
        &request,
        &plan.token,
    )?;
    let url = format!("{}/v1/enroll", plan.hub_url);
    let (status, body) = client::request(
        Method::POST,
        &url,
        Some("application/octet-stream"),
        Bytes::from(submission),
        CALL_TIMEOUT,
        enrol::MAX_RESPONSE_BYTES,
    )
    .await?;
    if !status.is_success() {
        anyhow::bail!(
            "hub refused the enrolment ({status}): {}",
            error_text(&body)
        );
    }
    let response = enrol::decode_response(&body)?;
    let grant = enrol::open_grant(&response.grant, &plan.hub_key, &request, &identity.state)?;
    // The collision guard: a mesh that overlaps this host's own networks
    // (or a reserved one) would take traffic from them.
    let host = host_subnets(&config.mesh.interface)?;
    mesh::check_subnet(&grant.subnet, &config.mesh.reserved_subnets, &host)
        .map_err(|e| anyhow::anyhow!("{e}: refusing to join this mesh"))?;
    let store = app_store.clone();
    let hub_url = plan.hub_url.clone();
    let hub_key = plan.hub_key;
    let grant_raw = response.grant.to_vec();
    let saved = grant.clone();
    let first_page = response.directory.to_vec();
    tokio::task::spawn_blocking(move || {
        save_enrolment(
            &store,
            &grant_raw,
            &saved,
            &hub_url,
            &hub_key,
            &first_page,
            now_unix(),
        )
    })
    .await??;
    app_store
        .enrolment()?
        .ok_or_else(|| anyhow::anyhow!("enrolment vanished after commit"))
}

fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => format!(
            "{}: {}",
            v["error"].as_str().unwrap_or("error"),
            v["detail"].as_str().unwrap_or("")
        ),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// The hub's full API for an enrolled node: the configured override, else
/// the hub's mesh address (through the tunnel).
pub fn hub_api_url(config: &Config, enrolment: &Enrolment) -> String {
    match &config.enroll.hub_api_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!(
            "http://{}:{}",
            enrolment.grant.hub_mesh_ip, enrolment.grant.api_port
        ),
    }
}

/// The node's background loop. Never returns while the daemon runs.
pub async fn run(app: Arc<App>) {
    let mut attempts = 0u32;
    loop {
        if let Ok(Some(enrolment)) = app.store.enrolment() {
            app.set_status(EnrolStatus::Enrolled);
            sync_loop(&app, enrolment).await;
            return;
        }
        let config = app.config();
        // Reading block devices and mounting a stick can block for long on a
        // failing USB device: off the runtime's only thread.
        let sources = config.clone();
        let found = tokio::task::spawn_blocking(move || enroll_source::find(&sources.enroll))
            .await
            .unwrap_or(Ok(None));
        let plan = match found {
            Ok(Some(plan)) => plan,
            Ok(None) => {
                app.set_status(EnrolStatus::Unenrolled);
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            Err(e) => {
                attempts += 1;
                app.set_status(EnrolStatus::Enrolling {
                    attempts,
                    last_error: Some(e.to_string()),
                    source: "enrolment config".into(),
                });
                app.metrics.inc(
                    "gondwana_enrolment_failures_total",
                    &[("reason", "bad_config")],
                );
                tokio::time::sleep(config.enroll.retry_max()).await;
                continue;
            }
        };
        attempts += 1;
        match enrol_once(&app.store, &config, &plan).await {
            Ok(e) => {
                app.set_hub_mirror_len(app.identity().len);
                info!(
                    "enrolled as {} ({}) via {}",
                    e.grant.mesh_ip, e.grant.boxname, plan.source
                );
                app.metrics.inc("gondwana_enrolments_total", &[]);
                app.set_status(EnrolStatus::Enrolled);
            }
            Err(e) => {
                warn!("enrolment attempt {attempts} failed: {e:#}");
                app.metrics.inc(
                    "gondwana_enrolment_failures_total",
                    &[("reason", "attempt_failed")],
                );
                app.set_status(EnrolStatus::Enrolling {
                    attempts,
                    last_error: Some(format!("{e:#}")),
                    source: plan.source.clone(),
                });
                let jitter = crate::random::fraction();
                let delay = backoff::delay(
                    attempts,
                    config.enroll.retry_initial(),
                    config.enroll.retry_max(),
                    jitter,
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn sync_loop(app: &App, enrolment: Enrolment) {
    // A revocation pulled before this version acted on pulled ones.
    if app.revocation().is_none() {
        match revocation::stored(app, &enrolment) {
            Ok(Some((raw, r))) => {
                if let Err(e) = revocation::commit(app, raw, r).await {
                    error!("storing this node's revocation: {e:#}");
                }
            }
            Ok(None) => {}
            Err(e) => warn!("looking for this node's revocation: {e:#}"),
        }
    }
    let mut ask = revocation::Schedule::default();
    // Revoked: nothing more to ask the hub, ever (the daemon keeps running
    // to say so).
    while app.revocation().is_none() {
        // The default hub URL is its mesh address: wait for the tunnel
        // rather than log a failed pull for every second it takes.
        let mesh = app.dataplane_status();
        if app.config().enroll.hub_api_url.is_none() && !matches!(mesh.state, "up" | "disabled") {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let url = hub_api_url(&app.config(), &enrolment);
        let mut reached = true;
        if let Err(e) = pull_directory(app, &url, &enrolment).await {
            warn!("directory pull from {url} failed: {e:#}");
            reached = false;
        }
        if app.revocation().is_some() {
            break;
        }
        let identity = app.identity();
        let known = app.hub_mirror_len.lock().map(|g| *g).unwrap_or(None);
        if known != Some(identity.len) {
            match push_mirror(&app.store, &url).await {
                Ok(len) => {
                    app.set_hub_mirror_len(len);
                }
                Err(e) => {
                    warn!("identity mirror push to {url} failed: {e:#}");
                    reached = false;
                }
            }
        }
        if revocation::hub_handshake_stale(&mesh, now_unix()) {
            reached = false;
        }
        // The hub removes a revoked node's peer, so the tunnel goes silent:
        // ask its public listener, which the tunnel does not carry.
        if reached {
            ask.reset();
        } else if ask.due(std::time::Instant::now()) {
            match revocation::ask_hub(app, &enrolment).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => warn!(
                    "asking {} whether this node is revoked: {e:#}",
                    enrolment.hub_url
                ),
            }
            ask.asked(std::time::Instant::now(), &app.config().enroll);
        }
        tokio::time::sleep(Duration::from_secs(
            app.config().enroll.directory_pull_secs.max(1),
        ))
        .await;
    }
}

/// Pulls pages until the hub has nothing newer; keeps every entry that
/// verifies and stops at the first that does not.
pub async fn pull_directory(app: &App, base: &str, enrolment: &Enrolment) -> anyhow::Result<u64> {
    let mut pulled = 0;
    loop {
        let head = app.store.directory_head()?;
        let url = format!("{base}/v1/directory?after={}", head.len);
        let (status, body) = client::request(
            Method::GET,
            &url,
            None,
            Bytes::new(),
            CALL_TIMEOUT,
            directory::MAX_BUNDLE_BYTES,
        )
        .await?;
        if !status.is_success() {
            anyhow::bail!("{status}: {}", error_text(&body));
        }
        let verified = directory::verify_bundle(&body, &enrolment.hub_key, &head)?;
        if verified.is_empty() {
            return Ok(pulled);
        }
        pulled += verified.len() as u64;
        let own = revocation::pulled(&verified, &enrolment.grant.node_id);
        let store = app.store.clone();
        tokio::task::spawn_blocking(move || store.append_directory(&verified, head)).await??;
        app.changed();
        if let Some((raw, r)) = own {
            revocation::commit(app, raw, r).await?;
            return Ok(pulled);
        }
    }
}

/// Sends the identity log to the hub's mirror; returns the mirror's length.
pub async fn push_mirror(store: &Arc<StateStore>, base: &str) -> anyhow::Result<u64> {
    let store = store.clone();
    let (stored, hub_wireguard_key) = tokio::task::spawn_blocking(move || {
        anyhow::Ok((store.require_identity()?, store.hub_wireguard_key()?))
    })
    .await??;
    push_mirror_of(&stored, hub_wireguard_key.as_ref(), base).await
}

/// Pushes the log with the proof of our current WireGuard key over its tip
/// (`Gondwana-WireGuard-Proof`), which the hub requires when the log
/// rotates that key; `hub_wireguard_key` is the hub's current one.
pub async fn push_mirror_of(
    stored: &StoredIdentity,
    hub_wireguard_key: Option<&PublicKey>,
    base: &str,
) -> anyhow::Result<u64> {
    let bundle = export_bundle(&stored.log)?;
    let url = format!("{base}/v1/identity/mirror");
    let mut headers = Vec::new();
    if let Some(hub) = hub_wireguard_key {
        let proof = wg_proof::prove(&stored.wireguard, hub, &stored.state.tip)?;
        headers.push((WIREGUARD_PROOF_HEADER, to_hex(&proof)));
    }
    let (status, body) = client::request_with_headers(
        Method::POST,
        &url,
        Some("application/octet-stream"),
        &headers,
        Bytes::from(bundle),
        CALL_TIMEOUT,
        4096,
    )
    .await?;
    if !status.is_success() {
        anyhow::bail!("{status}: {}", error_text(&body));
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    let len = v["entries"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("mirror answer has no entries"))?;
    if len == stored.state.len && v["tip"].as_str() != Some(to_hex(&stored.state.tip).as_str()) {
        anyhow::bail!("the hub's mirror has the same length but another tip");
    }
    Ok(len)
}

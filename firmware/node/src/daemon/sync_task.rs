//! An enrolled node's contact with its hub: the thin driver of
//! `gondwana_core::node_sync` (pull the directory, push the identity
//! mirror, ask about a revocation). The machine decides; this file talks
//! HTTP, writes the store, sleeps and logs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gondwana_core::directory::{self, Head};
use gondwana_core::hash::to_hex;
use gondwana_core::identity_log::export_bundle;
use gondwana_core::keys::PublicKey;
use gondwana_core::node_enrol::Exchange;
use gondwana_core::node_sync::{self, Observation, Page, SyncMachine, SyncSettings};
use gondwana_core::wg_proof;
use http::Method;

use crate::api::client;
use crate::clock::now_unix;
use crate::config::Config;
use crate::daemon::app::App;
use crate::daemon::drive::{CALL_TIMEOUT, Clock, blocking, error_text, joined, refused, text};
use crate::daemon::revocation;
use crate::store::enrolment::Enrolment;
use crate::store::registry::WIREGUARD_PROOF_HEADER;
use crate::store::{StateStore, StoredIdentity};

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

/// Drives the sync machine until the node is revoked (the daemon keeps
/// running to say so).
pub async fn run(app: &App, enrolment: Enrolment) {
    if app.revocation().is_some() {
        return;
    }
    let clock = Clock::start();
    let mut machine = SyncMachine::new(
        enrolment.hub_key,
        enrolment.grant.node_id.clone(),
        crate::random::jitter_seed(),
    );
    loop {
        while let Some(action) = machine.poll_action() {
            // Revoked another way (the hub's push): nothing more to ask.
            if app.revocation().is_some() {
                machine.revoked();
                break;
            }
            sync_step(app, &enrolment, &mut machine, action, &clock).await;
        }
        while let Some(event) = machine.poll_event() {
            match event {
                node_sync::Event::PullFailed(e) => warn!(
                    "directory pull from {} failed: {e}",
                    hub_api_url(&app.config(), &enrolment)
                ),
                node_sync::Event::MirrorPushFailed(e) => warn!(
                    "identity mirror push to {} failed: {e}",
                    hub_api_url(&app.config(), &enrolment)
                ),
                node_sync::Event::AskFailed(e) => warn!(
                    "asking {} whether this node is revoked: {e}",
                    enrolment.hub_url
                ),
                node_sync::Event::Revoked => {}
            }
        }
        let Some(deadline) = machine.poll_timeout() else {
            return;
        };
        tokio::select! {
            () = clock.sleep_until(deadline) => machine.handle_timeout(clock.now()),
            () = app.pull_now.notified() => machine.handle_pull_now(clock.now()),
        }
    }
}

async fn sync_step(
    app: &App,
    enrolment: &Enrolment,
    machine: &mut SyncMachine,
    action: node_sync::Action,
    clock: &Clock,
) {
    use node_sync::Action;
    let url = hub_api_url(&app.config(), enrolment);
    match action {
        Action::FindStoredRevocation => {
            let revoked = stored_revocation(app, enrolment).await;
            machine.handle_stored_revocation(revoked, clock.now());
        }
        Action::Observe => machine.handle_observation(observe(app), clock.now()),
        Action::PullPage => {
            let (head, answer) = pull_page(app, &url).await;
            machine.handle_page(head, answer, clock.now());
        }
        Action::Append(page) => {
            let appended = append_page(app, *page).await;
            machine.handle_appended(appended, clock.now());
        }
        Action::PushMirror => {
            let pushed = push_mirror(&app.store, &url).await.map_err(text);
            if let Ok(len) = pushed {
                app.set_hub_mirror_len(len);
            }
            machine.handle_mirror_pushed(pushed, clock.now());
        }
        Action::AskRevocation => {
            let asked = revocation::ask_hub(app, enrolment).await.map_err(text);
            machine.handle_ask(asked, clock.now());
        }
    }
}

/// A revocation pulled before this version acted on pulled ones: the scan
/// reads the stored directory, so it runs off the runtime's thread.
async fn stored_revocation(app: &App, enrolment: &Enrolment) -> bool {
    let store = app.store.clone();
    let (hub_key, node_id) = (enrolment.hub_key, enrolment.grant.node_id.clone());
    let found = blocking(move || revocation::stored(&store, &hub_key, &node_id)).await;
    match joined(found) {
        Ok(Some((raw, r))) => match revocation::commit(app, raw, r).await {
            Ok(()) => true,
            Err(e) => {
                error!("storing this node's revocation: {e:#}");
                false
            }
        },
        Ok(None) => false,
        Err(e) => {
            warn!("looking for this node's revocation: {e}");
            false
        }
    }
}

fn observe(app: &App) -> Observation {
    let config = app.config();
    let mesh = app.dataplane_status();
    Observation {
        hub_reachable: config.enroll.hub_api_url.is_some()
            || matches!(mesh.state, "up" | "disabled"),
        hub_handshake_stale: revocation::hub_handshake_stale(&mesh, now_unix()),
        identity_len: app.identity().len,
        hub_mirror_len: app.hub_mirror_len.lock().map(|g| *g).unwrap_or(None),
        settings: SyncSettings {
            pull_interval: Duration::from_secs(config.enroll.directory_pull_secs),
            retry_initial: config.enroll.retry_initial(),
            retry_max: config.enroll.retry_max(),
        },
    }
}

/// One page after the stored head: the head it continues and the answer.
async fn pull_page(app: &App, base: &str) -> (Head, Exchange<Vec<u8>>) {
    let head = match app.store.directory_head() {
        Ok(head) => head,
        Err(e) => return (Head::default(), Exchange::Failed(text(e))),
    };
    let url = format!("{base}/v1/directory?after={}", head.len);
    let answer = match client::request(
        Method::GET,
        &url,
        None,
        Bytes::new(),
        CALL_TIMEOUT,
        directory::MAX_BUNDLE_BYTES,
    )
    .await
    {
        Ok((status, body)) if status.is_success() => Exchange::Answered(body.to_vec()),
        Ok((status, body)) => refused(status, &body),
        Err(e) => Exchange::Failed(text(e)),
    };
    (head, answer)
}

/// Appends a verified page; `true` once the node's own revocation in it is
/// stored.
async fn append_page(app: &App, page: Page) -> Result<bool, String> {
    let Page {
        entries,
        from,
        revocation: own,
    } = page;
    let store = app.store.clone();
    joined(blocking(move || store.append_directory(&entries, from)).await)?;
    app.changed();
    app.directory_grew.notify_one();
    match own {
        Some((raw, r)) => revocation::commit(app, raw, r)
            .await
            .map(|()| true)
            .map_err(text),
        None => Ok(false),
    }
}

/// Sends the identity log to the hub's mirror; returns the mirror's length.
pub async fn push_mirror(store: &Arc<StateStore>, base: &str) -> anyhow::Result<u64> {
    let store = store.clone();
    let (stored, hub_wireguard_key) =
        blocking(move || anyhow::Ok((store.require_identity()?, store.hub_wireguard_key()?)))
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

//! The node's enrolment and directory replication: thin drivers of the
//! sans-IO machines in `gondwana_core::node_enrol` (unenrolled: look for an
//! instruction, try, back off, forever while the API keeps serving) and
//! `gondwana_core::node_sync` (enrolled: pull the directory, push the
//! identity mirror, ask about a revocation). The machines decide; this file
//! reads sources, talks HTTP, writes the store, sleeps and reports.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gondwana_core::directory::{self, Head};
use gondwana_core::enrol;
use gondwana_core::hash::to_hex;
use gondwana_core::identity_log::export_bundle;
use gondwana_core::keys::PublicKey;
use gondwana_core::node_enrol::{
    self, EnrolMachine, Exchange, GrantAnswer, Instruction, Lookup, NonceAnswer, Progress,
};
use gondwana_core::node_sync::{self, Observation, Page, SyncMachine, SyncSettings};
use gondwana_core::time::Millis;
use gondwana_core::wg_proof;
use http::{Method, StatusCode};

use crate::admin::ops::now_unix;
use crate::api::client;
use crate::boot::enroll_source::{self, EnrollPlan};
use crate::config::{Config, EnrollConfig};
use crate::daemon::app::{App, EnrolStatus};
use crate::daemon::revocation;
use crate::net::host_addrs::host_subnets;
use crate::store::enrolment::{Enrolment, save_enrolment};
use crate::store::registry::WIREGUARD_PROOF_HEADER;
use crate::store::{StateStore, StoredIdentity};

const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The machines' clock: [`Millis`] since the driver started.
struct Clock(tokio::time::Instant);

impl Clock {
    fn start() -> Clock {
        Clock(tokio::time::Instant::now())
    }

    fn now(&self) -> Millis {
        Millis::from_elapsed(self.0.elapsed())
    }

    async fn sleep_until(&self, deadline: Millis) {
        tokio::time::sleep_until(self.0 + deadline.since_epoch()).await
    }
}

/// An error as the logs and status show it (with its causes).
fn text(e: impl Into<anyhow::Error>) -> String {
    format!("{:#}", e.into())
}

/// The outcome of a blocking store call run off the runtime's thread.
fn joined<T, E: Into<anyhow::Error>>(
    r: Result<Result<T, E>, tokio::task::JoinError>,
) -> Result<T, String> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(text(e)),
        Err(e) => Err(text(e)),
    }
}

fn refused<T>(status: StatusCode, body: &[u8]) -> Exchange<T> {
    Exchange::Refused {
        status: status.to_string(),
        detail: error_text(body),
    }
}

/// One enrolment exchange; on success the grant is durably stored.
pub async fn enrol_once(
    store: &Arc<StateStore>,
    config: &Config,
    plan: &EnrollPlan,
) -> anyhow::Result<Enrolment> {
    let clock = Clock::start();
    let mut machine = EnrolMachine::once(instruction(plan));
    let mut identity = None;
    while let Some(action) = machine.poll_action() {
        attempt_step(
            &mut machine,
            action,
            store,
            config,
            plan,
            &mut identity,
            &clock,
        )
        .await;
    }
    while let Some(event) = machine.poll_event() {
        if let node_enrol::Event::GaveUp { error } = event {
            anyhow::bail!(error);
        }
    }
    if !machine.is_enrolled() {
        anyhow::bail!("the enrolment attempt ended without an outcome");
    }
    store
        .enrolment()?
        .ok_or_else(|| anyhow::anyhow!("enrolment vanished after commit"))
}

fn instruction(plan: &EnrollPlan) -> Instruction {
    Instruction {
        hub_url: plan.hub_url.clone(),
        hub_key: plan.hub_key,
        token_key: plan.token.public_key(),
        boxname: plan.boxname.clone(),
        source: plan.source.clone(),
    }
}

/// Executes one action of an attempt (identity, nonce, submission, store)
/// and feeds its outcome back. `identity` keeps the secret keys between
/// reading them and signing, out of the machine.
async fn attempt_step(
    machine: &mut EnrolMachine,
    action: node_enrol::Action,
    store: &Arc<StateStore>,
    config: &Config,
    plan: &EnrollPlan,
    identity: &mut Option<StoredIdentity>,
    clock: &Clock,
) {
    use node_enrol::Action;
    match action {
        Action::ReadIdentity => {
            let s = store.clone();
            let read = joined(tokio::task::spawn_blocking(move || s.require_identity()).await);
            let state = read.map(|stored| {
                let state = stored.state.clone();
                *identity = Some(stored);
                state
            });
            machine.handle_identity(state, clock.now());
        }
        Action::RequestNonce { hub_url } => {
            let answer = request_nonce(&hub_url).await;
            machine.handle_nonce(answer, clock.now());
        }
        Action::SendEnrolment {
            hub_url,
            request,
            hub_wireguard_key,
        } => {
            let answer = match identity {
                Some(id) => {
                    send_enrolment(config, id, plan, &hub_url, &request, &hub_wireguard_key).await
                }
                None => Exchange::Failed("no identity was read for this attempt".into()),
            };
            machine.handle_grant(answer, clock.now());
        }
        Action::Store(accepted) => {
            let s = store.clone();
            let saved = tokio::task::spawn_blocking(move || {
                save_enrolment(
                    &s,
                    &accepted.grant_raw,
                    &accepted.grant,
                    &accepted.hub_url,
                    &accepted.hub_key,
                    &accepted.first_page,
                    now_unix(),
                )
            })
            .await;
            machine.handle_stored(joined(saved), clock.now());
        }
        // The daemon's round, not an attempt's: see `enrol`.
        Action::CheckEnrolled | Action::Look(_) => {}
    }
}

async fn request_nonce(hub_url: &str) -> Exchange<NonceAnswer> {
    let url = format!("{hub_url}/v1/enroll/nonce");
    let (status, body) =
        match client::request(Method::GET, &url, None, Bytes::new(), CALL_TIMEOUT, 4096).await {
            Ok(answer) => answer,
            Err(e) => return Exchange::Failed(text(e)),
        };
    if !status.is_success() {
        return refused(status, &body);
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => {
            let field = |name: &str| v[name].as_str().map(str::to_string);
            Exchange::Answered(NonceAnswer {
                nonce: field("nonce"),
                hub_key: field("hub_key"),
                hub_wireguard_key: field("hub_wireguard_key"),
            })
        }
        Err(e) => Exchange::Failed(text(e)),
    }
}

async fn send_enrolment(
    config: &Config,
    identity: &StoredIdentity,
    plan: &EnrollPlan,
    hub_url: &str,
    request: &enrol::EnrolRequest,
    hub_wireguard_key: &PublicKey,
) -> Exchange<GrantAnswer> {
    let submission = match enrol::build_submission(
        &identity.signing,
        &identity.wireguard,
        hub_wireguard_key,
        &identity.log,
        request,
        &plan.token,
    ) {
        Ok(s) => s,
        Err(e) => return Exchange::Failed(text(e)),
    };
    let url = format!("{hub_url}/v1/enroll");
    let (status, body) = match client::request(
        Method::POST,
        &url,
        Some("application/octet-stream"),
        Bytes::from(submission),
        CALL_TIMEOUT,
        enrol::MAX_RESPONSE_BYTES,
    )
    .await
    {
        Ok(answer) => answer,
        Err(e) => return Exchange::Failed(text(e)),
    };
    if !status.is_success() {
        return refused(status, &body);
    }
    // The collision guard's facts; the machine decides.
    match host_subnets(&config.mesh.interface) {
        Ok(host) => Exchange::Answered(GrantAnswer {
            body: body.to_vec(),
            host_subnets: host,
            reserved_subnets: config.mesh.reserved_subnets.clone(),
        }),
        Err(e) => Exchange::Failed(text(e)),
    }
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

/// The node's background task. Never returns while the daemon runs.
pub async fn run(app: Arc<App>) {
    loop {
        enrol(&app).await;
        if let Ok(Some(enrolment)) = app.store.enrolment() {
            app.set_status(EnrolStatus::Enrolled);
            sync_loop(&app, enrolment).await;
            return;
        }
    }
}

/// Drives the enrolment machine until the node is enrolled (by it, or by
/// `gondwana enroll` through the admin API meanwhile).
async fn enrol(app: &App) {
    let clock = Clock::start();
    let mut machine = EnrolMachine::new(crate::random::jitter_seed());
    let mut plan: Option<EnrollPlan> = None;
    let mut identity = None;
    loop {
        while let Some(action) = machine.poll_action() {
            let config = app.config();
            match action {
                node_enrol::Action::CheckEnrolled => {
                    let enrolled = matches!(app.store.enrolment(), Ok(Some(_)));
                    machine.handle_check(enrolled, enrol_settings(&config.enroll), clock.now());
                }
                node_enrol::Action::Look(source) => {
                    // Reading block devices and mounting a stick can block
                    // for long on a failing USB device: off the runtime's
                    // only thread.
                    let found = tokio::task::spawn_blocking(move || {
                        enroll_source::look(&config.enroll, source)
                    })
                    .await
                    .unwrap_or(Ok(None));
                    let lookup = match found {
                        Ok(None) => Lookup::Absent,
                        Ok(Some(found)) => {
                            let i = instruction(&found);
                            plan = Some(found);
                            Lookup::Found(i)
                        }
                        Err(e) => Lookup::Invalid(e.to_string()),
                    };
                    machine.handle_lookup(lookup, clock.now());
                }
                action => {
                    if let Some(plan) = &plan {
                        attempt_step(
                            &mut machine,
                            action,
                            &app.store,
                            &config,
                            plan,
                            &mut identity,
                            &clock,
                        )
                        .await;
                    }
                }
            }
        }
        while let Some(event) = machine.poll_event() {
            report(app, event);
        }
        if machine.is_finished() {
            return;
        }
        let Some(deadline) = machine.poll_timeout() else {
            // Not reachable by the machine's design; start over slowly
            // rather than spin.
            tokio::time::sleep(node_enrol::LOOK_AGAIN).await;
            return;
        };
        clock.sleep_until(deadline).await;
        machine.handle_timeout(clock.now());
    }
}

fn enrol_settings(config: &EnrollConfig) -> node_enrol::Settings {
    node_enrol::Settings {
        search_paths: config.search_paths.len(),
        retry_initial: config.retry_initial(),
        retry_max: config.retry_max(),
    }
}

fn report(app: &App, event: node_enrol::Event) {
    use node_enrol::Event;
    match event {
        Event::Status(progress) => app.set_status(match progress {
            Progress::Unenrolled => EnrolStatus::Unenrolled,
            Progress::Enrolling {
                attempts,
                last_error,
                source,
            } => EnrolStatus::Enrolling {
                attempts,
                last_error,
                source,
            },
            Progress::Enrolled => EnrolStatus::Enrolled,
        }),
        Event::AttemptFailed { attempt, error } => {
            eprintln!("gondwana: enrolment attempt {attempt} failed: {error}");
            app.metrics.inc(
                "gondwana_enrolment_failures_total",
                &[("reason", "attempt_failed")],
            );
        }
        Event::BadConfig { .. } => app.metrics.inc(
            "gondwana_enrolment_failures_total",
            &[("reason", "bad_config")],
        ),
        Event::Enrolled {
            mesh_ip,
            boxname,
            source,
        } => {
            app.set_hub_mirror_len(app.identity().len);
            eprintln!("gondwana: enrolled as {mesh_ip} ({boxname}) via {source}");
            app.metrics.inc("gondwana_enrolments_total", &[]);
        }
        Event::GaveUp { .. } => {}
    }
}

/// Drives the sync machine until the node is revoked (the daemon keeps
/// running to say so).
async fn sync_loop(app: &App, enrolment: Enrolment) {
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
                node_sync::Event::PullFailed(e) => eprintln!(
                    "gondwana: directory pull from {} failed: {e}",
                    hub_api_url(&app.config(), &enrolment)
                ),
                node_sync::Event::MirrorPushFailed(e) => eprintln!(
                    "gondwana: identity mirror push to {} failed: {e}",
                    hub_api_url(&app.config(), &enrolment)
                ),
                node_sync::Event::AskFailed(e) => eprintln!(
                    "gondwana: asking {} whether this node is revoked: {e}",
                    enrolment.hub_url
                ),
                node_sync::Event::Revoked => {}
            }
        }
        let Some(deadline) = machine.poll_timeout() else {
            return;
        };
        clock.sleep_until(deadline).await;
        machine.handle_timeout(clock.now());
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
    let found = tokio::task::spawn_blocking(move || {
        revocation::stored(&store, &hub_key, &node_id)
    })
    .await;
    match joined(found) {
        Ok(Some((raw, r))) => match revocation::commit(app, raw, r).await {
            Ok(()) => true,
            Err(e) => {
                eprintln!("gondwana: storing this node's revocation: {e:#}");
                false
            }
        },
        Ok(None) => false,
        Err(e) => {
            eprintln!("gondwana: looking for this node's revocation: {e}");
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
    joined(tokio::task::spawn_blocking(move || store.append_directory(&entries, from)).await)?;
    app.changed();
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

//! The node's enrolment: the thin driver of `gondwana_core::node_enrol`
//! (unenrolled: look for an instruction, try, back off, forever while the
//! API keeps serving), then of `sync_task` once enrolled. The machine
//! decides; this file reads sources, talks HTTP, writes the store, sleeps
//! and reports.

use std::sync::Arc;

use bytes::Bytes;
use gondwana_core::enrol;
use gondwana_core::keys::PublicKey;
use gondwana_core::node_enrol::{
    self, EnrolMachine, Exchange, GrantAnswer, Instruction, Lookup, NonceAnswer,
};
use http::Method;

use crate::api::client;
use crate::boot::enroll_source::{self, EnrollPlan};
use crate::clock::now_unix;
use crate::config::{Config, EnrollConfig};
use crate::daemon::app::{App, EnrolStatus};
use crate::daemon::drive::{CALL_TIMEOUT, Clock, blocking, joined, refused, text};
use crate::daemon::sync_task;
use crate::net::host_addrs::host_subnets;
use crate::store::enrolment::{Enrolment, save_enrolment};
use crate::store::{StateStore, StoredIdentity};

// Where `gondwana enroll` and `identity rotate` have always found them.
pub use crate::daemon::sync_task::{hub_api_url, push_mirror_of};

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
            let read = joined(blocking(move || s.require_identity()).await);
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
            let saved = blocking(move || {
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

/// The node's background task. Never returns while the daemon runs.
pub async fn run(app: Arc<App>) {
    loop {
        enrol(&app).await;
        if let Ok(Some(enrolment)) = app.store.enrolment() {
            app.set_status(EnrolStatus::Enrolled);
            sync_task::run(&app, enrolment).await;
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
                    let found = blocking(move || enroll_source::look(&config.enroll, source))
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
        Event::Status(progress) => app.set_status(progress),
        Event::AttemptFailed { attempt, error } => {
            warn!("enrolment attempt {attempt} failed: {error}");
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
            info!("enrolled as {mesh_ip} ({boxname}) via {source}");
            app.metrics.inc("gondwana_enrolments_total", &[]);
        }
        Event::GaveUp { .. } => {}
    }
}

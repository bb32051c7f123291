//! A provider's side of publishing (docs/services.md): `service offer` and
//! `service withdraw` through the admin socket sign the record, send it to
//! the hub at once and say whether the hub took it; a record the hub could
//! not be reached for (or answered with a fault or `429`) is queued on the
//! state partition and sent again by [`run`] until the hub answers — an
//! offer made while the hub is down is published when it comes back, and
//! survives a restart of this box. A refusal is final: nothing is queued.
//! On the hub itself the record is checked and appended directly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;

use crate::api::client;
use crate::clock::now_unix;
use crate::daemon::app::App;
use crate::daemon::drive::{blocking, error_text, joined, text};
use crate::daemon::offers_hub;
use crate::daemon::sync_task::hub_api_url;
use crate::service::offers::{self, Outcome, Signed};
use crate::service::{self, Request, ServiceError};

/// A call to the hub from `service offer`: the operator waits for it.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Retry delays for the queue: from 2 s, doubling, at most this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the queue is looked at with nothing to wake it.
const IDLE: Duration = Duration::from_secs(30);

/// What the hub said to one publication.
enum Sent {
    Taken {
        changed: bool,
    },
    /// The hub refused it: its reason and detail. Sending it again would
    /// be refused again.
    Refused(String),
    /// No answer, a fault, or too many requests: worth trying again.
    Unreachable(String),
}

/// `service offer` / `service withdraw` on a running daemon.
pub async fn publish_request(app: &Arc<App>, request: Request) -> service::Result<Value> {
    let (store, config) = (app.store.clone(), app.config());
    let signed = blocking(move || match &request {
        Request::ServiceOffer(spec) => offers::sign_offer(&store, &config, spec),
        Request::ServiceWithdraw(w) => offers::sign_withdrawal(&store, &config, &w.name),
        _ => Err(ServiceError::Fault(anyhow::anyhow!("not a publication"))),
    })
    .await
    .map_err(pool_fault)??;
    let outcome = match send(app, &signed.bytes).await {
        Sent::Taken { changed } => Outcome::Published { changed },
        Sent::Refused(why) => {
            return Err(ServiceError::Upstream(format!(
                "the hub refused the {} of {}: {why}; nothing was published or queued",
                kind(&signed),
                signed.name
            )));
        }
        Sent::Unreachable(why) => Outcome::Queued(format!(
            "{why}: the {} of {} is queued on this box and sent again until the hub takes it \
             (gondwana service list shows it as queued)",
            kind(&signed),
            signed.name
        )),
    };
    let queued = matches!(outcome, Outcome::Queued(_));
    let store = app.store.clone();
    let answer = blocking(move || offers::record(&store, &signed, &outcome))
        .await
        .map_err(pool_fault)??;
    if queued {
        app.offers.kick.notify_one();
    } else {
        // This box's own list reads its directory copy: pull it now
        // (the sync machine allows one early pull per 10 s).
        app.pull_now.notify_one();
    }
    app.changed();
    Ok(answer)
}

fn pool_fault(e: tokio::task::JoinError) -> ServiceError {
    ServiceError::Fault(anyhow::anyhow!("offer task: {e}"))
}

fn kind(signed: &Signed) -> &'static str {
    match signed.publication {
        gondwana_core::lending::Publication::Offer(_) => "offer",
        gondwana_core::lending::Publication::Withdrawal(_) => "withdrawal",
    }
}

/// Sends one publication: to the hub over its API, or on the hub to itself.
async fn send(app: &Arc<App>, bytes: &[u8]) -> Sent {
    if app.hub.is_some() {
        return match offers_hub::publish(app, bytes, None).await {
            Ok(v) => Sent::Taken {
                changed: v["changed"] != false,
            },
            Err(e) if e.status.is_client_error() && e.status != StatusCode::TOO_MANY_REQUESTS => {
                Sent::Refused(format!("{}: {}", e.error, e.detail))
            }
            Err(e) => Sent::Unreachable(format!("{}: {}", e.error, e.detail)),
        };
    }
    let enrolment = match app.store.enrolment() {
        Ok(Some(e)) => e,
        Ok(None) => return Sent::Unreachable("this box is not enrolled yet".into()),
        Err(e) => return Sent::Unreachable(text(e)),
    };
    let url = format!(
        "{}/v1/services/publish",
        hub_api_url(&app.config(), &enrolment)
    );
    let answer = client::request(
        Method::POST,
        &url,
        Some(crate::api::CONTENT_TYPE_OCTETS),
        Bytes::copy_from_slice(bytes),
        CALL_TIMEOUT,
        4096,
    )
    .await;
    match answer {
        Ok((status, body)) if status.is_success() => Sent::Taken {
            changed: serde_json::from_slice::<Value>(&body)
                .map(|v| v["changed"] != false)
                .unwrap_or(true),
        },
        Ok((status, body))
            if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS =>
        {
            Sent::Refused(error_text(&body))
        }
        Ok((status, body)) => Sent::Unreachable(format!(
            "the hub at {url} answered {status}: {}",
            error_text(&body)
        )),
        Err(e) => Sent::Unreachable(format!("the hub is unreachable ({url}: {})", text(e))),
    }
}

/// The queue: never returns while the daemon runs.
pub async fn run(app: Arc<App>) {
    let mut delay = Duration::from_secs(2);
    let mut wait = Duration::ZERO;
    loop {
        let kicked = app.offers.kick.notified();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = kicked => {}
        }
        if app.revocation().is_some() {
            return;
        }
        let store = app.store.clone();
        let queued = match joined(blocking(move || store.offer_outbox()).await) {
            Ok(q) => q,
            Err(e) => {
                warn!("reading the offer queue: {e}");
                wait = IDLE;
                continue;
            }
        };
        let mut failed = false;
        for (name, bytes) in queued {
            let outcome = match send(&app, &bytes).await {
                Sent::Taken { .. } => {
                    info!("the hub took the queued publication of {name}");
                    app.pull_now.notify_one();
                    "published".to_string()
                }
                Sent::Refused(why) => {
                    warn!("the hub refused the queued publication of {name}, dropped: {why}");
                    format!("refused: {why}")
                }
                Sent::Unreachable(why) => {
                    debug!("queued publication of {name} not sent: {why}");
                    failed = true;
                    continue;
                }
            };
            let store = app.store.clone();
            let settled =
                blocking(move || store.settle_queued_offer(&name, &bytes, &outcome, now_unix()))
                    .await;
            if let Err(e) = joined(settled) {
                warn!("updating the offer queue: {e}");
            }
            app.changed();
        }
        if failed {
            wait = delay;
            delay = (delay * 2).min(MAX_BACKOFF);
        } else {
            delay = Duration::from_secs(2);
            wait = IDLE;
        }
    }
}

//! The provider's driver of core's `ProviderBook`: requests from the mesh,
//! the operator's approvals and denials, directory changes and expiry go
//! into the book; its outcome comes out as grant changes, audit records
//! and the saved book, all in **one** store transaction, committed before
//! the signed decision is sent. A commit that fails puts the book back as
//! it was and deletes the kernel elements it added: nothing acknowledged
//! is lost, nothing lost was acknowledged.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use gondwana_core::directory::View;
use gondwana_core::lending::{
    self, GrantChange, Outcome, Protocol, ProviderBook, ProviderSettings, Refusal, Verdict,
};
use gondwana_core::time::Millis;
use http::StatusCode;

use crate::api::ApiError;
use crate::clock::now_unix;
use crate::daemon::app::App;
use crate::service::grants::{self as grants, GrantChange as Change};
use crate::store::grants::Origin;
use crate::store::lending::{KEY_PROVIDER, put_book};
use crate::store::{StateStore, append_audit};

/// How often the provider looks at the directory head and the deadlines.
const TICK: Duration = Duration::from_secs(1);

/// Loads the book from the store if it is not loaded yet (blocking).
pub fn ensure_loaded(app: &App) -> Result<(), Fault> {
    with_book(app, |_, _| Ok((Outcome::default(), ()))).map(|_| ())
}

/// A failure of this box (store, kernel), as opposed to a refusal.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fault(String);

fn fault(e: impl std::fmt::Display) -> Fault {
    Fault(e.to_string())
}

/// Runs `f` on the loaded book; when it returns an outcome, applies and
/// commits it, or puts the book back as it was.
pub fn with_book<T>(
    app: &App,
    f: impl FnOnce(&mut ProviderBook, Millis) -> Result<(Outcome, T), Refusal>,
) -> Result<Result<T, Refusal>, Fault> {
    let state = &app.lending.provider;
    let mut guard = state.lock();
    let now = state.now();
    if guard.is_none() {
        *guard = Some(load(app, now)?);
    }
    let Some(book) = guard.as_mut() else {
        return Err(fault("the provider's book did not load"));
    };
    let before = book.clone();
    let (outcome, value) = match f(book, now) {
        Ok(v) => v,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let Err(e) = commit(app, book, &outcome, now) {
        *book = before;
        return Err(e);
    }
    Ok(Ok(value))
}

/// The stored book (with the grants its active subscriptions hold opened
/// again: a reboot empties the kernel's set), or a new one.
fn load(app: &App, now: Millis) -> Result<ProviderBook, Fault> {
    let me = app.identity().node_id;
    let settings = ProviderSettings::default();
    let Some(bytes) = app.store.lending_book(KEY_PROVIDER).map_err(fault)? else {
        return Ok(ProviderBook::new(me, settings));
    };
    let (book, reopen) = ProviderBook::restore(me, settings, &bytes, now)
        .map_err(|e| fault(format!("the stored provider book: {e}")))?;
    commit(app, &book, &reopen, now)?;
    Ok(book)
}

/// Applies `out` and saves `book`, in one transaction. Nothing to do for a
/// duplicate (no grant change, no audit record).
fn commit(app: &App, book: &ProviderBook, out: &Outcome, now: Millis) -> Result<(), Fault> {
    if out.grants.is_empty() && out.audit.is_empty() {
        return Ok(());
    }
    let fw = app.grants.require().map_err(fault)?;
    let store: &StateStore = &app.store;
    let unix = now_unix();
    let txn = store.write().map_err(fault)?;
    let mut added = Vec::new();
    for change in &out.grants {
        match change {
            // A UDP grant lives in the kernel and in this book only (the
            // `grants` table is keyed by address and port, TCP's): the
            // book reopens it at load, its audit is `lending.grant-add`.
            GrantChange::Add {
                grant,
                timeout_secs,
                ..
            } if grant.protocol == Protocol::Udp => {
                let g = fw.check(grant.ip, grant.port.into()).map_err(fault)?;
                fw.kernel_add(Protocol::Udp, &g, Some(*timeout_secs))
                    .map_err(fault)?;
                added.push((Protocol::Udp, g));
            }
            GrantChange::Add {
                consumer,
                name,
                grant,
                timeout_secs,
            } => {
                let origin = Origin::Subscription {
                    service: name.to_string(),
                    consumer: consumer.to_string(),
                };
                let change = Change {
                    ip: grant.ip,
                    port: grant.port.into(),
                    timeout_secs: Some(*timeout_secs),
                    origin: &origin,
                    by: "subscription",
                };
                let (g, _) = grants::add_grant_in(fw, &txn, &change, unix).map_err(fault)?;
                added.push((Protocol::Tcp, g));
            }
            GrantChange::Remove { grant, .. } if grant.protocol == Protocol::Udp => {
                let g = fw.check(grant.ip, grant.port.into()).map_err(fault)?;
                fw.kernel_delete(Protocol::Udp, &g).map_err(fault)?;
            }
            GrantChange::Remove { grant, .. } => {
                grants::remove_grant_in(
                    fw,
                    &txn,
                    grant.ip,
                    grant.port.into(),
                    unix,
                    "subscription",
                )
                .map_err(fault)?;
            }
        }
    }
    for event in &out.audit {
        append_audit(&txn, event.kind, &event.fields, unix).map_err(fault)?;
    }
    put_book(&txn, KEY_PROVIDER, &book.save(now)).map_err(fault)?;
    if let Err(e) = store.commit(txn) {
        for (proto, g) in &added {
            let _ = fw.kernel_delete(*proto, g);
        }
        return Err(fault(e));
    }
    app.changed();
    Ok(())
}

/// A verified-size request from `peer`: the book decides, the outcome is
/// committed, the decision signed.
pub async fn decide(
    app: &Arc<App>,
    body: bytes::Bytes,
    peer: IpAddr,
    view: Arc<View>,
) -> Result<Vec<u8>, ApiError> {
    let IpAddr::V4(from) = peer else {
        return Err(refused(
            app,
            &Refusal::NotFromConsumer {
                from: Ipv4Addr::UNSPECIFIED,
                own: Ipv4Addr::UNSPECIFIED,
            },
        ));
    };
    let app2 = app.clone();
    let result = crate::daemon::drive::blocking(move || {
        let signing = app2.store.require_identity().map_err(fault)?.signing;
        let decided = with_book(&app2, |book, now| {
            let out = book.handle(&body, from, &view, now)?;
            let decision = out.decision.clone();
            Ok((out, decision))
        })?;
        Ok::<_, Fault>(match decided {
            Ok(Some(decision)) => {
                let sealed = lending::seal_decision(&decision, &signing).map_err(fault)?;
                Ok((decision, sealed))
            }
            Ok(None) => return Err(fault("the book answered without a decision")),
            Err(refusal) => Err(refusal),
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    match result {
        Ok(Ok((decision, sealed))) => {
            app.metrics.inc(
                super::REQUESTS_METRIC,
                &[
                    ("service", decision.name.as_str()),
                    ("verdict", verdict_label(&decision.verdict)),
                ],
            );
            Ok(sealed)
        }
        Ok(Err(refusal)) => Err(refused(app, &refusal)),
        Err(e) => {
            error!("lending request: {e}");
            Err(ApiError::internal(
                "the request could not be recorded; see the provider's log",
            ))
        }
    }
}

/// A refusal of the book as the consumer sees it, counted.
fn refused(app: &App, refusal: &Refusal) -> ApiError {
    let code = refusal.code();
    app.metrics.inc(super::REFUSALS_METRIC, &[("reason", code)]);
    ApiError::new(refusal_status(refusal), code, refusal.to_string())
}

pub fn refusal_status(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
        Refusal::NoSuchOffer | Refusal::NoSuchSubscription => StatusCode::NOT_FOUND,
        Refusal::OfferChanged { .. }
        | Refusal::StaleCounter { .. }
        | Refusal::NotPending
        | Refusal::Full(_)
        | Refusal::TooManyPending(_) => StatusCode::CONFLICT,
        _ => StatusCode::FORBIDDEN,
    }
}

pub fn verdict_label(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Pending => "pending",
        Verdict::Accepted { .. } => "accepted",
        Verdict::Denied { .. } => "denied",
        Verdict::Ended => "ended",
    }
}

/// The provider's loop: a new directory view ends what it no longer
/// allows (revocation, withdrawal); deadlines end what expired.
pub async fn run(app: Arc<App>) {
    let mut last_head = None;
    loop {
        tokio::time::sleep(TICK).await;
        let hub_key = match app.store.enrolment() {
            Ok(Some(e)) => e.hub_key,
            _ => continue,
        };
        if app.grants.firewall.is_none() {
            continue;
        }
        let Ok((view, _)) = app.lending.views.get(&app.store, hub_key).await else {
            continue;
        };
        let head = app.store.directory_head().ok();
        let moved = head != last_head;
        let app2 = app.clone();
        let done = crate::daemon::drive::blocking(move || {
            with_book(&app2, |book, now| {
                let mut out = if moved {
                    book.on_view(&view)
                } else {
                    Outcome::default()
                };
                let expired = book.tick(now);
                out.grants.extend(expired.grants);
                out.audit.extend(expired.audit);
                Ok((out, ()))
            })
        })
        .await;
        match done {
            Ok(Ok(_)) => last_head = head,
            Ok(Err(e)) => error!("lending: {e}"),
            Err(e) => error!("lending: {e}"),
        }
    }
}

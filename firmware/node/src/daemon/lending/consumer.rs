//! The consumer's driver of core's `ConsumerBook`: `service subscribe` and
//! `unsubscribe` change what the book wants; the loop sends what it says
//! is due (first request, polls of a pending one, renewals at half the
//! granted time, unsubscribes) straight to the provider's mesh address,
//! verifies each decision against the provider's directory key and feeds
//! it back. The book is saved before a request leaves (a restart never
//! reuses a counter) and after each answer.

use std::sync::Arc;
use std::time::Duration;

use gondwana_core::NodeId;
use gondwana_core::directory::View;
use gondwana_core::hash::blake2b256;
use gondwana_core::lending::consumer::{ConsumerInfo, Failure, Outgoing, Status};
use gondwana_core::lending::{self, ConsumerBook, ConsumerSettings, ServiceName};
use gondwana_core::time::Millis;
use serde_json::{Value, json};

use super::transport::{self, SendError};
use crate::daemon::app::App;
use crate::daemon::lending_state::consumer_row;
use crate::service::request::{DEFAULT_SUBSCRIPTION_SECS, Subscribe};
use crate::service::{Result, ServiceError};
use crate::store::lending::{KEY_CONSUMER, put_book};

/// The longest the loop sleeps: a new directory (an offer appearing, a
/// provider's new address) is looked at this often.
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// How long `service subscribe|unsubscribe` waits for the first answer.
const FIRST_ANSWER: Duration = Duration::from_secs(10);

/// Runs `f` on the book (loaded from the store at first use) and saves it.
fn with_book<T>(
    app: &App,
    f: impl FnOnce(&mut ConsumerBook, Millis) -> T,
) -> std::result::Result<T, String> {
    let state = &app.lending.consumer;
    let mut guard = state.lock();
    let now = state.now();
    if guard.is_none() {
        *guard = Some(load(app, now)?);
    }
    let Some(book) = guard.as_mut() else {
        return Err("the consumer's book did not load".into());
    };
    let value = f(book, now);
    let txn = app.store.write().map_err(|e| e.to_string())?;
    put_book(&txn, KEY_CONSUMER, &book.save(now)).map_err(|e| e.to_string())?;
    app.store.commit(txn).map_err(|e| e.to_string())?;
    Ok(value)
}

fn load(app: &App, now: Millis) -> std::result::Result<ConsumerBook, String> {
    let me = app.identity().node_id;
    let seed = crate::random::jitter_seed();
    let settings = ConsumerSettings::default();
    match app
        .store
        .lending_book(KEY_CONSUMER)
        .map_err(|e| e.to_string())?
    {
        None => Ok(ConsumerBook::new(me, settings, seed)),
        Some(bytes) => ConsumerBook::restore(me, settings, seed, &bytes, now)
            .map_err(|e| format!("the stored consumer book: {e}")),
    }
}

/// The loop: send what is due, feed the answers back, sleep until the
/// book's next wake (or a `subscribe`).
pub async fn run(app: Arc<App>) {
    loop {
        let next = step(&app).await;
        let state = &app.lending.consumer;
        let sleep = next
            .map(|t| Duration::from_millis(t.0.saturating_sub(state.now().0)))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = state.wake.notified() => {}
        }
    }
}

/// One pass; the book's next wake.
async fn step(app: &Arc<App>) -> Option<Millis> {
    let hub_key = app.store.enrolment().ok().flatten()?.hub_key;
    let (view, _) = app.lending.views.get(&app.store, hub_key).await.ok()?;
    let app2 = app.clone();
    let view2 = view.clone();
    let due = crate::daemon::drive::blocking(move || {
        with_book(&app2, |book, now| {
            book.tick(now);
            book.poll(&view2, now)
        })
    })
    .await;
    let due = match due {
        Ok(Ok(due)) => due,
        Ok(Err(e)) => {
            error!("lending (consumer): {e}");
            return None;
        }
        Err(e) => {
            error!("lending (consumer): {e}");
            return None;
        }
    };
    let signing = app.store.require_identity().ok()?.signing;
    let port = app.config().mesh.api_port;
    let sent_any = !due.is_empty();
    for out in due {
        let answer = exchange(&out, &signing, port, &view).await;
        let app2 = app.clone();
        let fed = crate::daemon::drive::blocking(move || {
            with_book(&app2, |book, now| match answer {
                Ok((decision, sent)) => book.on_decision(&decision, &sent, now),
                Err(failure) => book.on_failure(&out.provider, &out.name, &failure, now),
            })
        })
        .await;
        match fed {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!("lending (consumer): {e}"),
            Ok(Err(e)) => error!("lending (consumer): {e}"),
            Err(e) => error!("lending (consumer): {e}"),
        }
        app.lending.consumer.answered.notify_waiters();
    }
    if sent_any {
        app.changed();
    }
    let app2 = app.clone();
    crate::daemon::drive::blocking(move || with_book(&app2, |book, _| book.next_wake()))
        .await
        .ok()?
        .ok()?
}

/// Seals and sends one request; the provider's verified decision and the
/// hash of what was sent, or the failure the book is told.
async fn exchange(
    out: &Outgoing,
    signing: &gondwana_core::keys::SigningSecret,
    port: u16,
    view: &View,
) -> std::result::Result<(lending::Decision, gondwana_core::hash::Hash32), Failure> {
    let refused = |code: &str| Failure::Refused {
        code: code.into(),
        last_counter: None,
    };
    let sealed = lending::seal_request(&out.request, signing).map_err(|e| {
        error!("lending: sealing a request for {}: {e}", out.name);
        refused("malformed")
    })?;
    let sent = blake2b256(&sealed);
    let answer = transport::send(out.provider_ip, port, sealed)
        .await
        .map_err(|e| {
            info!("lending: {}@{}: {e}", out.name, out.provider);
            match e {
                SendError::Unreachable(_) => Failure::Unreachable,
                SendError::Refused { code, .. } => refused(&code),
            }
        })?;
    let key = view
        .signing_key(&out.provider)
        .ok_or(Failure::Unreachable)?;
    let decision = lending::open_decision(&answer, &key).map_err(|e| {
        warn!(
            "lending: {}@{}: the decision does not verify: {e}",
            out.name, out.provider
        );
        refused("bad_decision")
    })?;
    Ok((decision, sent))
}

// ---- service subscribe | unsubscribe ----------------------------------------

/// `NAME@BOXNAME` → (provider node id, service name) in `view`.
fn resolve(view: &View, text: &str) -> Result<(NodeId, ServiceName)> {
    let (name, boxname) = text.split_once('@').ok_or_else(|| {
        ServiceError::Invalid(format!("{text:?}: a service is NAME@BOXNAME (web@kitchen)"))
    })?;
    let name = ServiceName::parse(name).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    let provider = view
        .nodes
        .iter()
        .find(|(_, n)| n.boxname.as_str() == boxname)
        .map(|(id, _)| id.clone())
        .ok_or_else(|| {
            ServiceError::NotFound(format!("no active node {boxname} in this box's directory"))
        })?;
    Ok((provider, name))
}

async fn view(app: &App) -> Result<Arc<View>> {
    let Some(e) = app.store.enrolment()? else {
        return Err(ServiceError::Conflict(
            "this box is not enrolled: it has no directory".into(),
        ));
    };
    let (view, _) = app
        .lending
        .views
        .get(&app.store, e.hub_key)
        .await
        .map_err(|e| ServiceError::Fault(anyhow::anyhow!(e)))?;
    Ok(view)
}

pub async fn subscribe(app: &Arc<App>, s: Subscribe) -> Result<Value> {
    let view = view(app).await?;
    let (provider, name) = resolve(&view, &s.service)?;
    if provider == app.identity().node_id {
        return Err(ServiceError::Invalid(
            "a box does not subscribe to its own service".into(),
        ));
    }
    let offer = view
        .lending
        .offer(&provider, &name)
        .ok_or_else(|| {
            ServiceError::NotFound(format!("{} is not offered (service list)", s.service))
        })?
        .offer
        .clone();
    let duration = s.duration_secs.unwrap_or_else(|| {
        offer
            .max_duration_secs
            .map_or(DEFAULT_SUBSCRIPTION_SECS, |m| {
                m.min(DEFAULT_SUBSCRIPTION_SECS)
            })
    });
    let app2 = app.clone();
    let (p, n) = (provider.clone(), name.clone());
    crate::daemon::drive::blocking(move || {
        with_book(&app2, |book, now| book.subscribe(&p, &n, duration, now))
    })
    .await
    .map_err(|e| ServiceError::Fault(e.into()))?
    .map_err(|e| ServiceError::Fault(anyhow::anyhow!(e)))?
    .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    await_answer(app, &provider, &name, &view).await
}

pub async fn unsubscribe(app: &Arc<App>, s: Subscribe) -> Result<Value> {
    let view = view(app).await?;
    let (provider, name) = resolve(&view, &s.service)?;
    let app2 = app.clone();
    let (p, n) = (provider.clone(), name.clone());
    crate::daemon::drive::blocking(move || {
        with_book(&app2, |book, now| book.unsubscribe(&p, &n, now))
    })
    .await
    .map_err(|e| ServiceError::Fault(e.into()))?
    .map_err(|e| ServiceError::Fault(anyhow::anyhow!(e)))?
    .map_err(|e| ServiceError::NotFound(format!("{}: {e}", s.service)))?;
    let row = await_answer(app, &provider, &name, &view).await?;
    if row.is_null() {
        let boxname = view.nodes.get(&provider).map(|n| n.boxname.as_str());
        return Ok(json!({"service": name.as_str(), "provider": boxname,
                         "provider_id": provider.as_str(), "state": "ended"}));
    }
    Ok(row)
}

/// Wakes the loop and waits (up to [`FIRST_ANSWER`]) until the provider
/// has answered; the subscription as it then stands (`null`: gone, an
/// unsubscribe that was answered).
async fn await_answer(
    app: &Arc<App>,
    provider: &NodeId,
    name: &ServiceName,
    view: &View,
) -> Result<Value> {
    let state = &app.lending.consumer;
    let deadline = tokio::time::Instant::now() + FIRST_ANSWER;
    loop {
        let answered = state.answered.notified();
        state.wake.notify_one();
        let found = info(app, provider, name);
        let settled = match &found {
            None => true,
            Some(i) => !i.ending && !matches!(i.status, Status::Requesting) || i.failures > 0,
        };
        if settled || tokio::time::Instant::now() >= deadline {
            return Ok(found.map_or(Value::Null, |i| consumer_row(&i, view)));
        }
        let _ = tokio::time::timeout_at(deadline, answered).await;
    }
}

fn info(app: &App, provider: &NodeId, name: &ServiceName) -> Option<ConsumerInfo> {
    let state = &app.lending.consumer;
    let now = state.now();
    let guard = state.lock();
    guard
        .as_ref()?
        .subscriptions(now)
        .into_iter()
        .find(|i| i.provider == *provider && i.name == *name)
}

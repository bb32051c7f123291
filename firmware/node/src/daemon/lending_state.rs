//! What the daemon holds for lending (docs/services.md), apart from the
//! drivers in `daemon/lending/` that use it: the two books, each loaded
//! from the store at its first use, on its own monotonic clock, and how
//! they read in status.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use gondwana_core::directory::View;
use gondwana_core::lending::consumer::{ConsumerInfo, Status};
use gondwana_core::lending::provider::{State, SubscriptionInfo};
use gondwana_core::lending::{ConsumerBook, ProviderBook};
use gondwana_core::time::Millis;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::clock::now_unix;
use crate::daemon::view_cache::ViewCache;

#[derive(Default)]
pub struct Lending {
    /// The verified directory, re-read only when its head moves.
    pub views: ViewCache,
    pub provider: Book<ProviderBook>,
    pub consumer: Book<ConsumerBook>,
}

/// One book (`None` until loaded) and the driver's clock: `Millis` since
/// the daemon made it.
pub struct Book<B> {
    book: Mutex<Option<B>>,
    epoch: Instant,
    /// Wakes the book's loop: it wants something now.
    pub wake: Notify,
    /// Signalled after every answer the loop fed in.
    pub answered: Notify,
}

impl<B> Default for Book<B> {
    fn default() -> Self {
        Book {
            book: Mutex::new(None),
            epoch: Instant::now(),
            wake: Notify::new(),
            answered: Notify::new(),
        }
    }
}

impl<B> Book<B> {
    pub fn now(&self) -> Millis {
        Millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    pub fn lock(&self) -> MutexGuard<'_, Option<B>> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `f` of the book if it is loaded, else the default (an empty list).
    pub fn with_loaded<T: Default>(&self, f: impl FnOnce(&B) -> T) -> T {
        self.lock().as_ref().map(f).unwrap_or_default()
    }
}

/// Status: the subscriptions to this box's offers (`provider`) and the
/// ones it wants (`consumer`), from the books in memory and the directory
/// view last read (empty before either is loaded).
pub fn status_json(lending: &Lending) -> Value {
    let Some(view) = lending.views.peek() else {
        return json!({"provider": [], "consumer": []});
    };
    let now = lending.provider.now();
    let provider: Vec<Value> = lending.provider.with_loaded(|b| {
        b.subscriptions(now)
            .iter()
            .map(|i| provider_row(i, &view))
            .collect()
    });
    let now = lending.consumer.now();
    let consumer: Vec<Value> = lending.consumer.with_loaded(|b| {
        b.subscriptions(now)
            .iter()
            .map(|i| consumer_row(i, &view))
            .collect()
    });
    json!({"provider": provider, "consumer": consumer})
}

/// One provider-side subscription as JSON (`service requests`, status).
pub fn provider_row(info: &SubscriptionInfo, view: &View) -> Value {
    let node = view.nodes.get(&info.consumer);
    let (state, reason) = match &info.state {
        State::Pending => ("pending", None),
        State::Active { .. } => ("active", None),
        State::Denied { reason } => ("denied", Some(reason.to_string())),
        State::Ended(why) => ("ended", Some(why.as_str().to_string())),
    };
    let remaining = info.remaining.map(|d| d.as_secs());
    json!({
        "service": info.name.as_str(),
        "consumer": info.consumer.as_str(),
        "consumer_boxname": node.map(|n| n.boxname.as_str()),
        "consumer_ip": info.consumer_ip.to_string(),
        "state": state,
        "reason": reason,
        "requested_secs": info.requested_secs,
        "remaining_secs": remaining,
        "expires_unix": remaining.map(|r| now_unix().saturating_add(r)),
        "counter": info.counter,
    })
}

/// One consumer-side subscription as JSON (`service subscribe`, status).
pub fn consumer_row(i: &ConsumerInfo, view: &View) -> Value {
    let (state, reason) = match &i.status {
        Status::Requesting => ("requesting", None),
        Status::Pending => ("pending", None),
        Status::Active { .. } => ("active", None),
        Status::Denied { reason } => ("denied", Some(reason.clone())),
        Status::Expired => ("expired", None),
        Status::Ended => ("ended", None),
        Status::Withdrawn => ("withdrawn", None),
        Status::Refused { code } => ("refused", Some(code.clone())),
    };
    let remaining = i.remaining.map(|d| d.as_secs());
    json!({
        "service": i.name.as_str(),
        "provider": view.nodes.get(&i.provider).map(|n| n.boxname.as_str()),
        "provider_id": i.provider.as_str(),
        "state": state,
        "reason": reason,
        "duration_secs": i.duration_secs,
        "remaining_secs": remaining,
        "expires_unix": remaining.map(|r| now_unix().saturating_add(r)),
        "unreachable": i.unreachable,
        "unsubscribing": i.ending,
    })
}

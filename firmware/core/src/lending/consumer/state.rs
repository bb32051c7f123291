//! What the consumer holds per wanted subscription, how it reads in a
//! listing, and how it is saved across a restart.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConsumerBook, ConsumerSettings};
use crate::envelope::{DecodeError, decode_canonical, encode};
use crate::lending_records::{Request, ServiceName};
use crate::node_id::NodeId;
use crate::time::Millis;

/// Format of [`ConsumerBook::save`].
pub const SAVED_VERSION: u8 = 1;
pub const MAX_SAVED_BYTES: usize = 4 << 20;

/// A subscription's state as the consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Asked, no answer yet.
    Requesting,
    /// The provider's operator has not decided.
    Pending,
    /// Granted until then (driver clock); renewed at half-time.
    Active {
        until: Millis,
    },
    Denied {
        reason: String,
    },
    /// Granted once, not renewed in time (renewing goes on).
    Expired,
    /// The provider closed it (asked afresh at once).
    Ended,
    /// Not offered (or its provider is not in the directory).
    Withdrawn,
    /// The provider refused the request (`provider::Refusal::code`).
    Refused {
        code: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Want {
    pub duration_secs: u64,
    pub status: Status,
    /// An unsubscribe is wanted instead.
    pub ending: bool,
    /// The request sent and not yet answered, resent as is.
    pub in_flight: Option<Request>,
    pub due: Millis,
    /// Failed attempts in a row.
    pub failures: u32,
}

impl Want {
    pub(super) fn new(duration_secs: u64) -> Want {
        Want {
            duration_secs,
            status: Status::Requesting,
            ending: false,
            in_flight: None,
            due: Millis::ZERO,
            failures: 0,
        }
    }
}

/// One row of `service status` on the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub provider: NodeId,
    pub name: ServiceName,
    pub duration_secs: u64,
    pub status: Status,
    /// Time left of an active subscription.
    pub remaining: Option<Duration>,
    /// `unreachable_after` attempts in a row failed: "provider unreachable".
    pub unreachable: bool,
    /// An unsubscribe is on its way.
    pub ending: bool,
    pub failures: u32,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u8,
    /// Times relative to the moment of saving.
    wants: Vec<((NodeId, ServiceName), Want)>,
    counters: Vec<((NodeId, ServiceName), u64)>,
}

impl ConsumerBook {
    pub fn subscriptions(&self, now: Millis) -> Vec<ConsumerInfo> {
        self.wants
            .iter()
            .map(|((provider, name), w)| ConsumerInfo {
                provider: provider.clone(),
                name: name.clone(),
                duration_secs: w.duration_secs,
                status: w.status.clone(),
                remaining: match w.status {
                    Status::Active { until } => Some(until.since(now)),
                    _ => None,
                },
                unreachable: w.failures >= self.settings.unreachable_after,
                ending: w.ending,
                failures: w.failures,
            })
            .collect()
    }

    /// The last counter used for (provider, service), 0 if none.
    pub fn counter(&self, provider: &NodeId, name: &ServiceName) -> u64 {
        self.counters
            .get(&(provider.clone(), name.clone()))
            .copied()
            .unwrap_or(0)
    }

    /// The state to store (postcard, canonical), times relative to `now`.
    pub fn save(&self, now: Millis) -> Vec<u8> {
        let back = |t: Millis| Millis(t.0.saturating_sub(now.0));
        encode(&Saved {
            version: SAVED_VERSION,
            wants: self
                .wants
                .iter()
                .map(|(k, w)| (k.clone(), shifted(w, back)))
                .collect(),
            counters: self.counters.iter().map(|(k, c)| (k.clone(), *c)).collect(),
        })
    }

    pub fn restore(
        me: NodeId,
        settings: ConsumerSettings,
        seed: u64,
        bytes: &[u8],
        now: Millis,
    ) -> Result<ConsumerBook, DecodeError> {
        let saved: Saved = decode_canonical(bytes, MAX_SAVED_BYTES)?;
        if saved.version != SAVED_VERSION {
            return Err(DecodeError::NonCanonical);
        }
        let mut book = ConsumerBook::new(me, settings, seed);
        let forth = |t: Millis| Millis(t.0.saturating_add(now.0));
        // In key order, each once: as `save` writes them.
        for (k, w) in saved.wants {
            if book
                .wants
                .last_key_value()
                .is_some_and(|(last, _)| *last >= k)
            {
                return Err(DecodeError::NonCanonical);
            }
            book.wants.insert(k, shifted(&w, forth));
        }
        for (k, c) in saved.counters {
            if book
                .counters
                .last_key_value()
                .is_some_and(|(last, _)| *last >= k)
            {
                return Err(DecodeError::NonCanonical);
            }
            book.counters.insert(k, c);
        }
        Ok(book)
    }
}

fn shifted(want: &Want, shift: impl Fn(Millis) -> Millis) -> Want {
    let mut w = want.clone();
    if w.due != super::NEVER {
        w.due = shift(w.due);
    }
    if let Status::Active { until } = &mut w.status {
        *until = shift(*until);
    }
    w
}

//! What the provider holds per (consumer, service), how it reads as a
//! verdict and a listing, and how it is saved across a restart.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::super::effects::{GrantChange, LendingGrant};
use super::{Outcome, ProviderBook, ProviderSettings, grant_audit};
use crate::envelope::{DecodeError, decode_canonical, encode};
use crate::hash::Hash32;
use crate::lending_records::{MAX_REASON_LEN, ServiceName, Verdict};
use crate::node_id::NodeId;
use crate::time::Millis;

/// Format of [`ProviderBook::save`].
pub const SAVED_VERSION: u8 = 1;
/// Bound of a saved book (4096 entries of a few hundred bytes fit).
pub const MAX_SAVED_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    Unsubscribed,
    Expired,
    /// The offer was withdrawn (or its provider is no longer in the view).
    Withdrawn,
    /// The offer moved to another port or protocol.
    OfferChanged,
    /// The consumer's mesh address in the directory changed.
    AddressChanged,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Unsubscribed => "unsubscribed",
            EndReason::Expired => "expired",
            EndReason::Withdrawn => "withdrawn",
            EndReason::OfferChanged => "offer changed",
            EndReason::AddressChanged => "address changed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Waiting for the operator.
    Pending,
    /// `grant` is open until `until` (driver clock).
    Active {
        grant: LendingGrant,
        granted_secs: u64,
        until: Millis,
    },
    /// Denied by the operator.
    Denied {
        reason: heapless::String<MAX_REASON_LEN>,
    },
    Ended(EndReason),
}

impl State {
    pub(super) fn grant(&self) -> Option<LendingGrant> {
        match self {
            State::Active { grant, .. } => Some(*grant),
            _ => None,
        }
    }

    pub(super) fn verdict(&self, now: Millis) -> Verdict {
        match self {
            State::Pending => Verdict::Pending,
            State::Active { until, .. } if *until > now => Verdict::Accepted {
                // Rounded up: an accepted verdict never says 0 s.
                duration_secs: until.since(now).as_millis().div_ceil(1000) as u64,
            },
            State::Active { .. } | State::Ended(_) => Verdict::Ended,
            State::Denied { reason } => Verdict::Denied {
                reason: reason.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Entry {
    /// The address the last request named (checked equal to the
    /// directory's when it was taken).
    pub consumer_ip: Ipv4Addr,
    pub offer_serial: u64,
    pub counter: u64,
    /// BLAKE2b-256 of the last request's bytes.
    pub request: Hash32,
    pub requested_secs: u64,
    pub state: State,
}

/// One row of `service requests` on the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub consumer: NodeId,
    pub name: ServiceName,
    pub consumer_ip: Ipv4Addr,
    pub offer_serial: u64,
    pub counter: u64,
    pub requested_secs: u64,
    pub state: State,
    /// Time left of an active subscription.
    pub remaining: Option<Duration>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u8,
    /// Deadlines as the time left when saved: the driver's clock starts
    /// again at a restart. The time a provider is down is not counted.
    entries: Vec<((NodeId, ServiceName), Entry)>,
}

impl ProviderBook {
    /// Every entry, for the provider's listing.
    pub fn subscriptions(&self, now: Millis) -> Vec<SubscriptionInfo> {
        self.entries
            .iter()
            .map(|((consumer, name), e)| SubscriptionInfo {
                consumer: consumer.clone(),
                name: name.clone(),
                consumer_ip: e.consumer_ip,
                offer_serial: e.offer_serial,
                counter: e.counter,
                requested_secs: e.requested_secs,
                state: e.state.clone(),
                remaining: match e.state {
                    State::Active { until, .. } => Some(until.since(now)),
                    _ => None,
                },
            })
            .collect()
    }

    /// The state to store (postcard, canonical), deadlines relative to `now`.
    pub fn save(&self, now: Millis) -> Vec<u8> {
        let entries = self
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), rebase(e, |t| Millis(t.0.saturating_sub(now.0)))))
            .collect();
        encode(&Saved {
            version: SAVED_VERSION,
            entries,
        })
    }

    /// A saved book back, deadlines from `now`, with the grant additions
    /// that reopen its active subscriptions (the kernel's set may have been
    /// lost with a reboot; adding an existing element renews it).
    pub fn restore(
        me: NodeId,
        settings: ProviderSettings,
        bytes: &[u8],
        now: Millis,
    ) -> Result<(ProviderBook, Outcome), DecodeError> {
        let saved: Saved = decode_canonical(bytes, MAX_SAVED_BYTES)?;
        if saved.version != SAVED_VERSION {
            return Err(DecodeError::NonCanonical);
        }
        let mut book = ProviderBook::new(me, settings);
        let mut out = Outcome::default();
        for (key, entry) in saved.entries {
            // In key order, each once: as `save` writes them.
            if book
                .entries
                .last_key_value()
                .is_some_and(|(last, _)| *last >= key)
            {
                return Err(DecodeError::NonCanonical);
            }
            let entry = rebase(&entry, |t| Millis(t.0.saturating_add(now.0)));
            if let State::Active { grant, until, .. } = entry.state {
                let left = until.since(now).as_millis().div_ceil(1000) as u64;
                if left > 0 {
                    out.grants.push(GrantChange::Add {
                        consumer: key.0.clone(),
                        name: key.1.clone(),
                        grant,
                        timeout_secs: left,
                    });
                }
            }
            book.entries.insert(key, entry);
        }
        out.audit = grant_audit(&out.grants);
        Ok((book, out))
    }
}

fn rebase(entry: &Entry, shift: impl Fn(Millis) -> Millis) -> Entry {
    let mut e = entry.clone();
    if let State::Active { until, .. } = &mut e.state {
        *until = shift(*until);
    }
    e
}

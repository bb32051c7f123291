//! The consumer's side of lending as a sans-IO machine (docs/services.md):
//! which subscriptions this box wants, the next request to send for each,
//! and what the provider's answers and silences mean.
//!
//! The driver loop: [`ConsumerBook::poll`] gives the requests that are due
//! (the driver SAVES the book, then seals each with the node key and sends
//! it to the provider's mesh address), then reports each answer with
//! [`ConsumerBook::on_decision`] (a decision it opened with the provider's
//! directory key) or [`ConsumerBook::on_failure`]; [`ConsumerBook::tick`]
//! marks expiry; [`ConsumerBook::next_wake`] says when to poll again.
//!
//! Counters: one per (provider, service), kept even after unsubscribing and
//! saved before a request that uses a new one leaves, so a restart never
//! reuses one. A request is resent unchanged (the same bytes, ed25519 being
//! deterministic) until it is answered: a provider answers a duplicate with
//! its current verdict, so a pending request is polled that way. A new
//! counter is used only for a new request: a renewal, at half the granted
//! time, or an unsubscribe.

mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

pub use state::{ConsumerInfo, Status};

use crate::backoff::{self, Jitter};
use crate::directory::View;
use crate::hash::Hash32;
use crate::lending_records::{
    Decision, LendingError, OfferRef, Request, ServiceName, Subscription, Unsubscribe, VERSION,
    Verdict,
};
use crate::node_id::NodeId;
use crate::time::Millis;
use state::Want;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// Backoff after a failed attempt.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Failed attempts in a row after which the provider is shown as
    /// unreachable (attempts go on, at `retry_max`).
    pub unreachable_after: u32,
    /// How often a pending request is asked about again.
    pub pending_poll: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            unreachable_after: 5,
            pending_poll: Duration::from_secs(10),
        }
    }
}

/// A request for the driver to seal and send to `provider_ip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub provider: NodeId,
    pub name: ServiceName,
    pub provider_ip: Ipv4Addr,
    pub request: Request,
}

/// Why an attempt brought no decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer: connection refused, timed out, no route.
    Unreachable,
    /// The provider refused with this code (provider::Refusal::code); a
    /// `stale_counter` refusal carries the provider's last counter, so a
    /// consumer whose counters were lost goes on above it.
    Refused {
        code: String,
        last_counter: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerError {
    #[error("{0}")]
    Invalid(LendingError),
    #[error("no subscription to this service of this provider")]
    NotSubscribed,
    #[error("the decision is not about the request in flight")]
    Unexpected,
}

#[derive(Debug, Clone)]
pub struct ConsumerBook {
    me: NodeId,
    settings: ConsumerSettings,
    wants: BTreeMap<(NodeId, ServiceName), Want>,
    /// The last counter used per (provider, service).
    counters: BTreeMap<(NodeId, ServiceName), u64>,
    jitter: Jitter,
}

/// Far enough never to come: "no attempt planned".
const NEVER: Millis = Millis(u64::MAX);

impl ConsumerBook {
    /// `seed` spreads retries (any per-box value).
    pub fn new(me: NodeId, settings: ConsumerSettings, seed: u64) -> ConsumerBook {
        ConsumerBook {
            me,
            settings,
            wants: BTreeMap::new(),
            counters: BTreeMap::new(),
            jitter: Jitter::new(seed),
        }
    }

    /// Wants the service (again, or for another duration): asked at once.
    pub fn subscribe(
        &mut self,
        provider: &NodeId,
        name: &ServiceName,
        duration_secs: u64,
        now: Millis,
    ) -> Result<(), ConsumerError> {
        if duration_secs == 0 || duration_secs > super::MAX_DURATION_SECS {
            return Err(ConsumerError::Invalid(LendingError::BadDuration(
                duration_secs,
            )));
        }
        let want = self
            .wants
            .entry((provider.clone(), name.clone()))
            .or_insert_with(|| Want::new(duration_secs));
        want.duration_secs = duration_secs;
        want.ending = false;
        want.in_flight = None;
        want.due = now;
        if matches!(
            want.status,
            Status::Denied { .. } | Status::Refused { .. } | Status::Ended
        ) {
            want.status = Status::Requesting;
        }
        Ok(())
    }

    /// No longer wants it: an unsubscribe goes out at once.
    pub fn unsubscribe(
        &mut self,
        provider: &NodeId,
        name: &ServiceName,
        now: Millis,
    ) -> Result<(), ConsumerError> {
        let want = self
            .wants
            .get_mut(&(provider.clone(), name.clone()))
            .ok_or(ConsumerError::NotSubscribed)?;
        want.ending = true;
        want.in_flight = None;
        want.failures = 0;
        want.due = now;
        Ok(())
    }

    /// The requests due now. Save the book before sending them.
    pub fn poll(&mut self, view: &View, now: Millis) -> Vec<Outgoing> {
        let Some(my_ip) = view.nodes.get(&self.me).map(|n| n.mesh_ip) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, want) in self.wants.iter_mut() {
            if want.due > now {
                continue;
            }
            let Some(provider_ip) = view.nodes.get(&key.0).map(|n| n.mesh_ip) else {
                // Provider left the directory: nothing to ask.
                want.status = Status::Withdrawn;
                want.due = now + self.settings.pending_poll;
                continue;
            };
            let offer = view.lending.offer(&key.0, &key.1).map(|p| p.offer.serial);
            let stale = match (&want.in_flight, offer) {
                (Some(Request::Subscribe(s)), Some(serial)) => s.offer.serial != serial,
                _ => false,
            };
            if stale {
                want.in_flight = None;
            }
            if want.in_flight.is_none() {
                let request = if want.ending {
                    Request::Unsubscribe(Unsubscribe {
                        version: VERSION,
                        provider: key.0.clone(),
                        name: key.1.clone(),
                        consumer: self.me.clone(),
                        counter: next_counter(&mut self.counters, key),
                    })
                } else if let Some(serial) = offer {
                    Request::Subscribe(Subscription {
                        version: VERSION,
                        offer: OfferRef {
                            provider: key.0.clone(),
                            name: key.1.clone(),
                            serial,
                        },
                        consumer: self.me.clone(),
                        consumer_ip: my_ip,
                        duration_secs: want.duration_secs,
                        counter: next_counter(&mut self.counters, key),
                    })
                } else {
                    // Not (or no longer) offered: look again later.
                    if !matches!(want.status, Status::Active { until } if until > now) {
                        want.status = Status::Withdrawn;
                    }
                    want.due = now + self.settings.pending_poll;
                    continue;
                };
                want.in_flight = Some(request);
            }
            if let Some(request) = &want.in_flight {
                out.push(Outgoing {
                    provider: key.0.clone(),
                    name: key.1.clone(),
                    provider_ip,
                    request: request.clone(),
                });
            }
            // Until the driver reports: a safety net if it never does.
            want.due = now + self.settings.retry_max;
        }
        out
    }

    /// The provider's answer to the request in flight; `sent` is the
    /// BLAKE2b-256 of the bytes that were sent.
    pub fn on_decision(
        &mut self,
        decision: &Decision,
        sent: &Hash32,
        now: Millis,
    ) -> Result<(), ConsumerError> {
        let key = (decision.provider.clone(), decision.name.clone());
        let want = self
            .wants
            .get_mut(&key)
            .ok_or(ConsumerError::NotSubscribed)?;
        let counter = want.in_flight.as_ref().map(Request::counter);
        if decision.consumer != self.me
            || decision.request != *sent
            || counter != Some(decision.counter)
        {
            return Err(ConsumerError::Unexpected);
        }
        want.failures = 0;
        match &decision.verdict {
            Verdict::Accepted { duration_secs } if !want.ending => {
                let granted = Duration::from_secs(*duration_secs);
                want.status = Status::Active {
                    until: now + granted,
                };
                want.in_flight = None;
                // Renew at half the granted time.
                want.due = now + granted / 2;
            }
            Verdict::Pending if !want.ending => {
                want.status = Status::Pending;
                want.due = now + self.settings.pending_poll;
            }
            Verdict::Denied { reason } if !want.ending => {
                want.status = Status::Denied {
                    reason: reason.to_string(),
                };
                want.due = NEVER;
            }
            _ if want.ending => {
                self.wants.remove(&key);
            }
            _ => {
                // `Ended` for a subscription: the provider closed it (it
                // expired there): ask afresh.
                want.status = Status::Ended;
                want.in_flight = None;
                want.due = now;
            }
        }
        Ok(())
    }

    /// An attempt for (provider, service) brought no decision.
    pub fn on_failure(
        &mut self,
        provider: &NodeId,
        name: &ServiceName,
        failure: &Failure,
        now: Millis,
    ) -> Result<(), ConsumerError> {
        let key = (provider.clone(), name.clone());
        let want = self
            .wants
            .get_mut(&key)
            .ok_or(ConsumerError::NotSubscribed)?;
        want.failures = want.failures.saturating_add(1);
        let wait = backoff::delay(
            want.failures,
            self.settings.retry_initial,
            self.settings.retry_max,
            self.jitter.fraction(),
        );
        want.due = now + wait;
        if let Failure::Refused { code, last_counter } = failure {
            // A new request next time (a new counter, the current offer).
            want.in_flight = None;
            if let Some(last) = last_counter {
                let held = self.counters.entry(key.clone()).or_insert(0);
                *held = (*held).max(*last);
            }
            if code == "stale_counter" || code == "offer_changed" {
                // Fixed by the new request: retry soon.
                want.due = now + self.settings.retry_initial;
            } else if !want.ending {
                want.status = Status::Refused { code: code.clone() };
            }
        }
        if want.ending && want.failures >= self.settings.unreachable_after {
            // The provider's grant times out on its own.
            self.wants.remove(&key);
        }
        Ok(())
    }

    /// Active subscriptions past their end are expired (renewing goes on).
    pub fn tick(&mut self, now: Millis) {
        for want in self.wants.values_mut() {
            if let Status::Active { until } = want.status
                && until <= now
            {
                want.status = Status::Expired;
            }
        }
    }

    /// When to poll (or tick) next.
    pub fn next_wake(&self) -> Option<Millis> {
        self.wants
            .values()
            .flat_map(|w| {
                let until = match w.status {
                    Status::Active { until } => Some(until),
                    _ => None,
                };
                [Some(w.due), until]
            })
            .flatten()
            .filter(|t| *t != NEVER)
            .min()
    }
}

fn next_counter(
    counters: &mut BTreeMap<(NodeId, ServiceName), u64>,
    key: &(NodeId, ServiceName),
) -> u64 {
    let c = counters.entry(key.clone()).or_insert(0);
    *c = c.saturating_add(1);
    *c
}

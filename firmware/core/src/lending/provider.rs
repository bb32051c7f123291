//! The provider's side of lending as a sans-IO machine (docs/services.md):
//! it takes a request's bytes as received, the directory view and the
//! driver's monotonic clock, and answers with a [`Decision`] to sign and
//! send back, the firewall changes and the audit records. It holds no key
//! and does no I/O; its state is saved with [`ProviderBook::save`] after
//! every change, so pending and active subscriptions outlive a restart.
//!
//! Per (consumer, service) it keeps one entry: the last request's counter
//! and hash, and the state — pending, active until a deadline with the
//! grant it opened, denied by the operator, or ended. A request is taken
//! when it verifies against the directory (consumer enrolled and not
//! revoked, signed by its directory key, the address it names is its own
//! and the one it sends from, the offer current and this provider's) and
//! its counter is above the entry's. The very same bytes again are a
//! duplicate: answered with the entry's current verdict, nothing changed —
//! so a consumer polls a pending request by sending it again. Every other
//! refusal is a [`Refusal`] and changes nothing but the sender's rate
//! bucket.
//!
//! Approval: `auto` accepts; `manual` leaves the request pending for the
//! operator; `allow:` accepts the nodes it lists and leaves the others
//! pending, so the list is a shortcut past the operator, never a wall the
//! operator cannot open. An active subscription is renewed by any later
//! request whatever the mode (the approval was for the subscription, not
//! for one request); once it ended, a new request is judged afresh. An
//! operator's denial sticks to (consumer, service) until the operator
//! approves it.

mod refusal;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

pub use refusal::Refusal;
pub use state::{EndReason, State, SubscriptionInfo};

use super::effects::{AuditEvent, GrantChange, LendingGrant, audit_kind};
use super::rate::{Buckets, RateLimit};
use crate::audit::Field;
use crate::directory::View;
use crate::hash::to_hex;
use crate::lending_records::{Decision, Offer, Request, ServiceName, VERSION, Verdict};
use crate::node_id::NodeId;
use crate::time::Millis;
use state::Entry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderSettings {
    /// Requests per sender address.
    pub rate: RateLimit,
    /// Entries (consumer, service) held at most, in every state.
    pub max_entries: usize,
    /// Requests waiting for the operator at most.
    pub max_pending: usize,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        ProviderSettings {
            rate: RateLimit {
                burst: 10,
                refill: Duration::from_secs(1),
            },
            max_entries: 4096,
            max_pending: 256,
        }
    }
}

/// What the driver does: answer with `decision` (sealed with the node's
/// key), apply `grants` in order, append `audit` in order, then save.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Option<Decision>,
    pub grants: Vec<GrantChange>,
    pub audit: Vec<AuditEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderBook {
    me: NodeId,
    settings: ProviderSettings,
    entries: BTreeMap<(NodeId, ServiceName), Entry>,
    buckets: Buckets,
}

impl ProviderBook {
    pub fn new(me: NodeId, settings: ProviderSettings) -> ProviderBook {
        ProviderBook {
            me,
            settings,
            entries: BTreeMap::new(),
            buckets: Buckets::default(),
        }
    }

    /// A request (subscribe or unsubscribe) as received from `from`, the
    /// source address of the mesh connection it came on.
    pub fn handle(
        &mut self,
        bytes: &[u8],
        from: Ipv4Addr,
        view: &View,
        now: Millis,
    ) -> Result<Outcome, Refusal> {
        if !self.buckets.take(self.settings.rate, from, now) {
            return Err(Refusal::RateLimited(from));
        }
        let (request, hash) = super::open_request(bytes, |id| view.signing_key(id))
            .map_err(|e| Refusal::opening(e, view))?;
        if *request.provider() != self.me {
            return Err(Refusal::WrongProvider(request.provider().to_string()));
        }
        let consumer = request.consumer().clone();
        let node = view
            .nodes
            .get(&consumer)
            .ok_or_else(|| Refusal::UnknownConsumer(consumer.to_string()))?;
        if from != node.mesh_ip {
            return Err(Refusal::NotFromConsumer {
                from,
                own: node.mesh_ip,
            });
        }
        let key = (consumer, request.name().clone());
        if let Some(entry) = self.entries.get(&key) {
            if entry.counter == request.counter() && entry.request == hash {
                let decision = self.decision(&key, entry, view, now);
                return Ok(Outcome {
                    decision: Some(decision),
                    ..Outcome::default()
                });
            }
            if request.counter() <= entry.counter {
                return Err(Refusal::StaleCounter {
                    last: entry.counter,
                    found: request.counter(),
                });
            }
        }
        let mut out = Outcome::default();
        match request {
            Request::Subscribe(s) => {
                if s.consumer_ip != node.mesh_ip {
                    return Err(Refusal::WrongAddress {
                        claimed: s.consumer_ip,
                        own: node.mesh_ip,
                    });
                }
                let offer = &view
                    .lending
                    .offer(&self.me, &s.offer.name)
                    .ok_or(Refusal::NoSuchOffer)?
                    .offer;
                if offer.serial != s.offer.serial {
                    return Err(Refusal::OfferChanged {
                        current: offer.serial,
                    });
                }
                let previous = self.entries.get(&key).map(|e| e.state.clone());
                let admitted = offer
                    .approval
                    .admits(&node.boxname, &view.tags_of(&s.consumer));
                let state = match previous {
                    Some(State::Active { .. }) => Some(true),
                    Some(State::Pending) => Some(false),
                    Some(State::Denied { .. }) => None,
                    None | Some(State::Ended(_)) => Some(admitted),
                };
                if !self.entries.contains_key(&key)
                    && self.entries.len() >= self.settings.max_entries
                {
                    return Err(Refusal::Full(self.settings.max_entries));
                }
                if state == Some(false)
                    && !matches!(previous, Some(State::Pending))
                    && self.pending() >= self.settings.max_pending
                {
                    return Err(Refusal::TooManyPending(self.settings.max_pending));
                }
                // Taken: from here on the request changes the book.
                out.audit.push(
                    AuditEvent::new(audit_kind::REQUEST, &key.0, &key.1)
                        .with(Field::text("request", &to_hex(&hash)))
                        .with(Field::uint("counter", s.counter))
                        .with(Field::uint("duration_secs", s.duration_secs)),
                );
                let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
                    consumer_ip: s.consumer_ip,
                    offer_serial: s.offer.serial,
                    counter: 0,
                    request: hash,
                    requested_secs: s.duration_secs,
                    state: State::Pending,
                });
                entry.consumer_ip = s.consumer_ip;
                entry.offer_serial = s.offer.serial;
                entry.counter = s.counter;
                entry.request = hash;
                entry.requested_secs = s.duration_secs;
                match state {
                    Some(true) => out.grants = activate(&key, entry, offer, node.mesh_ip, now),
                    Some(false) => entry.state = State::Pending,
                    None => {}
                }
            }
            Request::Unsubscribe(u) => {
                let entry = self
                    .entries
                    .get_mut(&key)
                    .ok_or(Refusal::NoSuchSubscription)?;
                entry.counter = u.counter;
                entry.request = hash;
                out.audit.push(
                    AuditEvent::new(audit_kind::REQUEST, &key.0, &key.1)
                        .with(Field::text("request", &to_hex(&hash)))
                        .with(Field::uint("counter", u.counter))
                        .with(Field::text("unsubscribe", "yes")),
                );
                if let Some(grant) = entry.state.grant() {
                    out.grants.push(remove(&key, grant));
                }
                entry.state = State::Ended(EndReason::Unsubscribed);
            }
        }
        self.finish(&key, view, now, out)
    }

    /// The operator approves a pending (or denied) request.
    pub fn approve(
        &mut self,
        consumer: &NodeId,
        name: &ServiceName,
        view: &View,
        now: Millis,
    ) -> Result<Outcome, Refusal> {
        let key = (consumer.clone(), name.clone());
        let entry = self.entries.get(&key).ok_or(Refusal::NoSuchSubscription)?;
        if !matches!(entry.state, State::Pending | State::Denied { .. }) {
            return Err(Refusal::NotPending);
        }
        let node = view
            .nodes
            .get(consumer)
            .ok_or_else(|| Refusal::UnknownConsumer(consumer.to_string()))?;
        let offer = &view
            .lending
            .offer(&self.me, name)
            .ok_or(Refusal::NoSuchOffer)?
            .offer;
        let mut out = Outcome::default();
        if let Some(entry) = self.entries.get_mut(&key) {
            out.grants = activate(&key, entry, offer, node.mesh_ip, now);
        }
        self.finish(&key, view, now, out)
    }

    /// The operator denies a pending request, or ends an active one.
    pub fn deny(
        &mut self,
        consumer: &NodeId,
        name: &ServiceName,
        reason: &str,
        view: &View,
        now: Millis,
    ) -> Result<Outcome, Refusal> {
        let key = (consumer.clone(), name.clone());
        let entry = self
            .entries
            .get_mut(&key)
            .ok_or(Refusal::NoSuchSubscription)?;
        let mut out = Outcome::default();
        match entry.state {
            State::Pending => {}
            State::Active { grant, .. } => out.grants.push(remove(&key, grant)),
            State::Denied { .. } | State::Ended(_) => return Err(Refusal::NotPending),
        }
        entry.state = State::Denied {
            reason: crate::lending_records::reason(reason),
        };
        self.finish(&key, view, now, out)
    }

    /// A new directory view: subscriptions of consumers that left or were
    /// revoked, whose address changed, or whose offer was withdrawn or
    /// moved to another port or protocol, end and lose their grant.
    pub fn on_view(&mut self, view: &View) -> Outcome {
        let mut out = Outcome::default();
        let me = &self.me;
        self.entries.retain(|key, entry| {
            let Some(node) = view.nodes.get(&key.0) else {
                // Gone from the directory (revoked): forget it entirely.
                if let Some(grant) = entry.state.grant() {
                    out.grants.push(remove(key, grant));
                }
                return false;
            };
            let offer = view.lending.offer(me, &key.1).map(|p| &p.offer);
            let end = match (&entry.state, offer) {
                (State::Ended(_), _) => None,
                (_, None) => Some(EndReason::Withdrawn),
                (State::Active { grant, .. }, _) if grant.ip != node.mesh_ip => {
                    Some(EndReason::AddressChanged)
                }
                (State::Active { grant, .. }, Some(o))
                    if (grant.protocol, grant.port) != (o.protocol, o.port) =>
                {
                    Some(EndReason::OfferChanged)
                }
                _ => None,
            };
            if let Some(o) = offer {
                entry.offer_serial = o.serial;
            }
            if let Some(why) = end {
                if let Some(grant) = entry.state.grant() {
                    out.grants.push(remove(key, grant));
                }
                entry.state = State::Ended(why);
            }
            true
        });
        out.audit = grant_audit(&out.grants);
        out
    }

    /// Expired subscriptions lose their grant (the kernel's timeout has
    /// closed it already; the removal keeps both in step).
    pub fn tick(&mut self, now: Millis) -> Outcome {
        let mut out = Outcome::default();
        for (key, entry) in self.entries.iter_mut() {
            if let State::Active { grant, until, .. } = entry.state
                && until <= now
            {
                out.grants.push(remove(key, grant));
                entry.state = State::Ended(EndReason::Expired);
            }
        }
        self.buckets.prune(self.settings.rate, now);
        out.audit = grant_audit(&out.grants);
        out
    }

    /// When [`Self::tick`] has something to do next.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.entries
            .values()
            .filter_map(|e| match e.state {
                State::Active { until, .. } => Some(until),
                _ => None,
            })
            .min()
    }

    /// Requests waiting for the operator.
    pub fn pending(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.state == State::Pending)
            .count()
    }

    /// The current decision on (consumer, service), as a duplicate of its
    /// last request would be answered.
    pub fn decision_for(
        &self,
        consumer: &NodeId,
        name: &ServiceName,
        view: &View,
        now: Millis,
    ) -> Option<Decision> {
        let key = (consumer.clone(), name.clone());
        let entry = self.entries.get(&key)?;
        Some(self.decision(&key, entry, view, now))
    }

    /// The decision and audit records of what just changed for `key`.
    fn finish(
        &self,
        key: &(NodeId, ServiceName),
        view: &View,
        now: Millis,
        mut out: Outcome,
    ) -> Result<Outcome, Refusal> {
        let entry = self.entries.get(key).ok_or(Refusal::NoSuchSubscription)?;
        let decision = self.decision(key, entry, view, now);
        out.audit.push(
            AuditEvent::new(audit_kind::DECISION, &key.0, &key.1)
                .with(Field::uint("counter", decision.counter))
                .with(Field::text("verdict", &verdict_text(&decision.verdict))),
        );
        out.audit.extend(grant_audit(&out.grants));
        out.decision = Some(decision);
        Ok(out)
    }

    fn decision(
        &self,
        key: &(NodeId, ServiceName),
        entry: &Entry,
        view: &View,
        now: Millis,
    ) -> Decision {
        Decision {
            version: VERSION,
            provider: self.me.clone(),
            consumer: key.0.clone(),
            name: key.1.clone(),
            request: entry.request,
            counter: entry.counter,
            offer_serial: view
                .lending
                .offer(&self.me, &key.1)
                .map_or(0, |o| o.offer.serial),
            verdict: entry.state.verdict(now),
        }
    }
}

/// Opens (or renews) the grant of an accepted subscription: the consumer's
/// directory address `ip`, the offer's protocol and port, for the requested
/// time capped by the offer. A grant held for another port or address is
/// removed first.
fn activate(
    key: &(NodeId, ServiceName),
    entry: &mut Entry,
    offer: &Offer,
    ip: Ipv4Addr,
    now: Millis,
) -> Vec<GrantChange> {
    let granted = offer
        .max_duration_secs
        .map_or(entry.requested_secs, |m| m.min(entry.requested_secs));
    let grant = LendingGrant {
        ip,
        protocol: offer.protocol,
        port: offer.port,
    };
    let mut changes = Vec::new();
    if let Some(old) = entry.state.grant().filter(|g| *g != grant) {
        changes.push(remove(key, old));
    }
    entry.offer_serial = offer.serial;
    entry.state = State::Active {
        grant,
        granted_secs: granted,
        until: now + Duration::from_secs(granted),
    };
    changes.push(GrantChange::Add {
        consumer: key.0.clone(),
        name: key.1.clone(),
        grant,
        timeout_secs: granted,
    });
    changes
}

fn remove(key: &(NodeId, ServiceName), grant: LendingGrant) -> GrantChange {
    GrantChange::Remove {
        consumer: key.0.clone(),
        name: key.1.clone(),
        grant,
    }
}

fn grant_audit(changes: &[GrantChange]) -> Vec<AuditEvent> {
    changes
        .iter()
        .map(|c| {
            let kind = match c {
                GrantChange::Add { .. } => audit_kind::GRANT_ADD,
                GrantChange::Remove { .. } => audit_kind::GRANT_REMOVE,
            };
            AuditEvent::grant(kind, c)
        })
        .collect()
}

fn verdict_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Pending => "pending".into(),
        Verdict::Accepted { duration_secs } => format!("accepted for {duration_secs} s"),
        Verdict::Denied { reason } => format!("denied: {reason}"),
        Verdict::Ended => "ended".into(),
    }
}

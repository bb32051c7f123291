//! An enrolled node's contact with its hub as a sans-IO machine
//! (docs/protocol.md, "Directory", "Identity mirror" and "Revocation";
//! docs/architecture.md, "Enrolment and sync machines").
//!
//! [`SyncMachine`] decides; its driver (`firmware/node`,
//! `daemon/enrol_task.rs`) talks HTTP, writes the store and sleeps. Each
//! cycle: wait for the tunnel (unless the hub's API is reached another
//! way), pull directory pages until the hub has nothing newer (each
//! verified as the continuation of the stored head, the node's own
//! revocation looked for among them), push the identity log to the hub's
//! mirror when the mirror is behind (after a key rotation), and — when any
//! of that failed or the hub's handshake went stale — ask the hub's public
//! listener whether the node is revoked, at once and then with capped,
//! jittered backoff ([`AskSchedule`]). Then wait `directory_pull_secs` —
//! or less when a candidate snapshot names a box the stored directory does
//! not hold yet ([`UnknownNodes`], [`SyncMachine::handle_pull_now`]): a
//! newly enrolled box is reachable in seconds, not at the next pull.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::NodeId;
use crate::backoff::{self, Jitter};
use crate::directory::{self, Entry, Head};
use crate::keys::PublicKey;
use crate::node_enrol::Exchange;
use crate::revocation::{self, Revocation};
use crate::time::Millis;

/// How often the machine looks again while the tunnel to the hub is not up.
pub const TUNNEL_POLL: Duration = Duration::from_millis(500);

/// At most one early pull (asked by [`SyncMachine::handle_pull_now`]) per
/// this long: a burst of enrolments costs each node one extra pull per
/// 10 s, not one per enrolment.
pub const EARLY_PULL_GAP: Duration = Duration::from_secs(10);

/// Timing, read at the start of each cycle (SIGHUP may change it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSettings {
    /// `enroll.directory_pull_secs`; at least a second is used.
    pub pull_interval: Duration,
    /// The revocation ask's backoff (`enroll.retry_*`).
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// What the driver sees at the start of a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The hub's API can be reached: the tunnel is up (or there is no data
    /// plane), or `enroll.hub_api_url` names another way.
    pub hub_reachable: bool,
    /// The hub's WireGuard handshake went stale on an up interface.
    pub hub_handshake_stale: bool,
    /// Entries in the node's identity log.
    pub identity_len: u64,
    /// The hub mirror's length as last learnt (`None`: unknown).
    pub hub_mirror_len: Option<u64>,
    pub settings: SyncSettings,
}

/// Verified entries to append after `from`, and the node's own revocation
/// if one of them holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<(Entry, Vec<u8>, Head)>,
    pub from: Head,
    pub revocation: Option<(Vec<u8>, Revocation)>,
}

/// What the driver must do next. Each has exactly one answer, named on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Look for this node's revocation in the stored directory (one pulled
    /// before this version acted on pulled ones) and store it if found.
    /// Answer: [`SyncMachine::handle_stored_revocation`].
    FindStoredRevocation,
    /// Read the tunnel, identity and mirror state.
    /// Answer: [`SyncMachine::handle_observation`].
    Observe,
    /// Read the stored directory head, `GET /v1/directory?after=<head.len>`.
    /// Answer: [`SyncMachine::handle_page`].
    PullPage,
    /// Append the entries (one transaction), then store the revocation if
    /// there is one. Answer: [`SyncMachine::handle_appended`].
    Append(Box<Page>),
    /// `POST /v1/identity/mirror` with the log; the driver records the
    /// mirror length it learns. Answer: [`SyncMachine::handle_mirror_pushed`].
    PushMirror,
    /// `GET /v1/enroll/revocation?node=` on the hub's public listener.
    /// Answer: [`SyncMachine::handle_ask`].
    AskRevocation,
}

/// What the machine tells the driver (logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    PullFailed(String),
    MirrorPushFailed(String),
    AskFailed(String),
    /// A verified revocation of this node is stored: the machine is done.
    Revoked,
}

#[derive(Debug)]
enum State {
    FindingStoredRevocation,
    Waiting { until: Millis },
    Observing,
    Pulling(Cycle),
    Appending(Cycle),
    Pushing(Cycle),
    Asking(Cycle),
    Revoked,
}

/// One cycle's snapshot and whether every contact worked so far.
#[derive(Debug, Clone, Copy)]
struct Cycle {
    seen: Observation,
    reached: bool,
}

/// The directory-pull, mirror-push and revocation-ask machine.
///
/// Call order, like quinn-proto's `Connection`:
/// 1. Build with [`SyncMachine::new`] once the node is enrolled (and not
///    known to be revoked).
/// 2. Drain [`poll_action`](Self::poll_action): do the I/O each action
///    names and feed its outcome to the `handle_*` method it names, with
///    the current time. Drain [`poll_event`](Self::poll_event) for logs.
/// 3. When there is no action, sleep until
///    [`poll_timeout`](Self::poll_timeout), call
///    [`handle_timeout`](Self::handle_timeout), go to 2.
/// 4. Stop when [`is_revoked`](Self::is_revoked). A revocation that
///    arrives another way (pushed by the hub) is fed with
///    [`revoked`](Self::revoked).
///
/// A `handle_*` call that does not answer the pending action is ignored.
#[derive(Debug)]
pub struct SyncMachine {
    hub_key: PublicKey,
    node_id: NodeId,
    state: State,
    ask: AskSchedule,
    /// An early pull was asked for and no cycle has pulled since.
    early_asked: bool,
    /// When the last early pull started ([`EARLY_PULL_GAP`]).
    early_last: Option<Millis>,
    jitter: Jitter,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl SyncMachine {
    /// `hub_key` signs the directory; `node_id` is this node's.
    pub fn new(hub_key: PublicKey, node_id: NodeId, seed: u64) -> SyncMachine {
        SyncMachine {
            hub_key,
            node_id,
            state: State::FindingStoredRevocation,
            ask: AskSchedule::default(),
            early_asked: false,
            early_last: None,
            jitter: Jitter::new(seed),
            actions: VecDeque::from([Action::FindStoredRevocation]),
            events: VecDeque::new(),
        }
    }

    // ---- getters ----

    pub fn is_revoked(&self) -> bool {
        matches!(self.state, State::Revoked)
    }

    /// When the next revocation ask may go out (`None`: at the next failure).
    pub fn next_ask(&self) -> Option<Millis> {
        self.ask.next
    }

    // ---- outputs ----

    /// When the next cycle (or the next look at the tunnel) is due; `None`
    /// while an action is pending, and for good once revoked.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let State::Waiting { until } = self.state else {
            return None;
        };
        Some(until)
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- commands ----

    /// A revocation was stored another way: nothing more to ask, ever.
    pub fn revoked(&mut self) {
        if !self.is_revoked() {
            self.state = State::Revoked;
            self.actions.clear();
            self.events.push_back(Event::Revoked);
        }
    }

    // ---- inputs ----

    pub fn handle_timeout(&mut self, now: Millis) {
        if let State::Waiting { until } = self.state
            && now >= until
        {
            self.observe();
        }
    }

    /// Pull the directory early: a candidate snapshot names a box the stored
    /// directory does not hold ([`UnknownNodes::held`]). A waiting machine
    /// starts a cycle now, or [`EARLY_PULL_GAP`] after the last early pull;
    /// a machine in a cycle keeps the ask and, if that cycle has already
    /// pulled, pulls once more when it ends (same gap). Asks never stack:
    /// one is outstanding at most, and the pull that serves it clears it.
    pub fn handle_pull_now(&mut self, now: Millis) {
        if self.is_revoked() {
            return;
        }
        self.early_asked = true;
        if let State::Waiting { until } = self.state {
            let at = self.early_at(now);
            if at <= now {
                self.observe();
            } else {
                self.state = State::Waiting {
                    until: until.min(at),
                };
            }
        }
    }

    /// Answers [`Action::FindStoredRevocation`]: `true` once one is stored.
    pub fn handle_stored_revocation(&mut self, revoked: bool, _now: Millis) {
        if !matches!(self.state, State::FindingStoredRevocation) {
            return;
        }
        if revoked {
            self.revoked();
        } else {
            self.observe();
        }
    }

    /// Answers [`Action::Observe`].
    pub fn handle_observation(&mut self, seen: Observation, now: Millis) {
        if !matches!(self.state, State::Observing) {
            return;
        }
        // The default hub URL is its mesh address: wait for the tunnel
        // rather than log a failed pull for every second it takes.
        if !seen.hub_reachable {
            self.state = State::Waiting {
                until: now + TUNNEL_POLL,
            };
            return;
        }
        // This cycle's pull serves an early ask made so far.
        if self.early_asked {
            self.early_asked = false;
            self.early_last = Some(now);
        }
        self.pull(Cycle {
            seen,
            reached: true,
        });
    }

    /// Answers [`Action::PullPage`]: `head` is the stored head the request
    /// continued from.
    pub fn handle_page(&mut self, head: Head, answer: Exchange<Vec<u8>>, now: Millis) {
        let State::Pulling(cycle) = self.state else {
            return;
        };
        let body = match answer {
            Exchange::Answered(body) => body,
            Exchange::Refused { status, detail } => {
                return self.pull_failed(cycle, format!("{status}: {detail}"), now);
            }
            Exchange::Failed(e) => return self.pull_failed(cycle, e, now),
        };
        // Keeps every entry that verifies and stops at the first that does not.
        let entries = match directory::verify_bundle(&body, &self.hub_key, &head) {
            Ok(entries) => entries,
            Err(e) => return self.pull_failed(cycle, e.to_string(), now),
        };
        if entries.is_empty() {
            return self.after_pull(cycle, now);
        }
        let revocation = entries.iter().find_map(|(entry, raw, _)| {
            revocation::revokes(entry, &self.node_id).map(|r| (raw.clone(), r))
        });
        self.state = State::Appending(cycle);
        self.actions.push_back(Action::Append(Box::new(Page {
            entries,
            from: head,
            revocation,
        })));
    }

    /// Answers [`Action::Append`]: `revoked` when the page held this node's
    /// revocation and it is stored.
    pub fn handle_appended(&mut self, result: Result<bool, String>, now: Millis) {
        let State::Appending(cycle) = self.state else {
            return;
        };
        match result {
            Ok(true) => self.revoked(),
            Ok(false) => self.pull(cycle),
            Err(e) => self.pull_failed(cycle, e, now),
        }
    }

    /// Answers [`Action::PushMirror`] with the mirror's new length.
    pub fn handle_mirror_pushed(&mut self, result: Result<u64, String>, now: Millis) {
        let State::Pushing(mut cycle) = self.state else {
            return;
        };
        if let Err(e) = result {
            self.events.push_back(Event::MirrorPushFailed(e));
            cycle.reached = false;
        }
        self.after_push(cycle, now);
    }

    /// Answers [`Action::AskRevocation`]: `Ok(true)` once a verified
    /// revocation is stored, `Ok(false)` when the hub says not revoked.
    pub fn handle_ask(&mut self, result: Result<bool, String>, now: Millis) {
        let State::Asking(cycle) = self.state else {
            return;
        };
        match result {
            Ok(true) => return self.revoked(),
            Ok(false) => {}
            Err(e) => self.events.push_back(Event::AskFailed(e)),
        }
        let delay = self.ask_delay(&cycle.seen.settings);
        self.ask.asked(now, delay);
        self.end_cycle(cycle, now);
    }

    // ---- transitions ----

    fn observe(&mut self) {
        self.state = State::Observing;
        self.actions.push_back(Action::Observe);
    }

    fn pull(&mut self, cycle: Cycle) {
        self.state = State::Pulling(cycle);
        self.actions.push_back(Action::PullPage);
    }

    fn pull_failed(&mut self, mut cycle: Cycle, error: String, now: Millis) {
        self.events.push_back(Event::PullFailed(error));
        cycle.reached = false;
        self.after_pull(cycle, now);
    }

    fn after_pull(&mut self, cycle: Cycle, now: Millis) {
        // A rotated key makes the log longer than the mirror the hub holds.
        if cycle.seen.hub_mirror_len != Some(cycle.seen.identity_len) {
            self.state = State::Pushing(cycle);
            self.actions.push_back(Action::PushMirror);
        } else {
            self.after_push(cycle, now);
        }
    }

    fn after_push(&mut self, mut cycle: Cycle, now: Millis) {
        if cycle.seen.hub_handshake_stale {
            cycle.reached = false;
        }
        // The hub removes a revoked node's peer, so the tunnel goes silent:
        // ask its public listener, which the tunnel does not carry.
        if cycle.reached {
            self.ask.reset();
        } else if self.ask.due(now) {
            self.state = State::Asking(cycle);
            self.actions.push_back(Action::AskRevocation);
            return;
        }
        self.end_cycle(cycle, now);
    }

    fn end_cycle(&mut self, cycle: Cycle, now: Millis) {
        let interval = cycle
            .seen
            .settings
            .pull_interval
            .max(Duration::from_secs(1));
        let mut until = now + interval;
        // Asked for after this cycle's pull began: it may not hold the box.
        if self.early_asked {
            until = until.min(self.early_at(now));
        }
        self.state = State::Waiting { until };
    }

    /// The earliest an early pull may start.
    fn early_at(&self, now: Millis) -> Millis {
        self.early_last
            .map_or(now, |last| (last + EARLY_PULL_GAP).max(now))
    }

    fn ask_delay(&mut self, settings: &SyncSettings) -> Duration {
        backoff::delay(
            self.ask.asked.saturating_add(1),
            settings.retry_initial,
            settings.retry_max,
            self.jitter.fraction(),
        )
    }
}

/// The node ids that the held candidate snapshot names and the stored
/// directory does not hold (`candidates::Verified::unknown`): boxes
/// enrolled since the last directory pull.
///
/// Only an id that was not already unknown in the snapshot held before
/// asks for an early pull: a pull that did not bring it (the hub's
/// directory lags its snapshot, or the id is bogus) does not ask again
/// for it — the regular pull will — and verifying the same snapshot again
/// after the directory grew asks nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnknownNodes(BTreeSet<NodeId>);

impl UnknownNodes {
    /// A snapshot is now held; `unknown` is what it names that the
    /// directory lacks. `true`: ask [`SyncMachine::handle_pull_now`].
    pub fn held(&mut self, unknown: BTreeSet<NodeId>) -> bool {
        let new = unknown.iter().any(|id| !self.0.contains(id));
        self.0 = unknown;
        new
    }
}

/// When a node asks whether it is revoked: at the first failed hub contact
/// after one that worked, then no sooner than `retry_initial` doubling up to
/// `retry_max` (jittered) while contact keeps failing, so a hub outage costs
/// the hub's public listener about one request per node per `retry_max`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AskSchedule {
    asked: u32,
    next: Option<Millis>,
}

impl AskSchedule {
    /// The hub answered through the tunnel: the next failure asks at once.
    pub fn reset(&mut self) {
        *self = AskSchedule::default();
    }

    pub fn due(&self, now: Millis) -> bool {
        self.next.is_none_or(|t| now >= t)
    }

    /// An ask found no revocation (or failed); `delay` is the backoff for
    /// this ask's number (see [`SyncMachine`]).
    pub fn asked(&mut self, now: Millis, delay: Duration) {
        self.asked = self.asked.saturating_add(1);
        self.next = Some(now + delay);
    }
}

#[cfg(test)]
mod early_tests;
#[cfg(test)]
mod tests;

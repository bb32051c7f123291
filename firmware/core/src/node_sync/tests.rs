//! The sync machine on a virtual clock: the test plays the hub, the store
//! and the tunnel.

use std::net::Ipv4Addr;

use super::*;
use crate::Boxname;
use crate::directory::{Record, append, encode_bundle};
use crate::keys::SigningSecret;

const SECOND: Duration = Duration::from_secs(1);
pub(super) const PULL: Duration = Duration::from_secs(30);

fn hub() -> SigningSecret {
    SigningSecret::from_seed([42; 32])
}

fn me() -> NodeId {
    NodeId::from_genesis_key(&[2; 32])
}

fn other() -> NodeId {
    NodeId::from_genesis_key(&[3; 32])
}

fn settings() -> SyncSettings {
    SyncSettings {
        pull_interval: PULL,
        retry_initial: SECOND,
        retry_max: Duration::from_secs(8),
    }
}

/// Reachable, mirror current, handshake fresh.
pub(super) fn healthy() -> Observation {
    Observation {
        hub_reachable: true,
        hub_handshake_stale: false,
        identity_len: 1,
        hub_mirror_len: Some(1),
        settings: settings(),
    }
}

/// The hub's directory: a node record per seq, and revocations where asked.
pub(super) struct Hub {
    entries: Vec<Vec<u8>>,
    pub(super) head: Head,
}

impl Hub {
    pub(super) fn new() -> Hub {
        Hub {
            entries: Vec::new(),
            head: Head::default(),
        }
    }

    fn add(&mut self, record: Record) {
        let (raw, head) = append(&self.head, &hub(), record).unwrap();
        self.entries.push(raw);
        self.head = head;
    }

    pub(super) fn add_node(&mut self, n: u8) {
        self.add(Record::Node {
            node_id: other(),
            boxname: Boxname::parse("other").unwrap(),
            signing_key: [n; 32],
            wireguard_key: [n; 32],
            mesh_ip: Ipv4Addr::new(10, 0, 0, n),
            endpoint_hint: None,
        });
    }

    fn revoke_me(&mut self) {
        self.add(Record::Revoke {
            node_id: me(),
            reason: heapless::String::try_from("stolen").unwrap(),
        });
    }

    /// `GET /v1/directory?after=`, at most `page` entries.
    fn page(&self, after: u64, page: usize) -> Vec<u8> {
        let from = after as usize;
        let to = (from + page).min(self.entries.len());
        encode_bundle(
            &hub().public_key(),
            after,
            self.head,
            &self.entries[from..to],
        )
    }
}

pub(super) fn actions(m: &mut SyncMachine) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn events(m: &mut SyncMachine) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// The tunnel to the hub is not up yet.
pub(super) fn tunnel_down() -> Observation {
    Observation {
        hub_reachable: false,
        ..healthy()
    }
}

/// A machine past its start-up check, waiting for its first observation.
pub(super) fn started() -> SyncMachine {
    let mut m = SyncMachine::new(hub().public_key(), me(), 7);
    assert_eq!(actions(&mut m), [Action::FindStoredRevocation]);
    m.handle_stored_revocation(false, Millis(0));
    assert_eq!(actions(&mut m), [Action::Observe]);
    m
}

/// Pulls from `hub` into `stored` (the node's head) in pages of `page`,
/// as the driver would; returns the number of pages appended and the
/// actions that follow the pull.
pub(super) fn pull_all(
    m: &mut SyncMachine,
    hub: &Hub,
    stored: &mut Head,
    page: usize,
    now: Millis,
) -> (usize, Vec<Action>) {
    let mut appended = 0;
    loop {
        assert_eq!(actions(m), [Action::PullPage]);
        m.handle_page(*stored, Exchange::Answered(hub.page(stored.len, page)), now);
        let next = actions(m);
        let [Action::Append(p)] = next.as_slice() else {
            return (appended, next);
        };
        assert_eq!(p.from, *stored);
        *stored = p.entries.last().unwrap().2;
        appended += 1;
        m.handle_appended(Ok(p.revocation.is_some()), now);
        if m.is_revoked() {
            return (appended, actions(m));
        }
    }
}

#[test]
fn a_revocation_found_in_the_store_at_start_ends_everything() {
    let mut m = SyncMachine::new(hub().public_key(), me(), 1);
    assert_eq!(actions(&mut m), [Action::FindStoredRevocation]);
    m.handle_stored_revocation(true, Millis(0));
    assert!(m.is_revoked());
    assert_eq!(events(&mut m), [Event::Revoked]);
    assert_eq!(actions(&mut m), []);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn pulls_page_after_page_from_the_stored_head_then_waits_the_interval() {
    let mut hub = Hub::new();
    for n in 1..=5 {
        hub.add_node(n);
    }
    let mut m = started();
    let mut stored = Head::default();
    let t0 = Millis(10_000);
    m.handle_observation(healthy(), t0);
    // Mirror current, contact worked: nothing else, next pull in 30 s.
    assert_eq!(pull_all(&mut m, &hub, &mut stored, 2, t0), (3, vec![]));
    assert_eq!(stored, hub.head);
    assert_eq!(events(&mut m), []);
    assert_eq!(m.poll_timeout(), Some(t0 + PULL));
    m.handle_timeout(Millis(t0.0 + 29_999));
    assert_eq!(actions(&mut m), []);
    m.handle_timeout(t0 + PULL);
    assert_eq!(actions(&mut m), [Action::Observe]);
    // Nothing new at the next cycle: a single empty page.
    hub.add_node(6);
    let t1 = t0 + PULL;
    m.handle_observation(healthy(), t1);
    assert_eq!(pull_all(&mut m, &hub, &mut stored, 2, t1), (1, vec![]));
    assert_eq!(stored.len, 6);
    // An interval under a second is taken as one second.
    m.handle_timeout(t1 + PULL);
    m.poll_action();
    let fast = Observation {
        settings: SyncSettings {
            pull_interval: Duration::ZERO,
            ..settings()
        },
        ..healthy()
    };
    let t2 = t1 + PULL;
    m.handle_observation(fast, t2);
    pull_all(&mut m, &hub, &mut stored, 2, t2);
    assert_eq!(m.poll_timeout(), Some(t2 + SECOND));
}

#[test]
fn waits_for_the_tunnel_before_pulling() {
    let mut m = started();
    m.handle_observation(tunnel_down(), Millis(0));
    assert_eq!(actions(&mut m), []);
    assert_eq!(m.poll_timeout(), Some(Millis(0) + TUNNEL_POLL));
    m.handle_timeout(Millis(500));
    assert_eq!(actions(&mut m), [Action::Observe]);
    m.handle_observation(healthy(), Millis(500));
    assert_eq!(actions(&mut m), [Action::PullPage]);
}

#[test]
fn pushes_the_mirror_after_a_rotation_and_not_again_once_current() {
    let hub = Hub::new();
    let mut m = started();
    let mut stored = Head::default();
    let rotated = Observation {
        identity_len: 2,
        hub_mirror_len: Some(1),
        ..healthy()
    };
    m.handle_observation(rotated, Millis(0));
    // The pull came back empty; the log is longer than the mirror.
    assert_eq!(
        pull_all(&mut m, &hub, &mut stored, 10, Millis(0)),
        (0, vec![Action::PushMirror])
    );
    m.handle_mirror_pushed(Ok(2), Millis(0));
    assert_eq!(actions(&mut m), []);
    assert_eq!(m.poll_timeout(), Some(Millis(0) + PULL));
    // The driver recorded the new length: the next cycle does not push.
    m.handle_timeout(Millis(0) + PULL);
    m.poll_action();
    let current = Observation {
        identity_len: 2,
        hub_mirror_len: Some(2),
        ..healthy()
    };
    m.handle_observation(current, Millis(0) + PULL);
    assert_eq!(
        pull_all(&mut m, &hub, &mut stored, 10, Millis(0) + PULL),
        (0, vec![])
    );
    // An unknown mirror length (a fresh start) pushes too.
    let mut m = started();
    let unknown = Observation {
        hub_mirror_len: None,
        ..healthy()
    };
    m.handle_observation(unknown, Millis(0));
    assert_eq!(
        pull_all(&mut m, &hub, &mut Head::default(), 10, Millis(0)),
        (0, vec![Action::PushMirror])
    );
}

#[test]
fn a_failed_contact_asks_at_once_then_backs_off_and_contact_resets() {
    let mut m = started();
    let mut now = Millis(0);
    let mut asks = Vec::new();
    // The hub is gone for 10 minutes: every pull fails.
    while now < Millis(600_000) {
        m.handle_observation(healthy(), now);
        assert_eq!(actions(&mut m), [Action::PullPage]);
        m.handle_page(
            Head::default(),
            Exchange::Failed("connection refused".into()),
            now,
        );
        assert_eq!(
            events(&mut m),
            [Event::PullFailed("connection refused".into())]
        );
        if m.poll_action() == Some(Action::AskRevocation) {
            asks.push(now);
            m.handle_ask(Ok(false), now);
        }
        now = m.poll_timeout().unwrap();
        m.handle_timeout(now);
        m.poll_action();
    }
    assert_eq!(asks[0], Millis(0), "the first failure asks at once");
    // Pulls every 30 s; asks spaced by at least the jittered backoff
    // (half of 1, 2, 4, 8, 8 … s), so here at most one ask per pull.
    assert_eq!(asks.len(), 20, "{asks:?}");
    // Contact again: the schedule resets, the next failure asks at once.
    m.handle_observation(healthy(), now);
    m.poll_action();
    m.handle_page(
        Head::default(),
        Exchange::Answered(Hub::new().page(0, 1)),
        now,
    );
    assert_eq!(actions(&mut m), []);
    assert_eq!(m.next_ask(), None);
    now = m.poll_timeout().unwrap();
    m.handle_timeout(now);
    m.poll_action();
    m.handle_observation(healthy(), now);
    m.poll_action();
    m.handle_page(Head::default(), Exchange::Failed("gone".into()), now);
    assert_eq!(actions(&mut m), [Action::AskRevocation]);
}

#[test]
fn ask_backoff_doubles_to_the_cap_within_jitter_bounds() {
    let fast = SyncSettings {
        pull_interval: Duration::ZERO,
        ..settings()
    };
    for seed in 0..20 {
        let mut m = SyncMachine::new(hub().public_key(), me(), seed);
        m.poll_action();
        m.handle_stored_revocation(false, Millis(0));
        let mut now = Millis(0);
        let mut gaps = Vec::new();
        let mut last_ask = None;
        while gaps.len() < 8 {
            m.poll_action();
            let stale = Observation {
                hub_handshake_stale: true,
                settings: fast,
                ..healthy()
            };
            m.handle_observation(stale, now);
            m.poll_action();
            // The pull works, but a stale handshake still counts as lost
            // contact (a removed peer looks like this).
            m.handle_page(
                Head::default(),
                Exchange::Answered(Hub::new().page(0, 1)),
                now,
            );
            if m.poll_action() == Some(Action::AskRevocation) {
                m.handle_ask(Err("timeout".into()), now);
                assert_eq!(events(&mut m), [Event::AskFailed("timeout".into())]);
                // Never before the previous ask's backoff ran out.
                if let (Some(last), Some(gap)) = (last_ask, gaps.last()) {
                    assert!(now.since(last) >= *gap);
                }
                gaps.push(m.next_ask().unwrap().since(now));
                last_ask = Some(now);
            }
            now = m.poll_timeout().unwrap();
            m.handle_timeout(now);
        }
        for (i, gap) in gaps.iter().enumerate() {
            let full = SECOND * (1 << i.min(3));
            assert!(
                *gap >= full / 2 && *gap <= full + Duration::from_millis(1),
                "seed {seed} ask {i}: {gap:?}"
            );
        }
    }
}

#[test]
fn its_own_revocation_in_a_pulled_page_is_stored_and_ends_everything() {
    let mut hub = Hub::new();
    hub.add_node(1);
    hub.revoke_me();
    hub.add_node(2);
    let mut m = started();
    m.handle_observation(healthy(), Millis(0));
    assert_eq!(actions(&mut m), [Action::PullPage]);
    m.handle_page(
        Head::default(),
        Exchange::Answered(hub.page(0, 10)),
        Millis(0),
    );
    let Some(Action::Append(page)) = m.poll_action() else {
        panic!("no append");
    };
    assert_eq!(page.entries.len(), 3);
    let (raw, revocation) = page.revocation.clone().unwrap();
    assert_eq!(raw, hub.entries[1]);
    assert_eq!(revocation.seq, 1);
    assert_eq!(revocation.reason, "stolen");
    m.handle_appended(Ok(true), Millis(0));
    assert!(m.is_revoked());
    assert_eq!(events(&mut m), [Event::Revoked]);
    assert_eq!(actions(&mut m), []);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_page_that_does_not_verify_is_a_failed_pull() {
    let impostor = SigningSecret::from_seed([9; 32]);
    let (raw, head) = append(
        &Head::default(),
        &impostor,
        Record::Revoke {
            node_id: me(),
            reason: heapless::String::try_from("forged").unwrap(),
        },
    )
    .unwrap();
    let forged = encode_bundle(&hub().public_key(), 0, head, &[raw]);
    let mut m = started();
    m.handle_observation(healthy(), Millis(0));
    m.poll_action();
    m.handle_page(Head::default(), Exchange::Answered(forged), Millis(0));
    assert!(matches!(events(&mut m).as_slice(), [Event::PullFailed(_)]));
    assert!(!m.is_revoked());
    assert_eq!(actions(&mut m), [Action::AskRevocation]);
    // A refusal is a failed pull too; a failed append as well.
    m.handle_ask(Ok(true), Millis(0));
    assert!(m.is_revoked());
}

#[test]
fn a_revocation_pushed_meanwhile_stops_the_machine() {
    let mut m = started();
    m.handle_observation(healthy(), Millis(0));
    assert_eq!(actions(&mut m), [Action::PullPage]);
    m.revoked();
    assert!(m.is_revoked());
    m.handle_page(
        Head::default(),
        Exchange::Refused {
            status: "500".into(),
            detail: "x".into(),
        },
        Millis(0),
    );
    assert_eq!(events(&mut m), [Event::Revoked]);
    assert_eq!(actions(&mut m), []);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_failed_append_or_mirror_push_is_lost_contact() {
    let mut hub = Hub::new();
    hub.add_node(1);
    let mut m = started();
    let behind = Observation {
        hub_mirror_len: Some(0),
        ..healthy()
    };
    m.handle_observation(behind, Millis(0));
    m.poll_action();
    m.handle_page(
        Head::default(),
        Exchange::Answered(hub.page(0, 10)),
        Millis(0),
    );
    assert!(matches!(m.poll_action(), Some(Action::Append(_))));
    m.handle_appended(Err("disk full".into()), Millis(0));
    assert_eq!(actions(&mut m), [Action::PushMirror]);
    m.handle_mirror_pushed(Err("403".into()), Millis(0));
    assert_eq!(
        events(&mut m),
        [
            Event::PullFailed("disk full".into()),
            Event::MirrorPushFailed("403".into())
        ]
    );
    assert_eq!(actions(&mut m), [Action::AskRevocation]);
}

//! Early directory pulls on a virtual clock: a candidate snapshot names a
//! box the node's directory does not hold yet.

use super::tests::{Hub, PULL, actions, healthy, pull_all, started, tunnel_down};
use super::*;
use crate::ordered::set_from;

const GAP: Duration = EARLY_PULL_GAP;

fn id(n: u8) -> NodeId {
    NodeId::from_genesis_key(&[n; 32])
}

/// A machine whose first cycle pulled `hub` at `t0`, waiting for the next.
fn waiting(hub: &Hub, stored: &mut Head, t0: Millis) -> SyncMachine {
    let mut m = started();
    m.handle_observation(healthy(), t0);
    assert_eq!(pull_all(&mut m, hub, stored, 8, t0), (1, vec![]));
    assert_eq!(m.poll_timeout(), Some(t0 + PULL));
    m
}

#[test]
fn an_ask_waits_for_the_tunnel_and_a_revoked_machine_ignores_it() {
    let mut m = started();
    m.handle_observation(tunnel_down(), Millis(0));
    m.handle_pull_now(Millis(100));
    assert_eq!(actions(&mut m), [Action::Observe], "looks again at once");
    m.handle_observation(tunnel_down(), Millis(100));
    assert_eq!(m.poll_timeout(), Some(Millis(100) + TUNNEL_POLL));

    m.revoked();
    m.handle_pull_now(Millis(200));
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(actions(&mut m), []);
}

#[test]
fn a_waiting_machine_pulls_at_once_then_at_most_once_per_gap() {
    let mut hub = Hub::new();
    hub.add_node(1);
    let mut stored = Head::default();
    let t0 = Millis(10_000);
    let mut m = waiting(&hub, &mut stored, t0);

    // A box enrols; a snapshot names it: pull now, not at t0 + 30 s.
    hub.add_node(2);
    let t1 = Millis(12_000);
    m.handle_pull_now(t1);
    assert_eq!(actions(&mut m), [Action::Observe]);
    m.handle_observation(healthy(), t1);
    assert_eq!(pull_all(&mut m, &hub, &mut stored, 8, t1), (1, vec![]));
    assert_eq!(stored, hub.head);
    assert_eq!(m.poll_timeout(), Some(t1 + PULL));

    // More asks within the gap: one pull at its end, not one each.
    m.handle_pull_now(Millis(13_000));
    m.handle_pull_now(Millis(14_000));
    assert_eq!(actions(&mut m), []);
    assert_eq!(m.poll_timeout(), Some(t1 + GAP));
    m.handle_timeout(Millis(t1.0 + 9_999));
    assert_eq!(actions(&mut m), []);
    let t2 = t1 + GAP;
    m.handle_timeout(t2);
    assert_eq!(actions(&mut m), [Action::Observe]);
    m.handle_observation(healthy(), t2);
    assert_eq!(pull_all(&mut m, &hub, &mut stored, 8, t2), (0, vec![]));
    // Served: back to the interval, nothing outstanding.
    assert_eq!(m.poll_timeout(), Some(t2 + PULL));
    m.handle_timeout(t2 + GAP);
    assert_eq!(actions(&mut m), []);
}

#[test]
fn an_ask_in_a_cycle_is_served_by_its_pull_or_by_one_after_it() {
    let hub = {
        let mut hub = Hub::new();
        hub.add_node(1);
        hub
    };
    // Asked before the cycle's pull began: that pull serves it.
    let mut m = started();
    m.handle_pull_now(Millis(0));
    assert_eq!(actions(&mut m), []);
    let mut stored = Head::default();
    let t0 = Millis(1_000);
    m.handle_observation(healthy(), t0);
    pull_all(&mut m, &hub, &mut stored, 8, t0);
    assert_eq!(m.poll_timeout(), Some(t0 + PULL));

    // Asked while a later cycle pulls: one more pull when it ends, no
    // sooner than the gap after the last early pull (t0).
    let t1 = t0 + PULL;
    m.handle_timeout(t1);
    assert_eq!(actions(&mut m), [Action::Observe]);
    m.handle_observation(healthy(), t1);
    m.handle_pull_now(t1);
    m.handle_pull_now(t1);
    assert_eq!(pull_all(&mut m, &hub, &mut stored, 8, t1), (0, vec![]));
    assert_eq!(m.poll_timeout(), Some(t1));
    m.handle_timeout(t1);
    assert_eq!(actions(&mut m), [Action::Observe]);
    m.handle_observation(healthy(), t1);
    pull_all(&mut m, &hub, &mut stored, 8, t1);
    assert_eq!(m.poll_timeout(), Some(t1 + PULL));
}

#[test]
fn only_a_newly_unknown_id_asks() {
    let mut unknown = UnknownNodes::default();
    assert!(!unknown.held(set_from([])));
    assert!(unknown.held(set_from([id(1)])), "a box enrolled");
    // The early pull did not bring it (the hub's snapshot ran ahead of its
    // directory, or the id is bogus): the next snapshot does not ask again.
    assert!(!unknown.held(set_from([id(1)])));
    assert!(unknown.held(set_from([id(1), id(2)])), "another box");
    // The same snapshot verified again after the directory grew.
    assert!(!unknown.held(set_from([id(2)])));
    assert!(!unknown.held(set_from([])));
    // Unknown again after it was held: new again.
    assert!(unknown.held(set_from([id(1)])));
}

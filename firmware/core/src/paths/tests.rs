//! On a virtual clock: `Clock` advances a monotonic and a wall time
//! together, no sleeping.

use std::time::UNIX_EPOCH;

use super::*;
use crate::candidates::{Candidates, RelayPair};
use crate::peer_diff::{DevicePeer, DeviceState};

use crate::dataplane::tests::id;

fn own() -> NodeId {
    id(1)
}
fn hub() -> NodeId {
    id(9)
}
fn b() -> NodeId {
    id(2)
}
fn c() -> NodeId {
    id(3)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const B_LAN: &str = "192.168.1.20:51822";
const B_PUBLIC: &str = "203.0.113.2:40002";
const C_PUBLIC: &str = "203.0.113.3:40003";
const RELAY_HOST: &str = "192.0.2.1";

struct Clock {
    now: Instant,
    wall: SystemTime,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            now: Instant::now(),
            wall: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }
    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.wall += Duration::from_secs(secs);
    }
}

fn candidates(lan: &[&str], observed: &str) -> Candidates {
    Candidates {
        observed: observed.parse().ok(),
        listen_port: Some(51822),
        lan: lan.iter().map(|a| a.parse().unwrap()).collect(),
        want_relay: vec![],
        relay: None,
    }
}

/// B shares our LAN (192.168.1.0/24) and is public at B_PUBLIC; C's LAN
/// address is on a LAN that is not ours; the hub and we are listed too.
fn snapshot(probe_round: u32, relays: Vec<RelayPair>) -> Snapshot {
    Snapshot {
        serial: 1,
        issued_unix: 0,
        probe_round,
        nodes: BTreeMap::from([
            (
                own(),
                candidates(&["192.168.1.10:51821"], "203.0.113.1:40001"),
            ),
            (b(), candidates(&[B_LAN], B_PUBLIC)),
            (c(), candidates(&["10.0.0.5:51823"], C_PUBLIC)),
            (hub(), candidates(&[], "")),
        ]),
        relays,
    }
}

/// The pair (x, y) with ports: `a` is the lower id, as the hub writes it.
fn pair(x: NodeId, y: NodeId, port_x: u16, port_y: u16) -> RelayPair {
    if x < y {
        RelayPair {
            a: x,
            b: y,
            relay: hub(),
            port_a: port_x,
            port_b: port_y,
        }
    } else {
        RelayPair {
            a: y,
            b: x,
            relay: hub(),
            port_a: port_y,
            port_b: port_x,
        }
    }
}

/// Our machine, with the endpoints `restored` from the state partition,
/// on LAN 192.168.1.0/24, the relay's host known; the device not read yet.
fn started(clock: &Clock, restored: &BTreeMap<NodeId, SocketAddr>) -> PathMachine {
    let mut m = PathMachine::new(own(), hub(), restored, clock.wall);
    m.handle_lan_subnets(
        vec!["192.168.1.0/24".parse().unwrap()],
        clock.now,
        clock.wall,
    );
    m.handle_relay_host(Some(RELAY_HOST.parse().unwrap()));
    m
}

fn machine(clock: &Clock) -> PathMachine {
    let mut m = started(clock, &BTreeMap::new());
    // The driver reads the device at every pass; probes start after the
    // first read.
    m.handle_device(&BTreeMap::new(), clock.now, clock.wall);
    m
}

/// A new snapshot arrives.
fn give(m: &mut PathMachine, clock: &Clock, s: Snapshot) {
    m.handle_snapshot(&s, clock.now, clock.wall);
}

fn drain(m: &mut PathMachine) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

fn endpoint_events(events: &[Event]) -> Vec<(NodeId, Option<SocketAddr>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Endpoint { peer, endpoint } => Some((peer.clone(), *endpoint)),
            _ => None,
        })
        .collect()
}

/// One device observation: (peer, handshake `ago` seconds before the
/// clock's wall time, endpoint).
fn seen(clock: &Clock, peers: &[(NodeId, u64, &str)]) -> BTreeMap<NodeId, Seen> {
    peers
        .iter()
        .map(|(id, ago, endpoint)| {
            (
                id.clone(),
                Seen {
                    last_handshake: Some(clock.wall - Duration::from_secs(*ago)),
                    endpoint: Some(addr(endpoint)),
                },
            )
        })
        .collect()
}

/// The driver's turn after the clock moved: device, then timeouts.
fn step(m: &mut PathMachine, clock: &Clock, device: &BTreeMap<NodeId, Seen>) -> Vec<Event> {
    m.handle_device(device, clock.now, clock.wall);
    m.handle_timeout(clock.now, clock.wall);
    drain(m)
}

/// A machine that just started probing B and C (snapshot 0).
fn probing() -> (Clock, PathMachine) {
    let clock = Clock::new();
    let mut m = machine(&clock);
    give(&mut m, &clock, snapshot(0, vec![]));
    drain(&mut m);
    (clock, m)
}

fn path(peer: NodeId, kind: PathKind) -> Event {
    Event::Path { peer, kind }
}

/// A machine whose candidates for B and C all timed out.
fn wanting_relay() -> (Clock, PathMachine) {
    let mut clock = Clock::new();
    let mut m = machine(&clock);
    until_relay_wanted(&mut m, &mut clock);
    (clock, m)
}

/// Probes B and C until both have fallen back to wanting the relay.
fn until_relay_wanted(m: &mut PathMachine, clock: &mut Clock) {
    give(m, clock, snapshot(0, vec![]));
    drain(m);
    clock.advance(6);
    step(m, clock, &BTreeMap::new());
    clock.advance(6);
    step(m, clock, &BTreeMap::new());
    assert_eq!(m.want_relay(), [b(), c()].as_slice());
}

#[test]
fn same_lan_first_then_public_then_the_relay_is_asked_for() {
    let mut clock = Clock::new();
    let mut m = machine(&clock);
    assert_eq!(m.poll_timeout(), None, "nothing to probe before a snapshot");
    give(&mut m, &clock, snapshot(0, vec![]));
    // Both start at once; C's LAN address is not on our LAN: skipped.
    assert_eq!(
        endpoint_events(&drain(&mut m)),
        vec![(b(), Some(addr(B_LAN))), (c(), Some(addr(C_PUBLIC)))]
    );
    assert_eq!(m.poll_timeout(), Some(clock.now + PROBE_TIMEOUT));

    clock.advance(5);
    assert!(step(&mut m, &clock, &BTreeMap::new()).is_empty(), "not yet");
    clock.advance(1);
    let events = step(&mut m, &clock, &BTreeMap::new());
    assert_eq!(endpoint_events(&events), vec![(b(), Some(addr(B_PUBLIC)))]);
    assert!(events.contains(&Event::WantRelay(vec![c()])));
    clock.advance(6);
    let events = step(&mut m, &clock, &BTreeMap::new());
    assert_eq!(events, vec![Event::WantRelay(vec![b(), c()])]);
    assert_eq!(m.poll_timeout(), None);
    // Meanwhile the last candidate stays configured: the other side may
    // still reach us there.
    assert_eq!(m.endpoints().get(&b()), Some(&addr(B_PUBLIC)));
    assert_eq!(m.status(&b()).map(|s| s.kind), Some(PathKind::None));
}

#[test]
fn only_a_handshake_after_the_candidate_was_set_proves_it() {
    let (mut clock, mut m) = probing();
    clock.advance(2);
    // Fresh, but from before the candidate was set: not proof.
    let old = seen(&clock, &[(b(), 10, B_LAN)]);
    assert!(step(&mut m, &clock, &old).is_empty());
    // A handshake after it: the LAN path works.
    let new = seen(&clock, &[(b(), 1, B_LAN)]);
    let events = step(&mut m, &clock, &new);
    assert_eq!(events, vec![path(b(), PathKind::Lan)]);
    let status = m.status(&b()).unwrap();
    assert_eq!(
        (status.kind, status.endpoint, status.fresh),
        (PathKind::Lan, Some(addr(B_LAN)), true)
    );
    assert_eq!(m.good_endpoints().get(&b()), Some(&addr(B_LAN)));
    // No more probing for B: its timeout passes without a change.
    clock.advance(10);
    let events = step(&mut m, &clock, &seen(&clock, &[(b(), 11, B_LAN)]));
    assert!(endpoint_events(&events).iter().all(|(p, _)| *p != b()));
    assert!(!m.want_relay().contains(&b()));
}

/// Trap 1: the kernel roams a peer to the source of its last
/// authenticated packet. Success is judged from the device's endpoint
/// after the handshake, and the machine keeps following it, so the data
/// plane never sets the endpoint back.
#[test]
fn trap_roaming_the_machine_follows_the_device() {
    let (mut clock, mut m) = probing();
    clock.advance(1);
    // We tried B's LAN address; B's probe reached us from its public one.
    let roamed = "198.51.100.9:61000";
    let events = step(&mut m, &clock, &seen(&clock, &[(b(), 0, roamed)]));
    assert_eq!(
        events,
        vec![path(b(), PathKind::Direct)],
        "no endpoint to set: the device already has it"
    );
    assert_eq!(m.endpoints().get(&b()), Some(&addr(roamed)));
    // It roams again (B's NAT mapping changed): still followed.
    clock.advance(30);
    let again = "198.51.100.9:61001";
    let events = step(&mut m, &clock, &seen(&clock, &[(b(), 5, again)]));
    assert_eq!(events, vec![Event::WantRelay(vec![c()])], "nothing about B");
    assert_eq!(m.endpoints().get(&b()), Some(&addr(again)));
    // ...and to an address on our LAN: the path is then `lan`.
    let events = step(&mut m, &clock, &seen(&clock, &[(b(), 5, B_LAN)]));
    assert_eq!(events, vec![path(b(), PathKind::Lan)]);
}

/// Trap 2: a packet whose source is inside another peer's allowed IPs is
/// dropped. The relay carries the A–B session's own ciphertext: each side
/// points its peer (the other box, not the hub) at the relay's host and
/// its own side's port.
#[test]
fn trap_the_relay_carries_the_pairs_own_session() {
    let mut clock = Clock::new();
    let mut m = machine(&clock);
    // The other side: B's machine, whose LAN is elsewhere.
    let mut other = PathMachine::new(b(), hub(), &BTreeMap::new(), clock.wall);
    other.handle_relay_host(Some(RELAY_HOST.parse().unwrap()));
    other.handle_device(&BTreeMap::new(), clock.now, clock.wall);
    give(&mut other, &clock, snapshot(0, vec![]));
    until_relay_wanted(&mut m, &mut clock);
    other.handle_timeout(clock.now, clock.wall);
    clock.advance(6);
    other.handle_timeout(clock.now, clock.wall);
    assert!(other.want_relay().contains(&own()));

    let relays = vec![pair(own(), b(), 56001, 56002)];
    give(&mut m, &clock, snapshot(0, relays.clone()));
    give(&mut other, &clock, snapshot(0, relays));
    let events = drain(&mut m);
    assert!(events.contains(&path(b(), PathKind::Relay)));
    assert!(endpoint_events(&events).contains(&(b(), Some(addr("192.0.2.1:56001")))));
    // Our peer B, and B's peer "us", each at its own side's port.
    assert_eq!(m.endpoints().get(&b()), Some(&addr("192.0.2.1:56001")));
    assert_eq!(
        other.endpoints().get(&own()),
        Some(&addr("192.0.2.1:56002"))
    );
    assert!(!m.endpoints().contains_key(&hub()));
    // Still asked for while used (the hub releases idle, unasked pairs).
    assert!(m.want_relay().contains(&b()));
    // A handshake through the relay is the relay path, not a direct one.
    clock.advance(2);
    let events = step(
        &mut m,
        &clock,
        &seen(&clock, &[(b(), 1, "192.0.2.1:56001")]),
    );
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(m.status(&b()).map(|s| s.kind), Some(PathKind::Relay));
}

#[test]
fn no_relay_host_no_relay_endpoint() {
    let mut clock = Clock::new();
    let mut m = machine(&clock);
    m.handle_relay_host(None);
    until_relay_wanted(&mut m, &mut clock);
    give(
        &mut m,
        &clock,
        snapshot(0, vec![pair(own(), b(), 56001, 56002)]),
    );
    assert_eq!(m.endpoints().get(&b()), Some(&addr(B_PUBLIC)));
    m.handle_relay_host(Some(RELAY_HOST.parse().unwrap()));
    assert_eq!(m.endpoints().get(&b()), Some(&addr("192.0.2.1:56001")));
}

/// The hub's pairs of us with B and with C.
fn relay_pairs() -> Vec<RelayPair> {
    vec![
        pair(own(), b(), 56001, 56002),
        pair(own(), c(), 56003, 56004),
    ]
}

/// A machine whose candidates for B and C all timed out, moved to the
/// relay by a snapshot (round 0) that lists both pairs.
fn relayed() -> (Clock, PathMachine) {
    let (clock, mut m) = wanting_relay();
    give(&mut m, &clock, snapshot(0, relay_pairs()));
    drain(&mut m);
    (clock, m)
}

#[test]
fn relayed_pairs_try_direct_again_each_probe_round_and_return_to_it() {
    let (mut clock, mut m) = relayed();
    let relays = relay_pairs();
    assert_eq!(m.endpoints().get(&c()), Some(&addr("192.0.2.1:56003")));

    // A new snapshot, same round: nothing moves.
    clock.advance(60);
    give(&mut m, &clock, snapshot(0, relays.clone()));
    assert!(drain(&mut m).is_empty());

    // The round steps: both probe their candidates again, still asking
    // for the relay meanwhile.
    give(&mut m, &clock, snapshot(1, relays.clone()));
    assert_eq!(
        endpoint_events(&drain(&mut m)),
        vec![(b(), Some(addr(B_LAN))), (c(), Some(addr(C_PUBLIC)))]
    );
    assert_eq!(m.want_relay(), [b(), c()].as_slice());
    // B answers on the LAN: direct again, no longer asked for.
    clock.advance(1);
    let events = step(&mut m, &clock, &seen(&clock, &[(b(), 0, B_LAN)]));
    assert!(events.contains(&path(b(), PathKind::Lan)));
    assert!(events.contains(&Event::WantRelay(vec![c()])));
    // C does not: back to the relay after its one candidate.
    clock.advance(6);
    let events = step(&mut m, &clock, &seen(&clock, &[(b(), 6, B_LAN)]));
    assert_eq!(
        endpoint_events(&events),
        vec![(c(), Some(addr("192.0.2.1:56003")))]
    );
    assert_eq!(m.status(&c()).map(|s| s.kind), Some(PathKind::Relay));
    assert_eq!(m.status(&b()).map(|s| s.kind), Some(PathKind::Lan));

    // The other side's direct probe reaches us while we are relayed: the
    // device roamed off the relay, and the machine follows it.
    give(&mut m, &clock, snapshot(2, relays));
    clock.advance(6);
    step(&mut m, &clock, &BTreeMap::new());
    assert_eq!(m.status(&c()).map(|s| s.kind), Some(PathKind::Relay));
    clock.advance(1);
    step(&mut m, &clock, &seen(&clock, &[(c(), 0, C_PUBLIC)]));
    assert_eq!(m.status(&c()).map(|s| s.kind), Some(PathKind::Direct));
    assert!(m.want_relay().is_empty());
}

#[test]
fn a_relay_pair_that_disappears_is_asked_for_again() {
    let (clock, mut m) = wanting_relay();
    give(
        &mut m,
        &clock,
        snapshot(0, vec![pair(own(), b(), 56001, 56002)]),
    );
    assert_eq!(m.endpoints().get(&b()), Some(&addr("192.0.2.1:56001")));
    give(&mut m, &clock, snapshot(0, vec![]));
    assert!(m.want_relay().contains(&b()));
    give(
        &mut m,
        &clock,
        snapshot(0, vec![pair(own(), b(), 56011, 56012)]),
    );
    assert_eq!(m.endpoints().get(&b()), Some(&addr("192.0.2.1:56011")));
}

#[test]
fn a_lost_direct_path_is_probed_again_from_the_start() {
    let (mut clock, mut m) = probing();
    clock.advance(7);
    // B answered on its public address (LAN candidate timed out).
    step(&mut m, &clock, &BTreeMap::new());
    let up = seen(&clock, &[(b(), 0, B_PUBLIC)]);
    step(&mut m, &clock, &up);
    assert_eq!(m.status(&b()).map(|s| s.kind), Some(PathKind::Direct));
    // 179 s without a new handshake: still up. 181 s: lost.
    clock.advance(179);
    let events = step(&mut m, &clock, &seen(&clock, &[(b(), 179, B_PUBLIC)]));
    assert!(events.is_empty(), "{events:?}");
    clock.advance(2);
    let events = step(&mut m, &clock, &seen(&clock, &[(b(), 181, B_PUBLIC)]));
    assert_eq!(
        events,
        vec![
            path(b(), PathKind::None),
            Event::Endpoint {
                peer: b(),
                endpoint: Some(addr(B_LAN))
            },
        ]
    );
    assert_eq!(m.poll_timeout(), Some(clock.now + PROBE_TIMEOUT));
}

/// The hub is gone: no snapshot comes, its relay forwards nothing.
#[test]
fn hub_gone_direct_stays_and_relay_goes_stale() {
    let (mut clock, mut m) = wanting_relay();
    give(
        &mut m,
        &clock,
        snapshot(0, vec![pair(own(), c(), 56003, 56004)]),
    );
    clock.advance(1);
    let relayed = "192.0.2.1:56003";
    step(
        &mut m,
        &clock,
        &seen(&clock, &[(b(), 0, B_PUBLIC), (c(), 0, relayed)]),
    );
    drain(&mut m);
    let before = m.endpoints();
    // Ten minutes on: B keeps handshaking directly, C's last handshake
    // is from when the hub was there.
    for _ in 0..60 {
        clock.advance(10);
        let device = seen(&clock, &[(b(), 5, B_PUBLIC), (c(), 0, relayed)]);
        let mut device = device;
        if let Some(s) = device.get_mut(&c()) {
            s.last_handshake = Some(UNIX_EPOCH + Duration::from_secs(1_800_000_013));
        }
        let events = step(&mut m, &clock, &device);
        assert!(events.is_empty(), "{events:?}");
    }
    assert_eq!(m.endpoints(), before);
    let b_path = m.status(&b()).unwrap();
    assert_eq!((b_path.kind, b_path.fresh), (PathKind::Direct, true));
    let c_path = m.status(&c()).unwrap();
    assert_eq!((c_path.kind, c_path.fresh), (PathKind::Relay, false));
    assert_eq!(m.good_endpoints().keys().collect::<Vec<_>>(), vec![&b()]);
}

/// Started with the hub unreachable: the stored endpoints are configured
/// and probed at the first pass, no snapshot needed.
#[test]
fn restored_endpoints_are_tried_first_without_a_hub() {
    let mut clock = Clock::new();
    let stored = addr("198.51.100.20:51822");
    let restored = BTreeMap::from([(b(), stored), (hub(), addr("192.0.2.1:51822"))]);
    let mut m = PathMachine::new(own(), hub(), &restored, clock.wall);
    assert_eq!(
        step(&mut m, &clock, &BTreeMap::new()),
        vec![Event::Endpoint {
            peer: b(),
            endpoint: Some(stored)
        }]
    );
    clock.advance(2);
    step(
        &mut m,
        &clock,
        &seen(&clock, &[(b(), 1, "198.51.100.20:51822")]),
    );
    assert_eq!(m.status(&b()).map(|s| s.kind), Some(PathKind::Direct));

    // Without an answer, the snapshot's candidates follow it.
    let mut m = started(&clock, &restored);
    give(&mut m, &clock, snapshot(0, vec![]));
    step(&mut m, &clock, &BTreeMap::new());
    assert_eq!(m.endpoints().get(&b()), Some(&stored), "restored first");
    clock.advance(6);
    step(&mut m, &clock, &BTreeMap::new());
    assert_eq!(m.endpoints().get(&b()), Some(&addr(B_LAN)));
}

/// A daemon restart: the device still has a working session the machine
/// never set; it is adopted rather than probed away.
#[test]
fn a_working_session_is_adopted() {
    let mut clock = Clock::new();
    let mut m = machine(&clock);
    clock.advance(1);
    let events = step(&mut m, &clock, &seen(&clock, &[(b(), 30, B_PUBLIC)]));
    assert_eq!(events, vec![path(b(), PathKind::Direct)]);
    give(&mut m, &clock, snapshot(0, vec![]));
    assert!(
        endpoint_events(&drain(&mut m))
            .iter()
            .all(|(p, _)| *p != b()),
        "B is not probed away from a working path"
    );
}

#[test]
fn observe_maps_the_device_to_node_ids() {
    let view = crate::dataplane::tests::view(&[2, 3]);
    let mut p = DevicePeer::new([2 ^ 0x80; 32]);
    p.config.endpoint = Some(addr(B_PUBLIC));
    p.last_handshake = Some(UNIX_EPOCH);
    let device = DeviceState {
        public_key: None,
        listen_port: 0,
        peers: vec![p, DevicePeer::new([0x55; 32])],
    };
    let seen = observe(&view, &device);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[&b()].endpoint, Some(addr(B_PUBLIC)));
    assert_eq!(seen[&b()].last_handshake, Some(UNIX_EPOCH));
}

/// A daemon restart with the kernel device kept: the stored endpoints and
/// the stored snapshot arrive before the device is read, and still the
/// sessions it has are adopted, not probed away.
#[test]
fn a_restart_adopts_live_sessions_before_probing() {
    let clock = Clock::new();
    let restored = BTreeMap::from([(b(), addr(B_PUBLIC))]);
    let mut m = started(&clock, &restored);
    give(&mut m, &clock, snapshot(0, vec![]));
    assert_eq!(m.poll_timeout(), None, "nothing probed before the device");
    let events = step(&mut m, &clock, &seen(&clock, &[(b(), 40, B_PUBLIC)]));
    assert_eq!(
        endpoint_events(&events),
        vec![(c(), Some(addr(C_PUBLIC)))],
        "B adopted, only C probed"
    );
    assert_eq!(m.status(&b()).map(|s| s.kind), Some(PathKind::Direct));
}

/// A re-probe from the relay while its session runs: WireGuard would keep
/// the session over the endpoint change and no handshake would prove the
/// new path, so the machine asks for a new session.
#[test]
fn a_reprobe_over_a_live_session_asks_for_a_new_one() {
    let (mut clock, mut m) = wanting_relay();
    let relays = vec![pair(own(), b(), 56001, 56002)];
    give(&mut m, &clock, snapshot(0, relays.clone()));
    clock.advance(1);
    step(
        &mut m,
        &clock,
        &seen(&clock, &[(b(), 0, "192.0.2.1:56001")]),
    );
    drain(&mut m);
    give(&mut m, &clock, snapshot(1, relays));
    let events = drain(&mut m);
    assert!(events.contains(&Event::NewSession(b())), "{events:?}");
    // C has no session: probed without one.
    assert!(!events.contains(&Event::NewSession(c())), "{events:?}");
}

/// B's probe reached us before our snapshot showed B: its handshake came
/// in and the device learned B's LAN address by itself. Fed the device
/// first (the driver's order), the session is adopted: no probe, no new
/// session that would cut the one B opened.
#[test]
fn a_session_the_other_side_opened_first_is_adopted_not_replaced() {
    let mut clock = Clock::new();
    let mut m = machine(&clock);
    clock.advance(1);
    m.handle_device(&seen(&clock, &[(b(), 0, B_LAN)]), clock.now, clock.wall);
    give(&mut m, &clock, snapshot(0, vec![]));
    let events = drain(&mut m);
    assert!(
        !events.contains(&Event::NewSession(b())),
        "B's session kept: {events:?}"
    );
    assert!(
        endpoint_events(&events).iter().all(|(id, _)| *id != b()),
        "B's endpoint left as the device has it: {events:?}"
    );
    assert_eq!(m.status(&b()).map(|p| p.kind), Some(PathKind::Lan));
}

/// We are probing B's public address when B's handshake arrives from its
/// LAN address (B's probe won the race): the device roamed to an address
/// we did not set, with a fresh handshake — B is up there.
#[test]
fn a_handshake_from_an_address_we_did_not_set_is_a_path() {
    let (mut clock, mut m) = probing();
    clock.advance(6);
    let events = step(&mut m, &clock, &BTreeMap::new());
    assert_eq!(
        endpoint_events(&events),
        vec![(b(), Some(addr(B_PUBLIC)))],
        "B's LAN candidate timed out, the public one is tried"
    );
    clock.advance(1);
    step(&mut m, &clock, &seen(&clock, &[(b(), 0, B_LAN)]));
    assert_eq!(m.status(&b()).map(|p| p.kind), Some(PathKind::Lan));
}

/// Two boxes whose LANs are numbered alike (each behind its own NAT): the
/// other's LAN address is one of ours, and is never probed.
#[test]
fn a_candidate_at_our_own_address_is_skipped() {
    let clock = Clock::new();
    let mut m = started(&clock, &BTreeMap::new());
    // We are 192.168.1.20 — B's LAN address.
    m.handle_lan_subnets(
        vec!["192.168.1.20/24".parse().unwrap()],
        clock.now,
        clock.wall,
    );
    m.handle_device(&BTreeMap::new(), clock.now, clock.wall);
    give(&mut m, &clock, snapshot(0, vec![]));
    let events = endpoint_events(&drain(&mut m));
    assert!(
        events.contains(&(b(), Some(addr(B_PUBLIC)))),
        "B probed at its public address first: {events:?}"
    );
}

fn node_relay() -> NodeId {
    id(5)
}
const NODE_RELAY_PUBLIC: &str = "198.51.100.50:51827";

/// `snapshot` with node 5, a node relay observed at NODE_RELAY_PUBLIC.
fn snapshot_with_node_relay(probe_round: u32, relays: Vec<RelayPair>) -> Snapshot {
    let mut s = snapshot(probe_round, relays);
    let mut five = candidates(&[NODE_RELAY_PUBLIC], NODE_RELAY_PUBLIC);
    five.relay = Some(crate::candidates::RelayOffer {
        first: 40000,
        last: 40099,
    });
    s.nodes.insert(node_relay(), five);
    s
}

fn via(relay: NodeId, mut p: RelayPair) -> RelayPair {
    p.relay = relay;
    p
}

/// A pair a node relays: the endpoint is that node's observed IP (not the
/// hub's), it works without the hub's endpoint, a move from the hub to it
/// starts a new session, and status says it is a node relay.
#[test]
fn a_node_relay_is_the_pairs_host_and_needs_no_hub() {
    let (mut clock, mut m) = wanting_relay();
    let on_hub = vec![pair(own(), c(), 56003, 56004)];
    give(&mut m, &clock, snapshot_with_node_relay(0, on_hub));
    assert_eq!(m.endpoints().get(&c()), Some(&addr("192.0.2.1:56003")));
    clock.advance(1);
    step(
        &mut m,
        &clock,
        &seen(&clock, &[(c(), 0, "192.0.2.1:56003")]),
    );
    let status = m.status(&c()).unwrap();
    assert_eq!((status.kind, status.node_relay), (PathKind::Relay, false));
    // The hub moves the pair to node 5, on its ports.
    let on_five = vec![via(node_relay(), pair(own(), c(), 40000, 40001))];
    give(&mut m, &clock, snapshot_with_node_relay(0, on_five.clone()));
    let events = drain(&mut m);
    let at_five = addr("198.51.100.50:40000");
    assert!(
        endpoint_events(&events).contains(&(c(), Some(at_five))),
        "{events:?}"
    );
    assert!(events.contains(&Event::NewSession(c())), "{events:?}");
    // The hub's endpoint is no longer known (hub gone): nothing moves.
    m.handle_relay_host(None);
    clock.advance(1);
    let events = step(
        &mut m,
        &clock,
        &seen(&clock, &[(c(), 0, "198.51.100.50:40000")]),
    );
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(m.endpoints().get(&c()), Some(&at_five));
    let status = m.status(&c()).unwrap();
    assert_eq!(
        (status.kind, status.fresh, status.node_relay),
        (PathKind::Relay, true, true)
    );
    assert!(m.want_relay().contains(&c()), "still asked for while used");
}

/// A pair naming a node the snapshot has no relay offer for has no
/// endpoint (the node's verification drops such a pair anyway).
#[test]
fn a_node_relay_without_an_offer_is_no_host() {
    let (clock, mut m) = wanting_relay();
    let relays = vec![via(b(), pair(own(), c(), 40000, 40001))];
    give(&mut m, &clock, snapshot(0, relays));
    assert_eq!(m.endpoints().get(&c()), Some(&addr(C_PUBLIC)));
    assert_eq!(m.status(&c()).map(|s| s.kind), Some(PathKind::None));
}

/// A snapshot that lists the pair no more for a while (verification
/// dropped it: its new relay is not in this node's directory yet) leaves
/// the peer at the old relay endpoint; a handshake there is no direct
/// path, so when the pair comes back (on its new relay) the peer follows.
#[test]
fn a_pair_missing_for_a_while_is_not_taken_for_a_direct_path() {
    let (mut clock, mut m) = wanting_relay();
    let old = "192.0.2.1:56003";
    give(
        &mut m,
        &clock,
        snapshot_with_node_relay(0, vec![pair(own(), c(), 56003, 56004)]),
    );
    clock.advance(1);
    step(&mut m, &clock, &seen(&clock, &[(c(), 0, old)]));
    // The pair is gone from the snapshot.
    give(&mut m, &clock, snapshot_with_node_relay(0, vec![]));
    drain(&mut m);
    clock.advance(2);
    let events = step(&mut m, &clock, &seen(&clock, &[(c(), 0, old)]));
    assert!(!events.contains(&path(c(), PathKind::Direct)), "{events:?}");
    assert_ne!(m.status(&c()).map(|s| s.kind), Some(PathKind::Direct));
    assert!(m.want_relay().contains(&c()), "asked for again");
    // Back, on node 5.
    let on_five = vec![via(node_relay(), pair(own(), c(), 40000, 40001))];
    give(&mut m, &clock, snapshot_with_node_relay(0, on_five));
    assert_eq!(m.endpoints().get(&c()), Some(&addr("198.51.100.50:40000")));
    assert_eq!(m.status(&c()).map(|s| s.kind), Some(PathKind::Relay));
}

/// B's probe reached us between the device read of a pass and the probe
/// that pass started: the read showed no handshake, the device roamed to
/// B's LAN address (the one we then set) a moment before our endpoint
/// was set, in the second before it. No new handshake follows (the
/// session is fresh), yet the path works: a handshake the device did not
/// have when the probe started proves it. (A CI run of
/// tests/mesh-netns.sh once fell back to the relay this way.)
#[test]
fn a_handshake_that_came_in_as_the_probe_started_proves_it() {
    let mut clock = Clock::new();
    clock.wall += Duration::from_millis(990);
    let mut m = machine(&clock);
    // The pass's read: nothing yet. Then the snapshot starts the probe,
    // 20 ms later, in the next second.
    m.handle_device(&BTreeMap::new(), clock.now, clock.wall);
    clock.now += Duration::from_millis(20);
    clock.wall += Duration::from_millis(20);
    give(&mut m, &clock, snapshot(0, vec![]));
    assert!(!drain(&mut m).contains(&Event::NewSession(b())));
    // The next read: B's handshake, in the second before the probe's.
    clock.advance(1);
    let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let device = BTreeMap::from([(
        b(),
        Seen {
            last_handshake: Some(at),
            endpoint: Some(addr(B_LAN)),
        },
    )]);
    step(&mut m, &clock, &device);
    assert_eq!(m.status(&b()).map(|p| p.kind), Some(PathKind::Lan));
    // And it stays so past the probe's timeout.
    clock.advance(6);
    step(&mut m, &clock, &device);
    assert_eq!(m.status(&b()).map(|p| p.kind), Some(PathKind::Lan));
    assert!(!m.want_relay().contains(&b()));
}

/// The other half of the rule above: a handshake the device did not show
/// proves the candidate only if it is no older than the second before the
/// read that preceded the probe; an older one (a session from before,
/// read late) proves nothing.
#[test]
fn an_unseen_handshake_from_before_the_probes_read_proves_nothing() {
    let (mut clock, mut m) = probing();
    clock.advance(2);
    // Fresh, at the candidate we set, unseen so far, but 5 s older than
    // the read before the probe (and than the probe itself).
    let stale = seen(&clock, &[(b(), 7, B_LAN)]);
    step(&mut m, &clock, &stale);
    assert_eq!(m.status(&b()).map(|p| p.kind), Some(PathKind::None));
    // One from the second before that read does prove it (the race).
    let racing = seen(&clock, &[(b(), 3, B_LAN)]);
    step(&mut m, &clock, &racing);
    assert_eq!(m.status(&b()).map(|p| p.kind), Some(PathKind::Lan));
}

/// C is relayed (its only candidate, public, did not answer). A snapshot
/// in the same round that changes C's public port moves nothing; one that
/// shows C at an address on our LAN (its DHCP answered late) re-probes C
/// at once, from the relay, and C goes direct when it answers there.
#[test]
fn a_new_lan_candidate_leaves_the_relay_without_waiting_for_the_round() {
    let (mut clock, mut m) = relayed();
    assert_eq!(m.status(&c()).map(|s| s.kind), Some(PathKind::Relay));

    clock.advance(30);
    let mut moved = snapshot(0, relay_pairs());
    if let Some(n) = moved.nodes.get_mut(&c()) {
        n.observed = "203.0.113.3:40999".parse().ok();
    }
    give(&mut m, &clock, moved.clone());
    assert!(
        endpoint_events(&drain(&mut m)).is_empty(),
        "a public port that changed waits for the round"
    );

    clock.advance(1);
    const C_LAN: &str = "192.168.1.30:51823";
    if let Some(n) = moved.nodes.get_mut(&c()) {
        n.lan.push(C_LAN.parse().unwrap());
    }
    give(&mut m, &clock, moved);
    assert_eq!(
        endpoint_events(&drain(&mut m)),
        vec![(c(), Some(addr(C_LAN)))]
    );
    assert!(m.want_relay().contains(&c()), "the relay is kept meanwhile");
    clock.advance(1);
    step(&mut m, &clock, &seen(&clock, &[(c(), 0, C_LAN)]));
    assert_eq!(m.status(&c()).map(|s| s.kind), Some(PathKind::Lan));
}

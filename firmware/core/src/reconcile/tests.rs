//! On a virtual clock: `t0` plus durations, no sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::*;
use crate::Boxname;
use crate::directory::{NodeRecord, Record};
use crate::peer_diff::PeerOp;

const HUB_WG: PublicKey = [0x11; 32];
const OWN_WG: PublicKey = [0x22; 32];
const PORT: u16 = 51820;

fn id(n: u8) -> NodeId {
    NodeId::from_genesis_key(&[n; 32])
}

fn record(n: u8, wireguard_key: PublicKey) -> NodeRecord {
    NodeRecord {
        boxname: Boxname::parse(&format!("box-{n}")).unwrap(),
        signing_key: [n; 32],
        wireguard_key,
        mesh_ip: Ipv4Addr::new(10, 99, 0, n),
        endpoint_hint: None,
    }
}

fn node_input() -> PassInput {
    PassInput {
        membership: Membership {
            address: "10.99.0.7/16".parse().unwrap(),
            node: Some(NodeSide {
                own_id: id(7),
                hub_id: id(1),
                hub_key: HUB_WG,
                hub_endpoint: "hub.example:51820".into(),
            }),
        },
        own_node_id: id(7),
        own_wireguard_key: OWN_WG,
        listen_port: PORT,
        revocation_stored: false,
        endpoints: BTreeMap::new(),
        max_peers: 1000,
        new_sessions: BTreeSet::new(),
    }
}

fn hub_input() -> PassInput {
    PassInput {
        membership: Membership::hub("10.99.0.0/16".parse().unwrap()),
        own_node_id: id(1),
        own_wireguard_key: HUB_WG,
        listen_port: PORT,
        revocation_stored: false,
        endpoints: BTreeMap::new(),
        max_peers: 1000,
        new_sessions: BTreeSet::new(),
    }
}

fn configured(peers: Vec<DevicePeer>) -> DeviceState {
    DeviceState {
        public_key: Some(OWN_WG),
        listen_port: PORT,
        peers,
    }
}

fn drain(r: &mut Reconciler) -> Vec<Output> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// The device after `diff` (what a backend does), for the next pass.
fn applied(device: &DeviceState, outputs: &[Output]) -> DeviceState {
    let mut next = device.clone();
    for out in outputs {
        let Output::ApplyPeers(diff) = out else {
            continue;
        };
        for op in &diff.ops {
            match op {
                PeerOp::Remove(k) => next.peers.retain(|p| p.config.public_key != *k),
                PeerOp::Add(spec) | PeerOp::Update(spec) => {
                    next.peers
                        .retain(|p| p.config.public_key != spec.public_key);
                    next.peers.push(DevicePeer {
                        config: spec.clone(),
                        ..DevicePeer::new(spec.public_key)
                    });
                }
            }
        }
    }
    next
}

#[test]
fn passes_are_paced_and_kicks_settle() {
    let t0 = Instant::now();
    let mut r = Reconciler::new(t0);
    assert!(r.handle_timeout(t0), "the first pass is due at once");
    assert!(!r.handle_timeout(t0 + Duration::from_secs(9)));
    assert_eq!(r.poll_timeout(), t0 + PASS_EVERY);
    r.handle_kick(t0 + Duration::from_secs(1));
    assert_eq!(r.poll_timeout(), t0 + Duration::from_secs(1) + SETTLE);
    // A later kick does not push an earlier pass back.
    r.handle_kick(t0 + Duration::from_secs(1) + Duration::from_millis(50));
    assert_eq!(r.poll_timeout(), t0 + Duration::from_secs(1) + SETTLE);
    assert!(r.handle_timeout(r.poll_timeout()));
    assert_eq!(
        r.poll_timeout(),
        t0 + Duration::from_secs(1) + SETTLE + PASS_EVERY
    );
}

#[test]
fn a_fresh_device_is_configured_then_given_its_peers() {
    let t0 = Instant::now();
    let mut r = Reconciler::new(t0);
    r.view.nodes.insert(id(1), record(1, HUB_WG));
    r.view.nodes.insert(id(2), record(2, [0x82; 32]));
    let mut input = hub_input();
    input.own_wireguard_key = HUB_WG;
    r.handle_device(&input, DeviceState::default(), t0, wall());
    let out = drain(&mut r);
    assert_eq!(out[0], Output::Configure);
    let Output::ApplyPeers(diff) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(diff.changes().added, 1);
    assert_eq!(out.len(), 2);
    // The next pass on the converged device does nothing.
    let mut device = applied(&DeviceState::default(), &out);
    device.public_key = Some(HUB_WG);
    device.listen_port = PORT;
    r.handle_device(&input, device.clone(), t0 + PASS_EVERY, wall());
    assert!(drain(&mut r).is_empty());
    let s = r.summary(&device, wall());
    assert_eq!((s.peers, s.revoked, s.hub), (1, false, None));
}

#[test]
fn a_key_conflict_is_reported_once_and_gets_no_peer() {
    let t0 = Instant::now();
    let mut r = Reconciler::new(t0);
    let shared = [0x99; 32];
    r.view.nodes.insert(id(2), record(2, shared));
    r.view.nodes.insert(id(3), record(3, shared));
    let mut device = DeviceState {
        public_key: Some(HUB_WG),
        listen_port: PORT,
        peers: vec![],
    };
    device.peers.clear();
    r.handle_device(&hub_input(), device.clone(), t0, wall());
    let out = drain(&mut r);
    assert!(matches!(&out[..], [Output::KeyConflictAppeared(c)] if c.public_key == shared));
    r.handle_device(&hub_input(), device.clone(), t0 + PASS_EVERY, wall());
    assert!(drain(&mut r).is_empty(), "reported once");
    assert_eq!(r.summary(&device, wall()).key_conflicts.len(), 1);
}

#[test]
fn a_node_resolves_its_hub_once_then_only_when_handshakes_stop() {
    let t0 = Instant::now();
    let mut r = Reconciler::new(t0);
    let input = node_input();
    r.handle_device(&input, configured(vec![]), t0, wall());
    assert_eq!(
        drain(&mut r),
        vec![Output::Resolve("hub.example:51820".into())]
    );
    let v4: SocketAddr = "192.0.2.1:51820".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1]:51820".parse().unwrap();
    r.handle_resolved("hub.example:51820", Some(vec![v6, v4]), t0);
    let out = drain(&mut r);
    let Some(Output::ApplyPeers(diff)) = out.first() else {
        panic!("{out:?}")
    };
    let PeerOp::Add(peer) = &diff.ops[0] else {
        panic!("{diff:?}")
    };
    assert_eq!(peer.endpoint, Some(v4), "IPv4 first");
    assert_eq!(peer.public_key, HUB_WG);
    assert_eq!(peer.allowed_ips, vec!["10.99.0.1/32".parse().unwrap()]);
    let mut device = applied(&configured(vec![]), &out);

    // A fresh handshake: no new lookup, nothing to do.
    device.peers[0].last_handshake = Some(wall() - Duration::from_secs(5));
    r.handle_device(&input, device.clone(), t0 + Duration::from_secs(60), wall());
    assert!(drain(&mut r).is_empty());
    let s = r.summary(&device, wall());
    assert_eq!((s.peers_with_handshake, s.hub.is_some()), (1, true));

    // Stale, but resolved less than 30 s ago: no lookup yet.
    let later = wall() + HANDSHAKE_STALE + Duration::from_secs(10);
    let mut r2 = Reconciler::new(t0);
    r2.hub_endpoint = Some((v4, t0));
    r2.handle_device(&input, device.clone(), t0 + Duration::from_secs(20), later);
    assert!(drain(&mut r2).is_empty());
    assert_eq!(r2.summary(&device, later).peers_with_handshake, 0);
    // Stale and 31 s on: look again; a moved hub gets its new endpoint.
    r2.handle_device(&input, device.clone(), t0 + Duration::from_secs(31), later);
    assert_eq!(
        drain(&mut r2),
        vec![Output::Resolve("hub.example:51820".into())]
    );
    let moved: SocketAddr = "192.0.2.9:51820".parse().unwrap();
    r2.handle_resolved("hub.example:51820", Some(vec![moved]), t0);
    let out = drain(&mut r2);
    assert!(
        matches!(&out[..], [Output::ApplyPeers(d)] if matches!(&d.ops[..], [PeerOp::Update(p)] if p.endpoint == Some(moved))),
        "{out:?}"
    );
}

#[test]
fn a_failed_lookup_keeps_the_last_endpoint_and_an_empty_one_is_said() {
    let t0 = Instant::now();
    let mut r = Reconciler::new(t0);
    let input = node_input();
    r.handle_device(&input, configured(vec![]), t0, wall());
    drain(&mut r);
    r.handle_resolved("hub.example:51820", None, t0);
    let out = drain(&mut r);
    // Still a peer, without an endpoint until a name resolves.
    assert!(
        matches!(&out[..], [Output::ApplyPeers(d)] if matches!(&d.ops[..], [PeerOp::Add(p)] if p.endpoint.is_none())),
        "{out:?}"
    );
    r.handle_device(&input, configured(vec![]), t0 + PASS_EVERY, wall());
    assert_eq!(drain(&mut r).len(), 1, "resolves again: nothing cached");
    r.handle_resolved("hub.example:51820", Some(vec![]), t0 + PASS_EVERY);
    assert_eq!(
        r.poll_output(),
        Some(Output::ResolvedToNothing("hub.example:51820".into()))
    );
}

#[test]
fn the_directorys_hub_key_wins_over_the_grants() {
    let t0 = Instant::now();
    let mut r = Reconciler::new(t0);
    r.hub_endpoint = Some(("192.0.2.1:51820".parse().unwrap(), t0));
    let rotated = [0x33; 32];
    r.view.nodes.insert(id(1), record(1, rotated));
    r.handle_device(&node_input(), configured(vec![]), t0, wall());
    let out = drain(&mut r);
    assert!(
        matches!(&out[..], [Output::ApplyPeers(d)] if matches!(&d.ops[..], [PeerOp::Add(p)] if p.public_key == rotated)),
        "{out:?}"
    );
}

#[test]
fn a_revoked_node_keeps_no_peer() {
    let t0 = Instant::now();
    let mut hub_peer = DevicePeer::new(HUB_WG);
    hub_peer.config.allowed_ips = vec!["10.99.0.1/32".parse().unwrap()];
    let mut foreign = DevicePeer::new([0x44; 32]);
    foreign.foreign_allowed_ips.push("fd00::/64".into());
    let device = configured(vec![hub_peer, foreign]);

    // Through our directory...
    let mut r = Reconciler::new(t0);
    r.view.apply(&Record::Revoke {
        node_id: id(7),
        reason: heapless::String::try_from("stolen").unwrap(),
    });
    r.handle_device(&node_input(), device.clone(), t0, wall());
    let out = drain(&mut r);
    assert!(
        matches!(&out[..], [Output::ApplyPeers(d)] if d.changes().removed == 2),
        "{out:?}"
    );
    assert!(r.summary(&device, wall()).revoked);

    // ...or because the hub told us and it is stored: no lookup either.
    let mut r = Reconciler::new(t0);
    let mut input = node_input();
    input.revocation_stored = true;
    r.handle_device(&input, device.clone(), t0, wall());
    let out = drain(&mut r);
    assert!(
        matches!(&out[..], [Output::ApplyPeers(d)] if d.changes().removed == 2),
        "{out:?}"
    );
}

#[test]
fn membership_from_a_role() {
    let hub = Membership::hub("10.99.0.0/16".parse().unwrap());
    assert_eq!(hub.address, "10.99.0.1/16".parse().unwrap());
    assert_eq!(hub.subnet(), "10.99.0.0/16".parse().unwrap());
    assert!(hub.node.is_none());
}

/// A node's reconciler whose hub resolved, with nodes `ns` (key
/// `[0x80 | n; 32]`) in its view.
fn with_nodes(t0: Instant, ns: &[u8]) -> Reconciler {
    let mut r = Reconciler::new(t0);
    r.hub_endpoint = Some(("192.0.2.1:51820".parse().unwrap(), t0));
    for &n in ns {
        r.view.nodes.insert(id(n), record(n, [0x80 | n; 32]));
    }
    r
}

/// A node has a peer per other live node, with the endpoint the path
/// machine chose; the hub is found by key, wherever the device lists it.
#[test]
fn a_node_has_a_peer_per_box_with_the_path_machines_endpoints() {
    let t0 = Instant::now();
    let mut r = with_nodes(t0, &[2, 3, 7]);
    let mut input = node_input();
    let direct: SocketAddr = "198.51.100.3:51823".parse().unwrap();
    input.endpoints.insert(id(3), direct);
    r.handle_device(&input, configured(vec![]), t0, wall());
    let out = drain(&mut r);
    let [Output::ApplyPeers(diff)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(diff.changes().added, 3, "hub, 2 and 3; not itself");
    let device = applied(&configured(vec![]), &out);
    let peer3 = device
        .peers
        .iter()
        .find(|p| p.config.public_key == [0x83; 32]);
    assert_eq!(peer3.and_then(|p| p.config.endpoint), Some(direct));
    let s = r.summary(&device, wall());
    assert_eq!(s.hub.map(|h| h.config.public_key), Some(HUB_WG));
    assert_eq!(s.peers_omitted, 0);

    // The path machine moves 3 to the relay: only that peer is updated.
    let relay: SocketAddr = "192.0.2.1:56001".parse().unwrap();
    input.endpoints.insert(id(3), relay);
    r.handle_device(&input, device.clone(), t0 + PASS_EVERY, wall());
    let out = drain(&mut r);
    assert!(
        matches!(&out[..], [Output::ApplyPeers(d)] if matches!(&d.ops[..], [PeerOp::Update(p)] if p.endpoint == Some(relay))),
        "{out:?}"
    );

    // Revoking 2 removes its peer at the next pass.
    let device = applied(&device, &out);
    r.view.apply(&Record::Revoke {
        node_id: id(2),
        reason: heapless::String::try_from("stolen").unwrap(),
    });
    r.handle_device(&input, device, t0 + PASS_EVERY * 2, wall());
    let out = drain(&mut r);
    assert!(
        matches!(&out[..], [Output::ApplyPeers(d)] if d.ops == vec![PeerOp::Remove([0x82; 32])]),
        "{out:?}"
    );
}

#[test]
fn max_peers_leaves_nodes_out_and_says_so_once() {
    let t0 = Instant::now();
    let mut r = with_nodes(t0, &[2, 3, 4, 7]);
    let mut input = node_input();
    input.max_peers = 2;
    // Node 4 had a handshake a minute ago: it is kept before 2 and 3.
    let mut four = DevicePeer::new([0x84; 32]);
    four.last_handshake = Some(wall() - Duration::from_secs(60));
    let device = configured(vec![four]);
    r.handle_device(&input, device.clone(), t0, wall());
    let out = drain(&mut r);
    assert_eq!(out[0], Output::PeersOmitted(2));
    let mut device = applied(&device, &out);
    // (An update keeps the session: the device still has the handshake.)
    for p in &mut device.peers {
        if p.config.public_key == [0x84; 32] {
            p.last_handshake = Some(wall() - Duration::from_secs(60));
        }
    }
    let mut keys: Vec<PublicKey> = device.peers.iter().map(|p| p.config.public_key).collect();
    keys.sort();
    assert_eq!(keys, vec![HUB_WG, [0x84; 32]]);
    assert_eq!(r.summary(&device, wall()).peers_omitted, 2);
    r.handle_device(&input, device.clone(), t0 + PASS_EVERY, wall());
    assert!(drain(&mut r).is_empty(), "said once");
    input.max_peers = 1000;
    r.handle_device(&input, device, t0 + PASS_EVERY * 2, wall());
    let out = drain(&mut r);
    assert_eq!(out[0], Output::PeersOmitted(0));
}

/// A re-probe asks for a new session: the peer is removed and added again
/// (its endpoint changing too), the other peers are left alone.
#[test]
fn a_new_session_removes_and_adds_the_peer_again() {
    let t0 = Instant::now();
    let mut r = with_nodes(t0, &[2, 3, 7]);
    let mut input = node_input();
    r.handle_device(&input, configured(vec![]), t0, wall());
    let device = applied(&configured(vec![]), &drain(&mut r));
    let direct: SocketAddr = "198.51.100.3:51823".parse().unwrap();
    input.endpoints.insert(id(3), direct);
    input.new_sessions.insert(id(3));
    input.new_sessions.insert(id(2)); // unchanged otherwise: re-added too
    r.handle_device(&input, device, t0 + PASS_EVERY, wall());
    let out = drain(&mut r);
    let [Output::ApplyPeers(diff)] = &out[..] else {
        panic!("{out:?}")
    };
    let c = diff.changes();
    assert_eq!((c.removed, c.added, c.updated), (2, 2, 0), "{diff:?}");
    assert!(matches!(diff.ops[0], PeerOp::Remove(_)));
    assert!(
        diff.ops
            .iter()
            .any(|op| matches!(op, PeerOp::Add(p) if p.endpoint == Some(direct)))
    );
    assert_eq!(diff.unchanged, 1, "the hub");
}

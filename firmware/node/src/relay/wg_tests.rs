//! Two real WireGuard devices (the userspace backend, as in
//! net/wireguard/tests.rs) in their own namespaces, each with a veth to a
//! third namespace where the relay runs: each points its peer at the
//! relay's port for it, as the path machine does for a relayed pair, and
//! they ping through the relay — which holds no key and only passes their
//! datagrams on. Removing the pair from the snapshot stops the traffic.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use gondwana_core::candidates::{Candidates, RelayPair, Snapshot};
use gondwana_core::node_id::NodeId;
use tokio::sync::watch;

use super::{RelayState, Settings, run};
use crate::net::testns::{NetNs, unique_tag};
use crate::net::wireguard::public_key;
use crate::net::wireguard::tests::{Devices, peer, ping, random_key, start_device};

#[test]
fn two_wireguard_boxes_ping_through_the_relay() {
    let (a, b, r) = (NetNs::new(), NetNs::new(), NetNs::new());
    let tag = unique_tag();
    let (wa, wb) = (format!("wra{tag}"), format!("wrb{tag}"));
    let _devices = Devices(vec![wa.clone(), wb.clone()]);
    for (ns, here, there, net) in [(&a, "va", "ra", 71), (&b, "vb", "rb", 72)] {
        r.exec(&[
            "ip", "link", "add", there, "type", "veth", "peer", "name", here, "netns", &ns.name,
        ]);
        r.exec(&[
            "ip",
            "addr",
            "add",
            &format!("192.168.{net}.1/24"),
            "dev",
            there,
        ]);
        r.exec(&["ip", "link", "set", there, "up"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("192.168.{net}.2/24"),
            "dev",
            here,
        ]);
        ns.exec(&["ip", "link", "set", here, "up"]);
    }

    // The snapshot's pair: a < b in node id order; a lives in namespace a.
    let (mut id_a, mut id_b) = (
        NodeId::from_genesis_key(&[1; 32]),
        NodeId::from_genesis_key(&[2; 32]),
    );
    if id_b < id_a {
        std::mem::swap(&mut id_a, &mut id_b);
    }
    let relay_id = NodeId::from_genesis_key(&[3; 32]);
    let observed = |net| Candidates {
        observed: Some(SocketAddrV4::new(Ipv4Addr::new(192, 168, net, 2), 51820)),
        ..Candidates::default()
    };
    let snapshot = Snapshot {
        serial: 1,
        nodes: [(id_a.clone(), observed(71)), (id_b.clone(), observed(72))].into(),
        relays: vec![RelayPair {
            a: id_a,
            b: id_b,
            relay: relay_id.clone(),
            port_a: 56_000,
            port_b: 56_001,
        }],
        ..Snapshot::default()
    };
    let (snapshots, rx) = watch::channel(Some(Arc::new(snapshot)));
    let state = Arc::new(RelayState::default());
    let relay = {
        let state = state.clone();
        let settings = Settings {
            listen: Ipv4Addr::UNSPECIFIED,
            ports: "56000-56999".parse().unwrap(),
            max_kbit_per_pair: 100_000,
        };
        // Runs until `snapshots` is dropped.
        let r_name = r.name.clone();
        std::thread::spawn(move || {
            let ns = NetNs { name: r_name };
            ns.run(move || run(relay_id, settings, rx, state));
            std::mem::forget(ns); // deleted by `r` below
        })
    };

    let (ka, kb) = (random_key(), random_key());
    let (pa, pb) = (public_key(&ka), public_key(&kb));
    // Each side's peer is the other box, at the relay's port for it.
    start_device(
        &a,
        &wa,
        &ka,
        "10.71.0.1/24",
        peer(pb, &["10.71.0.2/32"], Some("192.168.71.1:56000"), Some(25)),
    );
    start_device(
        &b,
        &wb,
        &kb,
        "10.71.0.2/24",
        peer(pa, &["10.71.0.1/32"], Some("192.168.72.1:56001"), Some(25)),
    );

    let pinged = ping(&a, "10.71.0.2");
    let mut seen = String::new();
    state.counters.write_metrics(&mut seen);
    assert!(pinged, "no ping through the relay; relay counters:\n{seen}");
    assert!(ping(&b, "10.71.0.1"));
    let c = &state.counters;
    assert_eq!(c.pairs.load(Ordering::Relaxed), 1);
    assert!(c.packets.load(Ordering::Relaxed) >= 4);
    assert_eq!(c.dropped_total(super::DropReason::WrongSource), 0);

    // The pair leaves the snapshot: nothing passes any more.
    snapshots.send_replace(Some(Arc::new(Snapshot::default())));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while c.pairs.load(Ordering::Relaxed) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pair never closed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !a.try_exec(&["ping", "-c", "1", "-W", "1", "10.71.0.2"])
            .status
            .success(),
        "ping without the relay's pair"
    );
    drop(snapshots);
    relay.join().unwrap();
}

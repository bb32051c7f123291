use std::net::Ipv4Addr;

use super::*;
use crate::boxname::Boxname;
use crate::directory::Record;
use crate::ordered::set_from;

pub(crate) fn key(n: u8) -> SigningSecret {
    SigningSecret::from_seed([n; 32])
}

pub(crate) fn id(n: u8) -> NodeId {
    NodeId::from_genesis_key(&key(n).public_key())
}

/// A directory with nodes 1..=n (node n at 10.10.0.n).
pub(crate) fn view(n: u8) -> View {
    let mut view = View::default();
    for i in 1..=n {
        view.apply(&Record::Node {
            node_id: id(i),
            boxname: Boxname::parse(&format!("box-{i}")).unwrap(),
            signing_key: key(i).public_key(),
            wireguard_key: [i; 32],
            mesh_ip: Ipv4Addr::new(10, 10, 0, i),
            endpoint_hint: None,
        });
    }
    view
}

pub(crate) fn addr(text: &str) -> SocketAddrV4 {
    text.parse().unwrap()
}

pub(crate) fn report(n: u8, seq: u64, lan: &[&str], want: &[u8]) -> ReportBody {
    ReportBody {
        version: VERSION,
        node_id: id(n),
        seq,
        listen_port: 51820 + u16::from(n),
        lan: lan.iter().map(|a| addr(a)).collect(),
        want_relay: want.iter().map(|w| id(*w)).collect(),
        relay: None,
    }
}

#[test]
fn report_round_trip_and_forgery() {
    let body = report(2, 7, &["192.168.1.20:51822"], &[3]);
    let bytes = seal_report(&body, &key(2)).unwrap();
    let (signed, decoded) = decode_report(&bytes).unwrap();
    assert_eq!(decoded, body);
    assert!(signed.verify(&key(2).public_key()));
    assert!(!signed.verify(&key(3).public_key()), "another key");
    for i in 0..bytes.len() {
        let mut m = bytes.clone();
        m[i] ^= 0x20;
        if let Ok((s, _)) = decode_report(&m) {
            assert!(!s.verify(&key(2).public_key()), "byte {i}");
        }
    }
    // Signed under another domain: refused.
    let other = encode(&SignedReport {
        signature: key(2).sign(&signed_message(tag::CANDIDATE_SNAPSHOT, &signed.body)),
        body: signed.body.clone(),
    });
    assert!(
        !decode_report(&other)
            .unwrap()
            .0
            .verify(&key(2).public_key())
    );
}

#[test]
fn malformed_and_oversized_reports_are_refused() {
    let bytes = seal_report(&report(2, 1, &[], &[]), &key(2)).unwrap();
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        decode_report(&trailing),
        Err(CandidateError::Malformed(DecodeError::TrailingBytes(1)))
    ));
    assert!(matches!(
        decode_report(&bytes[..bytes.len() - 1]),
        Err(CandidateError::Malformed(_))
    ));
    let huge = vec![0u8; MAX_REPORT_BYTES + 1];
    assert!(matches!(
        decode_report(&huge),
        Err(CandidateError::Malformed(DecodeError::TooLarge { .. }))
    ));
    let mut v2 = report(2, 1, &[], &[]);
    v2.version = 2;
    let bytes = seal_report(&v2, &key(2)).unwrap();
    assert_eq!(
        decode_report(&bytes).err(),
        Some(CandidateError::UnknownVersion(2))
    );
    // The largest report fits its bound.
    let all: Vec<u8> = (10..10 + MAX_RELAY_WANTS as u8).collect();
    let lan: Vec<String> = (1..=8).map(|i| format!("192.168.{i}.200:65535")).collect();
    let lan: Vec<&str> = lan.iter().map(String::as_str).collect();
    let big = seal_report(&report(2, u64::MAX, &lan, &all), &key(2)).unwrap();
    assert!(big.len() <= MAX_REPORT_BYTES);
    assert!(decode_report(&big).is_ok());
}

#[test]
fn addresses_must_be_unicast_ipv4_outside_the_mesh() {
    let mesh: Ipv4Net = "10.10.0.0/24".parse().unwrap();
    let check = |lan: &[&str]| check_report(&report(2, 1, lan, &[]), Some(&mesh));
    assert_eq!(check(&["192.168.1.2:51822", "203.0.113.5:51822"]), Ok(()));
    for bad in [
        "0.1.2.3:51822",
        "127.0.0.1:51822",
        "169.254.3.4:51822",
        "224.0.0.1:51822",
        "255.255.255.255:51822",
        "240.0.0.1:51822",
        "192.168.1.2:0",
    ] {
        assert_eq!(
            check(&[bad]),
            Err(CandidateError::BadAddress(addr(bad))),
            "{bad}"
        );
    }
    assert_eq!(
        check(&["10.10.0.9:51822"]),
        Err(CandidateError::MeshAddress(addr("10.10.0.9:51822")))
    );
    assert_eq!(
        check(&["192.168.1.2:51822", "192.168.1.2:51822"]),
        Err(CandidateError::Duplicate(addr("192.168.1.2:51822")))
    );
    let mut zero = report(2, 1, &[], &[]);
    zero.listen_port = 0;
    assert_eq!(check_report(&zero, None), Err(CandidateError::ZeroPort));
    assert_eq!(
        check_report(&report(2, 1, &[], &[2]), None),
        Err(CandidateError::RelaySelf)
    );
}

fn snapshot(nodes: Vec<NodeEntry>, relays: Vec<RelayPair>) -> SnapshotBody {
    SnapshotBody {
        version: VERSION,
        hub_id: id(1),
        serial: 5,
        issued_unix: 1_700_000_000,
        probe_round: 3,
        nodes,
        relays,
    }
}

fn signed(body: &ReportBody, signer: u8) -> SignedReport {
    let bytes = seal_report(body, &key(signer)).unwrap();
    decode_report(&bytes).unwrap().0
}

/// The pair of nodes `x` and `y` relayed by node 1 from `port`.
fn pair(x: u8, y: u8, port: u16) -> RelayPair {
    RelayPair {
        a: id(x).min(id(y)),
        b: id(x).max(id(y)),
        relay: id(1),
        port_a: port,
        port_b: port + 1,
    }
}

#[test]
fn snapshot_keeps_only_what_holds_against_the_directory() {
    let good = report(2, 1, &["192.168.1.2:51822"], &[3]);
    let entry = |n: u8, report: Option<SignedReport>| NodeEntry {
        node_id: id(n),
        observed: Some(addr("198.51.100.7:40000")),
        report,
    };
    let body = snapshot(
        vec![
            entry(2, Some(signed(&good, 2))),
            // Node 3's entry carries a report signed by node 4's key.
            entry(3, Some(signed(&report(3, 1, &[], &[]), 4))),
            // Node 4 carries node 2's (valid) report: another node's.
            entry(4, Some(signed(&good, 2))),
            // Node 9 is not in the directory.
            entry(9, None),
        ],
        // A pair between active nodes, and one with node 9.
        vec![pair(2, 3, 56000), pair(2, 9, 56002)],
    );
    let bytes = seal_snapshot(&body, &key(1)).unwrap();
    let v = verify_snapshot(&bytes, &key(1).public_key(), &view(4)).unwrap();
    assert_eq!(v.dropped_reports, 2);
    assert_eq!(v.dropped_inactive, 2);
    assert_eq!(v.unknown, set_from([id(9)]), "named, not in the directory");
    assert_eq!(v.snapshot.serial, 5);
    assert_eq!(v.snapshot.probe_round, 3);
    assert_eq!(v.snapshot.nodes.len(), 3);
    let two = &v.snapshot.nodes[&id(2)];
    assert_eq!(two.listen_port, Some(51822));
    assert_eq!(two.lan, vec![addr("192.168.1.2:51822")]);
    assert_eq!(two.want_relay, vec![id(3)]);
    assert_eq!(v.snapshot.nodes[&id(3)].listen_port, None);
    assert_eq!(
        v.snapshot.nodes[&id(3)].observed,
        Some(addr("198.51.100.7:40000"))
    );
    assert_eq!(v.snapshot.relays.len(), 1);

    // The wrong hub key, a flipped bit, trailing bytes: refused whole.
    assert_eq!(
        verify_snapshot(&bytes, &key(2).public_key(), &view(4)).err(),
        Some(CandidateError::BadSignature)
    );
    for i in (0..bytes.len()).step_by(7) {
        let mut m = bytes.clone();
        m[i] ^= 0x01;
        assert!(
            verify_snapshot(&m, &key(1).public_key(), &view(4)).is_err(),
            "byte {i}"
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(verify_snapshot(&trailing, &key(1).public_key(), &view(4)).is_err());

    // Node 3 revoked: its entry and pair are dropped, but the directory
    // holds it, so it is not unknown (no pull would bring it back).
    let mut revoked = view(4);
    revoked.apply(&Record::Revoke {
        node_id: id(3),
        reason: heapless::String::try_from("stolen").unwrap(),
    });
    let v = verify_snapshot(&bytes, &key(1).public_key(), &revoked).unwrap();
    assert_eq!(
        v.dropped_inactive, 4,
        "entries 3 and 9, pairs (2, 3) and (2, 9)"
    );
    assert_eq!(v.unknown, set_from([id(9)]));
}

#[test]
fn signed_snapshot_is_body_and_signature() {
    let body = snapshot(vec![], vec![]);
    let bytes = seal_snapshot(&body, &key(1)).unwrap();
    let framed: SignedSnapshot = decode_canonical(&bytes, MAX_SNAPSHOT_BYTES).unwrap();
    assert_eq!(framed.body, encode(&body));
    assert_eq!(bytes.len(), 1 + framed.body.len() + 1 + 64);
}

/// docs/protocol.md, "Endpoint candidates": the published vectors, also
/// checked by tests/independent-vectors.py.
#[test]
fn published_candidate_vectors() {
    let hex32 = |s: &str| crate::keys::decode_hex32(s).unwrap();
    let node = SigningSecret::from_seed(hex32(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    ));
    let hub = SigningSecret::from_seed(hex32(
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    ));
    let node_id = NodeId::from_genesis_key(&node.public_key());
    let hub_id = NodeId::from_genesis_key(&hub.public_key());
    let body = ReportBody {
        version: VERSION,
        node_id: node_id.clone(),
        seq: 7,
        listen_port: 51822,
        lan: [addr("192.168.1.20:51822")].into_iter().collect(),
        want_relay: [hub_id.clone()].into_iter().collect(),
        relay: Some(RelayOffer {
            first: 56000,
            last: 56999,
        }),
    };
    let report = seal_report(&body, &node).unwrap();
    let snapshot = SnapshotBody {
        version: VERSION,
        hub_id: hub_id.clone(),
        serial: 3,
        issued_unix: 1_700_000_000,
        probe_round: 2,
        nodes: vec![NodeEntry {
            node_id: node_id.clone(),
            observed: Some(addr("198.51.100.7:40001")),
            report: Some(decode_report(&report).unwrap().0),
        }],
        relays: vec![RelayPair {
            a: hub_id.clone(),
            b: node_id.clone(),
            relay: hub_id.clone(),
            port_a: 56000,
            port_b: 56001,
        }],
    };
    let sealed = seal_snapshot(&snapshot, &hub).unwrap();
    let hex = crate::hash::to_hex;
    assert_eq!(hex(&report), REPORT_VECTOR);
    assert_eq!(hex(&sealed), SNAPSHOT_VECTOR);
}

const REPORT_VECTOR: &str = concat!(
    "8501013767773a70626532796d636a6e6166366433337766333761326e786163347a3467",
    "72736f776464346b776174726c68736a6f7a6768706a7107ee940301c0a80114ee940301",
    "3767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879",
    "376c6970766b7875797a3336356f34356574357101c0b503a7bd03401bc6f03a83f99713",
    "17eb183905fd9329f30dd299230a68b37b2eef8fef73317358c299a4b9964ea70beb990a",
    "ced8601252da20121076959c3cdced31e99c440e",
);
const SNAPSHOT_VECTOR: &str = concat!(
    "f903013767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764",
    "786879376c6970766b7875797a3336356f3435657435710380e2cfaa0602013767773a70",
    "626532796d636a6e6166366433337766333761326e786163347a346772736f776464346b",
    "776174726c68736a6f7a6768706a7101c6336407c1b802018501013767773a7062653279",
    "6d636a6e6166366433337766333761326e786163347a346772736f776464346b77617472",
    "6c68736a6f7a6768706a7107ee940301c0a80114ee9403013767773a6e33653673766e62",
    "746f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a3336",
    "356f34356574357101c0b503a7bd03401bc6f03a83f9971317eb183905fd9329f30dd299",
    "230a68b37b2eef8fef73317358c299a4b9964ea70beb990aced8601252da20121076959c",
    "3cdced31e99c440e013767773a6e33653673766e62746f723474347a796b616562756433",
    "64376a6f3764786879376c6970766b7875797a3336356f3435657435713767773a706265",
    "32796d636a6e6166366433337766333761326e786163347a346772736f776464346b7761",
    "74726c68736a6f7a6768706a713767773a6e33653673766e62746f723474347a796b6165",
    "6275643364376a6f3764786879376c6970766b7875797a3336356f343565743571c0b503",
    "c1b50340d7aa36c6e5b3e1f8056346fe5486363072e1de96cd44a70170e131d4480391a1",
    "35b8be8379e502e64b9008b737062d5e689938303d6f7ff1035e54183a810602",
);

/// A pair naming a node relay holds only when that node's verified report
/// offers both ports and the hub observes it; never one of the two.
#[test]
fn a_node_relay_must_offer_what_the_pair_uses() {
    let offer = |n: u8, signer: u8| {
        let body = ReportBody {
            relay: Some(RelayOffer {
                first: 40000,
                last: 40009,
            }),
            ..report(n, 1, &["203.0.113.5:51825"], &[])
        };
        signed(&body, signer)
    };
    let observed = Some(addr("203.0.113.5:51825"));
    let entry = |n: u8, report: Option<SignedReport>, observed: Option<SocketAddrV4>| NodeEntry {
        node_id: id(n),
        observed,
        report,
    };
    let by = |relay: u8, x: u8, y: u8, port: u16| RelayPair {
        relay: id(relay),
        ..pair(x, y, port)
    };
    let body = snapshot(
        vec![
            entry(2, None, observed),
            entry(3, None, None),
            entry(4, Some(signed(&report(4, 1, &[], &[]), 4)), observed),
            entry(5, Some(offer(5, 5)), observed),
            entry(6, Some(offer(6, 6)), None),
            // Node 7's offer is signed by node 5: dropped with its report.
            entry(7, Some(offer(7, 5)), observed),
        ],
        vec![
            by(5, 2, 3, 40000), // holds
            by(4, 2, 3, 40000), // 4 does not offer
            by(5, 2, 3, 50000), // outside 5's range
            by(6, 2, 3, 40000), // 6 is not observed: no host
            by(7, 2, 3, 40000), // 7's offer is forged
            by(5, 2, 5, 40000), // the relay is one of the two
            by(8, 2, 3, 40000), // 8 has no entry
            RelayPair {
                port_b: 40000,
                ..by(5, 3, 4, 40000)
            }, // one port twice
            by(1, 3, 4, 56000), // the hub
        ],
    );
    let bytes = seal_snapshot(&body, &key(1)).unwrap();
    let v = verify_snapshot(&bytes, &key(1).public_key(), &view(8)).unwrap();
    let kept: Vec<(NodeId, u16)> = v
        .snapshot
        .relays
        .iter()
        .map(|p| (p.relay.clone(), p.port_a))
        .collect();
    assert_eq!(kept, vec![(id(5), 40000), (id(1), 56000)]);
    assert_eq!(v.dropped_relays, 7);
    assert_eq!(v.dropped_reports, 1);
    assert_eq!(
        v.snapshot.node_relay_host(&id(5)),
        Some(Ipv4Addr::new(203, 0, 113, 5))
    );
    assert_eq!(v.snapshot.node_relay_host(&id(4)), None, "no offer");
    assert_eq!(v.snapshot.node_relay_host(&id(1)), None, "the hub");
}

use super::*;
use crate::enrol::{EnrolRequest, VERSION};
use crate::identity_log::IdentityState;
use crate::{Boxname, NodeId};

const NOW: u64 = 1_000;
const HUB_WG: PublicKey = [0xAA; 32];

fn subnet() -> Ipv4Net {
    "10.10.0.0/29".parse().unwrap()
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 10, 0, last)
}

fn node_id(seed: u8) -> NodeId {
    NodeId::from_genesis_key(&[seed; 32])
}

/// A verified request from node `seed` asking for `boxname`, with WireGuard
/// key `[seed; 32]` (or `wg`) and a log of `log_len` entries.
fn request(seed: u8, boxname: &str, wg: Option<PublicKey>, log_len: u8) -> VerifiedRequest {
    let wireguard_key = wg.unwrap_or([seed; 32]);
    VerifiedRequest {
        request: EnrolRequest {
            version: VERSION,
            hub_nonce: [7; 32],
            wireguard_key,
            boxname: Boxname::parse(boxname).unwrap(),
            token_key: [9; 32],
        },
        identity: IdentityState {
            node_id: node_id(seed),
            genesis_signing_key: [seed; 32],
            signing_key: [seed; 32],
            wireguard_key,
            boxname: Boxname::parse(boxname).unwrap(),
            retired: false,
            len: u64::from(log_len),
            tip: [log_len; 32],
        },
        identity_log: (0..log_len).map(|i| vec![seed, i]).collect(),
    }
}

fn token() -> TokenRecord {
    TokenRecord {
        id: "tok".into(),
        verifier: [0; 32],
        max_uses: 2,
        uses: 0,
        created_unix: 0,
        expires_unix: Some(2_000),
        boxname: None,
        tags: vec!["t".into()],
        revoked: false,
        replace: false,
    }
}

fn entry(seed: u8, boxname: &str, last: u8) -> NodeEntry {
    NodeEntry {
        node_id: node_id(seed).to_string(),
        boxname: boxname.into(),
        signing_key: [seed; 32],
        wireguard_key: [seed; 32],
        mesh_ip: ip(last),
        token_id: "tok".into(),
        tags: Vec::new(),
        enrolled_unix: 1,
        revoked: false,
        identity_len: 1,
        identity_tip: [1; 32],
    }
}

fn holder(seed: u8, boxname: &str, last: u8) -> Option<BoxnameHolder> {
    Some(BoxnameHolder {
        node_id: node_id(seed).to_string(),
        entry: Some(entry(seed, boxname, last)),
    })
}

/// An empty registry: only the hub.
fn empty() -> Snapshot {
    Snapshot {
        now: NOW,
        subnet: subnet(),
        hub_boxname: "hub".into(),
        hub_wireguard_key: HUB_WG,
        token: Some(token()),
        node: None,
        mirror: Vec::new(),
        boxname_holder: None,
        wireguard_key_holders: Vec::new(),
        used_addresses: UsedAddresses::Run(0),
    }
}

fn admitted(d: Result<Decision, Refusal>) -> Admission {
    match d {
        Ok(Decision::Admit(a)) => *a,
        other => panic!("not admitted: {other:?}"),
    }
}

#[test]
fn refusals_in_order() {
    let base = request(1, "box-1", None, 1);
    let cases: Vec<(&str, VerifiedRequest, Snapshot, Refusal)> = vec![
        (
            "unknown token",
            base.clone(),
            Snapshot {
                token: None,
                ..empty()
            },
            Refusal::UnknownToken,
        ),
        (
            "unknown token wins over a known node",
            base.clone(),
            Snapshot {
                token: None,
                node: Some(entry(1, "box-1", 2)),
                ..empty()
            },
            Refusal::UnknownToken,
        ),
        (
            "revoked node",
            base.clone(),
            Snapshot {
                node: Some(NodeEntry {
                    revoked: true,
                    ..entry(1, "box-1", 2)
                }),
                ..empty()
            },
            Refusal::NodeRevoked(node_id(1).to_string()),
        ),
        (
            "token revoked",
            base.clone(),
            Snapshot {
                token: Some(TokenRecord {
                    revoked: true,
                    uses: 2,
                    ..token()
                }),
                ..empty()
            },
            Refusal::TokenRevoked,
        ),
        (
            "token expired, at the second it expires",
            base.clone(),
            Snapshot {
                now: 2_000,
                token: Some(TokenRecord { uses: 2, ..token() }),
                ..empty()
            },
            Refusal::TokenExpired,
        ),
        (
            "token exhausted",
            base.clone(),
            Snapshot {
                token: Some(TokenRecord { uses: 2, ..token() }),
                ..empty()
            },
            Refusal::TokenExhausted,
        ),
        (
            "the hub's name",
            request(1, "hub", None, 1),
            empty(),
            Refusal::BoxnameTaken("hub".into()),
        ),
        (
            "the hub's name, even to a replace token",
            request(1, "hub", None, 1),
            Snapshot {
                token: Some(TokenRecord {
                    replace: true,
                    ..token()
                }),
                ..empty()
            },
            Refusal::BoxnameTaken("hub".into()),
        ),
        (
            "a boxname another live node holds",
            base.clone(),
            Snapshot {
                boxname_holder: holder(2, "box-1", 2),
                ..empty()
            },
            Refusal::BoxnameTaken("box-1".into()),
        ),
        (
            "the token's boxname, held by another",
            request(1, "mine", None, 1),
            Snapshot {
                token: Some(TokenRecord {
                    boxname: Some("box-1".into()),
                    ..token()
                }),
                boxname_holder: holder(2, "box-1", 2),
                ..empty()
            },
            Refusal::BoxnameTaken("box-1".into()),
        ),
        (
            "the subnet is full (a /29 holds five nodes)",
            base.clone(),
            Snapshot {
                used_addresses: UsedAddresses::Run(5),
                ..empty()
            },
            Refusal::SubnetExhausted(mesh::PlanError::Exhausted(subnet()).to_string()),
        ),
    ];
    for (what, req, snap, want) in cases {
        assert_eq!(decide(&req, &snap), Err(want), "{what}");
    }
}

#[test]
fn wireguard_key_ownership() {
    let taken = |by: &str, key: &PublicKey| {
        Refusal::WireguardKeyTaken(format!(
            "WireGuard key {} is held by {by}; a node must have its own key",
            wg_key_to_base64(key)
        ))
    };
    // New node with the hub's key.
    let req = request(1, "box-1", Some(HUB_WG), 1);
    assert_eq!(decide(&req, &empty()), Err(taken("the hub", &HUB_WG)));

    // New node with a key another live node holds.
    let req = request(1, "box-1", Some([2; 32]), 1);
    let snap = Snapshot {
        wireguard_key_holders: vec![node_id(2).to_string()],
        ..empty()
    };
    assert_eq!(
        decide(&req, &snap),
        Err(taken("another live node", &[2; 32]))
    );

    // ...unless the token replaces that very node: its key is free again.
    let snap = Snapshot {
        token: Some(TokenRecord {
            replace: true,
            ..token()
        }),
        boxname_holder: holder(2, "box-1", 4),
        wireguard_key_holders: vec![node_id(2).to_string()],
        ..empty()
    };
    let plan = admitted(decide(&req, &snap));
    assert_eq!(plan.entry.mesh_ip, ip(4));

    // A known node rotating to a key another holds.
    let req = request(1, "box-1", Some([3; 32]), 2);
    let snap = Snapshot {
        node: Some(entry(1, "box-1", 2)),
        mirror: vec![vec![1, 0]],
        wireguard_key_holders: vec![node_id(3).to_string()],
        ..empty()
    };
    assert_eq!(
        decide(&req, &snap),
        Err(taken("another live node", &[3; 32]))
    );

    // A known node keeping its key is not checked against holders.
    let req = request(1, "box-1", None, 1);
    let snap = Snapshot {
        node: Some(entry(1, "box-1", 2)),
        mirror: vec![vec![1, 0]],
        wireguard_key_holders: vec![node_id(3).to_string()],
        ..empty()
    };
    assert!(matches!(decide(&req, &snap), Ok(Decision::Reenrol { .. })));
}

#[test]
fn the_same_node_keeps_its_address_and_spends_no_use() {
    let known = entry(1, "box-1", 5);
    let cases = [
        ("a retry, nothing new", 1),
        ("a longer log (a rotation)", 3),
    ];
    for (what, log_len) in cases {
        let snap = Snapshot {
            // An exhausted, expired token does not matter to a known node.
            now: 5_000,
            token: Some(TokenRecord { uses: 2, ..token() }),
            node: Some(known.clone()),
            mirror: vec![vec![1, 0]],
            ..empty()
        };
        assert_eq!(
            decide(&request(1, "box-1", None, log_len), &snap),
            Ok(Decision::Reenrol {
                node: Box::new(known.clone())
            }),
            "{what}"
        );
    }
}

#[test]
fn a_stale_or_diverging_log_is_refused() {
    let stale = |seq: usize| {
        Refusal::StaleIdentity(format!(
            "the presented identity log is older than, or diverges from, the hub's mirror at entry {seq}"
        ))
    };
    let mirror = vec![vec![1, 0], vec![1, 1]];
    type Case = (&'static str, Vec<Vec<u8>>, Result<(), Refusal>);
    let cases: [Case; 4] = [
        ("equal", mirror.clone(), Ok(())),
        ("longer", vec![vec![1, 0], vec![1, 1], vec![1, 2]], Ok(())),
        ("shorter", vec![vec![1, 0]], Err(stale(1))),
        ("diverging", vec![vec![1, 0], vec![9, 9]], Err(stale(1))),
    ];
    for (what, presented, want) in cases {
        assert_eq!(check_extends_mirror(&mirror, &presented), want, "{what}");
    }
}

#[test]
fn a_new_node_gets_the_lowest_free_address_and_a_token_use() {
    let cases = [
        ("empty", UsedAddresses::Run(0), ip(2)),
        ("a run of two", UsedAddresses::Run(2), ip(4)),
        (
            "a gap",
            UsedAddresses::Listed(vec![u32::from(ip(2)), u32::from(ip(4))]),
            ip(3),
        ),
        (
            "no gap, listed",
            UsedAddresses::Listed(vec![u32::from(ip(2))]),
            ip(3),
        ),
    ];
    for (what, used, want) in cases {
        let snap = Snapshot {
            used_addresses: used,
            ..empty()
        };
        let plan = admitted(decide(&request(1, "box-1", None, 1), &snap));
        assert_eq!(plan.entry.mesh_ip, want, "{what}");
        assert_eq!(plan.token.uses, 1, "{what}");
        assert_eq!(plan.entry.token_id, "tok");
        assert_eq!(plan.entry.tags, vec!["t".to_string()]);
        assert_eq!(plan.entry.enrolled_unix, NOW);
        assert_eq!(plan.replaces, None);
    }
}

#[test]
fn boxname_comes_from_the_token_else_the_request() {
    let snap = Snapshot {
        token: Some(TokenRecord {
            boxname: Some("given".into()),
            ..token()
        }),
        ..empty()
    };
    let plan = admitted(decide(&request(1, "asked", None, 1), &snap));
    assert_eq!(plan.entry.boxname, "given");
    let plan = admitted(decide(&request(1, "asked", None, 1), &empty()));
    assert_eq!(plan.entry.boxname, "asked");
}

#[test]
fn replace_takes_over_the_name_and_address() {
    let snap = Snapshot {
        token: Some(TokenRecord {
            replace: true,
            ..token()
        }),
        boxname_holder: holder(2, "box-1", 6),
        used_addresses: UsedAddresses::Run(3),
        ..empty()
    };
    let plan = admitted(decide(&request(1, "box-1", None, 1), &snap));
    assert_eq!(plan.entry.mesh_ip, ip(6));
    assert_eq!(plan.replaces, holder(2, "box-1", 6));
    assert_eq!(plan.replace_reason(), format!("replaced by {}", node_id(1)));

    // A dangling boxname entry (no record): the name is taken over, the
    // address is the lowest free one.
    let snap = Snapshot {
        boxname_holder: Some(BoxnameHolder {
            node_id: node_id(2).to_string(),
            entry: None,
        }),
        ..snap
    };
    let plan = admitted(decide(&request(1, "box-1", None, 1), &snap));
    assert_eq!(plan.entry.mesh_ip, ip(5));
}

#[test]
fn used_addresses_from_the_table_shape() {
    let s = subnet();
    let first = u32::from(ip(2));
    assert_eq!(
        UsedAddresses::run_from(&s, 0, None),
        Some(UsedAddresses::Run(0))
    );
    assert_eq!(
        UsedAddresses::run_from(&s, 3, Some(first + 2)),
        Some(UsedAddresses::Run(3))
    );
    assert_eq!(UsedAddresses::run_from(&s, 2, Some(first + 2)), None);
}

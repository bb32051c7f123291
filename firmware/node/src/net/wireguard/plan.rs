//! Which peer operations turn the device's peers into the desired ones:
//! pure, so "touch only what differs" is unit-tested without a device.

use super::{PeerChanges, PeerConfig, PeerState};

/// One peer operation. `Update` carries the full desired config of a peer
/// that exists but differs (the kernel and wireguard-go update in place
/// with `replace_allowed_ips`; boringtun must remove and re-add it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerOp {
    Add(PeerConfig),
    Update(PeerConfig),
    Remove([u8; 32]),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<PeerOp>,
    pub unchanged: usize,
}

impl Plan {
    pub fn changes(&self) -> PeerChanges {
        let mut c = PeerChanges {
            unchanged: self.unchanged,
            ..PeerChanges::default()
        };
        for op in &self.ops {
            match op {
                PeerOp::Add(_) => c.added += 1,
                PeerOp::Update(_) => c.updated += 1,
                PeerOp::Remove(_) => c.removed += 1,
            }
        }
        c
    }
}

/// Plans `upsert` and `remove` against the `current` peers. A key both in
/// `upsert` and `remove` is removed (revocation wins); a removal of an
/// absent peer and a repeated upsert are no-ops.
pub fn plan(current: &[PeerState], upsert: &[PeerConfig], remove: &[[u8; 32]]) -> Plan {
    let by_key: std::collections::HashMap<[u8; 32], &PeerState> =
        current.iter().map(|p| (p.config.public_key, p)).collect();
    let mut plan = Plan::default();
    let mut seen = std::collections::HashSet::new();
    for key in remove {
        if by_key.contains_key(key) && seen.insert(*key) {
            plan.ops.push(PeerOp::Remove(*key));
        }
    }
    for want in upsert {
        if remove.contains(&want.public_key) || !seen.insert(want.public_key) {
            continue;
        }
        match by_key.get(&want.public_key) {
            None => plan.ops.push(PeerOp::Add(want.clone())),
            Some(have) if have.satisfies(want) => plan.unchanged += 1,
            Some(_) => plan.ops.push(PeerOp::Update(want.clone())),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(k: u8, ips: &[&str], endpoint: Option<&str>, keepalive: Option<u16>) -> PeerConfig {
        PeerConfig {
            public_key: [k; 32],
            endpoint: endpoint.map(|e| e.parse().unwrap()),
            allowed_ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            keepalive,
        }
    }

    fn state(config: PeerConfig) -> PeerState {
        PeerState {
            config,
            ..PeerState::new([0; 32])
        }
    }

    #[test]
    fn identical_peers_are_not_touched() {
        let have = vec![state(peer(
            1,
            &["10.0.0.2/32", "10.0.0.3/32"],
            Some("1.2.3.4:5"),
            Some(25),
        ))];
        let want = peer(
            1,
            &["10.0.0.3/32", "10.0.0.2/32"],
            Some("1.2.3.4:5"),
            Some(25),
        );
        let p = plan(&have, &[want], &[]);
        assert!(p.ops.is_empty());
        assert_eq!(p.unchanged, 1);
    }

    #[test]
    fn an_ipv6_allowed_ip_on_the_device_makes_the_peer_differ() {
        let mut have = state(peer(1, &["10.0.0.2/32"], None, None));
        have.foreign_allowed_ips.push("fd00::/64".into());
        let want = peer(1, &["10.0.0.2/32"], None, None);
        let p = plan(&[have], std::slice::from_ref(&want), &[]);
        assert_eq!(p.ops, vec![PeerOp::Update(want)]);
    }

    #[test]
    fn learned_endpoint_and_zero_keepalive_count_as_same() {
        let have = vec![state(peer(1, &["10.0.0.2/32"], Some("1.2.3.4:5"), Some(0)))];
        let p = plan(&have, &[peer(1, &["10.0.0.2/32"], None, None)], &[]);
        assert!(p.ops.is_empty());
    }

    #[test]
    fn differences_add_update_and_remove_only_what_differs() {
        let have = vec![
            state(peer(1, &["10.0.0.2/32"], None, None)),
            state(peer(2, &["10.0.0.3/32"], None, None)),
            state(peer(3, &["10.0.0.4/32"], None, None)),
        ];
        let p = plan(
            &have,
            &[
                peer(1, &["10.0.0.2/32"], None, None),
                peer(2, &["10.0.0.9/32"], None, None),
                peer(4, &["10.0.0.5/32"], None, Some(25)),
            ],
            &[[3; 32], [7; 32]],
        );
        assert_eq!(
            p.ops,
            vec![
                PeerOp::Remove([3; 32]),
                PeerOp::Update(peer(2, &["10.0.0.9/32"], None, None)),
                PeerOp::Add(peer(4, &["10.0.0.5/32"], None, Some(25))),
            ]
        );
        assert_eq!(
            p.changes(),
            PeerChanges {
                added: 1,
                updated: 1,
                removed: 1,
                unchanged: 1
            }
        );
    }

    #[test]
    fn removal_wins_and_duplicates_collapse() {
        let have = vec![state(peer(1, &["10.0.0.2/32"], None, None))];
        let p = plan(
            &have,
            &[
                peer(1, &["10.0.0.9/32"], None, None),
                peer(5, &[], None, None),
                peer(5, &[], None, None),
            ],
            &[[1; 32], [1; 32]],
        );
        assert_eq!(
            p.ops,
            vec![
                PeerOp::Remove([1; 32]),
                PeerOp::Add(peer(5, &[], None, None))
            ]
        );
    }
}

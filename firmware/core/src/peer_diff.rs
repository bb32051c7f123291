//! The one peer plan: what to tell a WireGuard device so that it has the
//! desired peers, computed from everything the device reported (foreign
//! allowed IPs and peers we did not put there included). Pure, so "touch
//! only what differs" is tested here; the backends (`node`'s
//! `net/wireguard`) execute [`PeerDiff::ops`] in order and decide nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::SystemTime;

use ipnet::Ipv4Net;

use crate::keys::PublicKey;

/// One peer as the interface should have it (or, read back, has it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub public_key: PublicKey,
    pub allowed_ips: Vec<Ipv4Net>,
    /// `None`: leave whatever endpoint the peer roamed to.
    pub endpoint: Option<SocketAddr>,
    pub keepalive: Option<u16>,
}

/// Does the interface's `have` already satisfy `want`? Allowed IPs compare
/// as sets; a keepalive of 0 is "off"; `want.endpoint == None` accepts any
/// endpoint the peer roamed to.
pub fn satisfies(have: &PeerSpec, want: &PeerSpec) -> bool {
    let mut a: Vec<Ipv4Net> = want.allowed_ips.iter().map(Ipv4Net::trunc).collect();
    let mut b: Vec<Ipv4Net> = have.allowed_ips.iter().map(Ipv4Net::trunc).collect();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
        && want.keepalive.unwrap_or(0) == have.keepalive.unwrap_or(0)
        && (want.endpoint.is_none() || want.endpoint == have.endpoint)
}

/// One peer as the device reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePeer {
    /// Its configuration, in our IPv4 model.
    pub config: PeerSpec,
    /// Wall-clock time of the last completed handshake.
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Allowed IPs outside our IPv4 model as the device reported them (an
    /// operator's `wg set … allowed-ips fd00::/64`): while there are any,
    /// the peer differs from every desired config and is re-set, which
    /// replaces them.
    pub foreign_allowed_ips: Vec<String>,
}

impl DevicePeer {
    /// A peer known only by its key so far (the rest is read after it).
    pub fn new(public_key: PublicKey) -> DevicePeer {
        DevicePeer {
            config: PeerSpec {
                public_key,
                endpoint: None,
                allowed_ips: Vec::new(),
                keepalive: None,
            },
            last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
            foreign_allowed_ips: Vec::new(),
        }
    }

    /// Does this peer, as the device has it, already satisfy `want`?
    pub fn satisfies(&self, want: &PeerSpec) -> bool {
        self.foreign_allowed_ips.is_empty() && satisfies(&self.config, want)
    }
}

/// The device as it reported itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceState {
    /// `None` until a private key is set.
    pub public_key: Option<PublicKey>,
    pub listen_port: u16,
    pub peers: Vec<DevicePeer>,
}

/// One peer operation. `Update` carries the full desired config of a peer
/// that exists but differs (the kernel updates in place with
/// `replace_allowed_ips`; boringtun's UAPI server removes and re-adds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerOp {
    Add(PeerSpec),
    Update(PeerSpec),
    Remove(PublicKey),
}

/// What a [`PeerDiff`] changes (peers already as desired are counted in
/// `unchanged` and not touched).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerChanges {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// The operations that take a device's peers to the desired ones:
/// removals first, then updates and adds in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerDiff {
    pub ops: Vec<PeerOp>,
    pub unchanged: usize,
}

impl PeerDiff {
    /// The device should have exactly `desired`: every other peer (one we
    /// never configured included) is removed. A peer that satisfies its
    /// desired config is left alone, so its session keeps running; a
    /// desired `endpoint: None` accepts any endpoint the peer roamed to.
    pub fn new(device: &[DevicePeer], desired: &[PeerSpec]) -> PeerDiff {
        let wanted: BTreeSet<&PublicKey> = desired.iter().map(|p| &p.public_key).collect();
        let remove: Vec<PublicKey> = device
            .iter()
            .map(|p| p.config.public_key)
            .filter(|k| !wanted.contains(k))
            .collect();
        Self::patch(device, desired, &remove)
    }

    /// Only these peers change: `upsert` is added or brought to its config,
    /// `remove` is removed; every other peer is left as it is. A key both
    /// upserted and removed is removed (revocation wins); removing an
    /// absent peer and repeating an upsert are no-ops.
    pub fn patch(device: &[DevicePeer], upsert: &[PeerSpec], remove: &[PublicKey]) -> PeerDiff {
        let by_key: BTreeMap<&PublicKey, &DevicePeer> =
            device.iter().map(|p| (&p.config.public_key, p)).collect();
        let removed: BTreeSet<&PublicKey> =
            remove.iter().filter(|k| by_key.contains_key(k)).collect();
        let mut diff = PeerDiff {
            ops: removed.iter().map(|k| PeerOp::Remove(**k)).collect(),
            unchanged: 0,
        };
        // The first upsert of a key counts, in key order.
        let mut upserts: BTreeMap<&PublicKey, &PeerSpec> = BTreeMap::new();
        for want in upsert {
            upserts.entry(&want.public_key).or_insert(want);
        }
        for (key, want) in upserts {
            if remove.contains(key) {
                continue;
            }
            match by_key.get(key) {
                None => diff.ops.push(PeerOp::Add(want.clone())),
                Some(have) if have.satisfies(want) => diff.unchanged += 1,
                Some(_) => diff.ops.push(PeerOp::Update(want.clone())),
            }
        }
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(k: u8, ips: &[&str], endpoint: Option<&str>, keepalive: Option<u16>) -> PeerSpec {
        PeerSpec {
            public_key: [k; 32],
            endpoint: endpoint.map(|e| e.parse().unwrap()),
            allowed_ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            keepalive,
        }
    }

    fn state(config: PeerSpec) -> DevicePeer {
        DevicePeer {
            config,
            ..DevicePeer::new([0; 32])
        }
    }

    #[test]
    fn a_converged_device_needs_nothing() {
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
        let d = PeerDiff::new(&have, &[want]);
        assert!(d.is_empty());
        assert_eq!(d.unchanged, 1);
    }

    #[test]
    fn a_foreign_allowed_ip_makes_the_peer_differ() {
        let mut have = state(peer(1, &["10.0.0.2/32"], None, None));
        have.foreign_allowed_ips.push("fd00::/64".into());
        let want = peer(1, &["10.0.0.2/32"], None, None);
        let d = PeerDiff::new(&[have], std::slice::from_ref(&want));
        assert_eq!(d.ops, vec![PeerOp::Update(want)]);
    }

    #[test]
    fn roamed_endpoints_and_zero_keepalive_count_as_same() {
        let have = vec![state(peer(1, &["10.0.0.2/32"], Some("1.2.3.4:5"), Some(0)))];
        let d = PeerDiff::new(&have, &[peer(1, &["10.0.0.2/32"], None, None)]);
        assert!(d.is_empty());
        // But a changed endpoint we ask for is set.
        let d = PeerDiff::new(&have, &[peer(1, &["10.0.0.2/32"], Some("1.2.3.4:6"), None)]);
        assert_eq!(d.changes().updated, 1);
    }

    #[test]
    fn only_what_differs_is_touched_and_foreign_peers_go() {
        let have = vec![
            state(peer(1, &["10.0.0.2/32"], None, None)),
            state(peer(2, &["10.0.0.3/32"], None, None)),
            state(peer(3, &["10.0.0.4/32"], None, None)), // not ours
        ];
        let d = PeerDiff::new(
            &have,
            &[
                peer(4, &["10.0.0.5/32"], None, Some(25)),
                peer(2, &["10.0.0.9/32"], None, None),
                peer(1, &["10.0.0.2/32"], None, None),
            ],
        );
        assert_eq!(
            d.ops,
            vec![
                PeerOp::Remove([3; 32]),
                PeerOp::Update(peer(2, &["10.0.0.9/32"], None, None)),
                PeerOp::Add(peer(4, &["10.0.0.5/32"], None, Some(25))),
            ]
        );
        assert_eq!(
            d.changes(),
            PeerChanges {
                added: 1,
                updated: 1,
                removed: 1,
                unchanged: 1
            }
        );
    }

    #[test]
    fn a_patch_leaves_other_peers_and_removal_wins() {
        let have = vec![
            state(peer(1, &["10.0.0.2/32"], None, None)),
            state(peer(2, &["10.0.0.3/32"], None, None)),
        ];
        let d = PeerDiff::patch(
            &have,
            &[
                peer(1, &["10.0.0.9/32"], None, None),
                peer(5, &[], None, None),
                peer(5, &[], None, None),
            ],
            &[[1; 32], [1; 32], [7; 32]],
        );
        assert_eq!(
            d.ops,
            vec![
                PeerOp::Remove([1; 32]),
                PeerOp::Add(peer(5, &[], None, None))
            ]
        );
    }

    #[test]
    fn revoked_means_every_peer_goes() {
        let mut foreign = DevicePeer::new([9; 32]);
        foreign.foreign_allowed_ips.push("fd00::/64".into());
        let have = vec![state(peer(1, &["10.0.0.0/16"], None, Some(25))), foreign];
        let d = PeerDiff::new(&have, &[]);
        assert_eq!(d.changes().removed, 2);
    }
}

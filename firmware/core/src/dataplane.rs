//! The mesh's desired WireGuard peers. The plan that takes an interface
//! from what it has to them is `peer_diff::PeerDiff`; the choice
//! of which of these functions applies is `reconcile`'s.
//!
//! A peer per box (docs/paths.md, "Peers"): the hub has every live node as
//! a peer (its mesh address as a /32, no endpoint: nodes roam and the hub
//! learns where they are); a node has the hub (the hub's /32, its endpoint)
//! and every other live node (its /32, the endpoint the path machine
//! chose), each with a keepalive so NAT state stays open. Traffic between
//! two nodes is encrypted by them: the hub no longer routes it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;

use crate::NodeId;
use crate::directory::View;
use crate::keys::PublicKey;
pub use crate::peer_diff::{PeerSpec, satisfies};

/// Keepalive a node sends towards the hub (seconds): below the 30 s UDP
/// timeout of common NAT boxes, the value `wg-quick` users know.
pub const NODE_KEEPALIVE_SECS: u16 = 25;

/// Live directory records that name one WireGuard key: the hub cannot give
/// that key's peer to any of them without cutting off the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConflict {
    pub public_key: PublicKey,
    /// The nodes naming it, in id order; the hub's own id when one of them
    /// names the hub's key.
    pub node_ids: Vec<NodeId>,
}

/// What the hub should have: its peers, and the keys it refuses to
/// configure because more than one live record names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubPeers {
    pub peers: Vec<PeerSpec>,
    pub conflicts: Vec<KeyConflict>,
}

/// The hub's peers: every live node of the directory but the hub itself,
/// one per WireGuard key. The hub refuses a key two live nodes share when
/// they enrol, so two records with one key only come from an older
/// database. Such a key gets *no* peer, and is reported: giving it to
/// either node would route the other's address to it, and choosing one by
/// any rule lets whoever can pick their node id take the peer.
pub fn hub_peers(view: &View, hub_id: &NodeId, hub_wireguard_key: &PublicKey) -> HubPeers {
    let mut by_key: BTreeMap<PublicKey, Vec<(&NodeId, Ipv4Addr)>> = BTreeMap::new();
    for (id, node) in &view.nodes {
        if id == hub_id {
            continue;
        }
        by_key
            .entry(node.wireguard_key)
            .or_default()
            .push((id, node.mesh_ip));
    }
    let mut out = HubPeers::default();
    for (public_key, holders) in by_key {
        let is_hub_key = public_key == *hub_wireguard_key;
        if let [(_, ip)] = holders.as_slice()
            && !is_hub_key
        {
            out.peers.push(PeerSpec {
                public_key,
                allowed_ips: vec![Ipv4Net::from(*ip)],
                endpoint: None,
                keepalive: None,
            });
            continue;
        }
        let mut node_ids: Vec<NodeId> = holders.iter().map(|(id, _)| (*id).clone()).collect();
        if is_hub_key {
            node_ids.push(hub_id.clone());
        }
        out.conflicts.push(KeyConflict {
            public_key,
            node_ids,
        });
    }
    out
}

/// The hub as a node's peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubPeer {
    pub public_key: PublicKey,
    pub mesh_ip: Ipv4Addr,
    /// As last resolved (`None` until a name resolves).
    pub endpoint: Option<SocketAddr>,
}

/// What a node should have, and how many other nodes `max_peers` left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePeers {
    pub peers: Vec<PeerSpec>,
    pub omitted: usize,
}

/// A node's peers: the hub first, then every other live node of the
/// directory but itself (revoked ones are not in the view), the endpoint
/// from `endpoints` (the path machine's choice; `None`: learned from the
/// other side's handshakes). A key two live records name, or the hub's or
/// our own, gets no peer (the hub reports such conflicts).
///
/// At most `max_peers` peers, the hub included: the others are kept in
/// this order — those whose key is in `fresh` (a handshake in the last 3
/// minutes), then by mesh address — and the rest counted in `omitted`.
pub fn node_peers(
    view: &View,
    own_id: &NodeId,
    own_wireguard_key: &PublicKey,
    hub: HubPeer,
    endpoints: &BTreeMap<NodeId, SocketAddr>,
    fresh: &BTreeSet<PublicKey>,
    max_peers: usize,
) -> NodePeers {
    let mut out = NodePeers {
        peers: vec![PeerSpec {
            public_key: hub.public_key,
            allowed_ips: vec![Ipv4Net::from(hub.mesh_ip)],
            endpoint: hub.endpoint,
            keepalive: Some(NODE_KEEPALIVE_SECS),
        }],
        omitted: 0,
    };
    let mut key_count: BTreeMap<&PublicKey, usize> = BTreeMap::new();
    for node in view.nodes.values() {
        *key_count.entry(&node.wireguard_key).or_default() += 1;
    }
    let mut others: Vec<(bool, Ipv4Addr, PeerSpec)> = view
        .nodes
        .iter()
        .filter(|(id, node)| {
            *id != own_id
                && node.mesh_ip != hub.mesh_ip
                && node.wireguard_key != hub.public_key
                && node.wireguard_key != *own_wireguard_key
                && key_count.get(&node.wireguard_key) == Some(&1)
        })
        .map(|(id, node)| {
            let spec = PeerSpec {
                public_key: node.wireguard_key,
                allowed_ips: vec![Ipv4Net::from(node.mesh_ip)],
                endpoint: endpoints.get(id).copied(),
                keepalive: Some(NODE_KEEPALIVE_SECS),
            };
            (!fresh.contains(&node.wireguard_key), node.mesh_ip, spec)
        })
        .collect();
    others.sort_by_key(|(stale, ip, _)| (*stale, *ip));
    let room = max_peers.saturating_sub(1);
    out.omitted = others.len().saturating_sub(room);
    out.peers
        .extend(others.into_iter().take(room).map(|(_, _, spec)| spec));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Boxname;
    use crate::directory::{NodeRecord, Record};
    use crate::peer_diff::{DevicePeer, PeerDiff, PeerOp};

    pub(crate) fn id(n: u8) -> NodeId {
        NodeId::from_genesis_key(&[n; 32])
    }

    /// Nodes `n` (box-n, mesh 10.99.0.n, WireGuard key `[n ^ 0x80; 32]`).
    pub(crate) fn view(nodes: &[u8]) -> View {
        let mut v = View::default();
        for &n in nodes {
            v.nodes.insert(
                id(n),
                NodeRecord {
                    boxname: Boxname::parse(&format!("box-{n}")).unwrap(),
                    signing_key: [n; 32],
                    wireguard_key: [n ^ 0x80; 32],
                    mesh_ip: Ipv4Addr::new(10, 99, 0, n),
                    endpoint_hint: None,
                },
            );
        }
        v
    }

    fn seen(spec: &PeerSpec) -> DevicePeer {
        DevicePeer {
            config: spec.clone(),
            ..DevicePeer::new(spec.public_key)
        }
    }

    fn plan_peers(desired: &[PeerSpec], actual: &[DevicePeer]) -> PeerDiff {
        PeerDiff::new(actual, desired)
    }

    #[test]
    fn hub_has_every_live_node_but_itself() {
        let v = view(&[1, 2, 3]);
        let peers = hub_peers(&v, &id(1), &[1 ^ 0x80; 32]).peers;
        assert_eq!(peers.len(), 2);
        assert!(peers.iter().all(|p| p.endpoint.is_none()));
        assert_eq!(
            peers[0].allowed_ips,
            vec!["10.99.0.2/32".parse::<Ipv4Net>().unwrap()]
        );
    }

    #[test]
    fn revoked_nodes_are_not_peers() {
        let mut v = view(&[1, 2, 3]);
        v.apply(&Record::Revoke {
            node_id: id(3),
            reason: heapless::String::try_from("stolen").unwrap(),
        });
        let peers = hub_peers(&v, &id(1), &[1 ^ 0x80; 32]).peers;
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].public_key, [2 ^ 0x80; 32]);
    }

    #[test]
    fn a_converged_interface_needs_nothing() {
        let desired = hub_peers(&view(&[1, 2, 3, 4]), &id(1), &[0; 32]).peers;
        let actual: Vec<DevicePeer> = desired.iter().map(seen).collect();
        assert!(plan_peers(&desired, &actual).is_empty());
    }

    #[test]
    fn roamed_endpoints_are_left_alone_but_a_changed_hub_endpoint_is_set() {
        let desired = hub_peers(&view(&[1, 2]), &id(9), &[0; 32]).peers;
        let mut actual: Vec<DevicePeer> = desired.iter().map(seen).collect();
        actual[0].config.endpoint = Some("192.0.2.7:40000".parse().unwrap());
        assert!(plan_peers(&desired, &actual).is_empty());

        let old = node_peers_of(&view(&[]), Some("192.0.2.1:51820"), usize::MAX).peers;
        let new = node_peers_of(&view(&[]), Some("192.0.2.2:51820"), usize::MAX).peers;
        let actual: Vec<DevicePeer> = old.iter().map(seen).collect();
        let plan = plan_peers(&new, &actual);
        assert_eq!(plan.ops, vec![PeerOp::Update(new[0].clone())]);
    }

    #[test]
    fn only_what_differs_is_touched() {
        let desired = hub_peers(&view(&[2, 3, 4]), &id(1), &[0; 32]).peers;
        let mut actual: Vec<DevicePeer> = desired.iter().map(seen).collect();
        actual.remove(0); // missing
        actual[0].config.allowed_ips = vec!["10.99.0.200/32".parse().unwrap()]; // changed
        actual.push(DevicePeer::new([0xee; 32])); // stale
        let plan = plan_peers(&desired, &actual);
        assert_eq!(
            plan.ops,
            vec![
                PeerOp::Remove([0xee; 32]),
                PeerOp::Add(desired[0].clone()),
                PeerOp::Update(desired[1].clone()),
            ]
        );
        assert_eq!(desired[0].public_key, [2 ^ 0x80; 32]);
    }

    /// Nodes 2 and 3 name one key (an old database): neither gets a peer,
    /// whatever their id order, and the conflict names both.
    #[test]
    fn a_shared_key_gets_no_peer_and_is_reported() {
        for (first, second) in [(2, 3), (3, 2)] {
            let mut v = view(&[1, 2, 3, 4]);
            let shared = v.nodes[&id(first)].wireguard_key;
            v.nodes.get_mut(&id(second)).unwrap().wireguard_key = shared;
            let out = hub_peers(&v, &id(1), &[1 ^ 0x80; 32]);
            assert_eq!(out.peers.len(), 1, "only node 4 keeps its peer");
            assert_eq!(out.peers[0].public_key, [4 ^ 0x80; 32]);
            assert!(out.peers.iter().all(|p| p.public_key != shared));
            let mut both = vec![id(2), id(3)];
            both.sort();
            assert_eq!(
                out.conflicts,
                vec![KeyConflict {
                    public_key: shared,
                    node_ids: both
                }]
            );
        }
        // Revoking one of the two ends the conflict: the other gets its peer.
        let mut v = view(&[1, 2, 3]);
        let shared = v.nodes[&id(2)].wireguard_key;
        v.nodes.get_mut(&id(3)).unwrap().wireguard_key = shared;
        v.apply(&Record::Revoke {
            node_id: id(3),
            reason: heapless::String::try_from("duplicate").unwrap(),
        });
        let out = hub_peers(&v, &id(1), &[1 ^ 0x80; 32]);
        assert!(out.conflicts.is_empty());
        assert_eq!(out.peers.len(), 1);
        assert_eq!(
            out.peers[0].allowed_ips,
            vec!["10.99.0.2/32".parse::<Ipv4Net>().unwrap()]
        );
    }

    /// A node record naming the hub's own key gets no peer and is reported.
    #[test]
    fn a_node_with_the_hubs_key_is_reported() {
        let mut v = view(&[1, 2, 3]);
        v.nodes.get_mut(&id(3)).unwrap().wireguard_key = [0x77; 32];
        let out = hub_peers(&v, &id(1), &[0x77; 32]);
        assert_eq!(out.peers.len(), 1);
        assert_eq!(out.peers[0].public_key, [2 ^ 0x80; 32]);
        assert_eq!(
            out.conflicts,
            vec![KeyConflict {
                public_key: [0x77; 32],
                node_ids: vec![id(3), id(1)]
            }]
        );
    }

    const HUB_KEY: PublicKey = [0x7e; 32];

    /// Node 5's peers in `v` (hub 10.99.0.1), no fresh handshakes.
    fn node_peers_of(v: &View, hub_endpoint: Option<&str>, max_peers: usize) -> NodePeers {
        let hub = HubPeer {
            public_key: HUB_KEY,
            mesh_ip: Ipv4Addr::new(10, 99, 0, 1),
            endpoint: hub_endpoint.map(|e| e.parse().unwrap()),
        };
        node_peers(
            v,
            &id(5),
            &[5 ^ 0x80; 32],
            hub,
            &BTreeMap::new(),
            &BTreeSet::new(),
            max_peers,
        )
    }

    #[test]
    fn a_node_has_the_hub_and_every_other_live_node() {
        let mut v = view(&[5, 2, 3, 4]);
        v.apply(&Record::Revoke {
            node_id: id(4),
            reason: heapless::String::try_from("stolen").unwrap(),
        });
        let endpoints = BTreeMap::from([(id(3), "198.51.100.3:51823".parse().unwrap())]);
        let hub = HubPeer {
            public_key: HUB_KEY,
            mesh_ip: Ipv4Addr::new(10, 99, 0, 1),
            endpoint: Some("192.0.2.1:51822".parse().unwrap()),
        };
        let out = node_peers(
            &v,
            &id(5),
            &[5 ^ 0x80; 32],
            hub,
            &endpoints,
            &BTreeSet::new(),
            1000,
        );
        assert_eq!(out.omitted, 0);
        let p = &out.peers;
        assert_eq!(p.len(), 3, "hub, 2 and 3; not itself, not revoked 4");
        assert_eq!(p[0].public_key, HUB_KEY);
        assert_eq!(p[0].allowed_ips, vec!["10.99.0.1/32".parse().unwrap()]);
        assert_eq!(p[0].endpoint, hub.endpoint);
        assert_eq!(p[1].allowed_ips, vec!["10.99.0.2/32".parse().unwrap()]);
        assert_eq!(p[1].endpoint, None, "no path yet: learned from handshakes");
        assert_eq!(p[2].endpoint, Some("198.51.100.3:51823".parse().unwrap()));
        assert!(p.iter().all(|p| p.keepalive == Some(NODE_KEEPALIVE_SECS)));
    }

    #[test]
    fn a_node_gives_no_peer_to_a_shared_or_the_hubs_key() {
        let mut v = view(&[5, 2, 3, 4]);
        let shared = v.nodes[&id(2)].wireguard_key;
        v.nodes.get_mut(&id(3)).unwrap().wireguard_key = shared;
        v.nodes.get_mut(&id(4)).unwrap().wireguard_key = HUB_KEY;
        let out = node_peers_of(&v, None, 1000);
        assert_eq!(out.peers.len(), 1, "only the hub");
    }

    #[test]
    fn max_peers_keeps_the_hub_then_fresh_then_lowest_addresses() {
        let v = view(&[5, 2, 3, 4, 6]);
        let ips = |out: &NodePeers| -> Vec<String> {
            out.peers
                .iter()
                .map(|p| p.allowed_ips[0].to_string())
                .collect()
        };
        let out = node_peers_of(&v, None, 3);
        assert_eq!(ips(&out), ["10.99.0.1/32", "10.99.0.2/32", "10.99.0.3/32"]);
        assert_eq!(out.omitted, 2);

        // Node 6 had a handshake in the last 3 minutes: kept first.
        let fresh = BTreeSet::from([[6 ^ 0x80; 32]]);
        let hub = HubPeer {
            public_key: HUB_KEY,
            mesh_ip: Ipv4Addr::new(10, 99, 0, 1),
            endpoint: None,
        };
        let none = BTreeMap::new();
        let out = node_peers(&v, &id(5), &[5 ^ 0x80; 32], hub, &none, &fresh, 3);
        assert_eq!(ips(&out), ["10.99.0.1/32", "10.99.0.6/32", "10.99.0.2/32"]);
        assert_eq!(out.omitted, 2);

        let out = node_peers_of(&v, None, 1);
        assert_eq!((out.peers.len(), out.omitted), (1, 4), "the hub always");
    }
}

//! Which pairs of nodes the relay carries, and on which ports (docs/paths.md,
//! "The relay"). Pure and deterministic: the same wants, active nodes and
//! clock give the same pairs and ports, so a hub that restarts and reloads
//! its stored reports hands out the ports it handed out before.
//!
//! A pair `(a, b)` (`a < b`) is allocated when either node asks for the
//! other (`want_relay` in its report) and both are active; it gets the two
//! lowest free ports of the range, `port_a` then `port_b`. It is released
//! at once when either node is no longer active, and after `idle` with
//! neither a request for it nor traffic through it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::candidates::RelayPair;
use crate::node_id::NodeId;
use crate::ordered::set_from;
use crate::time::Millis;

/// `relay.port_range` and `relay.idle_secs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// First and last port, inclusive.
    pub ports: (u16, u16),
    pub idle: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            ports: (56000, 56999),
            idle: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Allocation {
    port_a: u16,
    port_b: u16,
    /// Last time a node asked for it or traffic passed.
    used: Millis,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayAllocator {
    pairs: BTreeMap<(NodeId, NodeId), Allocation>,
    /// Pairs asked for that found no free ports at the last update.
    unplaced: usize,
}

/// The ordered pair of two distinct nodes.
pub fn pair_key(x: &NodeId, y: &NodeId) -> Option<(NodeId, NodeId)> {
    match x.cmp(y) {
        std::cmp::Ordering::Less => Some((x.clone(), y.clone())),
        std::cmp::Ordering::Greater => Some((y.clone(), x.clone())),
        std::cmp::Ordering::Equal => None,
    }
}

impl RelayAllocator {
    /// Applies the nodes' current wants at `now`; `true` when a pair was
    /// allocated or released (the snapshot changes).
    pub fn update(
        &mut self,
        settings: &RelaySettings,
        wants: &BTreeMap<NodeId, Vec<NodeId>>,
        active: &BTreeSet<NodeId>,
        now: Millis,
    ) -> bool {
        let wanted: BTreeSet<(NodeId, NodeId)> = set_from(
            wants
                .iter()
                .flat_map(|(n, peers)| peers.iter().filter_map(move |p| pair_key(n, p)))
                .filter(|(a, b)| active.contains(a) && active.contains(b)),
        );
        let (first, last) = settings.ports;
        let before = self.pairs.len();
        self.pairs.retain(|key, alloc| {
            let in_range = |p: u16| (first..=last).contains(&p);
            let keep = active.contains(&key.0)
                && active.contains(&key.1)
                && in_range(alloc.port_a)
                && in_range(alloc.port_b);
            if !keep {
                return false;
            }
            if wanted.contains(key) {
                alloc.used = alloc.used.max(now);
            }
            now.since(alloc.used) < settings.idle
        });
        let mut changed = self.pairs.len() != before;
        let mut taken: BTreeSet<u16> =
            set_from(self.pairs.values().flat_map(|a| [a.port_a, a.port_b]));
        self.unplaced = 0;
        for key in wanted {
            if self.pairs.contains_key(&key) {
                continue;
            }
            let mut free = (first..=last).filter(|p| !taken.contains(p));
            let (Some(port_a), Some(port_b)) = (free.next(), free.next()) else {
                self.unplaced += 1;
                continue;
            };
            taken.insert(port_a);
            taken.insert(port_b);
            let used = now;
            self.pairs.insert(
                key,
                Allocation {
                    port_a,
                    port_b,
                    used,
                },
            );
            changed = true;
        }
        changed
    }

    /// The relay saw traffic of the pair at `now`: it is not idle.
    pub fn traffic(&mut self, x: &NodeId, y: &NodeId, now: Millis) {
        if let Some(alloc) = pair_key(x, y).and_then(|k| self.pairs.get_mut(&k)) {
            alloc.used = alloc.used.max(now);
        }
    }

    /// The allocated pairs, in (a, b) order, as the snapshot lists them.
    pub fn pairs(&self, relay: &NodeId) -> Vec<RelayPair> {
        self.pairs
            .iter()
            .map(|((a, b), alloc)| RelayPair {
                a: a.clone(),
                b: b.clone(),
                relay: relay.clone(),
                port_a: alloc.port_a,
                port_b: alloc.port_b,
            })
            .collect()
    }

    /// Pairs asked for at the last update that found no free ports.
    pub fn unplaced(&self) -> usize {
        self.unplaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId::from_genesis_key(&[n; 32])
    }

    fn settings(first: u16, last: u16) -> RelaySettings {
        RelaySettings {
            ports: (first, last),
            idle: Duration::from_secs(600),
        }
    }

    fn wants(list: &[(u8, &[u8])]) -> BTreeMap<NodeId, Vec<NodeId>> {
        list.iter()
            .map(|(n, ps)| (id(*n), ps.iter().map(|p| id(*p)).collect()))
            .collect()
    }

    fn active(ns: &[u8]) -> BTreeSet<NodeId> {
        ns.iter().map(|n| id(*n)).collect()
    }

    #[test]
    fn allocates_two_lowest_ports_per_pair_deterministically() {
        let s = settings(56000, 56999);
        let w = wants(&[(1, &[2, 3]), (3, &[1])]);
        let mut x = RelayAllocator::default();
        assert!(x.update(&s, &w, &active(&[1, 2, 3]), Millis(0)));
        let pairs = x.pairs(&id(9));
        assert_eq!(pairs.len(), 2, "1-3 and 3-1 are one pair");
        let ports: BTreeSet<u16> = pairs.iter().flat_map(|p| [p.port_a, p.port_b]).collect();
        assert_eq!(ports, (56000..56004).collect());
        assert!(pairs.iter().all(|p| p.a < p.b && p.relay == id(9)));
        // The same input in another allocator: the same answer.
        let mut y = RelayAllocator::default();
        y.update(&s, &w, &active(&[1, 2, 3]), Millis(0));
        assert_eq!(x, y);
        // Nothing changed: no change reported.
        assert!(!x.update(&s, &w, &active(&[1, 2, 3]), Millis(1000)));
    }

    #[test]
    fn only_between_active_nodes_and_never_self() {
        let s = settings(56000, 56999);
        let mut x = RelayAllocator::default();
        assert!(!x.update(&s, &wants(&[(1, &[1, 2])]), &active(&[1]), Millis(0)));
        assert!(x.pairs(&id(9)).is_empty());
        assert!(x.update(&s, &wants(&[(1, &[2])]), &active(&[1, 2]), Millis(0)));
        // Node 2 revoked: released at once.
        assert!(x.update(&s, &wants(&[(1, &[2])]), &active(&[1]), Millis(1)));
        assert!(x.pairs(&id(9)).is_empty());
    }

    #[test]
    fn released_after_idle_unless_asked_or_used() {
        let s = settings(56000, 56999);
        let on = active(&[1, 2]);
        let mut x = RelayAllocator::default();
        x.update(&s, &wants(&[(1, &[2])]), &on, Millis(0));
        let none = wants(&[]);
        assert!(!x.update(&s, &none, &on, Millis(599_000)));
        x.traffic(&id(2), &id(1), Millis(599_000));
        assert!(!x.update(&s, &none, &on, Millis(1_000_000)));
        assert_eq!(x.pairs(&id(9)).len(), 1);
        assert!(x.update(&s, &none, &on, Millis(1_199_000)));
        assert!(x.pairs(&id(9)).is_empty());
    }

    #[test]
    fn a_full_range_leaves_pairs_unplaced_and_reuses_freed_ports() {
        let s = settings(56000, 56002);
        let on = active(&[1, 2, 3]);
        let mut x = RelayAllocator::default();
        x.update(&s, &wants(&[(1, &[2, 3])]), &on, Millis(0));
        assert_eq!(x.pairs(&id(9)).len(), 1);
        assert_eq!(x.unplaced(), 1);
        // 1-2 no longer asked for and idle: 1-3 gets its ports.
        let later = Millis(700_000);
        assert!(x.update(&s, &wants(&[(1, &[3])]), &on, later));
        let pairs = x.pairs(&id(9));
        assert_eq!(pairs.len(), 1);
        assert_eq!((pairs[0].port_a, pairs[0].port_b), (56000, 56001));
        assert_eq!(x.unplaced(), 0);
    }
}

//! Which pairs of nodes the relay carries, where and on which ports
//! (docs/paths.md, "The relay" and "Node relays"). Pure and deterministic:
//! the same wants, active nodes, node relays and clock give the same pairs
//! and ports, so a hub that restarts and reloads its stored reports hands
//! out the ports it handed out before.
//!
//! A pair `(a, b)` (`a < b`) is allocated when either node asks for the
//! other (`want_relay` in its report) and both are active. It goes to a
//! **node relay** when one can take it — a node of `node_relays` (the
//! book's eligible ones: offering, observed, no NAT in front), eligible
//! for `settle` already, other than
//! `a` and `b` with two free ports in its offered range, the one with the
//! fewest pairs, then the lowest node id — else to the **hub**. Ports are
//! the two lowest free ones of that relay's range, `port_a` then `port_b`.
//! A pair on the hub moves to a node relay as soon as one can take it (the
//! hub is the fallback; a node relay's pairs outlive the hub); a pair whose
//! node relay is no longer eligible moves to another one or to the hub. A
//! pair is released at once when either node is no longer active, and
//! after `idle` with neither a request for it nor traffic through it (the
//! hub sees traffic only through its own pairs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::candidates::{RelayOffer, RelayPair};
use crate::node_id::NodeId;
use crate::ordered::set_from;
use crate::time::Millis;

/// `relay.port_range` and `relay.idle_secs` of the hub, and how long a
/// node relay must have been eligible before it is given pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// First and last port, inclusive.
    pub ports: (u16, u16),
    pub idle: Duration,
    /// A node relay is used once it has been eligible this long: every
    /// node must have pulled its directory record first, or it drops the
    /// pairs naming it (the hub uses its `enroll.directory_pull_secs`).
    pub settle: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            ports: (56000, 56999),
            idle: Duration::from_secs(600),
            settle: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Allocation {
    /// The node relaying the pair; `None`: the hub.
    relay: Option<NodeId>,
    port_a: u16,
    port_b: u16,
    /// Last time a node asked for it or traffic passed.
    used: Millis,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayAllocator {
    pairs: BTreeMap<(NodeId, NodeId), Allocation>,
    /// Since when each eligible node relay has been eligible.
    relays_since: BTreeMap<NodeId, Millis>,
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

/// The ports taken on each relay (`None`: the hub) and its pair count.
type Taken = BTreeMap<Option<NodeId>, BTreeSet<u16>>;

/// The two lowest free ports of `first..=last` on `relay`.
fn free_two(
    taken: &Taken,
    relay: &Option<NodeId>,
    (first, last): (u16, u16),
) -> Option<(u16, u16)> {
    let used = taken.get(relay);
    let mut free = (first..=last).filter(|p| !used.is_some_and(|u| u.contains(p)));
    Some((free.next()?, free.next()?))
}

/// The node relay for `key`: not one of the two, two free ports, the
/// fewest pairs, then the lowest id.
fn pick_node_relay(
    key: &(NodeId, NodeId),
    node_relays: &BTreeMap<NodeId, RelayOffer>,
    taken: &Taken,
) -> Option<(NodeId, (u16, u16))> {
    node_relays
        .iter()
        .filter(|(id, _)| **id != key.0 && **id != key.1)
        .filter_map(|(id, offer)| {
            let relay = Some(id.clone());
            let ports = free_two(taken, &relay, (offer.first, offer.last))?;
            let load = taken.get(&relay).map_or(0, BTreeSet::len);
            Some((load, id.clone(), ports))
        })
        .min()
        .map(|(_, id, ports)| (id, ports))
}

impl RelayAllocator {
    /// Applies the nodes' current wants and the eligible node relays at
    /// `now`; `true` when a pair was allocated, moved or released (the
    /// snapshot changes).
    pub fn update(
        &mut self,
        settings: &RelaySettings,
        wants: &BTreeMap<NodeId, Vec<NodeId>>,
        active: &BTreeSet<NodeId>,
        node_relays: &BTreeMap<NodeId, RelayOffer>,
        now: Millis,
    ) -> bool {
        let wanted: BTreeSet<(NodeId, NodeId)> = set_from(
            wants
                .iter()
                .flat_map(|(n, peers)| peers.iter().filter_map(move |p| pair_key(n, p)))
                .filter(|(a, b)| active.contains(a) && active.contains(b)),
        );
        let (first, last) = settings.ports;
        let before = self.pairs.clone();
        self.relays_since
            .retain(|id, _| node_relays.contains_key(id));
        for id in node_relays.keys() {
            self.relays_since.entry(id.clone()).or_insert(now);
        }
        // Settled node relays take new pairs and the hub's; a pair already
        // on a node relay stays while that node is eligible at all.
        let settled: BTreeMap<NodeId, RelayOffer> = node_relays
            .iter()
            .filter(|(id, _)| {
                self.relays_since
                    .get(*id)
                    .is_some_and(|since| now.since(*since) >= settings.settle)
            })
            .map(|(id, o)| (id.clone(), *o))
            .collect();
        self.pairs.retain(|key, alloc| {
            let range = match &alloc.relay {
                None => Some((first, last)),
                Some(r) if *r != key.0 && *r != key.1 => {
                    node_relays.get(r).map(|o| (o.first, o.last))
                }
                Some(_) => None,
            };
            let in_range = |p: u16| range.is_some_and(|(f, l)| (f..=l).contains(&p));
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
        let mut taken = Taken::new();
        for alloc in self.pairs.values() {
            let ports = taken.entry(alloc.relay.clone()).or_default();
            ports.insert(alloc.port_a);
            ports.insert(alloc.port_b);
        }
        // The hub's pairs go to a node relay that can take them.
        let on_hub: Vec<(NodeId, NodeId)> = self
            .pairs
            .iter()
            .filter(|(_, a)| a.relay.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for key in on_hub {
            let Some((relay, (port_a, port_b))) = pick_node_relay(&key, &settled, &taken) else {
                continue;
            };
            if let Some(alloc) = self.pairs.get_mut(&key) {
                if let Some(hub) = taken.get_mut(&None) {
                    hub.remove(&alloc.port_a);
                    hub.remove(&alloc.port_b);
                }
                taken
                    .entry(Some(relay.clone()))
                    .or_default()
                    .extend([port_a, port_b]);
                (alloc.relay, alloc.port_a, alloc.port_b) = (Some(relay), port_a, port_b);
            }
        }
        self.unplaced = 0;
        for key in wanted {
            if self.pairs.contains_key(&key) {
                continue;
            }
            let placed = pick_node_relay(&key, &settled, &taken)
                .map(|(relay, ports)| (Some(relay), ports))
                .or_else(|| free_two(&taken, &None, (first, last)).map(|ports| (None, ports)));
            let Some((relay, (port_a, port_b))) = placed else {
                self.unplaced += 1;
                continue;
            };
            taken
                .entry(relay.clone())
                .or_default()
                .extend([port_a, port_b]);
            self.pairs.insert(
                key,
                Allocation {
                    relay,
                    port_a,
                    port_b,
                    used: now,
                },
            );
        }
        // `used` moves at every update; only placement counts as a change.
        let placement = |m: &BTreeMap<(NodeId, NodeId), Allocation>| {
            m.iter()
                .map(|(k, a)| (k.clone(), a.relay.clone(), a.port_a, a.port_b))
                .collect::<Vec<_>>()
        };
        placement(&before) != placement(&self.pairs)
    }

    /// The relay saw traffic of the pair at `now`: it is not idle.
    pub fn traffic(&mut self, x: &NodeId, y: &NodeId, now: Millis) {
        if let Some(alloc) = pair_key(x, y).and_then(|k| self.pairs.get_mut(&k)) {
            alloc.used = alloc.used.max(now);
        }
    }

    /// The allocated pairs, in (a, b) order, as the snapshot lists them;
    /// `hub` names the hub as the relay of the pairs it carries.
    pub fn pairs(&self, hub: &NodeId) -> Vec<RelayPair> {
        self.pairs
            .iter()
            .map(|((a, b), alloc)| RelayPair {
                a: a.clone(),
                b: b.clone(),
                relay: alloc.relay.clone().unwrap_or_else(|| hub.clone()),
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

    static NONE: BTreeMap<NodeId, RelayOffer> = BTreeMap::new();

    fn id(n: u8) -> NodeId {
        NodeId::from_genesis_key(&[n; 32])
    }

    fn settings(first: u16, last: u16) -> RelaySettings {
        RelaySettings {
            ports: (first, last),
            idle: Duration::from_secs(600),
            settle: Duration::ZERO,
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
        assert!(x.update(&s, &w, &active(&[1, 2, 3]), &NONE, Millis(0)));
        let pairs = x.pairs(&id(9));
        assert_eq!(pairs.len(), 2, "1-3 and 3-1 are one pair");
        let ports: BTreeSet<u16> = pairs.iter().flat_map(|p| [p.port_a, p.port_b]).collect();
        assert_eq!(ports, (56000..56004).collect());
        assert!(pairs.iter().all(|p| p.a < p.b && p.relay == id(9)));
        // The same input in another allocator: the same answer.
        let mut y = RelayAllocator::default();
        y.update(&s, &w, &active(&[1, 2, 3]), &NONE, Millis(0));
        assert_eq!(x, y);
        // Nothing changed: no change reported.
        assert!(!x.update(&s, &w, &active(&[1, 2, 3]), &NONE, Millis(1000)));
    }

    #[test]
    fn only_between_active_nodes_and_never_self() {
        let s = settings(56000, 56999);
        let mut x = RelayAllocator::default();
        assert!(!x.update(&s, &wants(&[(1, &[1, 2])]), &active(&[1]), &NONE, Millis(0)));
        assert!(x.pairs(&id(9)).is_empty());
        assert!(x.update(&s, &wants(&[(1, &[2])]), &active(&[1, 2]), &NONE, Millis(0)));
        // Node 2 revoked: released at once.
        assert!(x.update(&s, &wants(&[(1, &[2])]), &active(&[1]), &NONE, Millis(1)));
        assert!(x.pairs(&id(9)).is_empty());
    }

    #[test]
    fn released_after_idle_unless_asked_or_used() {
        let s = settings(56000, 56999);
        let on = active(&[1, 2]);
        let mut x = RelayAllocator::default();
        x.update(&s, &wants(&[(1, &[2])]), &on, &NONE, Millis(0));
        let none = wants(&[]);
        assert!(!x.update(&s, &none, &on, &NONE, Millis(599_000)));
        x.traffic(&id(2), &id(1), Millis(599_000));
        assert!(!x.update(&s, &none, &on, &NONE, Millis(1_000_000)));
        assert_eq!(x.pairs(&id(9)).len(), 1);
        assert!(x.update(&s, &none, &on, &NONE, Millis(1_199_000)));
        assert!(x.pairs(&id(9)).is_empty());
    }

    #[test]
    fn a_full_range_leaves_pairs_unplaced_and_reuses_freed_ports() {
        let s = settings(56000, 56002);
        let on = active(&[1, 2, 3]);
        let mut x = RelayAllocator::default();
        x.update(&s, &wants(&[(1, &[2, 3])]), &on, &NONE, Millis(0));
        assert_eq!(x.pairs(&id(9)).len(), 1);
        assert_eq!(x.unplaced(), 1);
        // 1-2 no longer asked for and idle: 1-3 gets its ports.
        let later = Millis(700_000);
        assert!(x.update(&s, &wants(&[(1, &[3])]), &on, &NONE, later));
        let pairs = x.pairs(&id(9));
        assert_eq!(pairs.len(), 1);
        assert_eq!((pairs[0].port_a, pairs[0].port_b), (56000, 56001));
        assert_eq!(x.unplaced(), 0);
    }

    fn offers(list: &[(u8, u16, u16)]) -> BTreeMap<NodeId, RelayOffer> {
        list.iter()
            .map(|(n, first, last)| {
                (
                    id(*n),
                    RelayOffer {
                        first: *first,
                        last: *last,
                    },
                )
            })
            .collect()
    }

    /// (a, b, relay, port_a, port_b) of every pair, relay 9 = the hub.
    fn placed(x: &RelayAllocator) -> Vec<(NodeId, NodeId, NodeId, u16, u16)> {
        x.pairs(&id(9))
            .into_iter()
            .map(|p| (p.a, p.b, p.relay, p.port_a, p.port_b))
            .collect()
    }

    #[test]
    fn node_relays_take_pairs_fewest_first_never_one_of_the_two() {
        let s = settings(56000, 56999);
        let on = active(&[1, 2, 3, 4, 5, 6]);
        // 5 offers 40000-40009, 6 offers 41000-41009; 1 asks for 2, 3
        // and 5; 4 for 6.
        let relays = offers(&[(5, 40000, 40009), (6, 41000, 41009)]);
        let w = wants(&[(1, &[2, 3, 5]), (4, &[6])]);
        let mut x = RelayAllocator::default();
        assert!(x.update(&s, &w, &on, &relays, Millis(0)));
        let pairs = x.pairs(&id(9));
        assert_eq!(pairs.len(), 4);
        let by = |p: &RelayPair| (p.relay.clone(), p.port_a, p.port_b);
        for p in &pairs {
            assert!(p.relay != p.a && p.relay != p.b, "never one of the two");
            let range = if p.relay == id(5) {
                40000..=40009
            } else {
                41000..=41009
            };
            assert!(p.relay == id(5) || p.relay == id(6), "node relays first");
            assert!(range.contains(&p.port_a) && range.contains(&p.port_b));
        }
        // 1-5 and 4-6 can only go to the other node relay; the two others
        // spread so that each relay ends with two pairs.
        let on5 = pairs.iter().filter(|p| p.relay == id(5)).count();
        assert_eq!(
            (on5, pairs.len() - on5),
            (2, 2),
            "{:?}",
            pairs.iter().map(by).collect::<Vec<_>>()
        );
        // Deterministic.
        let mut y = RelayAllocator::default();
        y.update(&s, &w, &on, &relays, Millis(0));
        assert_eq!(placed(&x), placed(&y));
        assert!(!x.update(&s, &w, &on, &relays, Millis(1000)), "stable");
    }

    #[test]
    fn a_full_node_relay_leaves_the_pair_on_the_hub() {
        let s = settings(56000, 56999);
        let on = active(&[1, 2, 3, 5]);
        let relays = offers(&[(5, 40000, 40002)]);
        let mut x = RelayAllocator::default();
        x.update(&s, &wants(&[(1, &[2, 3])]), &on, &relays, Millis(0));
        let p = placed(&x);
        assert_eq!(p[0].2, id(5), "first pair on node 5: {p:?}");
        assert_eq!((p[0].3, p[0].4), (40000, 40001));
        assert_eq!(
            p[1].2,
            id(9),
            "the second finds no two ports there: the hub"
        );
        assert_eq!((p[1].3, p[1].4), (56000, 56001));
    }

    #[test]
    fn hub_pairs_move_to_a_node_relay_and_back_when_it_goes() {
        let s = settings(56000, 56999);
        let on = active(&[1, 3, 5, 6]);
        let w = wants(&[(1, &[3])]);
        let mut x = RelayAllocator::default();
        x.update(&s, &w, &on, &NONE, Millis(0));
        assert_eq!(placed(&x)[0].2, id(9), "no node relay yet: the hub");
        // Node 5 becomes eligible: the pair moves there.
        let five = offers(&[(5, 40000, 40009)]);
        assert!(x.update(&s, &w, &on, &five, Millis(1000)));
        assert_eq!(
            placed(&x),
            vec![(id(1).min(id(3)), id(1).max(id(3)), id(5), 40000, 40001)]
        );
        // Node 6 appears too: nothing moves (node relays' pairs stay).
        let both = offers(&[(5, 40000, 40009), (6, 41000, 41009)]);
        assert!(!x.update(&s, &w, &on, &both, Millis(2000)));
        // Node 5 no longer eligible (stopped offering, NAT, stale): to 6.
        let six = offers(&[(6, 41000, 41009)]);
        assert!(x.update(&s, &w, &on, &six, Millis(3000)));
        assert_eq!(placed(&x)[0].2, id(6));
        assert_eq!((placed(&x)[0].3, placed(&x)[0].4), (41000, 41001));
        // No node relay left: back on the hub.
        assert!(x.update(&s, &w, &on, &NONE, Millis(4000)));
        assert_eq!(placed(&x)[0].2, id(9));
        // Node 6 shrinks its range so the ports are outside: moved too.
        assert!(x.update(&s, &w, &on, &six, Millis(5000)));
        let shrunk = offers(&[(6, 42000, 42009)]);
        assert!(x.update(&s, &w, &on, &shrunk, Millis(6000)));
        assert_eq!((placed(&x)[0].3, placed(&x)[0].4), (42000, 42001));
        // A node relay that becomes one of the two (node 6 asks node 1)
        // keeps the other pair elsewhere.
        let w2 = wants(&[(1, &[3, 6])]);
        x.update(&s, &w2, &on, &shrunk, Millis(7000));
        for p in x.pairs(&id(9)) {
            assert!(p.relay != p.a && p.relay != p.b);
        }
    }

    #[test]
    fn node_relay_pairs_are_released_when_idle() {
        let s = settings(56000, 56999);
        let on = active(&[1, 2, 5]);
        let relays = offers(&[(5, 40000, 40009)]);
        let mut x = RelayAllocator::default();
        x.update(&s, &wants(&[(1, &[2])]), &on, &relays, Millis(0));
        assert!(!x.update(&s, &wants(&[]), &on, &relays, Millis(599_000)));
        assert!(x.update(&s, &wants(&[]), &on, &relays, Millis(600_000)));
        assert!(x.pairs(&id(9)).is_empty());
    }

    #[test]
    fn a_node_relay_takes_pairs_once_settled() {
        let s = RelaySettings {
            settle: Duration::from_secs(60),
            ..settings(56000, 56999)
        };
        let on = active(&[1, 3, 5]);
        let w = wants(&[(1, &[3])]);
        let five = offers(&[(5, 40000, 40009)]);
        let mut x = RelayAllocator::default();
        x.update(&s, &w, &on, &five, Millis(0));
        assert_eq!(placed(&x)[0].2, id(9), "just eligible: the hub");
        assert!(!x.update(&s, &w, &on, &five, Millis(59_000)));
        assert!(x.update(&s, &w, &on, &five, Millis(60_000)));
        assert_eq!(placed(&x)[0].2, id(5), "settled: moved");
        // It stops being eligible, and comes back: it settles again.
        assert!(x.update(&s, &w, &on, &NONE, Millis(61_000)));
        assert_eq!(placed(&x)[0].2, id(9));
        x.update(&s, &w, &on, &five, Millis(62_000));
        assert_eq!(placed(&x)[0].2, id(9));
        x.update(&s, &w, &on, &five, Millis(122_000));
        assert_eq!(placed(&x)[0].2, id(5));
    }
}

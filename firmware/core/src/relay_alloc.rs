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
mod tests;

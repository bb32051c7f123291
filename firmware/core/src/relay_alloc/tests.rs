//! The allocator on a virtual clock (`Millis`).

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

use std::net::Ipv4Addr;

use super::super::tests::{id, key, name, node_record, offer, publish, view};
use super::*;
use crate::directory::Record;
use crate::lending::{
    Approval, OfferRef, Principal, Protocol, Publication, Subscription, Unsubscribe, Withdrawal,
    seal_request,
};

const ME: u8 = 2;

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 10, 0, n)
}

/// Nodes 1..=5; node 2 offers `web` (auto), `files` (manual) and `club`
/// (allow box-3).
fn mesh() -> View {
    let mut v = view(5);
    let allow = Approval::Allow(
        heapless::Vec::from_slice(&[Principal::Boxname(crate::Boxname::parse("box-3").unwrap())])
            .unwrap(),
    );
    for (service, approval) in [
        ("web", Approval::Auto),
        ("files", Approval::Manual),
        ("club", allow),
    ] {
        publish(
            &mut v,
            ME,
            &Publication::Offer(offer(ME, service, 1, approval)),
        );
    }
    v
}

fn book() -> ProviderBook {
    ProviderBook::new(id(ME), ProviderSettings::default())
}

fn subscribe_as(
    signer: u8,
    consumer: u8,
    service: &str,
    counter: u64,
    claimed: Ipv4Addr,
) -> Vec<u8> {
    let request = Request::Subscribe(Subscription {
        version: VERSION,
        offer: OfferRef {
            provider: id(ME),
            name: name(service),
            serial: 1,
        },
        consumer: id(consumer),
        consumer_ip: claimed,
        duration_secs: 600,
        counter,
    });
    seal_request(&request, &key(signer)).unwrap()
}

fn subscribe(consumer: u8, service: &str, counter: u64) -> Vec<u8> {
    subscribe_as(consumer, consumer, service, counter, ip(consumer))
}

fn unsubscribe(consumer: u8, service: &str, counter: u64) -> Vec<u8> {
    let request = Request::Unsubscribe(Unsubscribe {
        version: VERSION,
        provider: id(ME),
        name: name(service),
        consumer: id(consumer),
        counter,
    });
    seal_request(&request, &key(consumer)).unwrap()
}

fn added(out: &Outcome) -> Vec<LendingGrant> {
    out.grants
        .iter()
        .filter_map(|g| match g {
            GrantChange::Add { grant, .. } => Some(*grant),
            GrantChange::Remove { .. } => None,
        })
        .collect()
}

fn removed(out: &Outcome) -> Vec<LendingGrant> {
    out.grants
        .iter()
        .filter_map(|g| match g {
            GrantChange::Remove { grant, .. } => Some(*grant),
            GrantChange::Add { .. } => None,
        })
        .collect()
}

fn grant(n: u8, port: u16) -> LendingGrant {
    LendingGrant {
        ip: ip(n),
        protocol: Protocol::Tcp,
        port,
    }
}

fn verdict(out: &Outcome) -> Verdict {
    out.decision.clone().unwrap().verdict
}

fn kinds(out: &Outcome) -> Vec<&'static str> {
    out.audit.iter().map(|a| a.kind).collect()
}

#[test]
fn auto_accepts_at_once_and_renews() {
    let v = mesh();
    let mut b = book();
    let raw = subscribe(1, "web", 1);
    let out = b.handle(&raw, ip(1), &v, Millis(0)).unwrap();
    assert_eq!(verdict(&out), Verdict::Accepted { duration_secs: 600 });
    assert_eq!(added(&out), vec![grant(1, 8080)]);
    assert!(matches!(
        &out.grants[0],
        GrantChange::Add { timeout_secs: 600, consumer, .. } if *consumer == id(1)
    ));
    assert_eq!(
        kinds(&out),
        vec![
            audit_kind::REQUEST,
            audit_kind::DECISION,
            audit_kind::GRANT_ADD
        ]
    );
    let d = out.decision.unwrap();
    assert_eq!(d.request, crate::hash::blake2b256(&raw));
    assert_eq!((d.counter, d.offer_serial), (1, 1));
    // The very same bytes later: the current verdict, nothing changed.
    let saved = b.save(Millis(100_000));
    let again = b.handle(&raw, ip(1), &v, Millis(100_000)).unwrap();
    assert_eq!(verdict(&again), Verdict::Accepted { duration_secs: 500 });
    assert!(again.grants.is_empty() && again.audit.is_empty());
    assert_eq!(b.save(Millis(100_000)), saved);
    // An older counter with other bytes is a replay.
    let old = subscribe(1, "web", 1);
    assert_eq!(old, raw, "ed25519 is deterministic");
    // A higher counter renews.
    let renew = b
        .handle(&subscribe(1, "web", 2), ip(1), &v, Millis(300_000))
        .unwrap();
    assert_eq!(added(&renew), vec![grant(1, 8080)]);
    assert_eq!(b.next_deadline(), Some(Millis(900_000)));
    assert_eq!(
        b.handle(&unsubscribe(1, "web", 2), ip(1), &v, Millis(300_001))
            .err(),
        Some(Refusal::StaleCounter { last: 2, found: 2 })
    );
}

#[test]
fn manual_waits_for_the_operator_and_a_denial_sticks() {
    let v = mesh();
    let mut b = book();
    let raw = subscribe(3, "files", 1);
    let out = b.handle(&raw, ip(3), &v, Millis(0)).unwrap();
    assert_eq!(verdict(&out), Verdict::Pending);
    assert!(out.grants.is_empty());
    assert_eq!(b.pending(), 1);
    // Polling with the same bytes says pending, then accepted.
    assert_eq!(
        verdict(&b.handle(&raw, ip(3), &v, Millis(10)).unwrap()),
        Verdict::Pending
    );
    let ok = b.approve(&id(3), &name("files"), &v, Millis(1000)).unwrap();
    assert_eq!(added(&ok), vec![grant(3, 8080)]);
    assert_eq!(
        verdict(&b.handle(&raw, ip(3), &v, Millis(2000)).unwrap()),
        Verdict::Accepted { duration_secs: 599 }
    );
    assert_eq!(
        b.approve(&id(3), &name("files"), &v, Millis(2000)).err(),
        Some(Refusal::NotPending)
    );
    // Denied after approval: the grant goes; asking again stays denied.
    let no = b
        .deny(&id(3), &name("files"), "not you", &v, Millis(3000))
        .unwrap();
    assert_eq!(removed(&no), vec![grant(3, 8080)]);
    let again = b
        .handle(&subscribe(3, "files", 2), ip(3), &v, Millis(4000))
        .unwrap();
    assert!(matches!(verdict(&again), Verdict::Denied { reason } if reason == "not you"));
    assert!(again.grants.is_empty());
    // Until the operator approves after all.
    let ok = b.approve(&id(3), &name("files"), &v, Millis(5000)).unwrap();
    assert_eq!(added(&ok), vec![grant(3, 8080)]);
    assert_eq!(
        b.deny(&id(1), &name("files"), "x", &v, Millis(0)).err(),
        Some(Refusal::NoSuchSubscription)
    );
}

#[test]
fn an_allow_list_accepts_whom_it_names_and_leaves_others_pending() {
    let v = mesh();
    let mut b = book();
    let listed = b
        .handle(&subscribe(3, "club", 1), ip(3), &v, Millis(0))
        .unwrap();
    assert_eq!(added(&listed), vec![grant(3, 8080)]);
    let other = b
        .handle(&subscribe(4, "club", 1), ip(4), &v, Millis(0))
        .unwrap();
    assert_eq!(verdict(&other), Verdict::Pending);
    assert!(other.grants.is_empty());
}

/// `Tags` for node `n`, as the hub appends after its `Node` record.
fn tags(n: u8, tags: &[&str]) -> Record {
    let tags = tags
        .iter()
        .map(|t| crate::directory::Tag::try_from(*t).unwrap())
        .collect::<Vec<_>>();
    Record::Tags {
        node_id: id(n),
        tags: heapless::Vec::from_slice(&tags).unwrap(),
    }
}

#[test]
fn an_allow_tag_admits_the_nodes_the_hub_tagged_only() {
    let mut v = mesh();
    let lab = Approval::Allow(
        heapless::Vec::from_slice(&[Principal::Tag(heapless::String::try_from("lab").unwrap())])
            .unwrap(),
    );
    publish(&mut v, ME, &Publication::Offer(offer(ME, "lab", 1, lab)));
    v.apply(&tags(1, &["lab", "kitchen"]));
    v.apply(&tags(4, &["garage"]));
    // Tags for a node the directory does not hold are nobody's.
    v.apply(&tags(9, &["lab"]));
    assert_eq!(v.tags_of(&id(1)), ["lab", "kitchen"]);
    assert!(v.tags_of(&id(9)).is_empty());
    let mut b = book();
    let tagged = b
        .handle(&subscribe(1, "lab", 1), ip(1), &v, Millis(0))
        .unwrap();
    assert_eq!(added(&tagged), vec![grant(1, 8080)]);
    for other in [3, 4] {
        let out = b
            .handle(&subscribe(other, "lab", 1), ip(other), &v, Millis(0))
            .unwrap();
        assert_eq!(verdict(&out), Verdict::Pending, "node {other}");
    }
    // A new Node record (re-enrolment) clears them until the hub's next
    // Tags; so does a revocation.
    let mut again = v.clone();
    again.apply(&node_record(1, 1));
    assert!(again.tags_of(&id(1)).is_empty());
    let mut b = book();
    let out = b
        .handle(&subscribe(1, "lab", 1), ip(1), &again, Millis(0))
        .unwrap();
    assert_eq!(verdict(&out), Verdict::Pending);
    v.apply(&Record::Revoke {
        node_id: id(1),
        reason: heapless::String::new(),
    });
    assert!(v.tags_of(&id(1)).is_empty());
}

#[test]
fn every_refusal_changes_nothing() {
    let mut v = mesh();
    v.apply(&Record::Revoke {
        node_id: id(5),
        reason: heapless::String::try_from("stolen").unwrap(),
    });
    let mut b = book();
    b.handle(&subscribe(1, "web", 5), ip(1), &v, Millis(0))
        .unwrap();
    let other_provider = {
        let r = Request::Subscribe(Subscription {
            version: VERSION,
            offer: OfferRef {
                provider: id(3),
                name: name("web"),
                serial: 1,
            },
            consumer: id(1),
            consumer_ip: ip(1),
            duration_secs: 60,
            counter: 9,
        });
        seal_request(&r, &key(1)).unwrap()
    };
    let changed_offer = {
        let r = Request::Subscribe(Subscription {
            version: VERSION,
            offer: OfferRef {
                provider: id(ME),
                name: name("web"),
                serial: 7,
            },
            consumer: id(1),
            consumer_ip: ip(1),
            duration_secs: 60,
            counter: 9,
        });
        seal_request(&r, &key(1)).unwrap()
    };
    let mut flipped = subscribe(1, "web", 9);
    flipped[20] ^= 1;
    let cases: Vec<(Vec<u8>, Ipv4Addr, Refusal)> = vec![
        (
            subscribe(9, "web", 1),
            ip(9),
            Refusal::UnknownConsumer(id(9).to_string()),
        ),
        (
            subscribe(5, "web", 1),
            ip(5),
            Refusal::ConsumerRevoked(id(5).to_string()),
        ),
        (
            subscribe_as(3, 1, "web", 9, ip(1)),
            ip(1),
            Refusal::BadSignature,
        ),
        (flipped, ip(1), Refusal::BadSignature),
        (
            other_provider,
            ip(1),
            Refusal::WrongProvider(id(3).to_string()),
        ),
        (
            subscribe_as(1, 1, "web", 9, ip(3)),
            ip(1),
            Refusal::WrongAddress {
                claimed: ip(3),
                own: ip(1),
            },
        ),
        (
            subscribe(1, "web", 9),
            ip(3),
            Refusal::NotFromConsumer {
                from: ip(3),
                own: ip(1),
            },
        ),
        (subscribe(1, "nothing", 9), ip(1), Refusal::NoSuchOffer),
        (changed_offer, ip(1), Refusal::OfferChanged { current: 1 }),
        (
            subscribe(1, "web", 4),
            ip(1),
            Refusal::StaleCounter { last: 5, found: 4 },
        ),
        (
            unsubscribe(1, "files", 9),
            ip(1),
            Refusal::NoSuchSubscription,
        ),
    ];
    for (raw, from, refusal) in cases {
        let before = b.save(Millis(0));
        assert_eq!(
            b.handle(&raw, from, &v, Millis(0)).err(),
            Some(refusal.clone())
        );
        assert_eq!(b.save(Millis(0)), before, "{refusal:?}");
        b = ProviderBook::restore(id(ME), ProviderSettings::default(), &before, Millis(0))
            .unwrap()
            .0;
    }
    for raw in [vec![], vec![0; 2000], vec![1, 2, 3]] {
        assert!(matches!(
            b.handle(&raw, ip(1), &v, Millis(0)),
            Err(Refusal::Malformed(_))
        ));
    }
}

#[test]
fn a_flood_is_rate_limited_per_sender() {
    let v = mesh();
    let mut b = book();
    for c in 1..=10 {
        assert!(
            b.handle(&subscribe(1, "web", c), ip(1), &v, Millis(0))
                .is_ok()
        );
    }
    assert_eq!(
        b.handle(&subscribe(1, "web", 11), ip(1), &v, Millis(0))
            .err(),
        Some(Refusal::RateLimited(ip(1)))
    );
    assert!(
        b.handle(&subscribe(3, "web", 1), ip(3), &v, Millis(0))
            .is_ok()
    );
    assert!(
        b.handle(&subscribe(1, "web", 11), ip(1), &v, Millis(1000))
            .is_ok()
    );
}

#[test]
fn unsubscribe_expiry_and_the_offers_limit_close_the_grant() {
    let mut v = mesh();
    let mut b = book();
    b.handle(&subscribe(1, "web", 1), ip(1), &v, Millis(0))
        .unwrap();
    let raw = unsubscribe(1, "web", 2);
    let out = b.handle(&raw, ip(1), &v, Millis(10)).unwrap();
    assert_eq!(removed(&out), vec![grant(1, 8080)]);
    assert_eq!(verdict(&out), Verdict::Ended);
    assert_eq!(
        verdict(&b.handle(&raw, ip(1), &v, Millis(20)).unwrap()),
        Verdict::Ended
    );
    // Expiry.
    b.handle(&subscribe(1, "web", 3), ip(1), &v, Millis(0))
        .unwrap();
    assert!(b.tick(Millis(599_999)).grants.is_empty());
    let out = b.tick(Millis(600_000));
    assert_eq!(removed(&out), vec![grant(1, 8080)]);
    assert_eq!(kinds(&out), vec![audit_kind::GRANT_REMOVE]);
    assert_eq!(b.next_deadline(), None);
    // The offer's maximum duration caps what is granted.
    let capped = crate::lending::Offer {
        max_duration_secs: Some(60),
        ..offer(ME, "web", 2, Approval::Auto)
    };
    publish(&mut v, ME, &Publication::Offer(capped));
    let r = Request::Subscribe(Subscription {
        version: VERSION,
        offer: OfferRef {
            provider: id(ME),
            name: name("web"),
            serial: 2,
        },
        consumer: id(1),
        consumer_ip: ip(1),
        duration_secs: 600,
        counter: 4,
    });
    let out = b
        .handle(&seal_request(&r, &key(1)).unwrap(), ip(1), &v, Millis(0))
        .unwrap();
    assert_eq!(verdict(&out), Verdict::Accepted { duration_secs: 60 });
}

#[test]
fn directory_changes_end_what_they_must() {
    let mut v = mesh();
    let mut b = book();
    for n in [1, 3, 4] {
        b.handle(&subscribe(n, "web", 1), ip(n), &v, Millis(0))
            .unwrap();
    }
    b.handle(&subscribe(1, "files", 1), ip(1), &v, Millis(0))
        .unwrap();
    // A new description only: nothing ends.
    let described = crate::lending::Offer {
        description: Some(heapless::String::try_from("the wiki").unwrap()),
        ..offer(ME, "web", 2, Approval::Auto)
    };
    publish(&mut v, ME, &Publication::Offer(described));
    assert!(b.on_view(&v).grants.is_empty());
    // The hub revokes node 1; node 3 re-joins at another address.
    v.apply(&Record::Revoke {
        node_id: id(1),
        reason: heapless::String::try_from("gone").unwrap(),
    });
    let mut moved = node_record(3, 3);
    if let Record::Node { mesh_ip, .. } = &mut moved {
        *mesh_ip = ip(33);
    }
    v.apply(&moved);
    let out = b.on_view(&v);
    let mut gone = removed(&out);
    gone.sort();
    assert_eq!(gone, vec![grant(1, 8080), grant(3, 8080)]);
    assert!(
        b.subscriptions(Millis(0))
            .iter()
            .all(|s| s.consumer != id(1))
    );
    // The port moves: node 4's grant goes.
    let ported = crate::lending::Offer {
        port: 8443,
        ..offer(ME, "web", 3, Approval::Auto)
    };
    publish(&mut v, ME, &Publication::Offer(ported));
    assert_eq!(removed(&b.on_view(&v)), vec![grant(4, 8080)]);
    // Withdrawal ends the rest.
    b.handle(&subscribe(4, "files", 1), ip(4), &v, Millis(0))
        .unwrap();
    b.approve(&id(4), &name("files"), &v, Millis(0)).unwrap();
    let w = Publication::Withdrawal(Withdrawal {
        version: VERSION,
        provider: id(ME),
        name: name("files"),
        serial: 2,
    });
    publish(&mut v, ME, &w);
    let out = b.on_view(&v);
    assert_eq!(removed(&out), vec![grant(4, 8080)]);
    assert!(b.on_view(&v).grants.is_empty(), "once");
}

#[test]
fn pending_and_active_survive_a_restart() {
    let v = mesh();
    let mut b = book();
    b.handle(&subscribe(1, "web", 1), ip(1), &v, Millis(5_000))
        .unwrap();
    let raw = subscribe(3, "files", 1);
    b.handle(&raw, ip(3), &v, Millis(5_000)).unwrap();
    let saved = b.save(Millis(105_000));
    // The daemon's clock starts again at 0.
    let (mut back, out) =
        ProviderBook::restore(id(ME), ProviderSettings::default(), &saved, Millis(0)).unwrap();
    assert_eq!(added(&out), vec![grant(1, 8080)]);
    assert!(matches!(
        out.grants[0],
        GrantChange::Add {
            timeout_secs: 500,
            ..
        }
    ));
    assert_eq!(back.next_deadline(), Some(Millis(500_000)));
    assert_eq!(back.pending(), 1);
    assert_eq!(
        verdict(&back.handle(&raw, ip(3), &v, Millis(1)).unwrap()),
        Verdict::Pending
    );
    assert!(back.approve(&id(3), &name("files"), &v, Millis(2)).is_ok());
    // Damaged state is refused, not half-read.
    let mut bad = saved.clone();
    bad.push(0);
    assert!(ProviderBook::restore(id(ME), ProviderSettings::default(), &bad, Millis(0)).is_err());
}

#[test]
fn limits_bound_the_book() {
    let v = mesh();
    let settings = ProviderSettings {
        max_entries: 2,
        max_pending: 1,
        ..ProviderSettings::default()
    };
    let mut b = ProviderBook::new(id(ME), settings);
    b.handle(&subscribe(1, "files", 1), ip(1), &v, Millis(0))
        .unwrap();
    assert_eq!(
        b.handle(&subscribe(3, "files", 1), ip(3), &v, Millis(0))
            .err(),
        Some(Refusal::TooManyPending(1))
    );
    b.handle(&subscribe(3, "web", 1), ip(3), &v, Millis(0))
        .unwrap();
    assert_eq!(
        b.handle(&subscribe(4, "web", 1), ip(4), &v, Millis(0))
            .err(),
        Some(Refusal::Full(2))
    );
    assert_eq!(Refusal::Full(2).code(), "full");
}

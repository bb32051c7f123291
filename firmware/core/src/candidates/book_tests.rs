use super::*;
use crate::candidates::tests::{addr, id, key, report, view};
use crate::candidates::{RelayOffer, seal_report};

fn mesh() -> Ipv4Net {
    "10.10.0.0/24".parse().unwrap()
}

fn sealed(n: u8, body: &ReportBody) -> Vec<u8> {
    seal_report(body, &key(n)).unwrap()
}

fn admit(book: &mut Book, bytes: &[u8]) -> Result<bool, Refusal> {
    book.admit(authenticate(bytes, &view(4))?, &mesh())
}

#[test]
fn accepts_newer_reports_and_retries() {
    let mut book = Book::default();
    let first = sealed(2, &report(2, 1, &["192.168.1.2:51822"], &[3]));
    assert_eq!(admit(&mut book, &first), Ok(true));
    assert_eq!(
        admit(&mut book, &first),
        Ok(false),
        "a retry changes nothing"
    );
    let second = sealed(2, &report(2, 2, &["192.168.1.3:51822"], &[]));
    assert_eq!(admit(&mut book, &second), Ok(true));
    assert_eq!(book.report(&id(2)).unwrap().body.seq, 2);
    assert_eq!(book.entries().len(), 1);
    assert!(book.wants()[&id(2)].is_empty());
}

#[test]
fn refusals_change_nothing() {
    let mut book = Book::default();
    let first = sealed(2, &report(2, 5, &["192.168.1.2:51822"], &[]));
    admit(&mut book, &first).unwrap();
    let before = book.clone();
    // A replay of an older seq, an equal seq with other content.
    let old = sealed(2, &report(2, 4, &["192.168.1.9:51822"], &[]));
    assert_eq!(
        admit(&mut book, &old),
        Err(Refusal::StaleSeq { have: 5, got: 4 })
    );
    let same = sealed(2, &report(2, 5, &["192.168.1.9:51822"], &[]));
    assert_eq!(admit(&mut book, &same).unwrap_err().reason(), "stale_seq");
    // Signed by another node's key (forged), or naming an unknown node.
    let forged = sealed(3, &report(2, 9, &[], &[]));
    assert_eq!(admit(&mut book, &forged), Err(Refusal::BadSignature));
    let stranger = sealed(9, &report(9, 1, &[], &[]));
    assert_eq!(
        admit(&mut book, &stranger),
        Err(Refusal::UnknownNode(id(9)))
    );
    // Bad addresses: loopback, a mesh address.
    for lan in ["127.0.0.1:51822", "10.10.0.3:51822"] {
        let bad = sealed(2, &report(2, 9, &[lan], &[]));
        assert_eq!(admit(&mut book, &bad).unwrap_err().reason(), "bad_address");
    }
    // Another node's reported endpoint.
    let thief = sealed(3, &report(3, 1, &["192.168.1.2:51822"], &[]));
    assert_eq!(
        admit(&mut book, &thief),
        Err(Refusal::EndpointTaken {
            addr: addr("192.168.1.2:51822"),
            by: id(2)
        })
    );
    // Malformed bytes.
    assert_eq!(admit(&mut book, b"\x01").unwrap_err().reason(), "malformed");
    assert_eq!(book, before);
}

#[test]
fn an_observed_endpoint_is_taken_too() {
    let mut book = Book::default();
    let observed = [(id(2), addr("198.51.100.7:40000"))].into_iter().collect();
    assert!(book.set_observed(observed));
    let thief = sealed(3, &report(3, 1, &["198.51.100.7:40000"], &[]));
    assert_eq!(
        admit(&mut book, &thief).unwrap_err().reason(),
        "endpoint_taken"
    );
    // The node itself may report where it is observed (no NAT).
    let own = sealed(2, &report(2, 1, &["198.51.100.7:40000"], &[]));
    assert_eq!(admit(&mut book, &own), Ok(true));
    let entries = book.entries();
    assert_eq!(entries[0].observed, Some(addr("198.51.100.7:40000")));
    assert!(entries[0].report.is_some());
}

#[test]
fn inactive_nodes_are_dropped_and_restore_needs_a_signature() {
    let mut book = Book::default();
    let bytes = sealed(3, &report(3, 1, &[], &[]));
    admit(&mut book, &bytes).unwrap();
    assert!(book.retain_active(&view(4)).is_empty());
    assert_eq!(book.retain_active(&view(2)), vec![id(3)]);
    assert!(book.entries().is_empty());
    let mut restored = Book::default();
    restored.restore(&bytes, &view(4)).unwrap();
    assert_eq!(restored.report(&id(3)).unwrap().body.seq, 1);
    let forged = sealed(4, &report(3, 1, &[], &[]));
    assert_eq!(
        restored.restore(&forged, &view(4)),
        Err(Refusal::BadSignature)
    );
}

fn offering(n: u8, seq: u64, lan: &[&str]) -> ReportBody {
    ReportBody {
        relay: Some(RelayOffer {
            first: 40000,
            last: 40099,
        }),
        ..report(n, seq, lan, &[])
    }
}

#[test]
fn node_relays_offer_are_observed_and_have_no_nat() {
    let mut book = Book::default();
    // 2 offers and is observed at its own (public) address: eligible.
    admit(
        &mut book,
        &sealed(2, &offering(2, 1, &["203.0.113.2:51824"])),
    )
    .unwrap();
    // 3 offers but is observed at another address (a NAT in front).
    admit(
        &mut book,
        &sealed(3, &offering(3, 1, &["192.168.3.3:51825"])),
    )
    .unwrap();
    // 4 is public but does not offer.
    admit(
        &mut book,
        &sealed(4, &report(4, 1, &["203.0.113.4:51826"], &[])),
    )
    .unwrap();
    assert!(book.node_relays().is_empty(), "nobody observed yet");
    book.set_observed(
        [
            (id(2), addr("203.0.113.2:51824")),
            (id(3), addr("198.51.100.13:7000")),
            (id(4), addr("203.0.113.4:51826")),
        ]
        .into_iter()
        .collect(),
    );
    let relays = book.node_relays();
    assert_eq!(relays.keys().cloned().collect::<Vec<_>>(), vec![id(2)]);
    assert_eq!(relays[&id(2)].first, 40000);
    // Its handshake goes stale (the hub no longer observes it): gone.
    book.set_observed(BTreeMap::new());
    assert!(book.node_relays().is_empty());
}

#[test]
fn a_bad_relay_range_is_refused() {
    let mut book = Book::default();
    for (first, last) in [(0, 10), (40000, 40000), (40001, 40000), (51800, 51830)] {
        let mut body = offering(2, 1, &[]);
        body.relay = Some(RelayOffer { first, last });
        let got = admit(&mut book, &sealed(2, &body)).unwrap_err();
        assert_eq!(got.reason(), "bad_address", "{first}-{last}");
    }
    assert_eq!(book, Book::default());
}

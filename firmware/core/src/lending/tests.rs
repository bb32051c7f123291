use std::net::Ipv4Addr;

use super::*;
use crate::boxname::Boxname;
use crate::directory::{Head, Record, View, append, verify_next};
use crate::envelope::{Envelope, tag};
use crate::envelope::{EnvelopeError, encode};
use crate::hash::blake2b256;
use crate::keys::SigningSecret;
use crate::node_id::NodeId;

pub(crate) fn key(n: u8) -> SigningSecret {
    SigningSecret::from_seed([n; 32])
}

pub(crate) fn id(n: u8) -> NodeId {
    NodeId::from_genesis_key(&key(n).public_key())
}

pub(crate) fn name(text: &str) -> ServiceName {
    ServiceName::parse(text).unwrap()
}

pub(crate) fn node_record(n: u8, signer: u8) -> Record {
    Record::Node {
        node_id: id(n),
        boxname: Boxname::parse(&format!("box-{n}")).unwrap(),
        signing_key: key(signer).public_key(),
        wireguard_key: [n; 32],
        mesh_ip: Ipv4Addr::new(10, 10, 0, n),
        endpoint_hint: None,
    }
}

/// A directory with nodes 1..=n (node n at 10.10.0.n, box-n).
pub(crate) fn view(n: u8) -> View {
    let mut view = View::default();
    for i in 1..=n {
        view.apply(&node_record(i, i));
    }
    view
}

pub(crate) fn offer(provider: u8, service: &str, serial: u64, approval: Approval) -> Offer {
    Offer {
        version: VERSION,
        provider: id(provider),
        name: name(service),
        serial,
        protocol: Protocol::Tcp,
        port: 8080,
        approval,
        description: None,
        max_duration_secs: None,
    }
}

pub(crate) fn publish(view: &mut View, signer: u8, publication: &Publication) -> Vec<u8> {
    let bytes = seal_publication(publication, &key(signer)).unwrap();
    view.apply(&Record::Lending(heapless::Vec::from_slice(&bytes).unwrap()));
    bytes
}

fn withdrawal(provider: u8, service: &str, serial: u64) -> Publication {
    Publication::Withdrawal(Withdrawal {
        version: VERSION,
        provider: id(provider),
        name: name(service),
        serial,
    })
}

fn largest_offer() -> Offer {
    let long = "a".repeat(63);
    let mut allow = heapless::Vec::new();
    for i in 0..MAX_ALLOW {
        let p = if i % 2 == 0 {
            Principal::Boxname(Boxname::parse(&long).unwrap())
        } else {
            Principal::Tag(heapless::String::try_from(long.as_str()).unwrap())
        };
        allow.push(p).unwrap();
    }
    Offer {
        serial: u64::MAX,
        port: 65535,
        approval: Approval::Allow(allow),
        description: Some(heapless::String::try_from("é".repeat(64).as_str()).unwrap()),
        max_duration_secs: Some(MAX_DURATION_SECS),
        name: name(&long),
        ..offer(2, "web", 1, Approval::Auto)
    }
}

#[test]
fn publication_round_trip_and_signer_checks() {
    let v = view(3);
    let keys = |i: &NodeId| v.signing_key(i);
    let p = Publication::Offer(offer(2, "web", 1, Approval::Auto));
    let bytes = seal_publication(&p, &key(2)).unwrap();
    assert_eq!(open_publication(&bytes, keys).unwrap().0, p);
    // Signed by node 3's key for node 2: refused.
    let forged = seal_publication(&p, &key(3)).unwrap();
    assert_eq!(
        open_publication(&forged, keys).err(),
        Some(LendingError::WrongSigner(id(2).to_string()))
    );
    // A provider the directory does not know (or revoked).
    let p9 = Publication::Offer(offer(9, "web", 1, Approval::Auto));
    let b9 = seal_publication(&p9, &key(9)).unwrap();
    assert_eq!(
        open_publication(&b9, keys).err(),
        Some(LendingError::UnknownSigner(id(9).to_string()))
    );
    for i in 0..bytes.len() {
        let mut m = bytes.clone();
        m[i] ^= 0x08;
        assert!(open_publication(&m, keys).is_err(), "byte {i}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(open_publication(&trailing, keys).is_err());
    // Another domain's signature over the same body is not a publication.
    let other = Envelope::seal(tag::LENDING_REQUEST, &p, &key(2)).unwrap();
    assert_eq!(
        open_publication(&other, keys).err(),
        Some(LendingError::Envelope(EnvelopeError::BadSignature))
    );
}

#[test]
fn field_rules_hold_on_sealing_and_opening() {
    let bad = [
        Offer {
            port: 0,
            ..offer(2, "web", 1, Approval::Auto)
        },
        offer(2, "web", 1, Approval::Allow(heapless::Vec::new())),
        offer(
            2,
            "web",
            1,
            Approval::Allow(
                heapless::Vec::from_slice(&[Principal::Tag(
                    heapless::String::try_from("a b").unwrap(),
                )])
                .unwrap(),
            ),
        ),
        Offer {
            description: Some(heapless::String::try_from("bell\u{7}").unwrap()),
            ..offer(2, "web", 1, Approval::Auto)
        },
        Offer {
            description: Some(heapless::String::new()),
            ..offer(2, "web", 1, Approval::Auto)
        },
        Offer {
            max_duration_secs: Some(0),
            ..offer(2, "web", 1, Approval::Auto)
        },
        Offer {
            max_duration_secs: Some(MAX_DURATION_SECS + 1),
            ..offer(2, "web", 1, Approval::Auto)
        },
        Offer {
            version: 2,
            ..offer(2, "web", 1, Approval::Auto)
        },
    ];
    let v = view(2);
    for o in bad {
        let p = Publication::Offer(o.clone());
        assert!(seal_publication(&p, &key(2)).is_err(), "{o:?}");
        // Signed anyway (by a client of its own): refused on opening.
        let raw = Envelope::seal(tag::LENDING_PUBLICATION, &p, &key(2)).unwrap();
        assert!(
            open_publication(&raw, |i| v.signing_key(i)).is_err(),
            "{o:?}"
        );
    }
    for text in ["", "Web", "a_b", "-a", &"a".repeat(64)] {
        assert_eq!(ServiceName::parse(text), Err(LendingError::BadName));
    }
    // A name that is not a label does not decode either.
    let raw = encode(&heapless::String::<63>::try_from("We b").unwrap());
    assert!(postcard::from_bytes::<ServiceName>(&raw).is_err());
}

#[test]
fn the_largest_offer_fits_one_directory_entry() {
    let p = Publication::Offer(largest_offer());
    let bytes = seal_publication(&p, &key(2)).unwrap();
    // docs/protocol.md says: under 900 bytes, within the 960 of an entry.
    assert!(bytes.len() < 900, "{}", bytes.len());
    let hub = key(1);
    let head = Head {
        len: u64::MAX - 1,
        tip: [9; 32],
    };
    let record = Record::Lending(heapless::Vec::from_slice(&bytes).unwrap());
    let (raw, _) = append(&head, &hub, record.clone()).unwrap();
    let (entry, _) = verify_next(&head, &hub.public_key(), &raw).unwrap();
    assert_eq!(entry.record, record);
}

#[test]
fn the_catalog_folds_offers_withdrawals_and_revocations() {
    let mut v = view(3);
    let web1 = Publication::Offer(offer(2, "web", 1, Approval::Auto));
    let signed = publish(&mut v, 2, &web1);
    let current = v.lending.offer(&id(2), &name("web")).unwrap();
    assert_eq!(current.signed, signed);
    assert_eq!(v.lending.next_serial(&id(2), &name("web")), 2);
    // A later offer replaces it; the same serial again is stale.
    let web2 = Offer {
        port: 8081,
        ..offer(2, "web", 2, Approval::Manual)
    };
    publish(&mut v, 2, &Publication::Offer(web2.clone()));
    publish(&mut v, 2, &web1);
    assert_eq!(v.lending.offer(&id(2), &name("web")).unwrap().offer, web2);
    assert_eq!(v.lending.ignored, 1);
    // A forged offer (node 3 signs for node 2) is ignored and counted.
    publish(
        &mut v,
        3,
        &Publication::Offer(offer(2, "files", 1, Approval::Auto)),
    );
    assert!(v.lending.offer(&id(2), &name("files")).is_none());
    assert_eq!(v.lending.ignored, 2);
    // The hub's check says why.
    let stale = seal_publication(&web1, &key(2)).unwrap();
    assert_eq!(
        v.lending.check(&stale, |i| v.signing_key(i)).err(),
        Some(LendingError::StaleSerial { held: 2, found: 1 })
    );
    let nothing = seal_publication(&withdrawal(2, "files", 1), &key(2)).unwrap();
    assert_eq!(
        v.lending.check(&nothing, |i| v.signing_key(i)).err(),
        Some(LendingError::NotOffered)
    );
    // A withdrawal removes the offer, and the old offer cannot come back.
    publish(&mut v, 2, &withdrawal(2, "web", 3));
    assert!(v.lending.offers.is_empty());
    publish(&mut v, 2, &Publication::Offer(web2));
    assert!(v.lending.offers.is_empty());
    // Node 3's offers go with its revocation.
    publish(
        &mut v,
        3,
        &Publication::Offer(offer(3, "dns", 1, Approval::Auto)),
    );
    assert_eq!(v.lending.by_provider(&id(3)).count(), 1);
    v.apply(&Record::Revoke {
        node_id: id(3),
        reason: heapless::String::try_from("gone").unwrap(),
    });
    assert_eq!(v.lending.by_provider(&id(3)).count(), 0);
}

#[test]
fn a_new_signing_key_drops_the_offers_of_the_old_one() {
    let mut v = view(2);
    publish(
        &mut v,
        2,
        &Publication::Offer(offer(2, "web", 1, Approval::Auto)),
    );
    // The same key again (a re-published node record) keeps it.
    v.apply(&node_record(2, 2));
    assert_eq!(v.lending.offers.len(), 1);
    v.apply(&node_record(2, 7));
    assert!(v.lending.offers.is_empty());
    // Under the new key it can offer again, above the old serial.
    publish(
        &mut v,
        7,
        &Publication::Offer(offer(2, "web", 2, Approval::Auto)),
    );
    assert_eq!(v.lending.offers.len(), 1);
}

#[test]
fn legacy_service_records_decode_and_are_ignored() {
    let mut v = view(2);
    let legacy = Record::Service {
        node_id: id(2),
        name: heapless::String::try_from("ssh").unwrap(),
        port: 22,
    };
    let (raw, head) = append(&Head::default(), &key(1), legacy.clone()).unwrap();
    let (entry, _) = verify_next(&Head::default(), &key(1).public_key(), &raw).unwrap();
    assert_eq!(entry.record, legacy);
    assert_eq!(head.len, 1);
    v.apply(&legacy);
    assert!(v.lending.offers.is_empty());
    assert_eq!(v.lending.ignored, 0);
}

fn subscription(consumer: u8, provider: u8, counter: u64) -> Request {
    Request::Subscribe(Subscription {
        version: VERSION,
        offer: OfferRef {
            provider: id(provider),
            name: name("web"),
            serial: 1,
        },
        consumer: id(consumer),
        consumer_ip: Ipv4Addr::new(10, 10, 0, consumer),
        duration_secs: 3600,
        counter,
    })
}

#[test]
fn requests_and_decisions_round_trip_and_refuse_forgeries() {
    let v = view(3);
    let keys = |i: &NodeId| v.signing_key(i);
    let r = subscription(1, 2, 5);
    let bytes = seal_request(&r, &key(1)).unwrap();
    let (opened, hash) = open_request(&bytes, keys).unwrap();
    assert_eq!(opened, r);
    assert_eq!(hash, blake2b256(&bytes));
    let forged = seal_request(&r, &key(3)).unwrap();
    assert_eq!(
        open_request(&forged, keys).err(),
        Some(LendingError::WrongSigner(id(1).to_string()))
    );
    let zero = Request::Subscribe(Subscription {
        duration_secs: 0,
        ..match subscription(1, 2, 5) {
            Request::Subscribe(s) => s,
            Request::Unsubscribe(_) => unreachable!(),
        }
    });
    assert_eq!(
        seal_request(&zero, &key(1)).err(),
        Some(LendingError::BadDuration(0))
    );
    let d = Decision {
        version: VERSION,
        provider: id(2),
        consumer: id(1),
        name: name("web"),
        request: hash,
        counter: 5,
        offer_serial: 1,
        verdict: Verdict::Denied {
            reason: reason("not\ttoday"),
        },
    };
    let signed = seal_decision(&d, &key(2)).unwrap();
    let opened = open_decision(&signed, &key(2).public_key()).unwrap();
    assert_eq!(opened, d);
    assert_eq!(
        opened.verdict,
        Verdict::Denied {
            reason: heapless::String::try_from("not today").unwrap()
        }
    );
    assert!(matches!(
        open_decision(&signed, &key(1).public_key()),
        Err(LendingError::WrongSigner(_))
    ));
    // A request envelope is not a decision, nor the reverse.
    assert!(open_decision(&bytes, &key(1).public_key()).is_err());
    assert!(open_request(&signed, keys).is_err());
    assert_eq!(reason("").as_str(), "denied");
    assert_eq!(reason(&"é".repeat(100)).len(), 128);
}

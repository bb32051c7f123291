//! The published vectors of docs/protocol.md, "Lending" (checked
//! independently by tests/independent-vectors.py).

use std::net::Ipv4Addr;

use super::*;
use crate::boxname::Boxname;
use crate::directory::{Head, Record, append};
use crate::hash::to_hex;
use crate::keys::SigningSecret;
use crate::keys::decode_hex32;
use crate::node_id::NodeId;

/// RFC 8032 section 7.1 TEST 1 (provider), TEST 2 (consumer), TEST 3 (hub).
fn keys() -> (SigningSecret, SigningSecret, SigningSecret) {
    let k = |s: &str| SigningSecret::from_seed(decode_hex32(s).unwrap());
    (
        k("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
        k("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"),
        k("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7"),
    )
}

/// Every vector, in the order of the document.
pub(crate) fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    let (provider, consumer, hub) = keys();
    let provider_id = NodeId::from_genesis_key(&provider.public_key());
    let consumer_id = NodeId::from_genesis_key(&consumer.public_key());
    let web = ServiceName::parse("web").unwrap();
    let allow = [
        Principal::Boxname(Boxname::parse("box-2").unwrap()),
        Principal::Tag(heapless::String::try_from("lab").unwrap()),
    ];
    let offer = Publication::Offer(Offer {
        version: VERSION,
        provider: provider_id.clone(),
        name: web.clone(),
        serial: 1,
        protocol: Protocol::Tcp,
        port: 8080,
        approval: Approval::Allow(heapless::Vec::from_slice(&allow).unwrap()),
        description: Some(heapless::String::try_from("the wiki").unwrap()),
        max_duration_secs: Some(3600),
    });
    let offer = seal_publication(&offer, &provider).unwrap();
    let withdrawal = Publication::Withdrawal(Withdrawal {
        version: VERSION,
        provider: provider_id.clone(),
        name: web.clone(),
        serial: 2,
    });
    let withdrawal = seal_publication(&withdrawal, &provider).unwrap();
    let head = Head {
        len: 5,
        tip: [0x11; 32],
    };
    let record = Record::Lending(heapless::Vec::from_slice(&offer).unwrap());
    let (entry, _) = append(&head, &hub, record).unwrap();
    let subscription = Request::Subscribe(Subscription {
        version: VERSION,
        offer: OfferRef {
            provider: provider_id.clone(),
            name: web.clone(),
            serial: 1,
        },
        consumer: consumer_id.clone(),
        consumer_ip: Ipv4Addr::new(10, 10, 0, 3),
        duration_secs: 600,
        counter: 1,
    });
    let subscription = seal_request(&subscription, &consumer).unwrap();
    let unsubscribe = Request::Unsubscribe(Unsubscribe {
        version: VERSION,
        provider: provider_id.clone(),
        name: web.clone(),
        consumer: consumer_id.clone(),
        counter: 2,
    });
    let unsubscribe = seal_request(&unsubscribe, &consumer).unwrap();
    let decision = Decision {
        version: VERSION,
        provider: provider_id,
        consumer: consumer_id,
        name: web,
        request: crate::hash::blake2b256(&subscription),
        counter: 1,
        offer_serial: 1,
        verdict: Verdict::Accepted { duration_secs: 600 },
    };
    let decision = seal_decision(&decision, &provider).unwrap();
    let tags = Record::Tags {
        node_id: NodeId::from_genesis_key(&consumer.public_key()),
        tags: heapless::Vec::from_slice(&[crate::directory::Tag::try_from("lab").unwrap()])
            .unwrap(),
    };
    let (tags_entry, _) = append(
        &Head {
            len: 6,
            tip: [0x22; 32],
        },
        &hub,
        tags,
    )
    .unwrap();
    vec![
        ("offer", offer),
        ("withdrawal", withdrawal),
        ("directory entry", entry),
        ("subscription", subscription),
        ("unsubscribe", unsubscribe),
        ("decision", decision),
        ("tags entry", tags_entry),
    ]
}

#[test]
fn published_lending_vectors() {
    let got = vectors();
    assert_eq!(got.len(), PUBLISHED.len());
    for ((name, bytes), (doc_name, hex)) in got.iter().zip(PUBLISHED.iter()) {
        assert_eq!(name, doc_name);
        assert_eq!(to_hex(bytes), hex.concat(), "{name}");
    }
}

/// As in docs/protocol.md, 72 hex digits a line.
const PUBLISHED: [(&str, &[&str]); 7] = [
    (
        "offer",
        &[
            "5d00013767773a70626532796d636a6e6166366433337766333761326e786163347a3467",
            "72736f776464346b776174726c68736a6f7a6768706a71037765620100903f0202000562",
            "6f782d3201036c616201087468652077696b6901901cd75a980182b10ab7d54bfed3c964",
            "073a0ee172f3daa62325af021a68f707511a40ab6040ff360ba9e855bdb6dcce3d2cf793",
            "9d77b032c3341a51ec6c1f9fa387479f357364d9c29c9cca967dc04e1d24c07cd460a7a3",
            "7a376f0927ff32c3614b09",
        ],
    ),
    (
        "withdrawal",
        &[
            "3f01013767773a70626532796d636a6e6166366433337766333761326e786163347a3467",
            "72736f776464346b776174726c68736a6f7a6768706a710377656202d75a980182b10ab7",
            "d54bfed3c964073a0ee172f3daa62325af021a68f707511a40873af4eb5c2719d9e9c24e",
            "679ba3bcd2e2996e21e939147f2bcd923d39994126d060e0d73ca9958752a2f3a1a95526",
            "abb30d3b295214f0d5de06c549d3b10402",
        ],
    ),
    (
        "directory entry",
        &[
            "e40101051111111111111111111111111111111111111111111111111111111111111111",
            "03bf015d00013767773a70626532796d636a6e6166366433337766333761326e78616334",
            "7a346772736f776464346b776174726c68736a6f7a6768706a71037765620100903f0202",
            "0005626f782d3201036c616201087468652077696b6901901cd75a980182b10ab7d54bfe",
            "d3c964073a0ee172f3daa62325af021a68f707511a40ab6040ff360ba9e855bdb6dcce3d",
            "2cf7939d77b032c3341a51ec6c1f9fa387479f357364d9c29c9cca967dc04e1d24c07cd4",
            "60a7a37a376f0927ff32c3614b09fc51cd8e6218a1a38da47ed00230f0580816ed13ba33",
            "03ac5deb91154890802540163891a93163870b75cf2bcf3b5d28dd1fb99619dd08ed4beb",
            "e45f29785eb5bd9df1e66884f5104d8bd186850eeff2095d67e68a74d904b31b7e5252a4",
            "a19102",
        ],
    ),
    (
        "subscription",
        &[
            "7e00013767773a70626532796d636a6e6166366433337766333761326e786163347a3467",
            "72736f776464346b776174726c68736a6f7a6768706a7103776562013767773a6e336536",
            "73766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b7875",
            "797a3336356f3435657435710a0a0003d804013d4017c3e843895a92b70aa74d1b7ebc9c",
            "982ccf2ec4968cc0cd55f12af4660c4075485f45c974e21556edac9ac357870d1a0d484a",
            "754d7f1c57be93fdfe18386ec54bd87001dda7934f534ff4c588e372921292a59f5359fb",
            "96a824b1a40c400a",
        ],
    ),
    (
        "unsubscribe",
        &[
            "7701013767773a70626532796d636a6e6166366433337766333761326e786163347a3467",
            "72736f776464346b776174726c68736a6f7a6768706a71037765623767773a6e33653673",
            "766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b787579",
            "7a3336356f343565743571023d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968c",
            "c0cd55f12af4660c409296772f53a87dc7a20e683ce173ea424b3d46b5f56c98b7a73577",
            "9f3f883a52a85c528e82e455a558035204439cb939e0cf2b78cffac67ec1274b304f8b40",
            "0f",
        ],
    ),
    (
        "decision",
        &[
            "9a01013767773a70626532796d636a6e6166366433337766333761326e786163347a3467",
            "72736f776464346b776174726c68736a6f7a6768706a713767773a6e33653673766e6274",
            "6f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a333635",
            "6f34356574357103776562d1bc0e554f115b211f5b6dcc2b7e73e960caabbf6510c06a3b",
            "ea4695c83aa365010101d804d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325",
            "af021a68f707511a40279982a0788de2f865207102e2e0f25532eee73d9614e537e9a434",
            "4333d535ee5d84a3e4a03ff58b1674fa827a54ab19b3173de2c9fd123e1b93cc6bdabbe3",
            "08",
        ],
    ),
    (
        "tags entry",
        &[
            "600106222222222222222222222222222222222222222222222222222222222222222205",
            "3767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879",
            "376c6970766b7875797a3336356f34356574357101036c6162fc51cd8e6218a1a38da47e",
            "d00230f0580816ed13ba3303ac5deb91154890802540e47923e84e7cc6bb769b4c3b9237",
            "ec41f4f3cc4072ff5ef070f0fe4c01a921ad0f62510a5d615fc453aecaca0b460740a4d7",
            "a1eb4bea265854128b600e59e906",
        ],
    ),
];

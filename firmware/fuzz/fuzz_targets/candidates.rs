//! Endpoint candidates: the input as a report (decoded, authenticated and
//! admitted into the hub's book against a fixed directory) and as a
//! hub-signed snapshot (`verify_snapshot`); then as a snapshot body the hub
//! really signed, so the checks after the signature are reached too.
#![no_main]

use gondwana_core::candidate_book::{self, Book};
use gondwana_core::candidates::{self, SignedSnapshot};
use gondwana_core::envelope::{self, signed_message, tag};
use gondwana_fuzz::{candidate_report, candidate_view, fixture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let view = candidate_view();
    if let Ok((signed, body)) = candidates::decode_report(data) {
        assert_eq!(
            envelope::encode(&signed),
            data,
            "accepted report is not canonical"
        );
        assert_eq!(envelope::encode(&body), signed.body);
    }
    let mut book = Book::default();
    let _ = book.admit(
        candidate_book::authenticate(&candidate_report(1), &view).expect("fixture report"),
        &"10.10.0.0/24".parse().expect("subnet"),
    );
    let before = book.clone();
    if let Ok(report) = candidate_book::authenticate(data, &view) {
        let accepted = book.admit(report, &"10.10.0.0/24".parse().expect("subnet"));
        if accepted.is_err() {
            assert_eq!(book, before, "a refusal changed the book");
        }
    }
    let _ = candidates::verify_snapshot(data, &f.hub_key, &view);
    let signature = f.hub.sign(&signed_message(tag::CANDIDATE_SNAPSHOT, data));
    let framed = envelope::encode(&SignedSnapshot {
        body: data.to_vec(),
        signature,
    });
    if let Ok(v) = candidates::verify_snapshot(&framed, &f.hub_key, &view) {
        assert!(
            v.snapshot
                .nodes
                .keys()
                .all(|id| view.nodes.contains_key(id))
        );
    }
});

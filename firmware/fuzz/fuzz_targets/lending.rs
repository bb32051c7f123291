//! Lending records: the input as a provider's publication (opened against
//! a fixed directory, folded into its catalog), as a consumer's request
//! handled by the hub's provider book, and as a decision; then each as a
//! body its signer really signed, so the checks after the signature are
//! reached too. Whatever is accepted is canonical; a refused request
//! changes nothing; a grant opened names the consumer's own address. The
//! saved books decode or are refused, never panic.
#![no_main]

use gondwana_core::NodeId;
use gondwana_core::directory::Record;
use gondwana_core::envelope::{self, tag};
use gondwana_core::lending::{
    self, ConsumerBook, ConsumerSettings, GrantChange, ProviderBook, ProviderSettings,
};
use gondwana_core::time::Millis;
use gondwana_fuzz::{fixture, lending_subscription, lending_view, sign_raw_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let view = lending_view();
    let hub = NodeId::from_genesis_key(&f.hub_key);
    let keys = |id: &NodeId| view.signing_key(id);

    // Publications: as sealed bytes, and as a body the hub really signed.
    let signed_publication = sign_raw_body(tag::LENDING_PUBLICATION, data, &f.hub);
    for raw in std::iter::once(data.to_vec()).chain(signed_publication) {
        if let Ok((publication, _)) = lending::open_publication(&raw, keys) {
            assert!(publication.check().is_ok());
            let envelope = envelope::Envelope::verify(tag::LENDING_PUBLICATION, &raw)
                .expect("accepted publication verifies");
            assert_eq!(envelope::encode(&publication), envelope.body.as_slice());
        }
        if let Ok(bytes) = raw.as_slice().try_into() {
            let mut folded = view.clone();
            folded.apply(&Record::Lending(bytes));
        }
    }

    // Requests: the provider book refuses without a change, or opens a
    // grant to the consumer's own address only.
    let mut book = ProviderBook::new(hub.clone(), ProviderSettings::default());
    let from = std::net::Ipv4Addr::new(10, 10, 0, 2);
    book.handle(&lending_subscription(5), from, &view, Millis(0))
        .expect("fixture subscription");
    let signed_request = sign_raw_body(tag::LENDING_REQUEST, data, &f.node_signing);
    for raw in std::iter::once(data.to_vec()).chain(signed_request) {
        let before = book.save(Millis(1));
        match book.handle(&raw, from, &view, Millis(1)) {
            Err(_) => assert_eq!(book.save(Millis(1)), before, "a refusal changed the book"),
            Ok(out) => {
                for change in &out.grants {
                    if let GrantChange::Add {
                        consumer, grant, ..
                    } = change
                    {
                        assert_eq!(Some(grant.ip), view.nodes.get(consumer).map(|n| n.mesh_ip));
                    }
                }
            }
        }
    }

    // Decisions, signed by the hub as the provider.
    let signed_decision = sign_raw_body(tag::LENDING_DECISION, data, &f.hub);
    for raw in std::iter::once(data.to_vec()).chain(signed_decision) {
        if let Ok(decision) = lending::open_decision(&raw, &f.hub_key) {
            assert!(decision.check().is_ok());
        }
    }

    // Saved books: decoded and saved again unchanged, or refused.
    if let Ok((restored, _)) =
        ProviderBook::restore(hub.clone(), ProviderSettings::default(), data, Millis(0))
    {
        assert_eq!(restored.save(Millis(0)), data);
    }
    if let Ok(restored) =
        ConsumerBook::restore(hub, ConsumerSettings::default(), 1, data, Millis(0))
    {
        assert_eq!(restored.save(Millis(0)), data);
    }
});

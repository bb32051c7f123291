//! Signed update bundles: the input as a bundle's first bytes (prefix and
//! head, verified against a fixed release key), as a manifest the release
//! key really signed (so the checks after the signature are reached), as a
//! rotation record the key really signed, and as the release files' text.
#![no_main]

use gondwana_core::envelope::{self, signed_message, tag};
use gondwana_core::update::{self, Head, PREFIX_LEN, Release, SignedRotation};
use gondwana_fuzz::fixture;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let baked = [f.hub_key];
    if let Some(prefix) = data.first_chunk::<PREFIX_LEN>()
        && let Ok(len) = update::head_len(prefix)
        && let Some(head) = data[PREFIX_LEN..].get(..len)
    {
        let _ = update::verify_head(head, &baked);
    }
    let _ = update::verify_head(data, &baked);

    // A manifest the trusted key signed: decoding and shape checks.
    let head = envelope::encode(&Head {
        manifest: data.to_vec(),
        signature: f.hub.sign(&signed_message(tag::UPDATE_MANIFEST, data)),
        rotations: Vec::new(),
    });
    if let Ok(manifest) = update::verify_head(&head, &baked) {
        assert_eq!(manifest.release_key, f.hub_key, "signed by another key");
        assert_eq!(
            manifest.parts.first().map(|p| &p.target),
            Some(&update::Target::RootSlot)
        );
        let running = Release {
            board: manifest.board.clone(),
            version: 1,
            min_version: 0,
            label: String::new(),
        };
        let _ = update::check_install(&manifest, &running);
    }

    // A rotation record the trusted key signed.
    let record = SignedRotation {
        body: data.to_vec(),
        signature: f.hub.sign(&signed_message(tag::RELEASE_KEY_ROTATION, data)),
    };
    if let Ok(trusted) = update::trusted_after(&baked, &[record]) {
        assert!(
            !trusted.contains(&f.hub_key),
            "a rotated-out key still trusted"
        );
    }

    if let Ok(text) = std::str::from_utf8(data) {
        let _ = update::parse_release(text);
        let _ = update::parse_release_keys(text);
    }
});

//! `directory::verify_bundle` from an empty head with a fixed authority;
//! then the input as a directory-entry body that the authority really signed
//! (`verify_next`), so the checks after the signature are reached too.
#![no_main]

use gondwana_core::directory::{self, Bundle, Head, MAX_BUNDLE_BYTES, View};
use gondwana_core::envelope::{self, decode_canonical, tag};
use gondwana_core::hash::blake2b256;
use gondwana_fuzz::{fixture, sign_raw_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let authority = f.hub_key;
    if let Ok(verified) = directory::verify_bundle(data, &authority, &Head::default()) {
        let bundle: Bundle =
            decode_canonical(data, MAX_BUNDLE_BYTES).expect("accepted bundle decodes");
        assert_eq!(bundle.entries.len(), verified.len());
        let raws: Vec<Vec<u8>> = verified.iter().map(|(_, raw, _)| raw.clone()).collect();
        assert_eq!(
            directory::encode_bundle(&authority, bundle.after, bundle.head, &raws),
            data,
            "accepted bundle is not canonical"
        );
        let mut at = Head::default();
        let mut view = View::default();
        for (i, (entry, raw, head)) in verified.iter().enumerate() {
            assert_eq!(entry.seq, i as u64);
            assert_eq!(entry.prev, at.tip);
            assert_eq!(head.len, i as u64 + 1);
            assert_eq!(head.tip, blake2b256(raw));
            view.apply(&entry.record);
            at = *head;
        }
    }

    if let Some(raw) = sign_raw_body(tag::DIRECTORY_ENTRY, data, &f.hub)
        && let Ok((entry, head)) = directory::verify_next(&Head::default(), &authority, &raw)
    {
        // A newer hub's record index is kept as it was signed, unread.
        if !matches!(entry.record, directory::Record::Unknown { .. }) {
            assert_eq!(
                envelope::encode(&entry),
                data,
                "accepted entry body is not canonical"
            );
        }
        assert_eq!(head.len, 1);
        assert_eq!(head.tip, blake2b256(&raw));
        View::default().apply(&entry.record);
    }
});

//! `identity_log::import_bundle` on arbitrary bytes. An accepted bundle
//! must be canonical: exporting its entries gives back the input, and the
//! entries verify on their own to the same state.
#![no_main]

use gondwana_core::identity_log::{export_bundle, import_bundle, verify_log};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((entries, state)) = import_bundle(data) else {
        return;
    };
    let again = export_bundle(&entries).expect("accepted entries re-export");
    assert_eq!(again, data, "accepted bundle is not canonical");
    assert_eq!(verify_log(&entries).as_ref(), Ok(&state));
    assert_eq!(state.len, entries.len() as u64);
    assert!(state.node_id.is_for_key(&state.genesis_signing_key));
});

//! `enrol::decode_response` (what `POST /v1/enroll` answers), then what the
//! node does with it: `open_grant` on the grant and `verify_bundle` on the
//! first directory page, against the fixture's hub, request and identity.
#![no_main]

use gondwana_core::directory::{self, Head};
use gondwana_core::enrol::{decode_response, encode_response, open_grant};
use gondwana_fuzz::fixture;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(response) = decode_response(data) else {
        return;
    };
    let again = encode_response(&response.grant, response.directory.clone())
        .expect("accepted response re-encodes");
    assert_eq!(again, data, "accepted response is not canonical");
    let f = fixture();
    let _ = open_grant(&response.grant, &f.hub_key, &f.request, &f.node_state);
    let _ = directory::verify_bundle(&response.directory, &f.hub_key, &Head::default());
});

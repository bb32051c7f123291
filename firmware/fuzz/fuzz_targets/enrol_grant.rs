//! `enrol::open_grant` against a fixed pinned hub key, request and identity:
//! first on the input as a whole envelope, then on the input as a grant
//! body that the pinned hub really signed (so the checks after the signature
//! are reached too).
#![no_main]

use gondwana_core::enrol::{EnrolGrant, open_grant};
use gondwana_core::envelope::{self, tag};
use gondwana_core::mesh::is_node_address;
use gondwana_fuzz::{fixture, sign_raw_body};
use libfuzzer_sys::fuzz_target;

fn check_accepted(grant: &EnrolGrant) {
    let f = fixture();
    assert_eq!(grant.hub_nonce, f.request.hub_nonce);
    assert_eq!(grant.node_id, f.node_state.node_id);
    assert_eq!(grant.node_signing_key, f.node_state.signing_key);
    assert_eq!(grant.node_wireguard_key, f.node_state.wireguard_key);
    assert!(is_node_address(&grant.subnet, grant.mesh_ip));
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if let Ok(grant) = open_grant(data, &f.hub_key, &f.request, &f.node_state) {
        check_accepted(&grant);
    }
    if let Some(sealed) = sign_raw_body(tag::ENROL_GRANT, data, &f.hub)
        && let Ok(grant) = open_grant(&sealed, &f.hub_key, &f.request, &f.node_state)
    {
        check_accepted(&grant);
        assert_eq!(
            envelope::encode(&grant),
            data,
            "accepted grant body is not canonical"
        );
    }
});

//! One identity-log entry: `verify_genesis`, `describe`, and `apply` after a
//! fixed genesis. Whatever verifies must also describe, consistently.
#![no_main]

use gondwana_core::envelope::{self, decode_canonical};
use gondwana_core::hash::blake2b256;
use gondwana_core::identity_log::{
    IdentityEvent, MAX_ENTRY_BYTES, SignedEntry, describe, verify_genesis, verify_log,
};
use gondwana_fuzz::fixture;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let genesis = verify_genesis(data);
    let described = describe(data);

    if let Some(body) = &described {
        // `describe` accepted the outer encoding, so it is canonical.
        let signed: SignedEntry =
            decode_canonical(data, MAX_ENTRY_BYTES).expect("described entry decodes");
        assert_eq!(envelope::encode(&signed), data);
        assert_eq!(envelope::encode(body), signed.body.as_slice());
    }

    if let Ok(state) = &genesis {
        let body = described.expect("a verified genesis must describe");
        assert_eq!(body.seq, 0);
        assert_eq!(body.prev, [0; 32]);
        let IdentityEvent::Genesis {
            signing_key,
            wireguard_key,
            boxname,
        } = body.event
        else {
            panic!("verify_genesis accepted a non-genesis event");
        };
        assert_eq!(signing_key, state.signing_key);
        assert_eq!(wireguard_key, state.wireguard_key);
        assert_eq!(boxname, state.boxname);
        assert!(state.node_id.is_for_key(&signing_key));
        assert_eq!(state.tip, blake2b256(data));
        assert_eq!(state.len, 1);
        assert_eq!(verify_log(&[data]).as_ref(), Ok(state));
        // A genesis never follows anything, not even itself.
        assert!(state.apply(data).is_err());
    }

    // As the second entry of a known log.
    let base = &fixture().node_state;
    if let Ok(next) = base.apply(data) {
        assert_eq!(next.len, 2);
        assert_eq!(next.tip, blake2b256(data));
        assert_eq!(next.node_id, base.node_id);
        assert!(describe(data).is_some());
    }
});

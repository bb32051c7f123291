//! `Envelope::verify` under every domain tag, and the envelope's canonical
//! decoding. Accepted bytes re-encode to themselves; a signature holds under
//! at most one domain tag.
#![no_main]

use gondwana_core::envelope::{self, Envelope, MAX_ENVELOPE_BYTES, decode_canonical, tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = decode_canonical::<Envelope>(data, MAX_ENVELOPE_BYTES);
    if let Ok(env) = &decoded {
        assert_eq!(
            envelope::encode(env),
            data,
            "decode_canonical accepted non-canonical bytes"
        );
    }
    let mut verified_under = 0;
    for t in tag::ALL {
        if let Ok(env) = Envelope::verify(t, data) {
            verified_under += 1;
            assert_eq!(decoded.as_ref(), Ok(&env));
            assert_eq!(envelope::encode(&env), data);
            // Stable: the same bytes verify the same way again.
            assert_eq!(Envelope::verify(t, data), Ok(env));
        }
    }
    assert!(
        verified_under <= 1,
        "one signature verified under {verified_under} domain tags"
    );
});

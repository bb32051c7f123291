//! The bodies that are decoded only after a signature holds (identity-log
//! entry bodies, enrolment requests and grants, directory entries), decoded
//! directly: production code reaches these decoders only with bytes a key
//! holder signed, but a signer can be malicious or buggy. Accepted bytes
//! re-encode to themselves.
#![no_main]

use gondwana_core::directory;
use gondwana_core::enrol::{EnrolGrant, EnrolRequest};
use gondwana_core::envelope::{self, MAX_ENVELOPE_BODY, decode_canonical};
use gondwana_core::identity_log::{EntryBody, MAX_BODY_BYTES};
use libfuzzer_sys::fuzz_target;

// A macro rather than a generic function: naming serde's traits would need
// serde as a direct dependency.
macro_rules! round_trip {
    ($t:ty, $data:expr, $max:expr) => {
        if let Ok(value) = decode_canonical::<$t>($data, $max) {
            assert_eq!(
                envelope::encode(&value),
                $data,
                "accepted {} is not canonical",
                stringify!($t)
            );
            assert_eq!(decode_canonical::<$t>($data, $max).as_ref(), Ok(&value));
        }
    };
}

fuzz_target!(|data: &[u8]| {
    round_trip!(EntryBody, data, MAX_BODY_BYTES);
    round_trip!(EnrolRequest, data, MAX_ENVELOPE_BODY);
    round_trip!(EnrolGrant, data, MAX_ENVELOPE_BODY);
    round_trip!(directory::Entry, data, MAX_ENVELOPE_BODY);
});

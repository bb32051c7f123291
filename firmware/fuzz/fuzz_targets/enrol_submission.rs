//! `enrol::verify_submission` (the hub's stateless checks) on arbitrary bytes.
#![no_main]

use gondwana_core::enrol::{EnrolSubmission, MAX_SUBMISSION_BYTES, verify_submission};
use gondwana_core::envelope::{self, decode_canonical};
use gondwana_core::identity_log::verify_log;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(verified) = verify_submission(data) else {
        return;
    };
    let submission: EnrolSubmission =
        decode_canonical(data, MAX_SUBMISSION_BYTES).expect("accepted submission decodes");
    assert_eq!(envelope::encode(&submission), data);
    assert!(!verified.identity.retired);
    assert_eq!(
        verify_log(&verified.identity_log).as_ref(),
        Ok(&verified.identity)
    );
    assert_eq!(
        verified.request.wireguard_key,
        verified.identity.wireguard_key
    );
    // Stable: verifying again gives the same answer.
    let again = verify_submission(data).expect("accepted once, accepted again");
    assert_eq!(again.request, verified.request);
    assert_eq!(again.identity, verified.identity);
    assert_eq!(again.identity_log, verified.identity_log);
});

//! `enrol::verify_submission` (the hub's stateless checks) on arbitrary
//! bytes, with the fixture hub's WireGuard secret.
#![no_main]

use gondwana_core::enrol::{EnrolSubmission, MAX_SUBMISSION_BYTES, verify_submission};
use gondwana_core::envelope::{self, decode_canonical};
use gondwana_core::envelope::{Envelope, tag};
use gondwana_core::identity_log::verify_log;
use gondwana_core::wg_proof;
use gondwana_fuzz::fixture;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let hub = &fixture().hub_wireguard;
    let Ok(verified) = verify_submission(data, hub) else {
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
    // Accepted only with a proof of the request's WireGuard key over the
    // request body as signed.
    let request = Envelope::verify(tag::ENROL_REQUEST, &submission.request)
        .expect("accepted request envelope verifies");
    assert_eq!(
        wg_proof::verify(
            hub,
            &verified.request.wireguard_key,
            &request.body,
            &submission.wireguard_proof
        ),
        Ok(())
    );
    // Stable: verifying again gives the same answer.
    let again = verify_submission(data, hub).expect("accepted once, accepted again");
    assert_eq!(again.request, verified.request);
    assert_eq!(again.identity, verified.identity);
    assert_eq!(again.identity_log, verified.identity_log);
});

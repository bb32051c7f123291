//! Release records (docs/updates.md, "Release record"): the input as a
//! signed record checked against a fixed release key, as a record body the
//! key really signed (so the checks after the signature are reached), as a
//! directory `Release` record folded into a view, and the rollout decision
//! over a record that verified.
#![no_main]

use gondwana_core::directory::{Record, View};
use gondwana_core::envelope::{self, signed_message, tag};
use gondwana_core::update::rollout::{Policy, Situation, Step, decide};
use gondwana_core::update::{self, Release, SignedRelease};
use gondwana_fuzz::fixture;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let baked = [f.hub_key];
    let _ = update::verify_release(data, &baked);

    // A body the trusted key signed: decoding and shape checks.
    let signed = envelope::encode(&SignedRelease {
        body: data.to_vec(),
        signature: f.hub.sign(&signed_message(tag::RELEASE_RECORD, data)),
        rotations: Vec::new(),
    });
    let mut view = View::default();
    view.apply(&Record::Release {
        signed: signed.clone(),
    });
    assert_eq!(view.releases.len(), 1);
    if let Ok(body) = update::verify_release(&signed, &baked) {
        assert_eq!(body.release_key, f.hub_key, "signed by another key");
        assert!(body.min_version <= body.version && body.bundle_size > 0);
        let running = Release {
            board: body.board.clone(),
            version: body.version.saturating_sub(1),
            min_version: 0,
            label: String::new(),
        };
        let share = update::wave_share("gw:fuzz", &body.bundle_blake2b);
        assert!(share < 100);
        let at = update::wave_time(&body, share);
        for (now, on_trial) in [0, body.start, at, u64::MAX]
            .into_iter()
            .flat_map(|now| [(now, false), (now, true)])
        {
            let step = decide(&Situation {
                now,
                policy: Policy::Auto,
                window: None,
                running: &running,
                release: &body,
                share,
                downloaded: false,
                installed: false,
                failed: false,
                on_trial,
            });
            if now >= at && body.version > running.version {
                assert_ne!(step, Step::Install, "install before the download");
            }
            if on_trial {
                assert!(
                    !matches!(step, Step::Install | Step::Reboot),
                    "install or reboot on trial"
                );
            }
        }
    }
});

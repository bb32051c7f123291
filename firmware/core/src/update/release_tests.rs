//! Release records and the rollout decision (docs/updates.md, "Release
//! record", "Policy and waves").

use super::rollout::{Policy, Situation, Step, TRIAL_RECHECK_SECS, Window, decide};
use super::*;
use crate::directory::{self, Record, View};
use crate::hash::{blake2b256, to_hex};

fn key(seed: u8) -> SigningSecret {
    SigningSecret::from_seed([seed; 32])
}

fn body(signer: &SigningSecret, waves: Vec<Wave>) -> ReleaseBody {
    ReleaseBody {
        format: FORMAT,
        board: "mochabin".into(),
        version: 7,
        min_version: 5,
        label: "v7".into(),
        start: 1_764_374_400,
        bundle_size: 403,
        bundle_blake2b: [7; 32],
        manifest_blake2b: [8; 32],
        release_key: signer.public_key(),
        waves,
    }
}

fn waves() -> Vec<Wave> {
    vec![
        Wave {
            percent: 10,
            after_secs: 0,
        },
        Wave {
            percent: 100,
            after_secs: 86_400,
        },
    ]
}

#[test]
fn sealed_record_verifies_and_tampering_is_refused() {
    let k = key(1);
    let b = body(&k, waves());
    let signed = seal_release(&b, &k, &[]).unwrap();
    assert_eq!(verify_release(&signed, &[k.public_key()]).unwrap(), b);
    assert!(matches!(
        verify_release(&signed, &[key(2).public_key()]),
        Err(BundleError::UnknownReleaseKey(_))
    ));
    // Every single-byte change is refused (no unsigned byte in a record).
    for i in 0..signed.len() {
        let mut m = signed.clone();
        m[i] ^= 0x01;
        assert!(verify_release(&m, &[k.public_key()]).is_err(), "byte {i}");
    }
    assert!(verify_release(&signed[..signed.len() - 1], &[k.public_key()]).is_err());
}

#[test]
fn rotated_key_and_bad_shapes() {
    let (k0, k1) = (key(1), key(2));
    let rot = seal_rotation(1, &k0, k1.public_key()).unwrap();
    let signed = seal_release(&body(&k1, vec![]), &k1, std::slice::from_ref(&rot)).unwrap();
    assert!(verify_release(&signed, &[k0.public_key()]).is_ok());
    // Four rotations do not fit a directory entry: refused when sealing.
    assert!(seal_release(&body(&k1, vec![]), &k1, &vec![rot; 4]).is_err());
    let w = |p, a| Wave {
        percent: p,
        after_secs: a,
    };
    for bad in [
        vec![w(50, 0)],
        vec![w(0, 0), w(100, 1)],
        vec![w(50, 10), w(40, 20), w(100, 30)],
        vec![w(50, 10), w(100, 5)],
        vec![w(100, 0); 9],
    ] {
        assert!(
            seal_release(&body(&k1, bad.clone()), &k1, &[]).is_err(),
            "{bad:?}"
        );
    }
    let mut b = body(&k1, vec![]);
    b.min_version = 9;
    assert!(seal_release(&b, &k1, &[]).is_err());
    let mut b = body(&k1, vec![]);
    b.bundle_size = 0;
    assert!(seal_release(&b, &k1, &[]).is_err());
    let mut b = body(&k1, vec![]);
    b.board = "MochaBin".into();
    assert!(seal_release(&b, &k1, &[]).is_err());
}

/// The largest record there can be still fits one directory entry, and
/// the directory's view keeps the newest records.
#[test]
fn largest_record_fits_a_directory_entry() {
    let (k0, k1, k2, k3) = (key(1), key(2), key(3), key(4));
    let chain = [
        seal_rotation(u64::MAX - 2, &k0, k1.public_key()).unwrap(),
        seal_rotation(u64::MAX - 1, &k1, k2.public_key()).unwrap(),
        seal_rotation(u64::MAX, &k2, k3.public_key()).unwrap(),
    ];
    let mut b = body(&k3, vec![]);
    b.board = "b".repeat(32);
    b.label = "l".repeat(64);
    (b.version, b.start, b.bundle_size) = (u64::MAX, u64::MAX, u64::MAX);
    b.waves = (1..=8)
        .map(|i| Wave {
            percent: if i == 8 { 100 } else { i * 10 },
            after_secs: u64::MAX,
        })
        .collect();
    let signed = seal_release(&b, &k3, &chain).unwrap();
    assert!(signed.len() <= MAX_SIGNED_RELEASE);
    let hub = key(9);
    let record = Record::Release { signed };
    let (raw, head) = directory::append(&directory::Head::default(), &hub, record).unwrap();
    let (entry, _) =
        directory::verify_next(&directory::Head::default(), &hub.public_key(), &raw).unwrap();
    assert_eq!(head.len, 1);
    let mut view = View::default();
    for i in 0..10u8 {
        view.apply(&Record::Release { signed: vec![i] });
    }
    view.apply(&Record::Release { signed: vec![5] });
    assert_eq!(view.releases.len(), directory::MAX_VIEW_RELEASES);
    assert_eq!(view.releases.last(), Some(&vec![5]));
    view.apply(&entry.record);
    assert!(verify_release(view.releases.last().unwrap(), &[k0.public_key()]).is_ok());
}

#[test]
fn waves_share_and_time() {
    let b = body(&key(1), waves());
    let shares: Vec<u8> = (0..1000)
        .map(|i| wave_share(&format!("gw:node{i}"), &b.bundle_blake2b))
        .collect();
    assert!(shares.iter().all(|s| *s < 100));
    let first = shares.iter().filter(|s| **s < 10).count();
    assert!(
        (50..=150).contains(&first),
        "{first} of 1000 in a 10 % wave"
    );
    // Deterministic, and per release.
    assert_eq!(wave_share("gw:a", &[1; 32]), wave_share("gw:a", &[1; 32]));
    let moved = (0..100)
        .filter(|i| {
            let id = format!("gw:n{i}");
            wave_share(&id, &[1; 32]) != wave_share(&id, &[2; 32])
        })
        .count();
    assert!(moved > 80);
    assert_eq!(wave_time(&b, 3), b.start);
    assert_eq!(wave_time(&b, 10), b.start + 86_400);
    assert_eq!(wave_time(&body(&key(1), vec![]), 99), b.start);
}

fn running(version: u64) -> Release {
    Release {
        board: "mochabin".into(),
        version,
        min_version: 0,
        label: String::new(),
    }
}

fn situation<'a>(release: &'a ReleaseBody, running: &'a Release, now: u64) -> Situation<'a> {
    Situation {
        now,
        policy: Policy::Auto,
        window: None,
        running,
        release,
        share: 50,
        downloaded: false,
        installed: false,
        failed: false,
        on_trial: false,
    }
}

#[test]
fn decision_over_a_virtual_clock() {
    let release = body(&key(1), waves());
    let run6 = running(6);
    let start = release.start;
    // Share 50 is in the second wave: a day after the start.
    let s = situation(&release, &run6, start + 10);
    assert_eq!(
        decide(&s),
        Step::Wait {
            at: start + 86_400,
            why: "wave: share 50 waits for its wave".into()
        }
    );
    let mut s = situation(&release, &run6, start + 86_400);
    assert_eq!(decide(&s), Step::Download);
    s.share = 3;
    s.now = start;
    assert_eq!(decide(&s), Step::Download);
    s.downloaded = true;
    assert_eq!(decide(&s), Step::Install);
    s.installed = true;
    assert_eq!(decide(&s), Step::Reboot);
    // A window 02:00-04:00 UTC: start is 00:00 UTC, so wait two hours.
    s.window = Some(Window::parse("02:00-04:00").unwrap());
    assert!(matches!(decide(&s), Step::Wait { at, .. } if at == start + 2 * 3600));
    s.now = start + 3 * 3600;
    assert_eq!(decide(&s), Step::Reboot);
    s.now = start + 4 * 3600;
    assert!(matches!(decide(&s), Step::Wait { at, .. } if at == start + 86_400 + 2 * 3600));
    // download-only stops after the download; manual does nothing.
    s.policy = Policy::DownloadOnly;
    assert!(matches!(decide(&s), Step::Idle { .. }));
    s.downloaded = false;
    assert_eq!(decide(&s), Step::Download);
    s.policy = Policy::Manual;
    assert!(matches!(decide(&s), Step::Idle { ref why } if why == "policy manual"));
    // On trial: download, but neither install nor reboot until marked good.
    let mut s = situation(&release, &run6, start);
    s.share = 0;
    s.on_trial = true;
    assert_eq!(decide(&s), Step::Download);
    s.downloaded = true;
    assert!(
        matches!(decide(&s), Step::Wait { at, ref why } if at == start + TRIAL_RECHECK_SECS && why.contains("on trial"))
    );
    s.installed = true;
    assert!(matches!(decide(&s), Step::Wait { .. }));
    s.on_trial = false;
    assert_eq!(decide(&s), Step::Reboot);
    // Already running it or newer, another board, a floor, a failure.
    let mut s = situation(&release, &run6, start);
    s.share = 0;
    s.failed = true;
    assert!(matches!(decide(&s), Step::Idle { ref why } if why.contains("failed")));
    let run7 = running(7);
    assert!(matches!(
        decide(&situation(&release, &run7, start)),
        Step::Idle { .. }
    ));
    let run4 = running(4); // below the release's min_version 5
    assert!(matches!(
        decide(&situation(&release, &run4, start)),
        Step::Idle { ref why } if why.starts_with("refused")
    ));
    let mut other = running(1);
    other.board = "amd64".into();
    assert!(matches!(
        decide(&situation(&release, &other, start)),
        Step::Idle { .. }
    ));
}

#[test]
fn windows() {
    let w = Window::parse("22:30-01:00").unwrap();
    let at = |h: u64, m: u64| 1_764_374_400 + h * 3600 + m * 60;
    assert!(w.contains(at(23, 0)) && w.contains(at(0, 59)) && w.contains(at(22, 30)));
    assert!(!w.contains(at(1, 0)) && !w.contains(at(12, 0)));
    assert_eq!(w.next_open(at(12, 0)), at(22, 30));
    assert_eq!(w.next_open(at(23, 0)), at(22, 30) + 86_400);
    for bad in [
        "2-4",
        "02:00",
        "24:00-01:00",
        "02:00-02:00",
        "02:60-03:00",
        "aa:bb-cc:dd",
    ] {
        assert!(Window::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(Policy::parse("download-only"), Some(Policy::DownloadOnly));
    assert_eq!(Policy::parse("sometimes"), None);
}

/// docs/updates.md "Release record" test vector, checked independently by
/// tests/independent-vectors.py: the bundle test vector's record, signed
/// by the rotated-to key with the rotation record, in two waves.
#[test]
fn release_test_vector() {
    let seed = |hex: &str| crate::keys::decode_hex32(hex).unwrap();
    let k0 = SigningSecret::from_seed(seed(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    ));
    let k1 = SigningSecret::from_seed(seed(
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    ));
    let bundle = data_encoding::HEXLOWER
        .decode(super::tests::VECTOR.as_bytes())
        .unwrap();
    let prefix: &[u8; PREFIX_LEN] = bundle[..PREFIX_LEN].try_into().unwrap();
    let head = &bundle[PREFIX_LEN..PREFIX_LEN + head_len(prefix).unwrap()];
    let manifest = verify_head(head, &[k0.public_key()]).unwrap();
    let manifest_bytes = head_manifest_bytes(head).unwrap();
    let b = ReleaseBody::for_bundle(
        &manifest,
        &manifest_bytes,
        bundle.len() as u64,
        blake2b256(&bundle),
        1_764_374_400,
        waves(),
    );
    let rot = seal_rotation(1, &k0, k1.public_key()).unwrap();
    let signed = seal_release(&b, &k1, &[rot]).unwrap();
    assert_eq!(verify_release(&signed, &[k0.public_key()]).unwrap(), b);
    b.matches(&manifest, &manifest_bytes).unwrap();
    assert_eq!(to_hex(&signed), RELEASE_VECTOR.concat());
}

const RELEASE_VECTOR: [&str; 9] = [
    "7d01086d6f63686162696e070502763780efa8c9069303f29cdf74e7bca5935c8dc36b6f",
    "8f624f65ffb2106f2a4b8a07364ab6d9fdb9d89b723d9c2a141f138fec62445f14747301",
    "c1357360defcdf914cfaaa3cfcec323d4017c3e843895a92b70aa74d1b7ebc9c982ccf2e",
    "c4968cc0cd55f12af4660c020a006480a3054034e3e042686d6e78254e8145657123a1dc",
    "263b90c0cd66ee1b6ab7926317c438708f2e1ccc15767000541b7826477a492ef778a516",
    "505aec953d227b8ac2790f01420101d75a980182b10ab7d54bfed3c964073a0ee172f3da",
    "a62325af021a68f707511a3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0",
    "cd55f12af4660c4001ae2d33e297a589d9e54bfad5873ff0847dca2886764c6bf3faebb0",
    "86e9697897569da48a928ff646fdf4af538d3694bcc82756c1b23ab1669b7206fe3be40d",
];

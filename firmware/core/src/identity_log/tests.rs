use proptest::prelude::*;

use super::build::{self, BuildError};
use super::*;

fn secret(n: u8) -> SigningSecret {
    SigningSecret::from_seed([n; 32])
}

fn name(s: &str) -> Boxname {
    Boxname::parse(s).unwrap()
}

/// genesis, rotate-wireguard, rotate-signing, rename.
fn sample_log() -> (Vec<Vec<u8>>, IdentityState) {
    let (g, s0) = build::genesis(&secret(1), [10; 32], name("box")).unwrap();
    let (e1, s1) = build::next(
        &s0,
        &secret(1),
        IdentityEvent::RotateWireguard {
            new_wireguard_key: [11; 32],
        },
        None,
    )
    .unwrap();
    let new = secret(2);
    let (e2, s2) = build::next(
        &s1,
        &secret(1),
        IdentityEvent::RotateSigning {
            new_signing_key: new.public_key(),
        },
        Some(&new),
    )
    .unwrap();
    let (e3, s3) = build::next(
        &s2,
        &new,
        IdentityEvent::Rename {
            boxname: name("box-2"),
        },
        None,
    )
    .unwrap();
    (vec![g, e1, e2, e3], s3)
}

fn resign(raw: &[u8], body: &EntryBody, signer: &SigningSecret) -> Vec<u8> {
    let mut signed: SignedEntry = decode_canonical(raw, MAX_ENTRY_BYTES).unwrap();
    signed.body = heapless::Vec::from_slice(&envelope::encode(body)).unwrap();
    signed.sig = signer.sign(&signed_message(tag::IDENTITY_ENTRY, &signed.body));
    signed.signer = signer.public_key();
    envelope::encode(&signed)
}

#[test]
fn valid_log_verifies_to_final_state() {
    let (log, state) = sample_log();
    let verified = verify_log(&log).unwrap();
    assert_eq!(verified, state);
    assert_eq!(
        verified.node_id,
        NodeId::from_genesis_key(&secret(1).public_key())
    );
    assert_eq!(verified.signing_key, secret(2).public_key());
    assert_eq!(verified.wireguard_key, [11; 32]);
    assert_eq!(verified.boxname, name("box-2"));
    assert_eq!(verified.len, 4);
    assert_eq!(verified.tip, blake2b256(&log[3]));
}

#[test]
fn bundle_round_trips() {
    let (log, state) = sample_log();
    let bundle = export_bundle(&log).unwrap();
    let (entries, imported) = import_bundle(&bundle).unwrap();
    assert_eq!(entries, log);
    assert_eq!(imported, state);
}

#[test]
fn rejects_reordered_duplicated_and_dropped_entries() {
    let (log, _) = sample_log();
    let reordered = vec![log[0].clone(), log[2].clone(), log[1].clone()];
    assert!(matches!(
        verify_log(&reordered),
        Err(LogError::WrongSigner { index: 1 } | LogError::BadSequence { index: 1, .. })
    ));
    let duplicated = vec![log[0].clone(), log[1].clone(), log[1].clone()];
    assert_eq!(
        verify_log(&duplicated),
        Err(LogError::BadSequence { index: 2, found: 1 })
    );
    let dropped = vec![log[0].clone(), log[2].clone()];
    assert!(verify_log(&dropped).is_err());
    let two_genesis = vec![log[0].clone(), log[0].clone()];
    assert!(verify_log(&two_genesis).is_err());
    assert_eq!(verify_log::<Vec<u8>>(&[]), Err(LogError::Empty));
}

#[test]
fn rejects_broken_link_even_when_signed() {
    let (log, _) = sample_log();
    let mut body = describe(&log[1]).unwrap();
    body.prev = [0xAA; 32];
    let forged = resign(&log[1], &body, &secret(1));
    assert_eq!(
        verify_log(&[log[0].clone(), forged]),
        Err(LogError::BrokenLink { index: 1 })
    );
}

#[test]
fn rejects_unknown_version() {
    let (log, _) = sample_log();
    let mut body = describe(&log[1]).unwrap();
    body.version = 2;
    let forged = resign(&log[1], &body, &secret(1));
    assert_eq!(
        verify_log(&[log[0].clone(), forged]),
        Err(LogError::UnknownVersion {
            index: 1,
            version: 2
        })
    );
}

#[test]
fn rejects_bad_missing_and_foreign_signatures() {
    let (log, _) = sample_log();
    // Bad signature: one bit flipped in the signature.
    let mut signed: SignedEntry = decode_canonical(&log[1], MAX_ENTRY_BYTES).unwrap();
    signed.sig[5] ^= 1;
    let bad = envelope::encode(&signed);
    assert_eq!(
        verify_log(&[log[0].clone(), bad]),
        Err(LogError::BadSignature { index: 1 })
    );
    // Missing signature: all zeros is not a signature of anything.
    signed.sig = [0; 64];
    let missing = envelope::encode(&signed);
    assert_eq!(
        verify_log(&[log[0].clone(), missing]),
        Err(LogError::BadSignature { index: 1 })
    );
    // A well-formed signature by a key that is not the node's.
    let body = describe(&log[1]).unwrap();
    let foreign = resign(&log[1], &body, &secret(9));
    assert_eq!(
        verify_log(&[log[0].clone(), foreign]),
        Err(LogError::WrongSigner { index: 1 })
    );
    // Rotation without the new key's signature.
    let mut rotation: SignedEntry = decode_canonical(&log[2], MAX_ENTRY_BYTES).unwrap();
    rotation.new_key_sig = None;
    let half = envelope::encode(&rotation);
    assert_eq!(
        verify_log(&[log[0].clone(), log[1].clone(), half]),
        Err(LogError::MissingNewKeySignature { index: 2 })
    );
    // Rotation whose second signature is by some other key.
    let mut rotation: SignedEntry = decode_canonical(&log[2], MAX_ENTRY_BYTES).unwrap();
    rotation.new_key_sig = Some(NewKeySig(secret(7).sign(&signed_message(
        tag::IDENTITY_ROTATE_NEW_KEY,
        &rotation.body,
    ))));
    let wrong = envelope::encode(&rotation);
    assert_eq!(
        verify_log(&[log[0].clone(), log[1].clone(), wrong]),
        Err(LogError::BadSignature { index: 2 })
    );
}

#[test]
fn rejects_trailing_bytes_and_non_canonical_encodings() {
    let (log, _) = sample_log();
    let mut trailing = log[1].clone();
    trailing.push(0);
    assert!(matches!(
        verify_log(&[log[0].clone(), trailing]),
        Err(LogError::Decode {
            index: 1,
            source: DecodeError::TrailingBytes(1)
        })
    ));
    // Overlong varint for the body length: same value, different bytes.
    let signed: SignedEntry = decode_canonical(&log[1], MAX_ENTRY_BYTES).unwrap();
    let len = signed.body.len();
    assert!(len < 128);
    let mut overlong = vec![(len as u8) | 0x80, 0x00];
    overlong.extend_from_slice(&log[1][1..]);
    assert!(matches!(
        verify_log(&[log[0].clone(), overlong]),
        Err(LogError::Decode {
            index: 1,
            source: DecodeError::NonCanonical
        })
    ));
    // Trailing bytes inside the signed body are caught after the signature.
    let mut body_bytes = signed.body.to_vec();
    body_bytes.push(0);
    let mut padded = signed.clone();
    padded.body = heapless::Vec::from_slice(&body_bytes).unwrap();
    padded.sig = secret(1).sign(&signed_message(tag::IDENTITY_ENTRY, &padded.body));
    assert!(matches!(
        verify_log(&[log[0].clone(), envelope::encode(&padded)]),
        Err(LogError::Decode {
            index: 1,
            source: DecodeError::TrailingBytes(1)
        })
    ));
}

#[test]
fn nothing_follows_retire() {
    let (log, state) = sample_log();
    let (retire, retired) = build::next(&state, &secret(2), IdentityEvent::Retire, None).unwrap();
    assert!(retired.retired);
    let after = build::next(
        &retired,
        &secret(2),
        IdentityEvent::Rename {
            boxname: name("zombie"),
        },
        None,
    );
    assert_eq!(
        after.err(),
        Some(BuildError::Rejected(LogError::AfterRetire { index: 5 }))
    );
    let mut full = log;
    full.push(retire);
    assert!(verify_log(&full).unwrap().retired);
}

#[test]
fn builder_refuses_wrong_secrets() {
    let (_, state) = sample_log();
    assert_eq!(
        build::next(&state, &secret(1), IdentityEvent::Retire, None).err(),
        Some(BuildError::WrongSecret)
    );
    let new = secret(3);
    assert_eq!(
        build::next(
            &state,
            &secret(2),
            IdentityEvent::RotateSigning {
                new_signing_key: new.public_key()
            },
            None
        )
        .err(),
        Some(BuildError::MissingNewSigner)
    );
    assert_eq!(
        build::next(
            &state,
            &secret(2),
            IdentityEvent::RotateWireguard {
                new_wireguard_key: state.wireguard_key
            },
            None
        )
        .err(),
        Some(BuildError::Rejected(LogError::NoOpRotation { index: 4 }))
    );
}

#[test]
fn bundle_rejects_unknown_format() {
    let (log, _) = sample_log();
    let mut bundle = export_bundle(&log).unwrap();
    bundle[0] = 9;
    assert_eq!(
        import_bundle(&bundle).err(),
        Some(LogError::UnknownBundleFormat(9))
    );
}

#[derive(Debug, Clone)]
enum Op {
    RotateSigning(u8),
    RotateWireguard(u8),
    Rename(String),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u8>().prop_map(Op::RotateSigning),
        any::<u8>().prop_map(Op::RotateWireguard),
        "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?".prop_map(Op::Rename),
    ]
}

/// Applies ops, skipping no-op rotations (which are invalid by design).
fn build_log(ops: &[Op], retire: bool) -> (Vec<Vec<u8>>, IdentityState) {
    let mut signer = secret(200);
    let (g, mut state) = build::genesis(&signer, [1; 32], name("start")).unwrap();
    let mut log = vec![g];
    let mut seeds = 0u32;
    for op in ops {
        seeds += 1;
        let (raw, next) = match op {
            Op::RotateSigning(n) => {
                let mut seed = [*n; 32];
                seed[..4].copy_from_slice(&seeds.to_le_bytes());
                let new = SigningSecret::from_seed(seed);
                let event = IdentityEvent::RotateSigning {
                    new_signing_key: new.public_key(),
                };
                let out = build::next(&state, &signer, event, Some(&new)).unwrap();
                signer = new;
                out
            }
            Op::RotateWireguard(n) => {
                let mut key = [*n; 32];
                key[..4].copy_from_slice(&seeds.to_le_bytes());
                let event = IdentityEvent::RotateWireguard {
                    new_wireguard_key: key,
                };
                build::next(&state, &signer, event, None).unwrap()
            }
            Op::Rename(n) => {
                let event = IdentityEvent::Rename { boxname: name(n) };
                build::next(&state, &signer, event, None).unwrap()
            }
        };
        log.push(raw);
        state = next;
    }
    if retire {
        let (raw, next) = build::next(&state, &signer, IdentityEvent::Retire, None).unwrap();
        log.push(raw);
        state = next;
    }
    (log, state)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_valid_sequence_verifies(ops in proptest::collection::vec(op(), 0..12), retire in any::<bool>()) {
        let (log, state) = build_log(&ops, retire);
        prop_assert_eq!(verify_log(&log).unwrap(), state.clone());
        let (_, imported) = import_bundle(&export_bundle(&log).unwrap()).unwrap();
        prop_assert_eq!(imported, state);
    }

    #[test]
    fn any_single_byte_mutation_fails(ops in proptest::collection::vec(op(), 0..6), position in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let (log, _) = build_log(&ops, false);
        let mut bundle = export_bundle(&log).unwrap();
        let at = position.index(bundle.len());
        bundle[at] ^= xor;
        prop_assert!(import_bundle(&bundle).is_err(), "mutation at byte {} verified", at);
    }
}

/// The genesis entry of docs/identity.md, byte for byte: signing seed =
/// RFC 8032 TEST 1 secret, WireGuard key = the public key of RFC 7748
/// §6.1's Alice (8520f009…4e6a), boxname "box-1".
#[test]
fn published_genesis_vector() {
    let signer = SigningSecret::from_seed(
        crate::keys::decode_hex32(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        )
        .unwrap(),
    );
    let wireguard = crate::keys::decode_hex32(
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    )
    .unwrap();
    let (raw, state) = build::genesis(&signer, wireguard, name("box-1")).unwrap();
    let signed: SignedEntry = decode_canonical(&raw, MAX_ENTRY_BYTES).unwrap();
    assert_eq!(signed.body.len(), 105);
    assert_eq!(raw.len(), 204);
    assert_eq!(crate::hash::to_hex(&signed.body), GENESIS_BODY_HEX);
    assert_eq!(crate::hash::to_hex(&raw), GENESIS_ENTRY_HEX);
    assert_eq!(crate::hash::to_hex(&state.tip), GENESIS_TIP_HEX);
}

const GENESIS_BODY_HEX: &str = "0100000000000000000000000000000000000000000000000000000000000000000000d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05626f782d31";
const GENESIS_ENTRY_HEX: &str = "690100000000000000000000000000000000000000000000000000000000000000000000d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05626f782d31d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a40ebeb4b242a6819854711f4c3963d9a4f19ce5499553cff4e5a0d1b1c3275942fac6bee94bb1cbddd74fa4077ac940c5d28933cf9ba0e09f6f9a7363c9746f40d00";
const GENESIS_TIP_HEX: &str = "b26d016796f5554ca7cc43412897cf7e1825538c3aa90e2820ea12e6814c35dd";

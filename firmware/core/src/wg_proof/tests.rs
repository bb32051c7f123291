use super::*;
use crate::hash::to_hex;
use crate::keys::decode_hex32;

/// RFC 7748 §6.1: Alice is the node, Bob the hub.
fn alice() -> WireguardSecret {
    WireguardSecret::from_bytes(
        decode_hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a").unwrap(),
    )
}

fn bob() -> WireguardSecret {
    WireguardSecret::from_bytes(
        decode_hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb").unwrap(),
    )
}

#[test]
fn shared_secret_is_rfc_7748s() {
    let k = alice().shared_secret(&bob().public_key()).unwrap();
    assert_eq!(
        to_hex(&k[..]),
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    );
    assert_eq!(*bob().shared_secret(&alice().public_key()).unwrap(), *k);
}

#[test]
fn round_trip_both_ways() {
    let proof = prove(&alice(), &bob().public_key(), b"hello").unwrap();
    // Python: hashlib.blake2b(tag + b"hello", key=shared, digest_size=32).
    assert_eq!(
        to_hex(&proof),
        "e9e3fc283f06426235832f66f97965476f7a3cd7188e4caf90f63b0dda3de5de"
    );
    assert_eq!(
        verify(&bob(), &alice().public_key(), b"hello", &proof),
        Ok(())
    );
    // Another message, a flipped bit of the proof: refused.
    assert_eq!(
        verify(&bob(), &alice().public_key(), b"hellO", &proof),
        Err(ProofError::Mismatch)
    );
    for i in 0..PROOF_LEN {
        let mut p = proof;
        p[i] ^= 1;
        assert_eq!(
            verify(&bob(), &alice().public_key(), b"hello", &p),
            Err(ProofError::Mismatch)
        );
    }
}

#[test]
fn a_proof_by_another_key_is_refused() {
    // The attacker knows the victim's public key, not its secret: a proof
    // under any secret of its own does not verify for the victim's key.
    let attacker = WireguardSecret::from_bytes([0x42; 32]);
    let forged = prove(&attacker, &bob().public_key(), b"hello").unwrap();
    assert_eq!(
        verify(&bob(), &alice().public_key(), b"hello", &forged),
        Err(ProofError::Mismatch)
    );
    // A proof made for another hub does not verify at this one.
    let other_hub = WireguardSecret::from_bytes([0x43; 32]);
    let elsewhere = prove(&alice(), &other_hub.public_key(), b"hello").unwrap();
    assert_eq!(
        verify(&bob(), &alice().public_key(), b"hello", &elsewhere),
        Err(ProofError::Mismatch)
    );
}

#[test]
fn low_order_keys_are_refused_on_both_sides() {
    // u = 0, u = 1 and a point of order 8 (from libsodium's blocklist):
    // X25519 with any of them gives zeros.
    let low_order = [
        [0u8; 32],
        {
            let mut k = [0u8; 32];
            k[0] = 1;
            k
        },
        decode_hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800").unwrap(),
    ];
    for point in low_order {
        assert_eq!(
            prove(&alice(), &point, b"m").err(),
            Some(ProofError::LowOrder)
        );
        assert_eq!(
            verify(&bob(), &point, b"m", &[0; 32]).err(),
            Some(ProofError::LowOrder)
        );
        // Even the MAC under the all-zero key is refused.
        let mut mac = Blake2bMac::<U32>::new_from_slice(&[0; 32]).unwrap();
        mac.update(tag::WIREGUARD_PROOF);
        mac.update(b"m");
        let zero_key: WireguardProof = mac.finalize().into_bytes().into();
        assert_eq!(
            verify(&bob(), &point, b"m", &zero_key).err(),
            Some(ProofError::LowOrder)
        );
    }
}

#[test]
fn another_domain_tag_is_refused() {
    let shared = alice().shared_secret(&bob().public_key()).unwrap();
    for wrong in [
        tag::ENROL_TOKEN_PROOF,
        b"".as_slice(),
        b"gondwana/v1/wireguard-proof",
    ] {
        let mut mac = Blake2bMac::<U32>::new_from_slice(&shared[..]).unwrap();
        mac.update(wrong);
        mac.update(b"hello");
        let proof: WireguardProof = mac.finalize().into_bytes().into();
        assert_eq!(
            verify(&bob(), &alice().public_key(), b"hello", &proof),
            Err(ProofError::Mismatch)
        );
    }
}

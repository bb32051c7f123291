use super::*;
use crate::hash::{blake2b256, to_hex};

fn key(seed: u8) -> SigningSecret {
    SigningSecret::from_seed([seed; 32])
}

fn manifest(signer: &SigningSecret, root: &[u8], kernel: &[u8]) -> Manifest {
    Manifest {
        format: FORMAT,
        board: "mochabin".into(),
        version: 7,
        label: "v7".into(),
        min_version: 5,
        release_key: signer.public_key(),
        parts: vec![
            Part {
                target: Target::RootSlot,
                size: root.len() as u64,
                blake2b: blake2b256(root),
            },
            Part {
                target: Target::BootFile("Image".into()),
                size: kernel.len() as u64,
                blake2b: blake2b256(kernel),
            },
        ],
    }
}

/// The head bytes of a sealed bundle (after the prefix).
fn head_of(bundle: &[u8]) -> &[u8] {
    let prefix: &[u8; PREFIX_LEN] = bundle[..PREFIX_LEN].try_into().unwrap();
    let len = head_len(prefix).unwrap();
    &bundle[PREFIX_LEN..PREFIX_LEN + len]
}

fn rotation(seq: u64, old: &SigningSecret, new: &SigningSecret) -> SignedRotation {
    seal_rotation(seq, old, new.public_key()).unwrap()
}

fn running(version: u64, min_version: u64) -> Release {
    Release {
        board: "mochabin".into(),
        version,
        min_version,
        label: String::new(),
    }
}

#[test]
fn sealed_bundle_verifies_under_its_key() {
    let k = key(1);
    let m = manifest(&k, b"root", b"kernel");
    let bundle = seal(&m, &k, &[]).unwrap();
    assert_eq!(&bundle[..8], b"GWBUNDLE");
    assert_eq!(verify_head(head_of(&bundle), &[k.public_key()]).unwrap(), m);
    assert_eq!(m.parts_len(), 10);
}

#[test]
fn unknown_key_and_bad_signature_are_refused() {
    let k = key(1);
    let bundle = seal(&manifest(&k, b"root", b"kernel"), &k, &[]).unwrap();
    assert!(matches!(
        verify_head(head_of(&bundle), &[key(2).public_key()]),
        Err(BundleError::UnknownReleaseKey(_))
    ));
    // Flip a byte of the version inside the signed manifest.
    let mut head: Head = postcard::from_bytes(head_of(&bundle)).unwrap();
    let at = head.manifest.len() - 1;
    head.manifest[at] ^= 1;
    assert_eq!(
        verify_head(&encode(&head), &[k.public_key()]),
        Err(BundleError::BadSignature)
    );
    // A manifest whose release_key names another key than the signer's.
    let mut m = manifest(&k, b"root", b"kernel");
    m.release_key = key(2).public_key();
    assert!(seal(&m, &k, &[]).is_err());
}

#[test]
fn prefix_is_checked() {
    let mut prefix = [0u8; PREFIX_LEN];
    assert_eq!(head_len(&prefix), Err(BundleError::NotABundle));
    prefix[..8].copy_from_slice(&MAGIC);
    prefix[8..].copy_from_slice(&(MAX_HEAD as u32 + 1).to_le_bytes());
    assert!(matches!(
        head_len(&prefix),
        Err(BundleError::HeadTooLarge(_))
    ));
}

#[test]
fn install_refuses_other_board_downgrade_and_too_old() {
    let k = key(1);
    let m = manifest(&k, b"root", b"kernel"); // version 7, min 5
    assert_eq!(check_install(&m, &running(6, 0)), Ok(()));
    // Re-installing the running version, or an older one above the floor.
    assert_eq!(check_install(&m, &running(7, 7)), Ok(()));
    assert_eq!(check_install(&m, &running(9, 3)), Ok(()));
    let mut other = running(6, 0);
    other.board = "amd64-live".into();
    assert!(matches!(
        check_install(&m, &other),
        Err(BundleError::WrongBoard { .. })
    ));
    assert_eq!(
        check_install(&m, &running(9, 8)),
        Err(BundleError::Downgrade {
            bundle: 7,
            floor: 8
        })
    );
    assert_eq!(
        check_install(&m, &running(4, 0)),
        Err(BundleError::RunningTooOld { min: 5, running: 4 })
    );
}

#[test]
fn manifest_shape_rules() {
    let k = key(1);
    let good = manifest(&k, b"root", b"kernel");
    let mut m = good.clone();
    m.parts.swap(0, 1);
    assert!(m.check().is_err(), "root not first");
    for name in ["../x", "/abs", "a//b", "a/./b", "", "a b", STATUS_FILE] {
        let mut m = good.clone();
        m.parts[1].target = Target::BootFile(name.into());
        assert!(m.check().is_err(), "{name:?}");
    }
    let mut m = good.clone();
    m.parts.push(m.parts[1].clone());
    assert!(m.check().is_err(), "a name twice");
    let mut m = good.clone();
    m.min_version = 8;
    assert!(m.check().is_err(), "min above version");
    let mut m = good.clone();
    m.board = "Mocha bin".into();
    assert!(m.check().is_err());
    let mut m = good;
    m.parts[1].target = Target::BootFile("dtbs/marvell/armada-7040-mochabin.dtb".into());
    assert_eq!(m.check(), Ok(()));
}

#[test]
fn rotation_chain_moves_trust_to_the_new_key() {
    let (k0, k1, k2) = (key(1), key(2), key(3));
    let chain = [rotation(1, &k0, &k1), rotation(2, &k1, &k2)];
    assert_eq!(
        trusted_after(&[k0.public_key()], &chain).unwrap(),
        vec![k2.public_key()]
    );
    // A bundle signed by k2 carrying the chain verifies on a box that
    // trusts only k0; without the chain it does not.
    let bundle = seal(&manifest(&k2, b"r", b"k"), &k2, &chain).unwrap();
    assert!(verify_head(head_of(&bundle), &[k0.public_key()]).is_ok());
    let bare = seal(&manifest(&k2, b"r", b"k"), &k2, &[]).unwrap();
    assert!(matches!(
        verify_head(head_of(&bare), &[k0.public_key()]),
        Err(BundleError::UnknownReleaseKey(_))
    ));
    // The old key, rotated out, no longer signs bundles that carry the chain.
    let old = seal(&manifest(&k0, b"r", b"k"), &k0, &chain).unwrap();
    assert!(matches!(
        verify_head(head_of(&old), &[k0.public_key()]),
        Err(BundleError::UnknownReleaseKey(_))
    ));
}

#[test]
fn a_box_past_a_rotation_skips_its_record() {
    let (k0, k1, k2) = (key(1), key(2), key(3));
    let (r1, r2) = (rotation(1, &k0, &k1), rotation(2, &k1, &k2));
    // The box stored r1 (or its image bakes k1): it trusts k1 alone.
    let after_r1 = trusted_after(&[k0.public_key()], std::slice::from_ref(&r1)).unwrap();
    assert_eq!(after_r1, vec![k1.public_key()]);
    // A bundle carrying the whole chain from k0 still verifies there: r1
    // is skipped, r2 applied.
    let bundle = seal(&manifest(&k2, b"r", b"k"), &k2, &[r1.clone(), r2]).unwrap();
    assert!(verify_head(head_of(&bundle), &after_r1).is_ok());
    // k0, rotated out, signs nothing any more there, with or without r1.
    for rotations in [vec![], vec![r1.clone()]] {
        let old = seal(&manifest(&k0, b"r", b"k"), &k0, &rotations).unwrap();
        assert!(matches!(
            verify_head(head_of(&old), &after_r1),
            Err(BundleError::UnknownReleaseKey(_))
        ));
    }
    // Skipping never grants: a record from an untrusted key to one not
    // trusted either is refused as before.
    let stranger = key(9);
    assert!(trusted_after(&after_r1, &[rotation(1, &stranger, &k2)]).is_err());
}

#[test]
fn rotation_refusals() {
    let (k0, k1, k2, stranger) = (key(1), key(2), key(3), key(9));
    let baked = [k0.public_key()];
    // Signed by a key the box does not trust.
    let err = trusted_after(&baked, &[rotation(1, &stranger, &k1)]).unwrap_err();
    assert!(
        matches!(err, BundleError::BadRotation { index: 0, ref why } if why.contains("does not trust"))
    );
    // Out of order: k1 is not trusted before the first record.
    let chain = [rotation(2, &k1, &k2), rotation(1, &k0, &k1)];
    assert!(trusted_after(&baked, &chain).is_err());
    // A seq that does not increase.
    let chain = [rotation(3, &k0, &k1), rotation(3, &k1, &k2)];
    assert!(matches!(
        trusted_after(&baked, &chain),
        Err(BundleError::BadRotation { index: 1, .. })
    ));
    // A forged signature.
    let mut forged = rotation(1, &k0, &k1);
    forged.signature[0] ^= 1;
    assert!(trusted_after(&baked, &[forged]).is_err());
    // A record that rotates a key to itself is never sealed, and one made
    // by hand is refused.
    assert!(seal_rotation(1, &k0, k0.public_key()).is_err());
    let body = RotationBody {
        format: FORMAT,
        seq: 1,
        old_key: k0.public_key(),
        new_key: k0.public_key(),
    };
    let body = crate::envelope::encode(&body);
    let to_itself = SignedRotation {
        signature: k0.sign(&crate::envelope::signed_message(
            crate::envelope::tag::RELEASE_KEY_ROTATION,
            &body,
        )),
        body,
    };
    assert!(matches!(
        trusted_after(&baked, &[to_itself]),
        Err(BundleError::BadRotation { index: 0, ref why }) if why.contains("itself")
    ));
}

#[test]
fn release_and_keys_text() {
    let r = parse_release("board=mochabin\nversion=12\nmin_version=3\nlabel=v12 (abc)\n").unwrap();
    assert_eq!(
        (r.board.as_str(), r.version, r.min_version),
        ("mochabin", 12, 3)
    );
    assert_eq!(parse_release(&release_text(&r)).unwrap(), r);
    assert!(parse_release("version=1\n").is_err());
    assert!(parse_release("board=x\nversion=one\n").is_err());
    let k = key(1).public_key();
    let text = format!("# release keys\n{}  # dev\n\n", to_hex(&k));
    assert_eq!(parse_release_keys(&text).unwrap(), vec![k]);
    assert!(parse_release_keys("zz\n").is_err());
}

/// docs/updates.md "Test vector", checked independently by
/// tests/independent-vectors.py: RFC 8032's first key rotates to its
/// second, which signs a bundle of two small parts.
#[test]
fn test_vector() {
    let seed = |hex: &str| crate::keys::decode_hex32(hex).unwrap();
    let k0 = SigningSecret::from_seed(seed(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    ));
    let k1 = SigningSecret::from_seed(seed(
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    ));
    let root: Vec<u8> = (0u8..64).collect();
    let m = manifest(&k1, &root, b"kernel");
    let mut bundle = seal(&m, &k1, &[rotation(1, &k0, &k1)]).unwrap();
    bundle.extend_from_slice(&root);
    bundle.extend_from_slice(b"kernel");
    assert_eq!(to_hex(&bundle), VECTOR);
    assert_eq!(
        verify_head(head_of(&bundle), &[k0.public_key()]).unwrap(),
        m
    );
}

pub(super) const VECTOR: &str = concat!(
    "475742554e444c45410100007a01086d6f63686162696e07027637053d4017c3e843895a",
    "92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c02004010d8e6d534b0093984",
    "3fe9dcc4dae48cdf008f6b8b2b82b156f5404d874887f50105496d6167650661b08010c7",
    "db75b199734e5526f6b478087a92e58b436ce6214f1e7278835b2d4049a9f31b8ecbb5e6",
    "762e153dc4cee41d583b3e056efca4fcfa5fc1d8d78a662a04d7ed5d3f12ff66559ae9c6",
    "03c07013d161db509e1a75e54d9745f850b6ac0901420101d75a980182b10ab7d54bfed3",
    "c964073a0ee172f3daa62325af021a68f707511a3d4017c3e843895a92b70aa74d1b7ebc",
    "9c982ccf2ec4968cc0cd55f12af4660c4001ae2d33e297a589d9e54bfad5873ff0847dca",
    "2886764c6bf3faebb086e9697897569da48a928ff646fdf4af538d3694bcc82756c1b23a",
    "b1669b7206fe3be40d000102030405060708090a0b0c0d0e0f101112131415161718191a",
    "1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e",
    "3f6b65726e656c",
);

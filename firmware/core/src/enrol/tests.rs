use super::*;
use crate::identity_log::build;

struct Node {
    signing: SigningSecret,
    wireguard: WireguardSecret,
    log: Vec<Vec<u8>>,
    state: IdentityState,
}

fn node(seed: u8) -> Node {
    let signing = SigningSecret::from_seed([seed; 32]);
    let wireguard = WireguardSecret::from_bytes([seed ^ 0x55; 32]);
    let (g, state) = build::genesis(
        &signing,
        wireguard.public_key(),
        Boxname::parse("n").unwrap(),
    )
    .unwrap();
    Node {
        signing,
        wireguard,
        log: vec![g],
        state,
    }
}

/// The hub's WireGuard secret in these tests.
fn hub_wg() -> WireguardSecret {
    WireguardSecret::from_bytes([0xAB; 32])
}

/// A submission with the node's own keys and the test hub's WireGuard key.
fn submit(n: &Node, signing: &SigningSecret, req: &EnrolRequest, token: &TokenSecret) -> Vec<u8> {
    build_submission(
        signing,
        &n.wireguard,
        &hub_wg().public_key(),
        &n.log,
        req,
        token,
    )
    .unwrap()
}

fn request(n: &Node, token: &TokenSecret) -> EnrolRequest {
    EnrolRequest {
        version: VERSION,
        hub_nonce: [7; 32],
        wireguard_key: n.state.wireguard_key,
        boxname: Boxname::parse("box-1").unwrap(),
        token_key: token.public_key(),
    }
}

fn grant_for(n: &Node, req: &EnrolRequest) -> EnrolGrant {
    let hub = node(200);
    EnrolGrant {
        version: VERSION,
        hub_nonce: req.hub_nonce,
        node_id: n.state.node_id.clone(),
        node_signing_key: n.state.signing_key,
        node_wireguard_key: n.state.wireguard_key,
        boxname: req.boxname.clone(),
        mesh_ip: Ipv4Addr::new(10, 10, 0, 2),
        subnet: "10.10.0.0/24".parse().unwrap(),
        hub_node_id: hub.state.node_id,
        hub_mesh_ip: Ipv4Addr::new(10, 10, 0, 1),
        hub_wireguard_key: [1; 32],
        hub_endpoint: heapless::String::try_from("hub.example:51822").unwrap(),
        wireguard_port: 51822,
        api_port: 8798,
        directory_len: 1,
        directory_tip: [2; 32],
    }
}

#[test]
fn round_trip() {
    let n = node(1);
    let token = TokenSecret::from_seed([9; 32]);
    let req = request(&n, &token);
    let bytes = submit(&n, &n.signing, &req, &token);
    let verified = verify_submission(&bytes, &hub_wg()).unwrap();
    assert_eq!(verified.request, req);
    assert_eq!(verified.identity, n.state);

    let hub = node(200);
    let grant = grant_for(&n, &req);
    let sealed = seal_grant(&grant, &hub.signing).unwrap();
    assert_eq!(
        open_grant(&sealed, &hub.signing.public_key(), &req, &n.state).unwrap(),
        grant
    );
}

#[test]
fn submission_refusals() {
    let n = node(1);
    let token = TokenSecret::from_seed([9; 32]);
    let req = request(&n, &token);
    // Signed by a key that is not the identity's.
    let other = node(2);
    let forged = submit(&n, &other.signing, &req, &token);
    assert!(matches!(
        verify_submission(&forged, &hub_wg()),
        Err(EnrolError::Request(EnvelopeError::WrongSigner))
    ));
    // Token proof by another token than the one named.
    let mut wrong_token = req.clone();
    wrong_token.token_key = TokenSecret::from_seed([8; 32]).public_key();
    let bytes = submit(&n, &n.signing, &wrong_token, &token);
    assert_eq!(
        verify_submission(&bytes, &hub_wg()).err(),
        Some(EnrolError::BadTokenProof)
    );
    // WireGuard key not the identity's.
    let mut wrong_key = req.clone();
    wrong_key.wireguard_key = [0xEE; 32];
    let bytes = submit(&n, &n.signing, &wrong_key, &token);
    assert_eq!(
        verify_submission(&bytes, &hub_wg()).err(),
        Some(EnrolError::KeyMismatch)
    );
    // Unknown version.
    let mut v2 = req.clone();
    v2.version = 2;
    let bytes = submit(&n, &n.signing, &v2, &token);
    assert_eq!(
        verify_submission(&bytes, &hub_wg()).err(),
        Some(EnrolError::Version(2))
    );
    // Empty identity log.
    let bytes = build_submission(
        &n.signing,
        &n.wireguard,
        &hub_wg().public_key(),
        &[],
        &req,
        &token,
    )
    .unwrap();
    assert!(matches!(
        verify_submission(&bytes, &hub_wg()),
        Err(EnrolError::IdentityLog(_))
    ));
    // Truncated, extended, and every single-byte mutation.
    let good = submit(&n, &n.signing, &req, &token);
    assert!(verify_submission(&good[..good.len() - 1], &hub_wg()).is_err());
    let mut longer = good.clone();
    longer.push(0);
    assert!(verify_submission(&longer, &hub_wg()).is_err());
    for i in 0..good.len() {
        let mut m = good.clone();
        m[i] ^= 0x01;
        assert!(
            verify_submission(&m, &hub_wg()).is_err(),
            "mutation at {i} accepted"
        );
    }
    assert!(matches!(
        verify_submission(&vec![0u8; MAX_SUBMISSION_BYTES + 1], &hub_wg()),
        Err(EnrolError::Malformed(DecodeError::TooLarge { .. }))
    ));
}

#[test]
fn grant_refusals() {
    let n = node(1);
    let token = TokenSecret::from_seed([9; 32]);
    let req = request(&n, &token);
    let hub = node(200);
    let grant = grant_for(&n, &req);
    // Wrong pin.
    let sealed = seal_grant(&grant, &hub.signing).unwrap();
    let wrong_pin = node(201).signing.public_key();
    assert_eq!(
        open_grant(&sealed, &wrong_pin, &req, &n.state).err(),
        Some(EnrolError::Grant(EnvelopeError::WrongSigner))
    );
    // A grant for another request (replayed answer).
    let mut other_nonce = grant.clone();
    other_nonce.hub_nonce = [8; 32];
    let sealed = seal_grant(&other_nonce, &hub.signing).unwrap();
    assert_eq!(
        open_grant(&sealed, &hub.signing.public_key(), &req, &n.state).err(),
        Some(EnrolError::GrantMismatch)
    );
    // The hub's own address handed to a node.
    let mut hub_ip = grant.clone();
    hub_ip.mesh_ip = Ipv4Addr::new(10, 10, 0, 1);
    let sealed = seal_grant(&hub_ip, &hub.signing).unwrap();
    assert!(matches!(
        open_grant(&sealed, &hub.signing.public_key(), &req, &n.state),
        Err(EnrolError::GrantAddress(..))
    ));
}

#[test]
fn wireguard_proof_refusals() {
    let n = node(1);
    let token = TokenSecret::from_seed([9; 32]);
    let req = request(&n, &token);
    let proof_refused = |bytes: &[u8]| {
        matches!(
            verify_submission(bytes, &hub_wg()),
            Err(EnrolError::WireguardProof(_))
        )
    };
    // The node's proof checks at this hub, not at another one (the hub's
    // secret is part of the MAC key).
    let good = submit(&n, &n.signing, &req, &token);
    assert!(verify_submission(&good, &WireguardSecret::from_bytes([0xAC; 32])).is_err());

    // A victim's public key in the attacker's own log, proved with any
    // secret but the victim's: refused.
    let victim = node(2);
    let signing = SigningSecret::from_seed([3; 32]);
    let (genesis, state) = build::genesis(
        &signing,
        victim.state.wireguard_key,
        Boxname::parse("n").unwrap(),
    )
    .unwrap();
    let attacker = Node {
        signing,
        wireguard: WireguardSecret::from_bytes([3; 32]),
        log: vec![genesis],
        state,
    };
    let req = request(&attacker, &token);
    let bytes = submit(&attacker, &attacker.signing, &req, &token);
    assert_eq!(
        verify_submission(&bytes, &hub_wg()).err(),
        Some(EnrolError::WireguardProof(ProofError::Mismatch))
    );
    // With the victim's secret it does verify (the registry then refuses
    // the key as taken).
    let with_secret = build_submission(
        &attacker.signing,
        &victim.wireguard,
        &hub_wg().public_key(),
        &attacker.log,
        &req,
        &token,
    )
    .unwrap();
    assert!(verify_submission(&with_secret, &hub_wg()).is_ok());

    // A proof made for a substituted hub key: refused.
    let substituted = build_submission(
        &n.signing,
        &n.wireguard,
        &WireguardSecret::from_bytes([0xAD; 32]).public_key(),
        &n.log,
        &request(&n, &token),
        &token,
    )
    .unwrap();
    assert!(proof_refused(&substituted));

    // A low-order WireGuard key in the log: the shared secret would be
    // zeros, so no proof can count. The node side refuses to make one for a
    // low-order hub key too.
    let signing = SigningSecret::from_seed([4; 32]);
    let (genesis, state) = build::genesis(&signing, [0; 32], Boxname::parse("n").unwrap()).unwrap();
    let low = Node {
        signing,
        wireguard: WireguardSecret::from_bytes([4; 32]),
        log: vec![genesis],
        state,
    };
    let bytes = submit(&low, &low.signing, &request(&low, &token), &token);
    assert_eq!(
        verify_submission(&bytes, &hub_wg()).err(),
        Some(EnrolError::WireguardProof(ProofError::LowOrder))
    );
    assert_eq!(
        build_submission(
            &n.signing,
            &n.wireguard,
            &[0; 32],
            &n.log,
            &request(&n, &token),
            &token
        )
        .err(),
        Some(EnrolError::WireguardProof(ProofError::LowOrder))
    );

    // The proof is bound to the request body: one from another request
    // (another nonce) pasted in is refused.
    let mut other = request(&n, &token);
    other.hub_nonce = [8; 32];
    let donor: EnrolSubmission =
        crate::envelope::decode_canonical(&submit(&n, &n.signing, &other, &token), usize::MAX)
            .unwrap();
    let mut spliced: EnrolSubmission =
        crate::envelope::decode_canonical(&good, usize::MAX).unwrap();
    spliced.wireguard_proof = donor.wireguard_proof;
    assert!(proof_refused(&crate::envelope::encode(&spliced)));
}

/// RFC 7748 §6.1's X25519 private keys: the node's (Alice) and the hub's
/// (Bob) WireGuard secrets in the published vectors.
const NODE_WG_SECRET: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const HUB_WG_SECRET: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";

/// The vectors of docs/protocol.md: node = genesis vector of
/// docs/identity.md (RFC 8032 TEST 1 key, WireGuard secret = RFC 7748
/// Alice's, "box-1"), token seed 32 × 05, hub nonce 32 × 07, hub = RFC 8032
/// TEST 2 key with WireGuard secret = RFC 7748 Bob's; then a rotation of
/// the node's WireGuard key to secret 32 × 0a and its mirror-push proof.
#[test]
fn published_protocol_vectors() {
    let node = SigningSecret::from_seed(
        crate::keys::decode_hex32(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        )
        .unwrap(),
    );
    let node_wg = WireguardSecret::from_bytes(crate::keys::decode_hex32(NODE_WG_SECRET).unwrap());
    let hub_wg = WireguardSecret::from_bytes(crate::keys::decode_hex32(HUB_WG_SECRET).unwrap());
    let (genesis, state) = build::genesis(
        &node,
        node_wg.public_key(),
        Boxname::parse("box-1").unwrap(),
    )
    .unwrap();
    let token = TokenSecret::from_seed([5; 32]);
    let hex = crate::hash::to_hex;
    let verifier = crate::token::verifier(&token.public_key());
    let request = EnrolRequest {
        version: VERSION,
        hub_nonce: [7; 32],
        wireguard_key: state.wireguard_key,
        boxname: Boxname::parse("box-1").unwrap(),
        token_key: token.public_key(),
    };
    let submission = build_submission(
        &node,
        &node_wg,
        &hub_wg.public_key(),
        std::slice::from_ref(&genesis),
        &request,
        &token,
    )
    .unwrap();
    let decoded: EnrolSubmission =
        crate::envelope::decode_canonical(&submission, MAX_SUBMISSION_BYTES).unwrap();
    let hub = SigningSecret::from_seed(
        crate::keys::decode_hex32(
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        )
        .unwrap(),
    );
    let grant = EnrolGrant {
        version: VERSION,
        hub_nonce: [7; 32],
        node_id: state.node_id.clone(),
        node_signing_key: state.signing_key,
        node_wireguard_key: state.wireguard_key,
        boxname: Boxname::parse("box-1").unwrap(),
        mesh_ip: Ipv4Addr::new(10, 10, 0, 2),
        subnet: "10.10.0.0/24".parse().unwrap(),
        hub_node_id: NodeId::from_genesis_key(&hub.public_key()),
        hub_mesh_ip: Ipv4Addr::new(10, 10, 0, 1),
        hub_wireguard_key: hub_wg.public_key(),
        hub_endpoint: heapless::String::try_from("hub.example:51822").unwrap(),
        wireguard_port: 51822,
        api_port: 8798,
        directory_len: 2,
        directory_tip: [0; 32],
    };
    let sealed = seal_grant(&grant, &hub).unwrap();

    // Rotation: entry 1 of the node's log, then the proof the mirror push
    // carries in `Gondwana-WireGuard-Proof` (message = the new tip).
    let rotated_wg = WireguardSecret::from_bytes([0x0a; 32]);
    let (rotation, rotated) = build::next(
        &state,
        &node,
        crate::identity_log::IdentityEvent::RotateWireguard {
            new_wireguard_key: rotated_wg.public_key(),
        },
        None,
    )
    .unwrap();
    let rotation_proof = wg_proof::prove(&rotated_wg, &hub_wg.public_key(), &rotated.tip).unwrap();
    assert_eq!(
        wg_proof::verify(
            &hub_wg,
            &rotated.wireguard_key,
            &crate::hash::blake2b256(&rotation),
            &rotation_proof
        ),
        Ok(())
    );

    let got = [
        ("token", token.to_text().to_string()),
        ("token_public", hex(&token.public_key())),
        ("verifier", hex(&verifier)),
        ("token_id", crate::token::token_id(&verifier)),
        ("node_wireguard_public", hex(&node_wg.public_key())),
        ("hub_wireguard_public", hex(&hub_wg.public_key())),
        ("wireguard_proof", hex(&decoded.wireguard_proof)),
        ("submission", hex(&submission)),
        ("grant", hex(&sealed)),
        ("rotated_wireguard_public", hex(&rotated_wg.public_key())),
        ("rotation_entry", hex(&rotation)),
        ("rotation_tip", hex(&rotated.tip)),
        ("rotation_proof", hex(&rotation_proof)),
    ];
    assert_eq!(got.len(), PROTOCOL_VECTORS.len());
    for ((name, value), expected) in got.iter().zip(PROTOCOL_VECTORS) {
        assert_eq!(value, expected, "{name}");
    }
    assert!(verify_submission(&submission, &hub_wg).is_ok());
}

const PROTOCOL_VECTORS: [&str; 13] = [
    "gwt1-aucqkbifaucqkbifaucqkbifaucqkbifaucqkbifaucqkbifaucq",
    "6e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf1",
    "80282becf9f4f9a2f502fda62cba9725d26f57224df003d3e1f0fd213b2ae80f",
    "qaucx3hz6t42f5ic",
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    "16d70c2e29d45db9518e59a27498ac142ae49c72e99826be89dfddba65e7a44d",
    "c901670107070707070707070707070707070707070707070707070707070707070707078520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05626f782d316e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf1d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a404822026e9b2884861bf8ff0331dab8fee9b6983de13a55951dd1a695e270e47a0ba485c4e4db8e368b3f65d19af93bc77e4541c9c0421f8dc28f07ef35cde50c405a53d18c6f309dd81359fb1ac86d2131c675907d2d2eec6faa48ae903b6eb1ea403d64c7ce5e9dbec24c81b05c28aa66919c7db5aef40d7b981248567ed706042016d70c2e29d45db9518e59a27498ac142ae49c72e99826be89dfddba65e7a44d01cc01690100000000000000000000000000000000000000000000000000000000000000000000d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05626f782d31d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a40ebeb4b242a6819854711f4c3963d9a4f19ce5499553cff4e5a0d1b1c3275942fac6bee94bb1cbddd74fa4077ac940c5d28933cf9ba0e09f6f9a7363c9746f40d00",
    "bc020107070707070707070707070707070707070707070707070707070707070707073767773a70626532796d636a6e6166366433337766333761326e786163347a346772736f776464346b776174726c68736a6f7a6768706a71d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a05626f782d310a0a00020a0a0000183767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a3336356f3435657435710a0a0001de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f116875622e6578616d706c653a3531383232ee9403de440200000000000000000000000000000000000000000000000000000000000000003d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c4081ab013ac07a390bb6b69c75fa275a8feb3ef621cfa01e401714d9102a98ef0b5b4a73fbffbd26ab5d262c76f9ef693e677955a229329fd8ec47e89706447e0f",
    "f77ff4b10788bfdca62ca0bb160d427cf5762d85f2b5cad6807ec9c3febbde09",
    "430101b26d016796f5554ca7cc43412897cf7e1825538c3aa90e2820ea12e6814c35dd02f77ff4b10788bfdca62ca0bb160d427cf5762d85f2b5cad6807ec9c3febbde09d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a403237a1408c717ef530900cf528049434b7893c86b6e93379309a8df0a5c37dae6f318394addc666380f40479a4627fd70809034abeaef71b2e4d028e3fdd7f0c00",
    "abf064aa87ef41b3d3eb3763b3276df670794f40d9c74985e56f2ee4eb142dcb",
    "7c46902461f47ece21175a810d6dfafc7e1c509abedb669b2ba289eabbb30e92",
];

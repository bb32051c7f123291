use super::*;
use crate::identity_log::build;

struct Node {
    signing: SigningSecret,
    log: Vec<Vec<u8>>,
    state: IdentityState,
}

fn node(seed: u8) -> Node {
    let signing = SigningSecret::from_seed([seed; 32]);
    let (g, state) =
        build::genesis(&signing, [seed ^ 0x55; 32], Boxname::parse("n").unwrap()).unwrap();
    Node {
        signing,
        log: vec![g],
        state,
    }
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
    let bytes = build_submission(&n.signing, &n.log, &req, &token).unwrap();
    let verified = verify_submission(&bytes).unwrap();
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
    let forged = build_submission(&other.signing, &n.log, &req, &token).unwrap();
    assert!(matches!(
        verify_submission(&forged),
        Err(EnrolError::Request(EnvelopeError::WrongSigner))
    ));
    // Token proof by another token than the one named.
    let mut wrong_token = req.clone();
    wrong_token.token_key = TokenSecret::from_seed([8; 32]).public_key();
    let bytes = build_submission(&n.signing, &n.log, &wrong_token, &token).unwrap();
    assert_eq!(
        verify_submission(&bytes).err(),
        Some(EnrolError::BadTokenProof)
    );
    // WireGuard key not the identity's.
    let mut wrong_key = req.clone();
    wrong_key.wireguard_key = [0xEE; 32];
    let bytes = build_submission(&n.signing, &n.log, &wrong_key, &token).unwrap();
    assert_eq!(
        verify_submission(&bytes).err(),
        Some(EnrolError::KeyMismatch)
    );
    // Unknown version.
    let mut v2 = req.clone();
    v2.version = 2;
    let bytes = build_submission(&n.signing, &n.log, &v2, &token).unwrap();
    assert_eq!(
        verify_submission(&bytes).err(),
        Some(EnrolError::Version(2))
    );
    // Empty identity log.
    let bytes = build_submission(&n.signing, &[], &req, &token).unwrap();
    assert!(matches!(
        verify_submission(&bytes),
        Err(EnrolError::IdentityLog(_))
    ));
    // Truncated, extended, and every single-byte mutation.
    let good = build_submission(&n.signing, &n.log, &req, &token).unwrap();
    assert!(verify_submission(&good[..good.len() - 1]).is_err());
    let mut longer = good.clone();
    longer.push(0);
    assert!(verify_submission(&longer).is_err());
    for i in 0..good.len() {
        let mut m = good.clone();
        m[i] ^= 0x01;
        assert!(verify_submission(&m).is_err(), "mutation at {i} accepted");
    }
    assert!(matches!(
        verify_submission(&vec![0u8; MAX_SUBMISSION_BYTES + 1]),
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

/// The vectors of docs/protocol.md: node = genesis vector of
/// docs/identity.md (RFC 8032 TEST 1 key, WireGuard key 32 × 09, "box-1"),
/// token seed 32 × 05, hub nonce 32 × 07, hub = RFC 8032 TEST 2 key.
#[test]
fn published_protocol_vectors() {
    let node = SigningSecret::from_seed(
        crate::keys::decode_hex32(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        )
        .unwrap(),
    );
    let (genesis, state) =
        build::genesis(&node, [9; 32], Boxname::parse("box-1").unwrap()).unwrap();
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
    let submission = build_submission(&node, &[genesis], &request, &token).unwrap();
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
        hub_wireguard_key: [8; 32],
        hub_endpoint: heapless::String::try_from("hub.example:51822").unwrap(),
        wireguard_port: 51822,
        api_port: 8798,
        directory_len: 2,
        directory_tip: [0; 32],
    };
    let sealed = seal_grant(&grant, &hub).unwrap();
    let got = [
        ("token", token.to_text().to_string()),
        ("token_public", hex(&token.public_key())),
        ("verifier", hex(&verifier)),
        ("token_id", crate::token::token_id(&verifier)),
        ("submission", hex(&submission)),
        ("grant", hex(&sealed)),
    ];
    for ((name, value), expected) in got.iter().zip(PROTOCOL_VECTORS) {
        assert_eq!(value, expected, "{name}");
    }
    assert!(verify_submission(&submission).is_ok());
}

const PROTOCOL_VECTORS: [&str; 6] = [
    "gwt1-aucqkbifaucqkbifaucqkbifaucqkbifaucqkbifaucqkbifaucq",
    "6e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf1",
    "80282becf9f4f9a2f502fda62cba9725d26f57224df003d3e1f0fd213b2ae80f",
    "qaucx3hz6t42f5ic",
    "c90167010707070707070707070707070707070707070707070707070707070707070707090909090909090909090909090909090909090909090909090909090909090905626f782d316e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf1d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a409c1078aa41a6585c7180c48df890d41caedb9bcaca161315bd18ed9470b945d70fdea8db28f12e5a7d01dcf4a12050037386a0d9e22778d8f2286b50ceaea700408a2fd9fa20bfdaf573044f309b71dad484621b35d2e7068b92c79f4b5de74d4700ee4b873c4026bd1dae484d102cef499a3d3a8ba8f09852e51bdbe4752f510a01cc01690100000000000000000000000000000000000000000000000000000000000000000000d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a090909090909090909090909090909090909090909090909090909090909090905626f782d31d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a40964d855cc9cbd562a212ecb551fd0a94a02162fb4f64b3b184b03667ad38d5305e2ef6072313980c44fed2fb473e1726ff56621e5366d17e865cb4c8500b440e00",
    "bc020107070707070707070707070707070707070707070707070707070707070707073767773a70626532796d636a6e6166366433337766333761326e786163347a346772736f776464346b776174726c68736a6f7a6768706a71d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a090909090909090909090909090909090909090909090909090909090909090905626f782d310a0a00020a0a0000183767773a6e33653673766e62746f723474347a796b61656275643364376a6f3764786879376c6970766b7875797a3336356f3435657435710a0a00010808080808080808080808080808080808080808080808080808080808080808116875622e6578616d706c653a3531383232ee9403de440200000000000000000000000000000000000000000000000000000000000000003d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c40b2a732c9e9022bd103934f74e33cfb9686c35fc4598f6400872a688ccd18aa3ed5dfd2997d5bb97e4ee6d2020d095ee95f5dc828a47b7db7d7766aef69fe9604",
];

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

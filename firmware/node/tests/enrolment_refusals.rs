//! Enrolment refusals: every bad request to a real hub gets the right 4xx
//! with a JSON `{error, detail}` and changes nothing the hub reports
//! (`node list`, `token list`, `directory show`).

mod harness;

use std::time::Duration;

use gondwana_core::keys::SigningSecret;
use harness::mesh::{
    FakeNode, Hub, Mesh, Snapshot, assert_refused, fetch_nonce, get, post, random32, token_secret,
};
use serde_json::Value;

/// A running hub with one token (`args`), and its `token create` answer.
fn hub_with_token(m: &Mesh, args: &[&str]) -> (Hub, Value) {
    let mut hub = m.hub();
    hub.start();
    let created = hub.token(args, &hub.dir.join("enroll.toml"));
    (hub, created)
}

#[track_caller]
fn assert_unchanged(hub: &Hub, before: &Snapshot) {
    let after = hub.snapshot();
    assert_eq!(&after, before, "a refused request changed the hub's state");
}

#[test]
fn forged_signature_is_refused() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "5"]);
    let token = token_secret(&created);
    let node = FakeNode::new("forged");
    let before = hub.snapshot();

    // Signed by a key that is not the one the identity log names.
    let request = node.request(fetch_nonce(hub.enroll_port), &token);
    let impostor = SigningSecret::from_seed(random32());
    let forged = node.submission_signed_by(&impostor, &request, &token);
    let r = post(hub.enroll_port, "/v1/enroll", &forged).unwrap();
    let v = assert_refused(&r, 400, "bad_request");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("signed by an unexpected key"),
        "{v}"
    );
    assert_unchanged(&hub, &before);

    // A token proof from another token than the one the request names.
    let other = gondwana_core::token::TokenSecret::from_seed(random32());
    let request = node.request(fetch_nonce(hub.enroll_port), &token);
    let wrong_proof = node.submission(&request, &other);
    let r = post(hub.enroll_port, "/v1/enroll", &wrong_proof).unwrap();
    let v = assert_refused(&r, 400, "bad_request");
    assert!(v["detail"].as_str().unwrap().contains("token proof"), "{v}");

    // A token the hub never issued.
    let request = node.request(fetch_nonce(hub.enroll_port), &other);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &node.submission(&request, &other),
    )
    .unwrap();
    assert_refused(&r, 403, "unknown_token");
    assert_unchanged(&hub, &before);

    // The same identity with the real token and proof is accepted: the
    // refusals above were about the forgery, not the harness.
    let request = node.request(fetch_nonce(hub.enroll_port), &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &node.submission(&request, &token),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let grant = node.open_answer(&r.body, &hub.key(), &request);
    assert_eq!(hub.node_list().len(), 1);
    assert_eq!(
        hub.node_list()[0]["mesh_ip"],
        grant.mesh_ip.to_string().as_str()
    );
}

#[test]
fn wrong_hub_pin_never_enrols() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "5"]);
    let good = std::fs::read_to_string(hub.dir.join("enroll.toml")).unwrap();
    let real_key = gondwana_core::hash::to_hex(&hub.key());
    assert!(good.contains(&real_key), "{good}");
    let other_key = gondwana_core::hash::to_hex(&SigningSecret::from_seed(random32()).public_key());

    let mut n = m.node("pinned-elsewhere", &hub);
    n.set_enroll(&good.replace(&real_key, &other_key));
    n.start();
    let s = harness::mesh::poll(
        Duration::from_secs(30),
        "the node to reject the grant a few times",
        || {
            n.status_http().filter(|s| {
                s["enrolment"]["state"] == "enrolling"
                    && s["enrolment"]["attempts"].as_u64() >= Some(3)
            })
        },
        || format!("{:?}\n{}", n.status_http(), n.log_text()),
    );
    let err = s["enrolment"]["last_error"].as_str().unwrap();
    assert!(
        err.contains("pinned") && err.contains("not submitting"),
        "{s}"
    );
    let s = n.status();
    assert_eq!(s["enrolment"]["state"], "enrolling", "{s}");
    // No directory from a hub it does not trust.
    let r = get(n.api_port, "/v1/directory").unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(s["directory"]["entries"], 0, "{s}");
    // The node stopped before submitting: no token use, no address.
    let id = created["token_id"].as_str().unwrap();
    assert_eq!(hub.token_uses(id), 0);
    assert_eq!(hub.node_list().len(), 0);

    n.stop();
    let s = n.status();
    assert_eq!(s["enrolment"]["state"], "unenrolled", "{s}");
}

#[test]
fn replayed_submission_is_refused() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "5"]);
    let token = token_secret(&created);
    let node = FakeNode::new("replayed");
    let request = node.request(fetch_nonce(hub.enroll_port), &token);
    let bytes = node.submission(&request, &token);

    let first = post(hub.enroll_port, "/v1/enroll", &bytes).unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    let before = hub.snapshot();
    assert_eq!(before.nodes.len(), 1);

    let second = post(hub.enroll_port, "/v1/enroll", &bytes).unwrap();
    assert_refused(&second, 403, "unknown_nonce");
    // Also on the full API listener: nonces are single use hub-wide.
    let third = post(hub.api_port, "/v1/enroll", &bytes).unwrap();
    assert_refused(&third, 403, "unknown_nonce");
    // A nonce the hub never issued.
    let invented = node.request(fetch_nonce(hub.enroll_port).with_nonce(random32()), &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &node.submission(&invented, &token),
    )
    .unwrap();
    assert_refused(&r, 403, "unknown_nonce");
    assert_unchanged(&hub, &before);
}

/// One refusal from the token's state: a fresh identity, a fresh nonce.
fn refused_by_token(hub: &Hub, created: &Value, code: &str) {
    let token = token_secret(created);
    let node = FakeNode::new("late");
    let before = hub.snapshot();
    let request = node.request(fetch_nonce(hub.enroll_port), &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &node.submission(&request, &token),
    )
    .unwrap();
    assert_refused(&r, 403, code);
    assert_unchanged(hub, &before);
}

#[test]
fn expired_token_is_refused() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "5", "--ttl", "1s"]);
    std::thread::sleep(Duration::from_secs(2));
    refused_by_token(&hub, &created, "token_expired");
}

#[test]
fn revoked_token_is_refused() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "5"]);
    let id = created["token_id"].as_str().unwrap();
    hub.cli(&["token", "revoke", id]).ok();
    let listed = hub.token_list();
    assert_eq!(listed[0]["revoked"], true, "{listed:?}");
    refused_by_token(&hub, &created, "token_revoked");
}

#[test]
fn exhausted_token_is_refused() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "1"]);
    let token = token_secret(&created);
    let first = FakeNode::new("first");
    let request = first.request(fetch_nonce(hub.enroll_port), &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &first.submission(&request, &token),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    refused_by_token(&hub, &created, "token_exhausted");
}

#[test]
fn malformed_oversized_and_truncated_bodies_are_refused() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "5"]);
    let token = token_secret(&created);
    let before = hub.snapshot();

    // Random bytes.
    let mut junk = Vec::new();
    for _ in 0..16 {
        junk.extend_from_slice(&random32());
    }
    let r = post(hub.enroll_port, "/v1/enroll", &junk).unwrap();
    assert_refused(&r, 400, "bad_request");
    let r = post(hub.enroll_port, "/v1/enroll", b"").unwrap();
    assert_refused(&r, 400, "bad_request");

    // Over 64 KiB: refused before the handler.
    let big = vec![0x5a; 64 * 1024 + 1];
    let r = post(hub.enroll_port, "/v1/enroll", &big).unwrap();
    assert_refused(&r, 413, "payload_too_large");

    // A valid submission minus its last byte...
    let node = FakeNode::new("truncated");
    let request = node.request(fetch_nonce(hub.enroll_port), &token);
    let bytes = node.submission(&request, &token);
    let r = post(hub.enroll_port, "/v1/enroll", &bytes[..bytes.len() - 1]).unwrap();
    assert_refused(&r, 400, "bad_request");
    // ... and plus one trailing byte (postcard alone would accept it).
    let mut longer = bytes.clone();
    longer.push(0);
    let r = post(hub.enroll_port, "/v1/enroll", &longer).unwrap();
    let v = assert_refused(&r, 400, "bad_request");
    assert!(v["detail"].as_str().unwrap().contains("trailing"), "{v}");
    assert_unchanged(&hub, &before);

    // None of that burnt the nonce: the intact submission still enrols.
    let r = post(hub.enroll_port, "/v1/enroll", &bytes).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    node.open_answer(&r.body, &hub.key(), &request);
    assert_eq!(hub.node_list().len(), 1);
}

#[test]
fn enrolment_listener_serves_only_enrolment_and_health() {
    let m = Mesh::new();
    let (hub, _) = hub_with_token(&m, &["--uses", "1"]);
    let before = hub.snapshot();
    let port = hub.enroll_port;
    for path in [
        "/v1/status",
        "/v1/identity",
        "/v1/directory",
        "/v1/ready",
        "/metrics",
        "/admin/tokens",
        "/",
    ] {
        let r = get(port, path).unwrap();
        assert_refused(&r, 404, "not_found");
    }
    let r = post(port, "/v1/identity/mirror", b"x").unwrap();
    assert_refused(&r, 404, "not_found");
    // What it does serve.
    assert_eq!(get(port, "/v1/health").unwrap().status, 200);
    assert_eq!(get(port, "/v1/enroll/nonce").unwrap().status, 200);
    // The full API is on the loopback listener.
    assert_eq!(get(hub.api_port, "/v1/status").unwrap().status, 200);
    assert_unchanged(&hub, &before);
}

#[test]
fn enrolment_requests_are_rate_limited_per_source() {
    let m = Mesh::new();
    let mut hub = m.hub_with("enroll_rate_burst = 5\nenroll_rate_per_minute = 1\n");
    hub.start();
    let created = hub.token(&["--uses", "5"], &hub.dir.join("enroll.toml"));
    let token = token_secret(&created);
    let before = hub.snapshot();

    for i in 0..5 {
        let r = get(hub.enroll_port, "/v1/enroll/nonce").unwrap();
        assert_eq!(r.status, 200, "nonce {i}: {}", r.text());
    }
    let r = get(hub.enroll_port, "/v1/enroll/nonce").unwrap();
    assert_refused(&r, 429, "rate_limited");
    // The same source is limited on the API listener and for POSTs too.
    let r = get(hub.api_port, "/v1/enroll/nonce").unwrap();
    assert_refused(&r, 429, "rate_limited");
    let node = FakeNode::new("eager");
    let hub_wireguard = hub.wireguard_key();
    let request = node.request(
        harness::mesh::HubNonce {
            nonce: random32(),
            hub_wireguard,
        },
        &token,
    );
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &node.submission(&request, &token),
    )
    .unwrap();
    assert_refused(&r, 429, "rate_limited");
    // Health is not rate limited.
    assert_eq!(get(hub.enroll_port, "/v1/health").unwrap().status, 200);
    assert_unchanged(&hub, &before);
    let metrics = hub.metrics();
    assert!(
        metrics.contains("gondwana_enrolment_failures_total{reason=\"rate_limited\"}"),
        "{metrics}"
    );
}

/// Enrols `node` with `token` through the enrolment listener; asserts 200.
fn enrol_fake(hub: &Hub, node: &FakeNode, token: &gondwana_core::token::TokenSecret) {
    let request = node.request(fetch_nonce(hub.enroll_port), token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &node.submission(&request, token),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Pushes `node`'s log to the hub's mirror; asserts 200.
fn push_mirror(hub: &Hub, node: &FakeNode) {
    let r = node.push_mirror(hub.api_port, Some(&hub.wireguard_key()));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["entries"], node.state.len, "{}", r.text());
}

#[test]
fn stale_identity_log_cannot_roll_back_keys() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "5"]);
    let token = token_secret(&created);
    let seed = random32();
    let mut node = FakeNode::from_seed(seed, "rolled");
    enrol_fake(&hub, &node, &token);
    // The node rotates its WireGuard key (say, it leaked) and the hub's
    // mirror and directory take the rotation.
    node.rotate_wireguard();
    push_mirror(&hub, &node);
    let id = node.state.node_id.as_str();
    let shown = hub.node_show(id);
    assert_eq!(
        shown["wireguard_public_key"],
        node.wireguard_text().as_str()
    );
    assert_eq!(shown["identity_log_entries"], 2);
    // The token is even revoked by now: re-presentation does not check it.
    hub.cli(&["token", "revoke", created["token_id"].as_str().unwrap()])
        .ok();
    let before = hub.snapshot();

    // Whoever holds the old log prefix (it is public), the signing key and
    // any token secret the hub ever issued (enroll.toml stays on the FAT
    // boot partition) re-presents it: the hub must not go back to the
    // rotated-away key.
    let stale = FakeNode::from_seed(seed, "rolled");
    let request = stale.request(fetch_nonce(hub.enroll_port), &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &stale.submission(&request, &token),
    )
    .unwrap();
    let now = hub.node_show(id);
    assert_eq!(
        now["wireguard_public_key"],
        node.wireguard_text().as_str(),
        "the hub went back to the rotated-away WireGuard key (answer {})",
        r.status
    );
    assert_refused(&r, 409, "stale_identity");
    assert_unchanged(&hub, &before);
}

#[test]
fn diverging_identity_log_is_not_spliced_into_the_mirror() {
    let m = Mesh::new();
    let (mut hub, created) = hub_with_token(&m, &["--uses", "5"]);
    let token = token_secret(&created);
    let seed = random32();
    let mut node = FakeNode::from_seed(seed, "forked");
    enrol_fake(&hub, &node, &token);
    node.rotate_wireguard();
    push_mirror(&hub, &node);
    let before = hub.snapshot();

    // A second history from the same genesis (a restored backup that
    // rotated differently): longer than the mirror, but not its extension.
    let mut fork = FakeNode::from_seed(seed, "forked");
    fork.rotate_wireguard();
    fork.rotate_wireguard();
    assert_ne!(fork.log[1], node.log[1]);
    let request = fork.request(fetch_nonce(hub.enroll_port), &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &fork.submission(&request, &token),
    )
    .unwrap();

    // Whatever the answer, the hub's stored mirror must still be one
    // verifiable chain.
    hub.stop();
    let mirror = harness::mesh::stored_mirror(&hub.state, node.state.node_id.as_str());
    if let Err(e) = gondwana_core::identity_log::verify_log(&mirror) {
        panic!(
            "the hub's mirror no longer verifies ({e}); it holds {} entries, the first two of one history and the rest of another",
            mirror.len()
        );
    }
    assert_refused(&r, 409, "stale_identity");
    assert_unchanged(&hub, &before);
}

#[test]
fn a_node_cannot_take_the_hubs_boxname() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "5"]);
    let token = token_secret(&created);
    let hub_name = hub.cli(&["status", "--json"]).ok().json()["boxname"]
        .as_str()
        .unwrap()
        .to_string();
    let before = hub.snapshot();
    let node = FakeNode::new(&hub_name);
    let request = node.request(fetch_nonce(hub.enroll_port), &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &node.submission(&request, &token),
    )
    .unwrap();
    let d = hub.directory();
    let holders = d["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["boxname"] == hub_name.as_str())
        .count();
    assert_eq!(holders, 1, "two directory records named {hub_name}: {d}");
    assert_refused(&r, 409, "boxname_taken");
    assert_unchanged(&hub, &before);
}

#[test]
fn mirror_pushes_that_do_not_extend_a_live_nodes_log_are_refused() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "5"]);
    let token = token_secret(&created);
    let before = hub.snapshot();

    // Not enrolled here.
    let stranger = FakeNode::new("stranger");
    let r = post(
        hub.api_port,
        "/v1/identity/mirror",
        &stranger.mirror_bundle(),
    )
    .unwrap();
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.text());
    assert!(r.json()["error"].is_string(), "{}", r.text());
    // Not a log at all.
    let r = post(hub.api_port, "/v1/identity/mirror", b"nonsense").unwrap();
    assert_refused(&r, 400, "bad_request");
    assert_unchanged(&hub, &before);

    // A diverging history of an enrolled node.
    let seed = random32();
    let mut node = FakeNode::from_seed(seed, "mirrored");
    enrol_fake(&hub, &node, &token);
    node.rotate_wireguard();
    push_mirror(&hub, &node);
    let before = hub.snapshot();
    let mut fork = FakeNode::from_seed(seed, "mirrored");
    fork.rotate_wireguard();
    fork.rotate_wireguard();
    let r = post(hub.api_port, "/v1/identity/mirror", &fork.mirror_bundle()).unwrap();
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.text());
    assert!(r.json()["error"].is_string(), "{}", r.text());
    assert_unchanged(&hub, &before);

    // A revoked node.
    hub.cli(&["node", "revoke", node.state.node_id.as_str()])
        .ok();
    let before = hub.snapshot();
    node.rotate_wireguard();
    let r = post(hub.api_port, "/v1/identity/mirror", &node.mirror_bundle()).unwrap();
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.text());
    assert_unchanged(&hub, &before);
}

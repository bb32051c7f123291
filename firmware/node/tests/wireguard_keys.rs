//! One live node per WireGuard key, and proof of its private key: a real
//! hub on loopback refuses a node that names another live node's (or the
//! hub's) WireGuard key, at enrolment, at re-enrolment and at a mirror push,
//! and any new key whose private half the sender does not prove. Every
//! refusal leaves `node list`, `token list` and `directory show` unchanged.

mod harness;

use gondwana_core::hash::to_hex;
use gondwana_core::keys::{WireguardSecret, wg_key_to_base64};
use gondwana_core::token::TokenSecret;
use harness::mesh::{
    FakeNode, Hub, Mesh, Resp, Snapshot, assert_refused, fetch_nonce, post, random32, token_secret,
};
use serde_json::Value;

fn hub_with_token(m: &Mesh, args: &[&str]) -> (Hub, Value) {
    let mut hub = m.hub();
    hub.start();
    let created = hub.token(args, &hub.dir.join("enroll.toml"));
    (hub, created)
}

#[track_caller]
fn assert_unchanged(hub: &Hub, before: &Snapshot) {
    assert_eq!(
        &hub.snapshot(),
        before,
        "a refused request changed the hub's state"
    );
}

/// A fresh nonce, then `node`'s submission for it.
fn enrol(hub: &Hub, node: &FakeNode, token: &TokenSecret) -> Resp {
    let request = node.request(fetch_nonce(hub.enroll_port), token);
    post(
        hub.enroll_port,
        "/v1/enroll",
        &node.submission(&request, token),
    )
    .unwrap()
}

/// Live directory records naming `key`.
fn holders(hub: &Hub, key: &[u8; 32]) -> Vec<String> {
    let d = hub.directory();
    d["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["wireguard_public_key"] == wg_key_to_base64(key).as_str())
        .map(|n| n["node_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_new_identity_cannot_enrol_with_a_live_nodes_wireguard_key() {
    let m = Mesh::new();
    let (mut hub, created) = hub_with_token(&m, &["--uses", "5"]);
    let token = token_secret(&created);
    let token_id = created["token_id"].as_str().unwrap();
    let victim = FakeNode::new("victim");
    let r = enrol(&hub, &victim, &token);
    assert_eq!(r.status, 200, "{}", r.text());
    let victim_key = victim.state.wireguard_key;
    let before = hub.snapshot();
    assert_eq!(hub.token_uses(token_id), 1);

    // The victim's public key is in the directory; its secret is not. An
    // identity naming it proves with a secret of its own: refused.
    let thief = FakeNode::claiming(random32(), "thief", random32(), victim_key);
    let r = enrol(&hub, &thief, &token);
    let v = assert_refused(&r, 403, "bad_wireguard_proof");
    assert!(v["detail"].as_str().unwrap().contains("WireGuard"), "{v}");
    assert_unchanged(&hub, &before);

    // Even with the victim's secret (a copied key), the key stays the
    // victim's while the victim is live.
    let copier = FakeNode::claiming(random32(), "copier", victim.wireguard, victim_key);
    let r = enrol(&hub, &copier, &token);
    assert_refused(&r, 409, "wireguard_key_taken");
    assert_unchanged(&hub, &before);
    assert_eq!(holders(&hub, &victim_key), [victim.state.node_id.as_str()]);
    assert_eq!(hub.token_uses(token_id), 1, "no token use spent");

    // The hub's own key: without its secret, no proof; with it (read from
    // the stopped hub's state), taken.
    let hub_key = hub.wireguard_key();
    let r = enrol(
        &hub,
        &FakeNode::claiming(random32(), "hubkey", random32(), hub_key),
        &token,
    );
    assert_refused(&r, 403, "bad_wireguard_proof");
    hub.stop();
    let hub_identity = FakeNode::from_state_dir(&hub.state);
    hub.start();
    let r = enrol(
        &hub,
        &FakeNode::claiming(random32(), "hubkey", hub_identity.wireguard, hub_key),
        &token,
    );
    assert_refused(&r, 409, "wireguard_key_taken");
    assert_unchanged(&hub, &before);

    // Once the victim is revoked the key is free: a re-flashed box that
    // kept its WireGuard key enrols under a new identity.
    hub.cli(&["node", "revoke", victim.state.node_id.as_str()])
        .ok();
    let r = enrol(&hub, &copier, &token);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(holders(&hub, &victim_key), [copier.state.node_id.as_str()]);
}

#[test]
fn a_replace_token_for_the_holders_boxname_takes_over_its_key() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "5"]);
    let token = token_secret(&created);
    let old = FakeNode::new("box-r");
    assert_eq!(enrol(&hub, &old, &token).status, 200);
    let other = FakeNode::new("box-s");
    assert_eq!(enrol(&hub, &other, &token).status, 200);
    let key = old.state.wireguard_key;

    // A --replace token for *another* node's name does not free the key.
    let replace_other = hub.token(
        &["--uses", "1", "--boxname", "box-s", "--replace"],
        &hub.dir.join("s.toml"),
    );
    let before = hub.snapshot();
    let reflashed = FakeNode::claiming(random32(), "box-r", old.wireguard, key);
    let r = enrol(&hub, &reflashed, &token_secret(&replace_other));
    assert_refused(&r, 409, "wireguard_key_taken");
    assert_unchanged(&hub, &before);

    // One that names the holder's boxname revokes the holder first.
    let replace = hub.token(
        &["--uses", "1", "--boxname", "box-r", "--replace"],
        &hub.dir.join("r.toml"),
    );
    let r = enrol(&hub, &reflashed, &token_secret(&replace));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(holders(&hub, &key), [reflashed.state.node_id.as_str()]);
    let revoked = hub.directory()["revoked"].clone();
    assert_eq!(
        revoked[0]["node_id"],
        old.state.node_id.as_str(),
        "{revoked}"
    );
}

#[test]
fn an_enrolled_node_cannot_rotate_to_a_live_nodes_wireguard_key() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "1"]);
    let victim = FakeNode::new("victim");
    assert_eq!(enrol(&hub, &victim, &token_secret(&created)).status, 200);
    // The attacker's own single-use token, spent on its own enrolment.
    let own = hub.token(&["--uses", "1"], &hub.dir.join("own.toml"));
    let own_id = own["token_id"].as_str().unwrap();
    let own = token_secret(&own);
    let seed = random32();
    let mut attacker = FakeNode::from_seed(seed, "attacker");
    assert_eq!(enrol(&hub, &attacker, &own).status, 200);
    assert_eq!(hub.token_uses(own_id), 1);
    let hub_wg = hub.wireguard_key();
    let victim_key = victim.state.wireguard_key;
    let before = hub.snapshot();

    // It appends RotateWireguard(victim's key) to its own log, signed by
    // its own key, without the victim's secret.
    attacker.rotate_wireguard_to(random32(), victim_key);
    let r = enrol(&hub, &attacker, &own);
    assert_refused(&r, 403, "bad_wireguard_proof");
    let r = attacker.push_mirror(hub.api_port, Some(&hub_wg));
    assert_refused(&r, 403, "bad_wireguard_proof");
    let r = attacker.push_mirror(hub.api_port, None);
    let v = assert_refused(&r, 403, "bad_wireguard_proof");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("gondwana-wireguard-proof"),
        "{v}"
    );
    // A malformed proof header is a wrong proof.
    let r = harness::mesh::http_with(
        hub.api_port,
        "POST",
        "/v1/identity/mirror",
        &[("Gondwana-WireGuard-Proof", "not hex")],
        &attacker.mirror_bundle(),
    )
    .unwrap();
    assert_refused(&r, 403, "bad_wireguard_proof");
    assert_unchanged(&hub, &before);

    // With the victim's secret the proof holds, and the key is taken.
    attacker.wireguard = victim.wireguard;
    let r = enrol(&hub, &attacker, &own);
    assert_refused(&r, 409, "wireguard_key_taken");
    let r = attacker.push_mirror(hub.api_port, Some(&hub_wg));
    assert_refused(&r, 409, "wireguard_key_taken");
    assert_unchanged(&hub, &before);
    assert_eq!(holders(&hub, &victim_key), [victim.state.node_id.as_str()]);
    let shown = hub.node_show(attacker.state.node_id.as_str());
    assert_eq!(
        shown["identity_log_entries"], 1,
        "mirror unchanged: {shown}"
    );

    // A rotation to a key of its own, proved, is taken by the mirror...
    let mut honest = FakeNode::from_seed(seed, "attacker");
    let first = honest.rotate_wireguard();
    let r = honest.push_mirror(hub.api_port, Some(&hub_wg));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(holders(&hub, &first), [honest.state.node_id.as_str()]);
    // ...and one carried by a re-enrolment with the consumed token, proved
    // by the enrolment's proof.
    let second = honest.rotate_wireguard();
    let r = enrol(&hub, &honest, &own);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(holders(&hub, &second), [honest.state.node_id.as_str()]);
    assert_eq!(hub.token_uses(own_id), 1);
    // A push of the same log again (no key change) needs no proof.
    let r = honest.push_mirror(hub.api_port, None);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The hub's record of `node`'s log (length and tip) matches the node's own
/// log, and the audit log holds `rotations` key-rotation records for it.
#[track_caller]
fn assert_rotation_recorded(hub: &Hub, node: &FakeNode, rotations: usize) {
    let id = node.state.node_id.to_string();
    let shown = hub.node_show(&id);
    assert_eq!(shown["identity_log_entries"], node.state.len, "{shown}");
    assert_eq!(shown["identity_log_len"], node.state.len, "{shown}");
    assert_eq!(
        shown["identity_log_tip"],
        to_hex(&node.state.tip).as_str(),
        "{shown}"
    );
    assert_eq!(
        shown["wireguard_public_key"],
        wg_key_to_base64(&node.state.wireguard_key).as_str()
    );
    let audit = hub.cli(&["audit", "show", "--json"]).ok().json();
    let recorded = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "node.keys" && r["detail"].as_str().unwrap().contains(&id))
        .count();
    assert_eq!(recorded, rotations, "{audit}");
}

/// A rotation reaches the hub by a mirror push or by a re-enrolment; either
/// way the hub's record, mirror, directory and audit log end up the same.
#[test]
fn a_rotation_by_re_enrolment_is_applied_like_a_mirror_push() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "1"]);
    let token = token_secret(&created);
    let mut node = FakeNode::new("rotor");
    assert_eq!(enrol(&hub, &node, &token).status, 200);
    assert_rotation_recorded(&hub, &node, 0);

    let first = node.rotate_wireguard();
    let r = node.push_mirror(hub.api_port, Some(&hub.wireguard_key()));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(holders(&hub, &first), [node.state.node_id.as_str()]);
    assert_rotation_recorded(&hub, &node, 1);

    let second = node.rotate_wireguard();
    let r = enrol(&hub, &node, &token);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(holders(&hub, &second), [node.state.node_id.as_str()]);
    assert_rotation_recorded(&hub, &node, 2);
    hub.cli(&["audit", "verify"]).ok();
}

#[test]
fn the_nonce_answer_names_the_hubs_current_wireguard_key() {
    let m = Mesh::new();
    let (hub, created) = hub_with_token(&m, &["--uses", "2"]);
    let token = token_secret(&created);
    assert_eq!(
        fetch_nonce(hub.enroll_port).hub_wireguard,
        hub.wireguard_key()
    );
    // A proof made for another hub key (a substituted one) is refused.
    let node = FakeNode::new("misled");
    let mut nonce = fetch_nonce(hub.enroll_port);
    nonce.hub_wireguard = WireguardSecret::from_bytes(random32()).public_key();
    let before = hub.snapshot();
    let request = node.request(nonce, &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &node.submission(&request, &token),
    )
    .unwrap();
    assert_refused(&r, 403, "bad_wireguard_proof");
    assert_unchanged(&hub, &before);

    // After the hub rotates its WireGuard key, nonces name the new one and
    // proofs under it are accepted.
    hub.cli(&["identity", "rotate", "--wireguard"]).ok();
    let rotated = hub.wireguard_key();
    let nonce = fetch_nonce(hub.enroll_port);
    assert_eq!(nonce.hub_wireguard, rotated);
    let request = node.request(nonce, &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &node.submission(&request, &token),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

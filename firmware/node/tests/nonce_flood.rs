//! Nonce exhaustion, through real daemons: a flood of nonce requests from
//! many loopback source addresses, and forged submissions, leave the hub
//! (and a node's grant endpoint) storing nothing and serving a legitimate
//! client at once. The old nonce table (10,000 outstanding) answered 503
//! after such a flood, for up to 120 s.
//!
//! The grant test runs the node inside a network namespace it creates (its
//! firewall is real nf_tables): root needed, as on CI.

mod harness;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gondwana_core::grant::{self, GrantAction, GrantCommand};
use gondwana_core::keys::{SigningSecret, decode_hex32};
use harness::flood::{flood, flood_sources, request_from, source};
use harness::mesh::{
    FakeNode, HubNonce, Mesh, Node, assert_refused, metric, poll, random32, token_secret,
};
use harness::netns::Netns;

const PER_SOURCE: usize = 20; // the default per-source burst

#[test]
fn a_nonce_flood_from_many_sources_does_not_lock_out_enrolment() {
    let m = Mesh::new();
    // The default per-source limit (burst 20, 60/min): each source gets
    // its burst, as an attacker's would.
    let mut hub = m.hub_with("");
    hub.cli(&["firstboot"]).ok();
    let token_file = hub.dir.join("enroll.toml");
    let created = hub.token(&["--uses", "2"], &token_file);
    let token = token_secret(&created);
    hub.start();
    let port = hub.enroll_port;

    let sources = flood_sources();
    let counts = flood(port, "/v1/enroll/nonce", 1, sources, PER_SOURCE);
    assert_eq!(
        counts.get(&200).copied(),
        Some(sources as usize * PER_SOURCE),
        "every nonce request within the per-source burst is answered: {counts:?}"
    );
    // The per-source limiter is still in front: past its burst, 429.
    let statuses = harness::flood::pipelined_gets(source(4, 0), port, "/v1/enroll/nonce", 30);
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= PER_SOURCE && statuses.contains(&429),
        "{statuses:?}"
    );

    // Submissions that do not authenticate spend no nonce: an unknown token
    // (its own proof verifies), a nonce never issued, a forged signature.
    let before = hub.snapshot();
    let stranger = gondwana_core::token::TokenSecret::from_seed(random32());
    for i in 0..40 {
        let from = source(2, i);
        let nonce = nonce_from(from, port);
        let fake = FakeNode::new(&format!("fake-{i}"));
        let request = fake.request(nonce, &stranger);
        let unknown = fake.submission(&request, &stranger);
        for _ in 0..2 {
            // Twice with one nonce: it was not spent the first time.
            let r = request_from(from, port, "POST", "/v1/enroll", &unknown);
            assert_refused(&r, 403, "unknown_token");
        }
        let forged_nonce =
            fake.submission(&fake.request(nonce.with_nonce(random32()), &token), &token);
        let r = request_from(from, port, "POST", "/v1/enroll", &forged_nonce);
        assert_refused(&r, 403, "unknown_nonce");
        let impostor = SigningSecret::from_seed(random32());
        let request = fake.request(nonce, &token);
        let forged = fake.submission_signed_by(&impostor, &request, &token);
        let r = request_from(from, port, "POST", "/v1/enroll", &forged);
        assert_refused(&r, 400, "bad_request");
    }
    assert_eq!(hub.snapshot(), before, "refusals changed the hub's state");
    assert_eq!(
        metric(&hub.metrics(), "gondwana_enrol_nonces_spent"),
        Some(0.0),
        "nothing unauthenticated is remembered"
    );

    // A legitimate client from a fresh source is served at once ...
    let fresh = FakeNode::new("fresh");
    let request = fresh.request(nonce_from(source(3, 0), port), &token);
    let r = request_from(
        source(3, 0),
        port,
        "POST",
        "/v1/enroll",
        &fresh.submission(&request, &token),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    fresh.open_answer(&r.body, &hub.key(), &request);
    // ... and so is a real node daemon (from 127.0.0.1).
    let mut node = m.node("legit", &hub);
    node.set_enroll(&std::fs::read_to_string(&token_file).unwrap());
    node.start();
    node.wait_enrolled(Duration::from_secs(30));
    assert_eq!(hub.node_list().len(), 2);
    assert_eq!(
        metric(&hub.metrics(), "gondwana_enrol_nonces_spent"),
        Some(2.0),
        "the two authenticated enrolments"
    );
}

fn nonce_from(from: std::net::Ipv4Addr, port: u16) -> HubNonce {
    let r = request_from(from, port, "GET", "/v1/enroll/nonce", b"");
    assert_eq!(r.status, 200, "nonce: {}", r.text());
    let v = r.json();
    let hex = |field: &str| decode_hex32(v[field].as_str().unwrap()).unwrap();
    HubNonce {
        nonce: hex("nonce"),
        hub_wireguard: hex("hub_wireguard_key"),
    }
}

// ---- grant commands on a node -------------------------------------------

/// `gondwana run` inside the namespace; SIGTERM (by its pid) on drop.
struct NsDaemon(Child);

impl NsDaemon {
    fn start(ns: &Netns, node: &Node) -> NsDaemon {
        let log = std::fs::File::create(node.log()).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0, harness::mesh::bin()])
            .arg("--state-dir")
            .arg(&node.state)
            .arg("--config")
            .arg(&node.config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        let daemon = NsDaemon(child);
        poll(
            Duration::from_secs(30),
            "the node in the namespace to serve its admin socket",
            || (node.cli(&["grant", "list", "--json"]).code == Some(0)).then_some(()),
            || node.log_text(),
        );
        daemon
    }
}

impl Drop for NsDaemon {
    fn drop(&mut self) {
        // `ip netns exec` execs the daemon: this pid is gondwana's.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn a_grant_nonce_flood_does_not_lock_out_the_hub() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.cli(&["firstboot"]).ok();
    let token_file = hub.dir.join("enroll.toml");
    hub.token(&["--uses", "1"], &token_file);
    hub.start();
    let mut node = m.node("granted", &hub);
    node.set_enroll(&std::fs::read_to_string(&token_file).unwrap());
    node.start();
    node.wait_enrolled(Duration::from_secs(30));
    node.stop();
    hub.stop();
    // The hub's signing key, as `grant add --node` would use it.
    let hub_signing = FakeNode::from_state_dir(&hub.state).signing;

    // The enrolled node again, now with its firewall on, in a namespace.
    let ns = Netns::new("gwnonce");
    let table = format!("gwnonce{}", std::process::id());
    node.write_config(
        1,
        &format!(
            "\n[firewall]\nenabled = true\ntable = \"{table}\"\n\
             [mesh]\ninterface = \"gwn{}\"\n",
            std::process::id()
        ),
    );
    // A firewall needs a data plane. The kernel backend: where the module
    // is missing it only fails to bring the tunnel up (irrelevant here) and
    // starts no userspace device (whose socket path is global).
    let text = std::fs::read_to_string(&node.config).unwrap();
    std::fs::write(
        &node.config,
        text.replace("backend = \"none\"", "backend = \"kernel\""),
    )
    .unwrap();
    let _daemon = NsDaemon::start(&ns, &node);
    let port = node.api_port;

    let sources = flood_sources();
    let (counts, applied, replay, forged, spent) = ns.run(|| {
        let counts = flood(port, "/v1/grants/nonce", 1, sources, PER_SOURCE);
        let nonce = || {
            let r = request_from(source(3, 0), port, "GET", "/v1/grants/nonce", b"");
            assert_eq!(r.status, 200, "grant nonce after the flood: {}", r.text());
            decode_hex32(r.json()["nonce"].as_str().unwrap()).unwrap()
        };
        let command = |nonce| GrantCommand {
            version: grant::VERSION,
            nonce,
            action: GrantAction::Add { timeout_secs: None },
            ip: [10, 10, 0, 7],
            port: 22,
        };
        // Signed by someone else: refused, and its nonce stays unspent ...
        let n = nonce();
        let impostor = SigningSecret::from_seed(random32());
        let bad = grant::seal_command(&command(n), &impostor).unwrap();
        let forged = request_from(source(3, 1), port, "POST", "/v1/grants", &bad);
        // ... so the hub's command with that nonce goes through, once.
        let good = grant::seal_command(&command(n), &hub_signing).unwrap();
        let applied = request_from(source(3, 2), port, "POST", "/v1/grants", &good);
        let replay = request_from(source(3, 3), port, "POST", "/v1/grants", &good);
        let metrics = request_from(source(3, 4), port, "GET", "/metrics", b"").text();
        (
            counts,
            applied,
            replay,
            forged,
            metric(&metrics, "gondwana_grant_nonces_spent"),
        )
    });
    assert_eq!(
        counts.get(&200).copied(),
        Some(sources as usize * PER_SOURCE),
        "{counts:?}"
    );
    assert_refused(&forged, 403, "bad_signature");
    assert_eq!(applied.status, 200, "{}", applied.text());
    assert_eq!(applied.json()["ip"], "10.10.0.7");
    assert_refused(&replay, 403, "unknown_nonce");
    assert_eq!(spent, Some(1.0), "only the hub's command was remembered");
    let set = Command::new("ip")
        .args([
            "netns", "exec", &ns.0, "nft", "list", "set", "inet", &table, "grants",
        ])
        .output()
        .unwrap();
    let set = String::from_utf8_lossy(&set.stdout);
    assert!(set.contains("10.10.0.7 . 22"), "{set}");
}

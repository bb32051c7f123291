//! Enrolment under failure: hubs killed mid-enrolment or restarted, nodes
//! rebooted with the hub down or started before it, config reloads.

mod harness;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::mesh::{Hub, Mesh, Node, get, mesh_ip, poll, wait_until};
use serde_json::Value;

const ENROL_TIMEOUT: Duration = Duration::from_secs(60);

/// A seed from `GONDWANA_TEST_SEED` or the clock; printed so a failing run
/// can be replayed.
fn seed(label: &str) -> u64 {
    let seed = std::env::var("GONDWANA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{label}: GONDWANA_TEST_SEED={seed}");
    seed
}

/// splitmix64
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn enrolled_hub_and_node(m: &Mesh, name: &str) -> (Hub, Node, Value) {
    let mut hub = m.hub();
    hub.start();
    let file = hub.dir.join(format!("{name}.toml"));
    hub.token(&["--uses", "1"], &file);
    let mut n = m.node(name, &hub);
    n.set_enroll(&std::fs::read_to_string(&file).unwrap());
    n.start();
    let s = n.wait_enrolled(ENROL_TIMEOUT);
    (hub, n, s)
}

#[test]
fn hub_killed_during_enrolments_leaves_one_address_per_node() {
    const N: usize = 5;
    let mut rng = seed("hub_killed_during_enrolments");
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let file = hub.dir.join("enroll.toml");
    // Exactly N uses: a node that consumed two would leave another without.
    let created = hub.token(&["--uses", &N.to_string()], &file);
    let enroll = std::fs::read_to_string(&file).unwrap();
    let mut nodes: Vec<Node> = (0..N).map(|i| m.node(&format!("k{i}"), &hub)).collect();
    for n in &mut nodes {
        n.set_enroll(&enroll);
        n.spawn();
    }
    // Three power cuts of the hub at random moments while nodes enrol (the
    // five first attempts are over within ~100 ms here; retries follow
    // within 0.1–0.4 s); each time it comes back on the same state and ports.
    for round in 0..3 {
        let delay = Duration::from_millis(next(&mut rng) % 120);
        std::thread::sleep(delay);
        let enrolled = nodes
            .iter()
            .filter(|n| n.enrol_state().as_deref() == Some("enrolled"))
            .count();
        eprintln!("round {round}: SIGKILL the hub after {delay:?} ({enrolled}/{N} enrolled)");
        hub.kill();
        std::thread::sleep(Duration::from_millis(next(&mut rng) % 200));
        hub.start();
    }

    let statuses: Vec<Value> = nodes
        .iter()
        .map(|n| n.wait_enrolled(ENROL_TIMEOUT))
        .collect();
    let ips: Vec<Ipv4Addr> = statuses.iter().map(mesh_ip).collect();
    let distinct: BTreeSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), N, "{ips:?}");

    let listed = hub.node_list();
    assert_eq!(listed.len(), N, "duplicates on the hub: {listed:#?}");
    let ids: BTreeSet<String> = nodes.iter().map(Node::node_id).collect();
    let listed_ids: BTreeSet<String> = listed
        .iter()
        .map(|n| n["node_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, listed_ids);
    for (n, ip) in nodes.iter().zip(&ips) {
        let id = n.node_id();
        let entry = listed.iter().find(|e| e["node_id"] == id.as_str()).unwrap();
        assert_eq!(entry["mesh_ip"], ip.to_string(), "{} {entry}", n.name);
        assert_eq!(entry["revoked"], false);
    }
    assert_eq!(
        hub.token_uses(created["token_id"].as_str().unwrap()),
        N as u64
    );
    // The directory has the hub and each node exactly once, no revocation.
    let d = hub.directory();
    assert_eq!(d["nodes"].as_array().unwrap().len(), N + 1, "{d}");
    assert_eq!(d["revoked"].as_array().unwrap().len(), 0, "{d}");
    assert_eq!(d["entries"], N as u64 + 1, "one record per enrolment: {d}");

    hub.stop();
    hub.cli(&["directory", "verify"]).ok();
    hub.cli(&["audit", "verify"]).ok();
}

#[test]
fn hub_restart_keeps_its_state() {
    let m = Mesh::new();
    let (mut hub, mut n, s) = enrolled_hub_and_node(&m, "steady");
    let ip = mesh_ip(&s);
    // A second token, a node enrolled by hand and then revoked: the state
    // holds every kind of record.
    let spare = hub.token(&["--uses", "4", "--ttl", "1h"], &hub.dir.join("spare.toml"));
    let token = harness::mesh::token_secret(&spare);
    let gone = harness::mesh::FakeNode::new("gone");
    let request = gone.request(harness::mesh::fetch_nonce(hub.enroll_port), &token);
    let r = harness::mesh::post(
        hub.enroll_port,
        "/v1/enroll",
        &gone.submission(&request, &token),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    hub.cli(&["node", "revoke", gone.state.node_id.as_str()])
        .ok();
    assert_eq!(hub.directory()["revoked"].as_array().unwrap().len(), 1);
    let before = hub.snapshot();
    let status_before = hub.cli(&["status", "--json"]).ok().json();

    hub.stop();
    assert!(
        !hub.dir.join("admin.sock").exists(),
        "a clean stop removes the admin socket"
    );
    hub.start();
    assert_eq!(hub.snapshot(), before);
    let status_after = hub.cli(&["status", "--json"]).ok().json();
    assert_eq!(status_after["node_id"], status_before["node_id"]);
    assert_eq!(status_after["directory"], status_before["directory"]);
    assert_eq!(status_after["hub"], status_before["hub"]);
    // The node keeps pulling from the restarted hub.
    assert_eq!(mesh_ip(&n.status()), ip);
    n.stop();

    hub.stop();
    let out = hub.cli(&["directory", "verify"]);
    out.ok();
    assert!(out.stdout().contains("2 nodes"), "{}", out.describe());
    hub.cli(&["audit", "verify"]).ok();
    // Offline reads agree with what the daemon said.
    assert_eq!(hub.snapshot(), before);
}

#[test]
fn node_reboot_with_the_hub_down_stays_enrolled() {
    let m = Mesh::new();
    let (mut hub, mut n, s) = enrolled_hub_and_node(&m, "rebooted");
    let ip = mesh_ip(&s);
    poll(
        Duration::from_secs(10),
        "the node to hold the directory",
        || n.directory_http().filter(|d| d["entries"] == 2),
        || format!("{:?}", n.directory_http()),
    );

    hub.stop();
    n.stop();
    n.start();
    let s = n.status();
    assert_eq!(s["enrolment"]["state"], "enrolled", "{s}");
    assert_eq!(mesh_ip(&s), ip);
    assert_eq!(s["directory"]["entries"], 2, "{s}");
    assert_eq!(get(n.api_port, "/v1/health").unwrap().status, 200);
    assert_eq!(get(n.api_port, "/v1/ready").unwrap().status, 200);
    // The directory is served from the node's own copy.
    let d = n.directory_http().expect("the node serves its directory");
    assert_eq!(d["nodes"].as_array().unwrap().len(), 2, "{d}");
    // It tries the hub, fails, and keeps running.
    assert!(
        wait_until(Duration::from_secs(5), || n
            .log_text()
            .contains("directory pull from")),
        "{}",
        n.log_text()
    );
    assert!(n.running());
    assert_eq!(n.enrol_state().as_deref(), Some("enrolled"));

    n.stop();
    let out = n.cli(&["directory", "verify"]);
    out.ok();
    assert!(out.stdout().contains("2 nodes"), "{}", out.describe());
    n.cli(&["audit", "verify"]).ok();
    let s = n.status();
    assert_eq!(mesh_ip(&s), ip, "{s}");

    // A rotation with neither daemon running: done, with a warning; the
    // hub's mirror catches up once both run again.
    let out = n.cli(&["identity", "rotate", "--wireguard"]);
    out.ok();
    assert!(
        out.stderr().contains("warning") && out.stderr().contains("mirror"),
        "{}",
        out.describe()
    );
    let id = s["node_id"].as_str().unwrap().to_string();
    n.start();
    hub.start();
    poll(
        Duration::from_secs(15),
        "the hub's mirror to catch up",
        || {
            n.status_http()
                .filter(|s| s["identity"]["mirror_behind"] == 0)
        },
        || format!("{:?}\n{}", n.status_http(), n.log_text()),
    );
    assert_eq!(hub.node_show(&id)["identity_log_entries"], 2);
}

#[test]
fn node_started_before_its_hub_backs_off_then_enrols() {
    let m = Mesh::new();
    let mut hub = m.hub();
    // The hub exists (identity, token) but is not running.
    hub.cli(&["firstboot"]).ok();
    let file = hub.dir.join("enroll.toml");
    let created = hub.token(&["--uses", "1"], &file);

    let mut n = m.node("early", &hub);
    n.set_enroll(&std::fs::read_to_string(&file).unwrap());
    n.start();
    let attempts = |s: &Value| s["enrolment"]["attempts"].as_u64().unwrap_or(0);
    let first = poll(
        Duration::from_secs(10),
        "a failed attempt",
        || {
            n.status_http()
                .filter(|s| s["enrolment"]["state"] == "enrolling" && attempts(s) >= 2)
        },
        || format!("{:?}", n.status_http()),
    );
    let err = first["enrolment"]["last_error"].as_str().unwrap_or("");
    assert!(!err.is_empty(), "{first}");
    assert!(
        first["enrolment"]["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("enroll.toml")),
        "{first}"
    );
    // The backoff's growth, cap and jitter bounds are checked on a virtual
    // clock in `gondwana_core::node_enrol`; here only that the daemon
    // keeps retrying, without a busy loop.
    std::thread::sleep(Duration::from_secs(1));
    let later = n.status();
    assert_eq!(later["enrolment"]["state"], "enrolling", "{later}");
    assert!(attempts(&later) > attempts(&first), "{first}\n{later}");
    // Backoff (0.2 s doubling to a 2 s cap, jittered to at least half): a
    // handful of attempts in ~1.5 s, not a busy loop.
    assert!(attempts(&later) <= 12, "no backoff? {later}");
    // The API keeps serving meanwhile.
    assert_eq!(get(n.api_port, "/v1/health").unwrap().status, 200);
    assert!(n.running());

    hub.start();
    let s = n.wait_enrolled(ENROL_TIMEOUT);
    assert_eq!(
        hub.node_list()[0]["mesh_ip"],
        s["enrolment"]["mesh_ip"],
        "{s}"
    );
    assert_eq!(hub.token_uses(created["token_id"].as_str().unwrap()), 1);
}

#[test]
fn sighup_reloads_the_config_and_keeps_running() {
    let m = Mesh::new();
    let (hub, mut n, _) = enrolled_hub_and_node(&m, "reloaded");
    let pid = n.daemon.as_ref().unwrap().pid();
    // Another box, learnt while the node pulls every second.
    hub.token(&["--uses", "1"], &hub.dir.join("extra.toml"));
    let mut other = m.node("other", &hub);
    other.set_enroll(&std::fs::read_to_string(hub.dir.join("extra.toml")).unwrap());
    other.start();
    other.wait_enrolled(ENROL_TIMEOUT);
    let other_id = other.node_id();
    let hub_entries = hub.directory()["entries"].clone();
    assert!(wait_until(
        Duration::from_secs(10),
        || n.status()["directory"]["entries"] == hub_entries
    ));

    // A bad config is refused and the running one kept.
    std::fs::write(&n.config, "[enroll]\ndirectory_pull_secs = \"soon\"\n").unwrap();
    n.daemon.as_ref().unwrap().signal("HUP");
    assert!(
        wait_until(Duration::from_secs(5), || n
            .log_text()
            .contains("keeping the running config")),
        "{}",
        n.log_text()
    );
    assert!(n.running());
    assert_eq!(get(n.api_port, "/v1/health").unwrap().status, 200);

    // A good one is taken: pull every hour from now on.
    n.write_config(3600, "");
    n.daemon.as_ref().unwrap().signal("HUP");
    assert!(
        wait_until(Duration::from_secs(5), || n
            .log_text()
            .contains("SIGHUP: reloaded")),
        "{}",
        n.log_text()
    );
    assert!(n.running());
    assert_eq!(n.daemon.as_ref().unwrap().pid(), pid);
    assert_eq!(get(n.api_port, "/v1/health").unwrap().status, 200);
    assert_eq!(n.enrol_state().as_deref(), Some("enrolled"));

    // The pull already scheduled (≤ 1 s) happens; after it the node waits
    // an hour, so a new directory entry on the hub does not reach it. The
    // entry is a revocation: a newly enrolled box would be named in the
    // candidate snapshot and pulled for early (docs/paths.md, "Candidates").
    std::thread::sleep(Duration::from_millis(2500));
    let entries = n.status()["directory"]["entries"].clone();
    hub.cli(&["node", "revoke", &other_id, "--reason", "test"])
        .ok();
    let hub_entries = hub.directory()["entries"].clone();
    assert_ne!(hub_entries, entries);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        n.status()["directory"]["entries"],
        entries,
        "the node pulled although directory_pull_secs is now 3600"
    );
    assert!(n.running());
}

#[test]
fn sighup_with_a_changed_role_keeps_the_running_role() {
    let m = Mesh::new();
    let (_hub, mut n, s) = enrolled_hub_and_node(&m, "turncoat");
    let ip = mesh_ip(&s);
    let original = std::fs::read_to_string(&n.config).unwrap();
    std::fs::write(
        &n.config,
        format!("role = \"hub\"\n{original}[hub]\npublic_endpoint = \"127.0.0.1:51999\"\n"),
    )
    .unwrap();
    n.daemon.as_ref().unwrap().signal("HUP");
    assert!(
        wait_until(Duration::from_secs(5), || n
            .log_text()
            .contains("take effect at the next start")),
        "{}",
        n.log_text()
    );
    assert!(n.running());
    // Until a restart it is the node it was started as.
    let s = n.status();
    assert_eq!(s["role"], "node", "{s}");
    assert_eq!(s["enrolment"]["state"], "enrolled", "{s}");
    assert_eq!(mesh_ip(&s), ip);
    // ... and a node daemon does not start issuing tokens from its store.
    let out = n.cli(&["token", "create", "--uses", "1", "--json"]);
    assert_ne!(out.code, Some(0), "{}", out.describe());
}

#[test]
fn directory_travels_offline_as_a_bundle() {
    let m = Mesh::new();
    let (mut hub, mut n, _) = enrolled_hub_and_node(&m, "offline");
    poll(
        Duration::from_secs(10),
        "the node to hold the directory",
        || n.directory_http().filter(|d| d["entries"] == 2),
        || format!("{:?}", n.directory_http()),
    );
    n.stop();
    // The mesh grows while the node is off.
    let created = hub.token(&["--uses", "3"], &hub.dir.join("more.toml"));
    let token = harness::mesh::token_secret(&created);
    for i in 0..3 {
        let fake = harness::mesh::FakeNode::new(&format!("later-{i}"));
        let request = fake.request(harness::mesh::fetch_nonce(hub.enroll_port), &token);
        let r = harness::mesh::post(
            hub.enroll_port,
            "/v1/enroll",
            &fake.submission(&request, &token),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let hub_dir = hub.directory();
    assert_eq!(hub_dir["entries"], 5);
    hub.stop();
    let bundle = hub.dir.join("directory.bundle");
    let bundle_s = bundle.display().to_string();
    hub.cli(&["directory", "export", "--out", &bundle_s]).ok();

    // A tampered copy is refused whole and changes nothing.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x01;
    let tampered = hub.dir.join("tampered.bundle");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = n.cli(&["directory", "import", &tampered.display().to_string()]);
    out.expect_code(6);
    assert_eq!(n.status()["directory"]["entries"], 2);

    // A bundle signed by another hub is refused too.
    let m2 = Mesh::new();
    let mut other = m2.hub();
    // (A hub's directory starts when its daemon first runs.)
    other.start();
    other.stop();
    let foreign = m2.root().join("foreign.bundle");
    other
        .cli(&[
            "directory",
            "export",
            "--out",
            &foreign.display().to_string(),
        ])
        .ok();
    n.cli(&["directory", "import", &foreign.display().to_string()])
        .expect_code(6);

    // The real one brings the node up to date, offline.
    let out = n.cli(&["directory", "import", &bundle_s]);
    out.ok();
    assert!(
        out.stdout().contains("imported 3 new"),
        "{}",
        out.describe()
    );
    let d = n.directory();
    assert_eq!(d["entries"], hub_dir["entries"]);
    assert_eq!(d["tip"], hub_dir["tip"]);
    assert_eq!(d["nodes"], hub_dir["nodes"]);
    n.cli(&["directory", "verify"]).ok();
    // Importing again adds nothing.
    let out = n.cli(&["directory", "import", &bundle_s]);
    out.ok();
    assert!(
        out.stdout().contains("imported 0 new"),
        "{}",
        out.describe()
    );
}

#[test]
fn malformed_enroll_toml_is_reported_until_fixed() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let file = hub.dir.join("e.toml");
    hub.token(&["--uses", "1"], &file);
    let good = std::fs::read_to_string(&file).unwrap();

    let mut n = m.node("typo", &hub);
    // (A bad file is re-read every retry_max_secs, 2 s here.)
    n.set_enroll(&good.replace("hub_key", "hub_kee"));
    n.start();
    let s = poll(
        Duration::from_secs(10),
        "the bad enroll.toml to be reported",
        || {
            n.status_http().filter(|s| {
                s["enrolment"]["state"] == "enrolling"
                    && s["enrolment"]["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("enroll.toml"))
            })
        },
        || format!("{:?}", n.status_http()),
    );
    assert!(
        s["enrolment"]["last_error"]
            .as_str()
            .unwrap()
            .contains("hub_kee"),
        "{s}"
    );
    assert!(n.running());
    assert!(hub.node_list().is_empty());

    n.set_enroll(&good);
    n.wait_enrolled(ENROL_TIMEOUT);
    assert_eq!(hub.node_list().len(), 1);
}

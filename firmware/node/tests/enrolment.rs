//! Enrolment end to end: a real hub and real nodes (`gondwana run`) on
//! loopback, each with its own redb state, talking HTTP.

mod harness;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use harness::mesh::{FakeNode, Mesh, Node, fetch_nonce, mesh_ip, metric, poll, post, token_secret};
use serde_json::Value;

const ENROL_TIMEOUT: Duration = Duration::from_secs(60);

fn is_node_address(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[..3] == [10, 10, 0] && o[3] != 0 && o[3] != 1 && o[3] != 255
}

fn node_ids(directory: &Value) -> BTreeSet<String> {
    directory["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn twenty_nodes_enrol_concurrently_and_replicate_the_directory() {
    const N: usize = 20;
    let m = Mesh::new();
    let mut hub = m.hub();
    // Provision the hub and create the token offline (no daemon: the CLI
    // works on the store), then start the hub and all nodes at once.
    hub.cli(&["firstboot"]).ok();
    let token_file = hub.dir.join("enroll.toml");
    let created = hub.token(&["--uses", &N.to_string()], &token_file);
    let token_id = created["token_id"].as_str().unwrap().to_string();
    let enroll = std::fs::read_to_string(&token_file).unwrap();

    let mut nodes: Vec<Node> = (0..N).map(|i| m.node(&format!("n{i:02}"), &hub)).collect();
    for n in &nodes {
        n.set_enroll(&enroll);
    }
    hub.spawn();
    for n in &mut nodes {
        n.spawn();
    }
    hub.wait_up();
    for n in &mut nodes {
        n.wait_up();
    }

    let statuses: Vec<Value> = nodes
        .iter()
        .map(|n| n.wait_enrolled(ENROL_TIMEOUT))
        .collect();
    let ips: Vec<Ipv4Addr> = statuses.iter().map(mesh_ip).collect();
    let distinct: BTreeSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), N, "mesh addresses collide: {ips:?}");
    for ip in &ips {
        assert!(
            is_node_address(*ip),
            "{ip} is not a node address of 10.10.0.0/24"
        );
    }

    let listed = hub.node_list();
    assert_eq!(listed.len(), N, "{listed:#?}");
    let listed_ips: BTreeSet<Ipv4Addr> = listed
        .iter()
        .map(|n| n["mesh_ip"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed_ips, ips.iter().copied().collect());
    assert_eq!(hub.token_uses(&token_id), N as u64);

    // Every node converges on the hub's directory: hub + 20 nodes.
    let hub_dir = hub.directory();
    let want = node_ids(&hub_dir);
    assert_eq!(want.len(), N + 1, "{hub_dir}");
    for n in &nodes {
        poll(
            Duration::from_secs(20),
            &format!("{}'s directory to list {} nodes", n.name, N + 1),
            || {
                n.directory_http()
                    .filter(|d| node_ids(d) == want && d["tip"] == hub_dir["tip"])
            },
            || format!("{:?}", n.directory_http()),
        );
        let d = n.directory();
        assert_eq!(node_ids(&d), want, "{} directory show: {d}", n.name);
        assert_eq!(d["entries"], hub_dir["entries"]);
        assert_eq!(n.status()["directory"]["entries"], hub_dir["entries"]);
    }

    // `directory verify` reads the store itself, so it runs on stopped nodes.
    for n in &mut nodes {
        n.stop();
    }
    for n in &nodes {
        let out = n.cli(&["directory", "verify"]);
        out.ok();
        assert!(
            out.stdout().contains(&format!("{} nodes", N + 1)),
            "{}",
            out.describe()
        );
    }
}

#[test]
fn token_use_counting_is_atomic() {
    const N: usize = 10;
    const USES: usize = 3;
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let token_file = hub.dir.join("enroll.toml");
    let created = hub.token(&["--uses", &USES.to_string()], &token_file);
    let token_id = created["token_id"].as_str().unwrap().to_string();
    let enroll = std::fs::read_to_string(&token_file).unwrap();

    let mut nodes: Vec<Node> = (0..N).map(|i| m.node(&format!("n{i}"), &hub)).collect();
    for n in &mut nodes {
        n.set_enroll(&enroll);
        n.spawn();
    }
    for n in &mut nodes {
        n.wait_up();
    }

    // Wait until every node has either enrolled or been told the token is
    // used up.
    let settled = |nodes: &[Node]| {
        let statuses: Vec<Value> = nodes.iter().filter_map(Node::status_http).collect();
        let enrolled = statuses
            .iter()
            .filter(|s| s["enrolment"]["state"] == "enrolled")
            .count();
        let exhausted = statuses
            .iter()
            .filter(|s| {
                s["enrolment"]["state"] == "enrolling"
                    && s["enrolment"]["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("token_exhausted"))
            })
            .count();
        (statuses.len() == N && enrolled + exhausted == N).then_some(enrolled)
    };
    let enrolled = poll(
        ENROL_TIMEOUT,
        "every node to enrol or see token_exhausted",
        || settled(&nodes),
        || {
            nodes
                .iter()
                .map(|n| format!("{}: {:?}\n", n.name, n.status_http()))
                .collect()
        },
    );
    assert_eq!(enrolled, USES);
    // The losers keep retrying (backoff) and keep losing.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(settled(&nodes), Some(USES));
    for n in &nodes {
        let s = n.status();
        match s["enrolment"]["state"].as_str() {
            Some("enrolled") => {}
            Some("enrolling") => {
                assert!(s["enrolment"]["attempts"].as_u64().unwrap() >= 1, "{s}");
                assert!(
                    s["enrolment"]["last_error"]
                        .as_str()
                        .unwrap()
                        .contains("token_exhausted"),
                    "{s}"
                );
            }
            other => panic!("{}: unexpected state {other:?}: {s}", n.name),
        }
    }
    let tokens = hub.token_list();
    let t = tokens
        .iter()
        .find(|t| t["id"] == token_id.as_str())
        .unwrap();
    assert_eq!(t["uses"], USES as u64, "{t}");
    assert_eq!(t["max_uses"], USES as u64, "{t}");
    assert_eq!(hub.node_list().len(), USES);
    let failures = hub.metrics();
    assert!(
        failures.contains("gondwana_enrolment_failures_total{reason=\"token_exhausted\"}"),
        "{failures}"
    );
}

#[test]
fn manual_enrol_with_and_without_a_daemon() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let key = gondwana_core::hash::to_hex(&hub.key());

    // No daemon: the CLI provisions the box and enrols it itself.
    let created = hub.token(&["--uses", "3"], &hub.dir.join("unused.toml"));
    let token = created["token"].as_str().unwrap();
    let mut a = m.node("manual-a", &hub);
    let out = a.cli(&[
        "enroll",
        "--json",
        "--hub",
        &hub.enroll_url(),
        "--hub-key",
        &key,
        "--token",
        token,
        "--boxname",
        "by-hand",
    ]);
    out.ok();
    let v = out.json();
    assert_eq!(v["state"], "enrolled", "{v}");
    assert_eq!(v["boxname"], "by-hand", "{v}");
    let ip: Ipv4Addr = v["mesh_ip"].as_str().unwrap().parse().unwrap();
    assert!(is_node_address(ip), "{v}");
    let s = a.status();
    assert_eq!(s["daemon"]["running"], false, "{s}");
    assert_eq!(s["enrolment"]["state"], "enrolled", "{s}");
    assert_eq!(mesh_ip(&s), ip);
    assert_eq!(s["directory"]["entries"], 2, "hub + this node: {s}");

    // A second `enroll` is a no-op that says so.
    let again = a.cli(&[
        "enroll",
        "--json",
        "--hub",
        &hub.enroll_url(),
        "--hub-key",
        &key,
        "--token",
        token,
    ]);
    assert_eq!(again.ok().json()["already_enrolled"], true);
    // Without --json: one line for people.
    let human = a.cli(&[
        "enroll",
        "--hub",
        &hub.enroll_url(),
        "--hub-key",
        &key,
        "--token",
        token,
    ]);
    assert!(
        human
            .ok()
            .stdout()
            .starts_with("already enrolled (nothing changed): by-hand as "),
        "{}",
        human.describe()
    );
    assert_eq!(hub.token_uses(created["token_id"].as_str().unwrap()), 1);

    // Its daemon starts enrolled and pulls the directory.
    a.start();
    assert_eq!(mesh_ip(&a.wait_enrolled(ENROL_TIMEOUT)), ip);

    // Through a running, unenrolled daemon (no enroll.toml anywhere).
    let mut b = m.node("manual-b", &hub);
    b.start();
    let s = b.status();
    assert_eq!(s["enrolment"]["state"], "unenrolled", "{s}");
    let out = b.cli(&[
        "enroll",
        "--json",
        "--hub",
        &hub.enroll_url(),
        "--hub-key",
        &key,
        "--token",
        token,
    ]);
    out.ok();
    let v = out.json();
    assert_eq!(v["state"], "enrolled", "{v}");
    let ip_b: Ipv4Addr = v["mesh_ip"].as_str().unwrap().parse().unwrap();
    assert_ne!(ip_b, ip);
    let s = b.status();
    assert_eq!(s["daemon"]["running"], true, "{s}");
    assert_eq!(s["enrolment"]["state"], "enrolled", "{s}");
    assert_eq!(mesh_ip(&s), ip_b);
    assert_eq!(hub.node_list().len(), 2);

    // A wrong pin given by hand fails loudly and enrols nothing locally.
    let c = m.node("manual-c", &hub);
    let wrong = gondwana_core::hash::to_hex(&harness::mesh::random32());
    let out = c.cli(&[
        "enroll",
        "--json",
        "--hub",
        &hub.enroll_url(),
        "--hub-key",
        &wrong,
        "--token",
        token,
    ]);
    assert_ne!(out.code, Some(0), "{}", out.describe());
    assert!(out.stderr().contains("pinned"), "{}", out.describe());
    assert_eq!(c.status()["enrolment"]["state"], "unenrolled");
}

#[test]
fn enrols_from_the_kernel_command_line() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let scratch = hub.dir.join("cmdline-enroll.toml");
    hub.token(
        &["--uses", "1", "--tag", "lab", "--tag", "rack-3"],
        &scratch,
    );
    let toml = std::fs::read_to_string(&scratch).unwrap();

    let mut n = m.node("n-cmdline", &hub);
    assert!(!n.enroll_file.exists());
    std::fs::write(
        &n.cmdline,
        format!(
            "BOOT_IMAGE=/vmlinuz console=ttyS0,115200 gondwana.enroll={} quiet\n",
            URL_SAFE_NO_PAD.encode(toml.as_bytes())
        ),
    )
    .unwrap();
    n.start();
    let s = n.wait_enrolled(ENROL_TIMEOUT);
    assert!(is_node_address(mesh_ip(&s)), "{s}");
    // (The store says `enrolled` a moment before the daemon logs it.)
    assert!(
        harness::mesh::wait_until(Duration::from_secs(5), || n
            .log_text()
            .contains("via kernel command line")),
        "{}",
        n.log_text()
    );
    let listed = hub.node_list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["tags"], serde_json::json!(["lab", "rack-3"]));
}

#[test]
fn re_enrolment_same_key_keeps_address_new_key_needs_replace() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let hub_key = hub.key();

    // (a) box-a enrols with a single-use token fixing its name.
    let t1 = hub.token(
        &["--uses", "1", "--boxname", "box-a"],
        &hub.dir.join("t1.toml"),
    );
    let t1_id = t1["token_id"].as_str().unwrap();
    let mut a = m.node("a", &hub);
    a.set_enroll(&std::fs::read_to_string(hub.dir.join("t1.toml")).unwrap());
    a.start();
    let s = a.wait_enrolled(ENROL_TIMEOUT);
    let ip_a = mesh_ip(&s);
    assert_eq!(s["enrolment"]["boxname"], "box-a", "{s}");
    let id_a = a.node_id();
    assert_eq!(hub.token_uses(t1_id), 1);

    // Restarting the node (nothing deleted) keeps its enrolment.
    a.stop();
    a.start();
    assert_eq!(mesh_ip(&a.wait_enrolled(ENROL_TIMEOUT)), ip_a);
    a.stop();
    assert_eq!(hub.token_uses(t1_id), 1);
    assert_eq!(hub.node_list().len(), 1);

    // The same key re-presenting its (now used-up) token — as after a lost
    // answer — gets its existing grant back: same address, no second use.
    let same = FakeNode::from_state_dir(&a.state);
    let token = token_secret(&t1);
    let request = same.request(fetch_nonce(hub.enroll_port), &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &same.submission(&request, &token),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let grant = same.open_answer(&r.body, &hub_key, &request);
    assert_eq!(grant.mesh_ip, ip_a);
    assert_eq!(grant.boxname.as_str(), "box-a");
    assert_eq!(hub.token_uses(t1_id), 1);
    assert_eq!(hub.node_list().len(), 1);

    // (b) A re-flashed box (new key) under the same name, token without
    // --replace: refused, nothing changes.
    let t2 = hub.token(
        &["--uses", "1", "--boxname", "box-a"],
        &hub.dir.join("t2.toml"),
    );
    let mut b = m.node("b", &hub);
    b.set_enroll(&std::fs::read_to_string(hub.dir.join("t2.toml")).unwrap());
    let before = hub.snapshot();
    b.start();
    poll(
        ENROL_TIMEOUT,
        "the new key to be refused with boxname_taken",
        || {
            b.status_http().filter(|s| {
                s["enrolment"]["state"] == "enrolling"
                    && s["enrolment"]["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("boxname_taken"))
            })
        },
        || format!("{:?}\n{}", b.status_http(), b.log_text()),
    );
    assert_eq!(hub.snapshot(), before, "a refusal changes nothing");
    assert_eq!(hub.token_uses(t2["token_id"].as_str().unwrap()), 0);

    // With a --replace token it takes over the name and the address; the
    // old key is revoked in the directory.
    let t3 = hub.token(
        &["--uses", "1", "--boxname", "box-a", "--replace"],
        &hub.dir.join("t3.toml"),
    );
    b.set_enroll(&std::fs::read_to_string(hub.dir.join("t3.toml")).unwrap());
    let s = b.wait_enrolled(ENROL_TIMEOUT);
    assert_eq!(mesh_ip(&s), ip_a, "{s}");
    assert_eq!(s["enrolment"]["boxname"], "box-a");
    let id_b = b.node_id();
    assert_ne!(id_a, id_b);
    assert_eq!(hub.token_uses(t3["token_id"].as_str().unwrap()), 1);

    let d = hub.directory();
    let revoked: Vec<&str> = d["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(revoked, [id_a.as_str()], "{d}");
    assert!(!node_ids(&d).contains(&id_a), "{d}");
    assert!(node_ids(&d).contains(&id_b), "{d}");
    let nodes = hub.node_list();
    let old = nodes
        .iter()
        .find(|n| n["node_id"] == id_a.as_str())
        .unwrap();
    assert_eq!(old["revoked"], true, "{old}");
    let new = nodes
        .iter()
        .find(|n| n["node_id"] == id_b.as_str())
        .unwrap();
    assert_eq!(new["mesh_ip"], ip_a.to_string(), "{new}");
    assert_eq!(new["revoked"], false, "{new}");
    let counts = &hub.cli(&["status", "--json"]).ok().json()["hub"];
    assert_eq!(counts["nodes"], 1, "{counts}");
    assert_eq!(counts["revoked_nodes"], 1, "{counts}");

    // The new holder's own copy of the directory learns the revocation.
    poll(
        Duration::from_secs(15),
        "b's directory to list the revocation",
        || {
            b.directory_http()
                .filter(|d| d["revoked"].as_array().is_some_and(|r| r.len() == 1))
        },
        || format!("{:?}", b.directory_http()),
    );

    // The revoked key re-presenting is refused (node_revoked), not regranted.
    let request = same.request(fetch_nonce(hub.enroll_port), &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &same.submission(&request, &token),
    )
    .unwrap();
    harness::mesh::assert_refused(&r, 403, "node_revoked");
}

#[test]
fn identity_rotation_reaches_the_hub_mirror_even_after_hub_downtime() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let file = hub.dir.join("e.toml");
    hub.token(&["--uses", "1"], &file);
    let mut n = m.node("rot", &hub);
    n.set_enroll(&std::fs::read_to_string(&file).unwrap());
    n.start();
    n.wait_enrolled(ENROL_TIMEOUT);
    let id = n.node_id();
    assert_eq!(hub.node_show(&id)["identity_log_entries"], 1);

    // Rotation through the running daemon (admin socket).
    let out = n.cli(&["identity", "rotate", "--wireguard"]);
    out.ok();
    let wg1 = current_wireguard_key(&n);
    poll(
        Duration::from_secs(10),
        "the hub's mirror to take the rotation",
        || {
            let v = hub.node_show(&id);
            let synced = n
                .status_http()
                .is_some_and(|s| s["identity"]["mirror_behind"] == 0);
            (v["wireguard_public_key"] == wg1.as_str() && v["identity_log_entries"] == 2 && synced)
                .then_some(())
        },
        || format!("{}\n{:?}", hub.node_show(&id), n.status_http()),
    );
    let s = n.status();
    assert_eq!(s["identity"]["local_entries"], 2, "{s}");
    assert_eq!(s["identity"]["mirror_behind"], 0, "{s}");
    assert!(s["identity"]["warning"].is_null(), "{s}");
    // ... and the directory publishes the new key.
    let entry = hub.directory()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node_id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["wireguard_public_key"], wg1.as_str());

    // Hub down: the rotation still succeeds; status says the mirror lags.
    hub.stop();
    let out = n.cli(&["identity", "rotate", "--wireguard"]);
    out.ok();
    let wg2 = current_wireguard_key(&n);
    assert_ne!(wg1, wg2);
    let s = n.status();
    assert_eq!(s["identity"]["local_entries"], 3, "{s}");
    assert_eq!(s["identity"]["mirror_behind"], 1, "{s}");
    assert!(
        s["identity"]["warning"]
            .as_str()
            .is_some_and(|w| w.contains("behind")),
        "{s}"
    );
    assert_eq!(s["enrolment"]["state"], "enrolled", "{s}");

    // Hub back: the mirror converges.
    hub.start();
    poll(
        Duration::from_secs(15),
        "the mirror to catch up after the hub restart",
        || {
            n.status_http()
                .filter(|s| s["identity"]["mirror_behind"] == 0)
        },
        || format!("{:?}\n{}", n.status_http(), n.log_text()),
    );
    let v = hub.node_show(&id);
    assert_eq!(v["identity_log_entries"], 3, "{v}");
    assert_eq!(v["wireguard_public_key"], wg2.as_str(), "{v}");
    assert!(n.status()["identity"]["warning"].is_null());

    // A signing-key rotation keeps the node id, reaches the hub, and the
    // node stays enrolled across a restart (its grant names the old key).
    let out = n.cli(&["identity", "rotate", "--signing"]);
    out.ok();
    let signing = n.status()["signing_public_key"]
        .as_str()
        .unwrap()
        .to_string();
    poll(
        Duration::from_secs(10),
        "the hub to take the signing rotation",
        || {
            let v = hub.node_show(&id);
            (v["signing_public_key"] == signing.as_str() && v["identity_log_entries"] == 4)
                .then_some(())
        },
        || format!("{}", hub.node_show(&id)),
    );
    n.stop();
    n.start();
    let s = n.wait_enrolled(ENROL_TIMEOUT);
    assert_eq!(s["node_id"], id.as_str());
    assert_eq!(s["signing_public_key"], signing.as_str());
    poll(
        Duration::from_secs(10),
        "the restarted node to report its mirror in sync",
        || {
            n.status_http()
                .filter(|s| s["identity"]["mirror_behind"] == 0)
        },
        || format!("{:?}\n{}", n.status_http(), n.log_text()),
    );
}

fn current_wireguard_key(n: &Node) -> String {
    let r = harness::mesh::get(n.api_port, "/v1/identity").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    v["wireguard_public_key"]
        .as_str()
        .unwrap_or_else(|| panic!("no wireguard_public_key in {v}"))
        .to_string()
}

#[test]
fn hub_metrics_count_enrolments() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let text = hub.metrics();
    assert!(text.contains("gondwana_build_info{"), "{text}");
    assert_eq!(
        metric(&text, "gondwana_enrolments_total").unwrap_or(0.0),
        0.0
    );

    let file = hub.dir.join("e.toml");
    hub.token(&["--uses", "3"], &file);
    let enroll = std::fs::read_to_string(&file).unwrap();
    let mut nodes: Vec<Node> = (0..3).map(|i| m.node(&format!("m{i}"), &hub)).collect();
    for n in &mut nodes {
        n.set_enroll(&enroll);
        n.start();
    }
    for n in &nodes {
        n.wait_enrolled(ENROL_TIMEOUT);
    }
    let text = hub.metrics();
    let total = metric(&text, "gondwana_enrolments_total").expect("gondwana_enrolments_total");
    assert!(total >= 3.0, "{text}");
    assert!(
        text.contains("# TYPE gondwana_enrolments_total counter"),
        "{text}"
    );
    assert!(text.contains("gondwana_build_info{"), "{text}");
    let build = text
        .lines()
        .find(|l| l.starts_with("gondwana_build_info{"))
        .unwrap();
    assert!(
        build.contains("version=\"") && build.ends_with(" 1"),
        "{build}"
    );

    // Each node counts its own enrolment once.
    for n in &nodes {
        let r = harness::mesh::get(n.api_port, "/metrics").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            metric(&r.text(), "gondwana_enrolments_total"),
            Some(1.0),
            "{}",
            r.text()
        );
    }
}

/// `GET /metrics` is served with the Prometheus text exposition content type
/// (docs/api.md), which scrapers use to pick the parser.
#[test]
fn metrics_are_served_with_the_prometheus_content_type() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let r = harness::mesh::get(hub.api_port, "/metrics").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "{:?}",
        r.headers
    );
    assert!(r.text().contains("gondwana_uptime_seconds"), "{}", r.text());
}

#[test]
fn hub_wireguard_rotation_reaches_the_directory_and_new_grants() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let hub_id = hub.cli(&["status", "--json"]).ok().json()["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Rotating a hub's WireGuard key is allowed (only its signing key is not).
    hub.cli(&["identity", "rotate", "--wireguard"]).ok();
    let r = harness::mesh::get(hub.api_port, "/v1/identity").unwrap();
    let new_key = r.json()["wireguard_public_key"]
        .as_str()
        .unwrap()
        .to_string();

    let file = hub.dir.join("e.toml");
    let created = hub.token(&["--uses", "2"], &file);
    // A grant handed out after the rotation names the hub's current key.
    let token = token_secret(&created);
    let fake = FakeNode::new("probe");
    let request = fake.request(fetch_nonce(hub.enroll_port), &token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &fake.submission(&request, &token),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let grant = fake.open_answer(&r.body, &hub.key(), &request);
    assert_eq!(
        gondwana_core::keys::wg_key_to_base64(&grant.hub_wireguard_key),
        new_key,
        "the grant names the hub's rotated-away WireGuard key"
    );

    let mut n = m.node("after-hub-rotation", &hub);
    n.set_enroll(&std::fs::read_to_string(&file).unwrap());
    n.start();
    n.wait_enrolled(ENROL_TIMEOUT);
    let hub_record = |d: &Value| {
        d["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["node_id"] == hub_id.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no hub record in {d}"))
    };
    assert_eq!(
        hub_record(&hub.directory())["wireguard_public_key"],
        new_key.as_str(),
        "the directory still names the hub's rotated-away WireGuard key"
    );
    poll(
        Duration::from_secs(10),
        "the node's directory to carry the hub's new key",
        || {
            n.directory_http()
                .filter(|d| hub_record(d)["wireguard_public_key"] == new_key.as_str())
        },
        || format!("{:?}", n.directory_http()),
    );
    // A restart keeps it and publishes nothing new.
    let entries = hub.directory()["entries"].clone();
    hub.stop();
    hub.start();
    let d = hub.directory();
    assert_eq!(hub_record(&d)["wireguard_public_key"], new_key.as_str());
    assert_eq!(d["entries"], entries, "{d}");

    // Rotated while the hub is down: published when it starts.
    hub.stop();
    hub.cli(&["identity", "rotate", "--wireguard"]).ok();
    let offline_key = hub.cli(&["identity", "show", "--json"]).ok().json()["wireguard_public_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(offline_key, new_key);
    hub.start();
    let d = hub.directory();
    assert_eq!(hub_record(&d)["wireguard_public_key"], offline_key.as_str());
    poll(
        Duration::from_secs(10),
        "the node's directory to carry the key rotated offline",
        || {
            n.directory_http()
                .filter(|d| hub_record(d)["wireguard_public_key"] == offline_key.as_str())
        },
        || format!("{:?}", n.directory_http()),
    );
    hub.stop();
    hub.cli(&["directory", "verify"]).ok();
    hub.cli(&["audit", "verify"]).ok();
}

#[test]
fn full_subnet_lowest_free_address_and_a_directory_longer_than_a_page() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let file = hub.dir.join("e.toml");
    let created = hub.token(&["--uses", "300"], &file);
    let token = token_secret(&created);

    // Fill 10.10.0.2 ..= 10.10.0.254 with enrolments made here (two at a
    // time, as two clients would).
    const HOSTS: usize = 253;
    let port = hub.enroll_port;
    let hub_key = hub.key();
    let enrol_some = |count: usize, prefix: &str| -> Vec<(String, Ipv4Addr)> {
        let token = token_secret(&created);
        (0..count)
            .map(|i| {
                let fake = FakeNode::new(&format!("{prefix}-{i}"));
                let request = fake.request(fetch_nonce(port), &token);
                let r = post(port, "/v1/enroll", &fake.submission(&request, &token)).unwrap();
                assert_eq!(r.status, 200, "{}", r.text());
                let grant = fake.open_answer(&r.body, &hub_key, &request);
                (fake.state.node_id.to_string(), grant.mesh_ip)
            })
            .collect()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| enrol_some(HOSTS / 2, "fill-a"));
        let b = s.spawn(|| enrol_some(HOSTS - HOSTS / 2, "fill-b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut all: Vec<(String, Ipv4Addr)> = a.into_iter().chain(b).collect();
    all.sort_by_key(|(_, ip)| *ip);
    let ips: Vec<Ipv4Addr> = all.iter().map(|(_, ip)| *ip).collect();
    let want: Vec<Ipv4Addr> = (2..=254).map(|h| Ipv4Addr::new(10, 10, 0, h)).collect();
    assert_eq!(ips, want, "every host address once, none twice");

    // The 254th node finds no address: refused, nothing changes.
    let before = hub.snapshot();
    let late = FakeNode::new("late");
    let request = late.request(fetch_nonce(port), &token);
    let r = post(port, "/v1/enroll", &late.submission(&request, &token)).unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"], "subnet_exhausted", "{}", r.text());
    assert_eq!(hub.snapshot(), before);

    // Three revocations free three addresses; the directory now holds more
    // entries than one page (256).
    for host in [200u8, 7, 100] {
        let (id, _) = &all[usize::from(host) - 2];
        hub.cli(&["node", "revoke", id, "--reason", "decommissioned"])
            .ok();
    }
    assert_eq!(hub.directory()["entries"], 1 + 253 + 3);

    // A real node enrols: it gets the lowest free address and, beyond the
    // first page that comes with its grant, pulls the rest.
    let mut n = m.node("page-two", &hub);
    n.set_enroll(&std::fs::read_to_string(&file).unwrap());
    n.start();
    let s = n.wait_enrolled(ENROL_TIMEOUT);
    assert_eq!(mesh_ip(&s), Ipv4Addr::new(10, 10, 0, 7), "{s}");
    let hub_dir = hub.directory();
    assert_eq!(hub_dir["entries"], 1 + 253 + 3 + 1);
    poll(
        Duration::from_secs(20),
        "the node to pull past the first page",
        || n.directory_http().filter(|d| d["tip"] == hub_dir["tip"]),
        || format!("{:?}", n.directory_http().map(|d| d["entries"].clone())),
    );
    let d = n.directory();
    assert_eq!(d["entries"], hub_dir["entries"]);
    assert_eq!(d["nodes"], hub_dir["nodes"]);
    assert_eq!(d["revoked"].as_array().unwrap().len(), 3);
    // The next one gets the next lowest.
    let next = FakeNode::new("next");
    let request = next.request(fetch_nonce(port), &token);
    let r = post(port, "/v1/enroll", &next.submission(&request, &token)).unwrap();
    let grant = next.open_answer(&r.body, &hub_key, &request);
    assert_eq!(grant.mesh_ip, Ipv4Addr::new(10, 10, 0, 100));
    n.stop();
    n.cli(&["directory", "verify"]).ok();
}

//! A revoked node acts on its revocation: real hub and node daemons on
//! loopback. The node's directory pulls go through a relay that stands in
//! for the tunnel (the hub removes a revoked node's peer, so the test
//! closes the relay when it revokes); the node must then ask the hub's
//! public enrolment listener, verify the hub-signed record, and say
//! `revoked` (status, `/v1/ready` 503) for good, across a restart. A
//! record that does not verify — another signer, another node, garbage —
//! changes nothing.

mod harness;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gondwana_core::NodeId;
use gondwana_core::directory::{self, Head, Record};
use gondwana_core::keys::SigningSecret;
use harness::mesh::{Hub, Mesh, Node, assert_refused, get, poll, post};
use serde_json::Value;

const ENROL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to act on its revocation once its hub contact
/// fails (test timing: pulls every 1 s, asks backing off 0.2 s to 2 s).
const ACT_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// A relay on loopback: forwards to a port, answers with fixed bytes, or
// hangs up on every connection.

#[derive(Clone)]
enum Mode {
    Forward(u16),
    Serve(Vec<u8>),
    HangUp,
}

struct Relay {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    /// Request lines answered in `Serve` mode.
    served: Arc<Mutex<Vec<String>>>,
    /// Connections accepted in any mode.
    connections: Arc<AtomicU32>,
}

impl Relay {
    fn start(mode: Mode) -> Relay {
        // Port 0: the kernel picks a port nobody holds and we keep the
        // listener, so nothing can take it between a check and the bind.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let relay = Relay {
            port,
            mode: Arc::new(Mutex::new(mode)),
            served: Arc::new(Mutex::new(Vec::new())),
            connections: Arc::new(AtomicU32::new(0)),
        };
        let (mode, served, connections) = (
            relay.mode.clone(),
            relay.served.clone(),
            relay.connections.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                connections.fetch_add(1, Ordering::SeqCst);
                let now = mode.lock().unwrap().clone();
                let served = served.clone();
                std::thread::spawn(move || handle(client, now, &served));
            }
        });
        relay
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn served(&self) -> Vec<String> {
        self.served.lock().unwrap().clone()
    }
}

fn handle(mut client: TcpStream, mode: Mode, served: &Mutex<Vec<String>>) {
    match mode {
        Mode::HangUp => {
            let _ = client.shutdown(Shutdown::Both);
        }
        Mode::Forward(port) => {
            let Ok(upstream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
                return;
            };
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let mut upstream = upstream;
            let up = std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut u2);
                let _ = u2.shutdown(Shutdown::Write);
            });
            let _ = std::io::copy(&mut upstream, &mut client);
            let _ = client.shutdown(Shutdown::Write);
            let _ = up.join();
        }
        Mode::Serve(answer) => {
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let line = String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            served.lock().unwrap().push(line);
            let _ = client.write_all(&answer);
            let _ = client.shutdown(Shutdown::Both);
        }
    }
}

/// An HTTP answer with `status` and an octet-stream `body`.
fn answer(status: &str, body: &[u8]) -> Vec<u8> {
    let mut a = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    a.extend_from_slice(body);
    a
}

// ---------------------------------------------------------------------------

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ready_status(node: &Node) -> Option<u16> {
    get(node.api_port, "/v1/ready").ok().map(|r| r.status)
}

/// A node whose hub API (directory pulls, mirror pushes) is reached through
/// `tunnel` and whose enrolment goes to `enroll_url`.
fn node_via(m: &Mesh, hub: &Hub, name: &str, tunnel: &Relay, enroll_url: &str) -> Node {
    let node = Node::new(m.root(), name, &tunnel.url());
    let file = hub.dir.join(format!("{name}.toml"));
    let created = hub.token(&["--uses", "1"], &file);
    let text = created["enroll_toml"]
        .as_str()
        .expect("enroll_toml")
        .replace(&hub.enroll_url(), enroll_url);
    assert!(text.contains(enroll_url), "{text}");
    node.set_enroll(&text);
    node
}

fn audit_kinds(node: &Node) -> Vec<String> {
    let rows = node.cli(&["audit", "show", "--json"]).ok().json();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[track_caller]
fn assert_revoked(status: &Value, reason: &str, after: u64) {
    let e = &status["enrolment"];
    assert_eq!(e["state"], "revoked", "{status}");
    assert_eq!(e["revocation"]["reason"], reason, "{status}");
    let at = e["revocation"]["revoked_unix"].as_u64().unwrap();
    assert!(at >= after && at <= now_unix(), "{status}");
    assert!(
        e["revocation"]["directory_seq"].as_u64().is_some(),
        "{status}"
    );
}

#[test]
fn a_revoked_node_learns_it_from_the_hubs_public_listener_and_keeps_saying_so() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let tunnel = Relay::start(Mode::Forward(hub.api_port));
    let mut node = node_via(&m, &hub, "n1", &tunnel, &hub.enroll_url());
    node.start();
    node.wait_enrolled(ENROL_TIMEOUT);
    let id = node.node_id();
    // Pulls and the mirror push went through the tunnel.
    poll(
        Duration::from_secs(10),
        "the hub's mirror of n1",
        || {
            node.status_http()
                .filter(|s| s["identity"]["hub_entries"] == 1)
        },
        || format!("{:?}", node.status_http()),
    );
    assert_eq!(ready_status(&node), Some(200));

    // The hub's endpoint, on both listeners, before the revocation.
    let path = format!("/v1/enroll/revocation?node={id}");
    for port in [hub.enroll_port, hub.api_port] {
        assert_refused(&get(port, &path).unwrap(), 404, "not_revoked");
        assert_refused(
            &get(port, "/v1/enroll/revocation?node=gw:nope").unwrap(),
            400,
            "bad_request",
        );
        assert_refused(
            &get(port, "/v1/enroll/revocation").unwrap(),
            400,
            "bad_request",
        );
    }
    let entries_before = node.status()["directory"]["entries"].clone();

    // The hub removes the peer when it revokes: the tunnel goes dead.
    tunnel.set(Mode::HangUp);
    let revoked_after = now_unix();
    hub.cli(&["node", "revoke", &id, "--reason", "stolen box"])
        .ok();
    let status = poll(
        ACT_TIMEOUT,
        "n1 to say revoked and not ready",
        || {
            node.status_http()
                .filter(|s| s["enrolment"]["state"] == "revoked")
                .filter(|_| ready_status(&node) == Some(503))
        },
        || format!("{:?}\n{}", node.status_http(), node.log_text()),
    );
    assert_revoked(&status, "stolen box", revoked_after);
    // Learnt from the public listener, not from a pulled directory.
    assert_eq!(node.status()["directory"]["entries"], entries_before);
    let ready = get(node.api_port, "/v1/ready").unwrap();
    assert_refused(&ready, 503, "revoked");
    assert!(audit_kinds(&node).contains(&"enrol.revoked".to_string()));
    assert!(node.running(), "the daemon keeps running to say so");

    // What the hub serves is its signed directory entry for this node.
    let hub_key = hub.key();
    for port in [hub.enroll_port, hub.api_port] {
        let r = get(port, &path).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        let rev = gondwana_core::revocation::open(&r.body, &hub_key, &NodeId::parse(&id).unwrap())
            .expect("the hub's answer verifies");
        assert_eq!(rev.reason, "stolen box");
    }

    // It stops contacting the hub: an open tunnel sees no pull for 1.5 s
    // (pulls were every second). That a revoked sync machine schedules
    // nothing more is checked on a virtual clock in
    // `gondwana_core::node_sync`; this checks the daemon's wiring.
    tunnel.set(Mode::Forward(hub.api_port));
    let before = tunnel.connections.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(tunnel.connections.load(Ordering::SeqCst), before);

    // Stored: a restart (and the CLI without a daemon) says the same.
    node.stop();
    let offline = node.status();
    assert_eq!(offline["daemon"]["running"], false, "{offline}");
    assert_revoked(&offline, "stolen box", revoked_after);
    node.start();
    assert_eq!(ready_status(&node), Some(503));
    assert_revoked(&node.status_http().unwrap(), "stolen box", revoked_after);
    assert_eq!(
        audit_kinds(&node)
            .iter()
            .filter(|k| *k == "enrol.revoked")
            .count(),
        1,
        "one audit record, not one per start"
    );
    // `gondwana enroll` on it enrols nothing and says why.
    let created = hub.token(&["--uses", "1"], &hub.dir.join("again.toml"));
    let again = node.cli(&[
        "enroll",
        "--json",
        "--hub",
        &hub.enroll_url(),
        "--hub-key",
        &gondwana_core::hash::to_hex(&hub_key),
        "--token",
        created["token"].as_str().unwrap(),
    ]);
    let v = again.ok().json();
    assert_eq!(v["already_enrolled"], true, "{v}");
    assert_eq!(v["state"], "revoked", "{v}");
}

#[test]
fn a_revocation_pulled_through_the_tunnel_counts_the_same() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let tunnel = Relay::start(Mode::Forward(hub.api_port));
    let mut node = node_via(&m, &hub, "n2", &tunnel, &hub.enroll_url());
    node.start();
    node.wait_enrolled(ENROL_TIMEOUT);
    let id = node.node_id();
    let after = now_unix();
    hub.cli(&["node", "revoke", &id, "--reason", "pulled"]).ok();
    let status = poll(
        ACT_TIMEOUT,
        "n2 to say revoked",
        || {
            node.status_http()
                .filter(|s| s["enrolment"]["state"] == "revoked")
                .filter(|_| ready_status(&node) == Some(503))
        },
        || format!("{:?}\n{}", node.status_http(), node.log_text()),
    );
    assert_revoked(&status, "pulled", after);
    assert_eq!(status["directory"]["entries"], hub.directory()["entries"]);
}

#[test]
fn forged_or_foreign_revocation_answers_change_nothing() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let hub_key = hub.key();

    // Another node, revoked for real: its record is hub-signed but not ours.
    let mut other = m.node("other", &hub);
    let other_token = hub.dir.join("other.toml");
    hub.token(&["--uses", "1"], &other_token);
    other.set_enroll(&std::fs::read_to_string(&other_token).unwrap());
    other.start();
    other.wait_enrolled(ENROL_TIMEOUT);
    let other_id = other.node_id();
    other.stop();
    hub.cli(&["node", "revoke", &other_id]).ok();
    let foreign = get(
        hub.enroll_port,
        &format!("/v1/enroll/revocation?node={other_id}"),
    )
    .unwrap();
    assert_eq!(foreign.status, 200, "{}", foreign.text());

    // The victim enrols through a fake hub (relaying to the real one for
    // now) and pulls through a tunnel.
    let fake = Relay::start(Mode::Forward(hub.enroll_port));
    let tunnel = Relay::start(Mode::Forward(hub.api_port));
    let mut node = node_via(&m, &hub, "victim", &tunnel, &fake.url());
    node.start();
    node.wait_enrolled(ENROL_TIMEOUT);
    let id = NodeId::parse(&node.node_id()).unwrap();
    assert_eq!(node.status()["enrolment"]["hub"], fake.url());

    // Our own revocation, signed by a key that is not the pinned hub's.
    let impostor = SigningSecret::from_seed([9; 32]);
    let (forged, _) = directory::append(
        &Head {
            len: 3,
            tip: [1; 32],
        },
        &impostor,
        Record::Revoke {
            node_id: id.clone(),
            reason: heapless::String::try_from("forged").unwrap(),
        },
    )
    .unwrap();
    assert!(gondwana_core::revocation::open(&forged, &hub_key, &id).is_err());

    tunnel.set(Mode::HangUp);
    for (what, bad) in [
        ("signed by another key", answer("200 OK", &forged)),
        ("another node's revocation", answer("200 OK", &foreign.body)),
        ("garbage", answer("200 OK", b"not an envelope")),
        ("an error", answer("500 Internal Server Error", b"")),
    ] {
        let asked = fake.served().len();
        fake.set(Mode::Serve(bad));
        poll(
            ACT_TIMEOUT,
            &format!("victim to ask the fake hub ({what})"),
            || (fake.served().len() > asked).then_some(()),
            || format!("{:?}\n{}", fake.served(), node.log_text()),
        );
        let s = node.status_http().unwrap();
        assert_eq!(s["enrolment"]["state"], "enrolled", "{what}: {s}");
        assert_eq!(ready_status(&node), Some(200), "{what}");
    }
    // The same records handed to the node's own `POST /v1/revocation`
    // (where the hub pushes over the tunnel): refused, nothing changed.
    for (what, bad) in [
        ("signed by another key", forged.as_slice()),
        ("another node's revocation", &foreign.body[..]),
        ("garbage", b"not an envelope".as_slice()),
    ] {
        let r = post(node.api_port, "/v1/revocation", bad).unwrap();
        assert_refused(&r, 403, "bad_signature");
        let s = node.status_http().unwrap();
        assert_eq!(s["enrolment"]["state"], "enrolled", "{what}: {s}");
        assert_eq!(ready_status(&node), Some(200), "{what}");
    }
    assert!(
        fake.served()
            .iter()
            .all(|l| l == &format!("GET /v1/enroll/revocation?node={id} HTTP/1.1")),
        "{:?}",
        fake.served()
    );
    assert!(!audit_kinds(&node).contains(&"enrol.revoked".to_string()));

    // The same path with the real hub behind it: the real revocation holds.
    fake.set(Mode::Forward(hub.enroll_port));
    let after = now_unix();
    hub.cli(&["node", "revoke", id.as_str(), "--reason", "for real"])
        .ok();
    let status = poll(
        ACT_TIMEOUT,
        "victim to say revoked",
        || {
            node.status_http()
                .filter(|s| s["enrolment"]["state"] == "revoked")
        },
        || format!("{:?}\n{}", node.status_http(), node.log_text()),
    );
    assert_revoked(&status, "for real", after);
    assert_eq!(ready_status(&node), Some(503));
}

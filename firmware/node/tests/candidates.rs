//! Endpoint candidates over real HTTP on loopback (docs/paths.md): a hub
//! (WireGuard backend "none") takes signed reports, refuses bad ones
//! without changing its snapshot and counts each refusal; the snapshot is
//! long-polled, survives a hub restart, and a real node reports itself and
//! restores the stored snapshot when started with the hub down.

mod harness;

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use gondwana_core::candidates::{self, RelayOffer, ReportBody, Verified};
use gondwana_core::directory::{Head, View, verify_bundle};
use gondwana_core::node_id::NodeId;
use harness::mesh::{
    FakeNode, Hub, Mesh, Resp, assert_refused, fetch_nonce, get, metric, post, token_secret,
};

const REPORT: &str = "/v1/candidates/report";

/// Enrols a test-built identity on `hub` (over the enrolment listener).
fn enrol(hub: &Hub, name: &str, token: &gondwana_core::token::TokenSecret) -> FakeNode {
    let fake = FakeNode::new(name);
    let request = fake.request(fetch_nonce(hub.enroll_port), token);
    let r = post(
        hub.enroll_port,
        "/v1/enroll",
        &fake.submission(&request, token),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    fake
}

fn id(fake: &FakeNode) -> NodeId {
    fake.state.node_id.clone()
}

fn report(fake: &FakeNode, seq: u64, lan: &[&str], want: &[NodeId]) -> ReportBody {
    ReportBody {
        version: candidates::VERSION,
        node_id: id(fake),
        seq,
        listen_port: 51830,
        lan: lan
            .iter()
            .map(|a| a.parse::<SocketAddrV4>().unwrap())
            .collect(),
        want_relay: want.iter().cloned().collect(),
        relay: None,
    }
}

fn send(hub: &Hub, body: &ReportBody, signer: &FakeNode) -> Resp {
    let bytes = candidates::seal_report(body, &signer.signing).unwrap();
    post(hub.api_port, REPORT, &bytes).unwrap()
}

/// The hub's directory, verified.
fn view(hub: &Hub) -> View {
    let r = get(hub.api_port, "/v1/directory?after=0").unwrap();
    assert_eq!(r.status, 200);
    let mut view = View::default();
    for (entry, _, _) in verify_bundle(&r.body, &hub.key(), &Head::default()).unwrap() {
        view.apply(&entry.record);
    }
    view
}

/// `GET /v1/candidates?after=N`, verified; `None` on 304.
fn snapshot_after(hub: &Hub, after: u64) -> Option<(Verified, Vec<u8>)> {
    let r = get(hub.api_port, &format!("/v1/candidates?after={after}")).unwrap();
    if r.status == 304 {
        return None;
    }
    assert_eq!(r.status, 200, "{}", r.text());
    let v = candidates::verify_snapshot(&r.body, &hub.key(), &view(hub)).unwrap();
    Some((v, r.body))
}

/// Waits until the hub's snapshot satisfies `f`.
fn wait_snapshot(hub: &Hub, what: &str, f: impl Fn(&Verified) -> bool) -> (Verified, Vec<u8>) {
    harness::mesh::poll(
        Duration::from_secs(20),
        what,
        || snapshot_after(hub, 0).filter(|(v, _)| f(v)),
        || hub.log_text(),
    )
}

fn refusals(hub: &Hub, reason: &str) -> f64 {
    let name = format!("gondwana_candidate_refusals_total{{reason=\"{reason}\"}}");
    metric(&hub.metrics(), &name).unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn hub_takes_signed_reports_refuses_bad_ones_and_keeps_them_across_a_restart() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let token = token_secret(&hub.token(&["--uses", "5"], &hub.dir.join("e.toml")));
    let a = enrol(&hub, "cand-a", &token);
    let b = enrol(&hub, "cand-b", &token);

    let r = send(&hub, &report(&a, 1, &["192.168.1.10:51830"], &[id(&b)]), &a);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["changed"], true);
    let (first, first_bytes) = wait_snapshot(&hub, "a's report", |v| {
        v.snapshot
            .nodes
            .get(&id(&a))
            .is_some_and(|c| c.listen_port == Some(51830))
    });
    assert_eq!(first.dropped_reports, 0);
    let cand = &first.snapshot.nodes[&id(&a)];
    assert_eq!(cand.lan, vec!["192.168.1.10:51830".parse().unwrap()]);
    assert_eq!(cand.want_relay, vec![id(&b)]);
    // A asked for B: the pair has relay ports from the default range.
    assert_eq!(first.snapshot.relays.len(), 1);
    let pair = &first.snapshot.relays[0];
    assert!((56000..=56999).contains(&pair.port_a) && pair.port_a != pair.port_b);

    // A retry of the same bytes is accepted and changes nothing.
    let r = send(&hub, &report(&a, 1, &["192.168.1.10:51830"], &[id(&b)]), &a);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["changed"], false);

    // Refusals, each with its status and code.
    let stale = send(&hub, &report(&a, 1, &["192.168.1.11:51830"], &[]), &a);
    assert_refused(&stale, 409, "stale_seq");
    let forged = send(&hub, &report(&a, 9, &["192.168.9.9:51830"], &[]), &b);
    assert_refused(&forged, 403, "bad_signature");
    let loopback = send(&hub, &report(&a, 9, &["127.0.0.1:51830"], &[]), &a);
    assert_refused(&loopback, 400, "bad_address");
    let mesh = send(&hub, &report(&a, 9, &["10.10.0.77:51830"], &[]), &a);
    assert_refused(&mesh, 400, "bad_address");
    // A relay offer of one port (a pair needs two); from C, as A's
    // burst of reports is spent.
    let c = enrol(&hub, "cand-c", &token);
    let one_port = ReportBody {
        relay: Some(RelayOffer {
            first: 40000,
            last: 40000,
        }),
        ..report(&c, 1, &[], &[])
    };
    assert_refused(&send(&hub, &one_port, &c), 400, "bad_address");
    let theft = send(&hub, &report(&b, 1, &["192.168.1.10:51830"], &[]), &b);
    assert_refused(&theft, 409, "endpoint_taken");
    let stranger = FakeNode::new("stranger");
    let unknown = send(&hub, &report(&stranger, 1, &[], &[]), &stranger);
    assert_refused(&unknown, 403, "unknown_node");
    let outsider = send(&hub, &report(&a, 9, &[], &[id(&stranger)]), &a);
    assert_refused(&outsider, 403, "relay_not_member");
    let junk = post(hub.api_port, REPORT, b"\x05junk").unwrap();
    assert_refused(&junk, 400, "malformed");

    // Nothing changed: the snapshot is the one before the refusals.
    let (after, after_bytes) = snapshot_after(&hub, 0).unwrap();
    assert_eq!(after.snapshot.serial, first.snapshot.serial);
    assert_eq!(after_bytes, first_bytes);
    for reason in [
        "stale_seq",
        "bad_signature",
        "endpoint_taken",
        "unknown_node",
        "relay_not_member",
        "malformed",
    ] {
        assert_eq!(refusals(&hub, reason), 1.0, "{reason}");
    }
    assert_eq!(refusals(&hub, "bad_address"), 3.0);

    // The long poll answers at once when a report changes the snapshot.
    let serial = after.snapshot.serial;
    let port = hub.api_port;
    let poll = std::thread::spawn(move || {
        let start = Instant::now();
        let r = get(port, &format!("/v1/candidates?after={serial}")).unwrap();
        (r.status, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    // B offers to relay (relay.enabled = true on a node).
    let offer = RelayOffer {
        first: 40000,
        last: 40009,
    };
    let offering = ReportBody {
        relay: Some(offer),
        ..report(&b, 1, &["192.168.2.20:51830"], &[])
    };
    let r = send(&hub, &offering, &b);
    assert_eq!(r.status, 200, "{}", r.text());
    let (status, took) = poll.join().unwrap();
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(5), "long poll took {took:?}");
    let (offered, _) = wait_snapshot(&hub, "b's offer", |v| {
        v.snapshot
            .nodes
            .get(&id(&b))
            .is_some_and(|c| c.relay.is_some())
    });
    assert_eq!(offered.snapshot.nodes[&id(&b)].relay, Some(offer));
    // B is one of the two of the only pair, and the hub observes no
    // endpoint for it (no WireGuard here): the pair stays on the hub.
    assert!(offered.snapshot.relays.iter().all(|p| p.relay != id(&b)));

    // Per node rate limit: a burst of reports from B is cut off.
    let mut limited = 0;
    for seq in 2..14 {
        let r = send(&hub, &report(&b, seq, &["192.168.2.20:51830"], &[]), &b);
        if r.status == 429 {
            assert_refused(&r, 429, "rate_limited");
            limited += 1;
        }
    }
    assert!(limited > 0, "no report was rate-limited");
    assert_eq!(refusals(&hub, "rate_limited"), f64::from(limited));

    // A restart keeps the reports, and the serial goes on from where it was.
    let (before, _) = snapshot_after(&hub, 0).unwrap();
    hub.stop();
    hub.start();
    let (restarted, _) = wait_snapshot(&hub, "reports after a restart", |v| {
        v.snapshot.nodes.contains_key(&id(&a)) && v.snapshot.nodes.contains_key(&id(&b))
    });
    assert!(restarted.snapshot.serial > before.snapshot.serial);
    assert_eq!(
        restarted.snapshot.nodes[&id(&a)],
        before.snapshot.nodes[&id(&a)]
    );
    assert_eq!(restarted.snapshot.relays.len(), 1);
    // An old seq is still refused after the restart.
    let replay = send(&hub, &report(&a, 1, &["192.168.1.12:51830"], &[]), &a);
    assert_refused(&replay, 409, "stale_seq");
}

#[test]
fn a_node_reports_itself_and_restores_the_snapshot_with_the_hub_down() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let file = hub.dir.join("e.toml");
    hub.token(&["--uses", "1"], &file);
    let mut node = m.node("cand-node", &hub);
    node.set_enroll(&std::fs::read_to_string(&file).unwrap());
    node.start();
    node.wait_enrolled(Duration::from_secs(30));
    let node_id = NodeId::parse(&node.node_id()).unwrap();
    let (v, _) = wait_snapshot(&hub, "the node's own report", |v| {
        v.snapshot
            .nodes
            .get(&node_id)
            .is_some_and(|c| c.listen_port.is_some())
    });
    // Its LAN candidates are unicast, outside the mesh, with its port.
    let cand = &v.snapshot.nodes[&node_id];
    for a in &cand.lan {
        assert!(candidates::check_endpoint(*a, Some(&"10.10.0.0/24".parse().unwrap())).is_ok());
        assert_eq!(Some(a.port()), cand.listen_port);
    }
    // The node fetched the snapshot that carries its report and stored it.
    let serial = v.snapshot.serial;
    harness::mesh::poll(
        Duration::from_secs(20),
        "the node to fetch the snapshot",
        || {
            let v = node.status_http()?;
            (v["candidates"]["serial"].as_u64()? >= serial).then_some(())
        },
        || format!("{:?}\n{}", node.status_http(), node.log_text()),
    );
    node.stop();
    hub.stop();
    node.start();
    // Restored from the state partition, verified again, with no hub.
    let restored = harness::mesh::poll(
        Duration::from_secs(20),
        "the node to restore its snapshot",
        || node.status_http()?["candidates"]["serial"].as_u64(),
        || node.log_text(),
    );
    assert!(
        restored >= serial,
        "restored {restored}, the hub had {serial}"
    );
    assert!(
        node.log_text().contains(&format!(
            "restored the stored candidate snapshot (serial {restored})"
        )),
        "{}",
        node.log_text()
    );
}

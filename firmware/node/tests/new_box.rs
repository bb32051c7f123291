//! A box enrolled into a running mesh is learnt by the other nodes within
//! seconds, not at their next directory pull (docs/paths.md,
//! "Candidates"): its first candidate report reaches them in the hub's
//! snapshot, which names a node their directory does not hold yet, so they
//! pull the directory early and verify the snapshot again. Real hub and
//! node daemons on loopback (WireGuard backend "none").

mod harness;

use std::time::{Duration, Instant};

use harness::mesh::{Hub, Mesh, Node, get};
use harness::poll;
use serde_json::Value;

/// Far longer than the test: a regular pull cannot be what brings the box.
const PULL_SECS: u64 = 300;

fn enrolled(m: &Mesh, hub: &Hub, name: &str) -> Node {
    let file = hub.dir.join(format!("{name}.toml"));
    hub.token(&["--uses", "1"], &file);
    let mut n = m.node(name, hub);
    n.write_config(PULL_SECS, "");
    n.set_enroll(&std::fs::read_to_string(&file).unwrap());
    n.start();
    n.wait_enrolled(Duration::from_secs(60));
    n
}

fn holds(node: &Node, id: &str) -> bool {
    node.directory_http().is_some_and(|d| {
        d["nodes"]
            .as_array()
            .is_some_and(|nodes| nodes.iter().any(|n| n["node_id"] == id))
    })
}

fn early_pulls(node: &Node) -> usize {
    node.log_text()
        .matches("pulling the directory early")
        .count()
}

/// `candidates` of a daemon's `GET /v1/status`.
fn candidates(api_port: u16) -> Value {
    get(api_port, "/v1/status").map_or(Value::Null, |r| r.json()["candidates"].clone())
}

/// `node` holds the hub's current snapshot with every entry kept.
fn holds_hubs_snapshot(node: &Node, hub: &Hub) -> bool {
    let (mine, hubs) = (candidates(node.api_port), candidates(hub.api_port));
    !hubs.is_null() && mine["serial"] == hubs["serial"] && mine["nodes"] == hubs["nodes"]
}

#[test]
fn a_new_box_is_learnt_before_the_pull_interval_could_fire() {
    // `old`'s first pull is at its enrolment; its next regular one is
    // PULL_SECS after that, so after `started` + PULL_SECS.
    let started = Instant::now();
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let old = enrolled(&m, &hub, "old");
    poll(
        Duration::from_secs(30),
        "old to hold the hub's candidate snapshot",
        || holds_hubs_snapshot(&old, &hub).then_some(()),
        || {
            format!(
                "old {}\nhub {}",
                candidates(old.api_port),
                candidates(hub.api_port)
            )
        },
    );
    let before = early_pulls(&old);

    let new = enrolled(&m, &hub, "new");
    let new_id = new.node_id();
    // The directory holds the new box, and the snapshot verified again
    // keeps its entry (the path machine probes it from there).
    poll(
        Duration::from_secs(60),
        "old to learn the new box",
        || (holds(&old, &new_id) && holds_hubs_snapshot(&old, &hub)).then_some(()),
        || {
            format!(
                "{:?}\n--- old log ---\n{}",
                old.directory_http(),
                old.log_text()
            )
        },
    );
    assert!(
        started.elapsed() < Duration::from_secs(PULL_SECS),
        "learnt, but only after the pull interval"
    );
    assert_eq!(early_pulls(&old), before + 1, "{}", old.log_text());

    // Learnt: later snapshots (the new box's reports, probe rounds) name
    // nothing unknown, so nothing pulls again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(early_pulls(&old), before + 1, "{}", old.log_text());
}

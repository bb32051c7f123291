//! Every command that needs the state works while the daemon holds it: the
//! CLI sends a typed request to the admin socket and the daemon runs the
//! same use case the CLI runs without it (docs/cli.md). Refusals keep their
//! exit codes through the socket.

mod harness;

use harness::mesh::Mesh;

#[test]
fn store_commands_work_while_the_daemon_runs() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let out = |name: &str| hub.dir.join(name).display().to_string();

    // Before the issue these exited 3 (state in use) on every running box.
    let first = hub.cli(&["firstboot", "--json"]).ok().json();
    assert_eq!(first["provisioned_now"], false, "{first}");
    let shown = hub.cli(&["identity", "show", "--json"]).ok().json();
    assert_eq!(first["node_id"], shown["node_id"]);

    hub.cli(&["identity", "export", "--out", &out("id.bundle")])
        .ok();
    let from_file = hub
        .cli(&["identity", "verify", "--file", &out("id.bundle"), "--json"])
        .ok()
        .json();
    assert_eq!(from_file["node_id"], shown["node_id"]);
    let stored = hub.cli(&["identity", "verify", "--json"]).ok().json();
    assert_eq!(stored["verified"], true);

    hub.cli(&["directory", "verify"]).ok();
    hub.cli(&["directory", "export", "--out", &out("dir.bundle")])
        .ok();
    let imported = hub.cli(&["directory", "import", &out("dir.bundle")]);
    imported.ok();
    assert!(
        imported.stdout().contains("imported 0 new"),
        "{}",
        imported.describe()
    );
    hub.cli(&["audit", "verify"]).ok();

    // A bundle that does not verify is a verification failure (exit 6)
    // through the socket too, and changes nothing.
    std::fs::write(out("bad.bundle"), b"not a bundle").unwrap();
    hub.cli(&["directory", "import", &out("bad.bundle")])
        .expect_code(6);
    hub.cli(&["directory", "verify"]).ok();

    // A refusal is the daemon's typed error, not "the daemon refused".
    let ghost = hub.cli(&["node", "show", "ghost"]);
    ghost.expect_code(1);
    assert!(
        ghost.stderr().contains("no node ghost"),
        "{}",
        ghost.describe()
    );
    hub.stop();
}

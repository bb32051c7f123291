//! The collision guard for real: a hub whose mesh subnet overlaps an address
//! already on the host refuses to start, naming the overlap, and configures
//! nothing. Runs in a private network namespace (`unshare --net`) so the
//! host's own addresses are never touched.

use std::process::Command;

mod harness;
use harness::require;

fn unshare_available() -> bool {
    Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn hub_refuses_a_subnet_that_overlaps_a_host_address() {
    if !unshare_available() {
        require::missing(
            "hub_refuses_a_subnet_that_overlaps_a_host_address",
            "needs root and unshare --net",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "role = \"hub\"\n[wireguard]\nbackend = \"none\"\n[hub]\npublic_endpoint = \"127.0.0.1:51822\"\n\
             [api]\nloopback = \"127.0.0.1:18931\"\nadmin_socket = \"{}\"\n",
            dir.path().join("admin.sock").display()
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let script = format!(
        "ip link set lo up && ip addr add 10.10.7.1/16 dev lo && \
         exec {} --config {} --state-dir {} run",
        env!("CARGO_BIN_EXE_gondwana"),
        config.display(),
        state.display()
    );
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("mesh subnet 10.10.0.0/24 overlaps this host's subnet 10.10.7.1/16"),
        "{stderr}"
    );
    // Nothing configured: not even an identity.
    assert!(!state.exists(), "the refused hub created state");

    // The same hub on a free subnet starts.
    std::fs::write(
        &config,
        format!(
            "{}[mesh]\nsubnet = \"10.20.0.0/24\"\n",
            std::fs::read_to_string(&config).unwrap()
        ),
    )
    .unwrap();
    let script = format!(
        "ip link set lo up && ip addr add 10.10.7.1/16 dev lo && \
         ({} --config {} --state-dir {} run & pid=$!; sleep 2; kill $pid; wait $pid)",
        env!("CARGO_BIN_EXE_gondwana"),
        config.display(),
        state.display()
    );
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("running"), "{stderr}");
}

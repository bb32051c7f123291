//! What an operator reads: `/metrics` checked with the reference Prometheus
//! parser on a real hub with enrolled nodes and on a node, every counter at
//! zero from the start, every family documented and the shipped Grafana
//! dashboard asking only for families the daemon exports; `status` for a
//! user who is not root.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::mesh::{Mesh, get};
use harness::require;
use serde_json::Value;

const ENROL_TIMEOUT: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Python that has Debian's `prometheus_client` (scripts/test installs
/// python3-prometheus-client; a pyenv `python3` earlier on PATH may not
/// see it).
fn python_with_prometheus() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import prometheus_client.parser"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The exposition parsed by `prometheus_client.parser`: family -> JSON.
fn parse(python: &str, text: &str) -> BTreeMap<String, Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/prometheus_parse.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object().unwrap().clone().into_iter().collect()
}

/// Samples of `family` (the parser's name: counters lose `_total`) as
/// (labels, value).
fn samples(families: &BTreeMap<String, Value>, family: &str) -> Vec<(Value, f64)> {
    families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family} in {:?}", families.keys()))["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[1].clone(), s[2].as_f64().unwrap()))
        .collect()
}

fn sample(families: &BTreeMap<String, Value>, family: &str, labels: &[(&str, &str)]) -> f64 {
    samples(families, family)
        .into_iter()
        .find(|(l, _)| labels.iter().all(|(k, v)| l[*k] == *v))
        .unwrap_or_else(|| panic!("no {family}{labels:?} in {:?}", families.get(family)))
        .1
}

/// The names in `# TYPE` lines: what the daemon exports, as written.
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn scrape(port: u16) -> String {
    let r = get(port, "/metrics").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.text()
}

#[test]
fn metrics_parse_and_count_from_zero_on_a_hub_and_a_node() {
    let Some(python) = python_with_prometheus() else {
        require::missing(
            "metrics_parse_and_count_from_zero_on_a_hub_and_a_node",
            "no python3 with prometheus_client (apt install python3-prometheus-client)",
        );
        return;
    };
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();

    // Fresh: every counter is there, at zero, with HELP and TYPE.
    let text = scrape(hub.api_port);
    let fresh = parse(python, &text);
    for (name, family) in &fresh {
        assert!(
            !family["help"].as_str().unwrap_or("").is_empty(),
            "{name} has no HELP"
        );
    }
    assert_eq!(sample(&fresh, "gondwana_enrolments", &[]), 0.0);
    for reason in [
        "unknown_token",
        "token_expired",
        "rate_limited",
        "bad_request",
    ] {
        assert_eq!(
            sample(&fresh, "gondwana_enrolment_failures", &[("reason", reason)]),
            0.0
        );
    }
    for route in ["/v1/enroll", "/v1/status", "/v1/directory"] {
        assert_eq!(
            sample(
                &fresh,
                "gondwana_http_requests",
                &[("route", route), ("code", "200")]
            ),
            0.0
        );
    }
    for name in [
        "process_start_time_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(sample(&fresh, name, &[]) > 0.0, "{name}");
    }
    // Present from the start; a daemon just up may not have used one clock
    // tick (10 ms) of CPU yet, so zero is a fair value.
    assert!(sample(&fresh, "process_cpu_seconds", &[]) >= 0.0);
    assert_eq!(sample(&fresh, "gondwana_peers", &[]), 0.0);
    assert!(fresh.contains_key("gondwana_peer_receive_bytes"));
    // The hub's relay is on, with no pair before any snapshot names one.
    assert_eq!(sample(&fresh, "gondwana_relay_pairs", &[]), 0.0);
    for reason in ["wrong_source", "no_destination", "rate", "send_failed"] {
        assert_eq!(
            sample(&fresh, "gondwana_relay_dropped", &[("reason", reason)]),
            0.0
        );
    }
    assert_eq!(
        sample(&fresh, "gondwana_relay_bytes", &[("direction", "out")]),
        0.0
    );

    // Two nodes enrol; one bad token is refused.
    let file = hub.dir.join("e.toml");
    hub.token(&["--uses", "2"], &file);
    let enroll = std::fs::read_to_string(&file).unwrap();
    let mut nodes: Vec<_> = (0..2).map(|i| m.node(&format!("o{i}"), &hub)).collect();
    for n in &mut nodes {
        n.set_enroll(&enroll);
        n.start();
    }
    for n in &nodes {
        n.wait_enrolled(ENROL_TIMEOUT);
    }
    let r = get(hub.api_port, "/no/such/path").unwrap();
    assert_eq!(r.status, 404);
    let text = scrape(hub.api_port);
    let after = parse(python, &text);
    assert_eq!(sample(&after, "gondwana_enrolments", &[]), 2.0);
    assert_eq!(
        sample(&after, "gondwana_nodes", &[("state", "live")]),
        2.0,
        "two nodes (the hub's own record is not counted)"
    );
    assert!(sample(&after, "gondwana_directory_entries", &[]) >= 3.0);
    assert_eq!(samples(&after, "gondwana_directory_head_info").len(), 1);
    assert!(
        sample(
            &after,
            "gondwana_http_requests",
            &[("route", "/v1/enroll"), ("code", "200")]
        ) >= 2.0
    );
    assert_eq!(
        sample(
            &after,
            "gondwana_http_requests",
            &[("route", "unmatched"), ("code", "404")]
        ),
        1.0
    );
    // Raw paths never become labels.
    assert!(!text.contains("/no/such/path"), "{text}");

    // A node: its own reasons at zero, its enrolment counted.
    let node_text = scrape(nodes[0].api_port);
    let node = parse(python, &node_text);
    assert_eq!(sample(&node, "gondwana_enrolments", &[]), 1.0);
    assert_eq!(
        sample(
            &node,
            "gondwana_enrolment_failures",
            &[("reason", "bad_config")]
        ),
        0.0
    );
    assert!(!node.contains_key("gondwana_nodes"), "hub only");

    // Every family the daemon exports is documented, and the dashboard asks
    // only for exported families.
    let mut exported = exported_names(&text);
    exported.extend(exported_names(&node_text));
    let docs = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    for name in &exported {
        assert!(
            docs.contains(&format!("`{name}`")),
            "{name} is not documented in docs/metrics.md"
        );
    }
    check_dashboard(&exported);
}

/// `docs/grafana/gondwana.json` is valid JSON whose queries name only
/// families in `exported` (a counter may be queried by its `_total` name).
fn check_dashboard(exported: &BTreeSet<String>) {
    let text = std::fs::read_to_string(repo().join("docs/grafana/gondwana.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "few queries: {exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
            if word.starts_with("gondwana_") || word.starts_with("process_") {
                used.insert(word.to_string());
            }
        }
    }
    for name in &used {
        assert!(
            exported.contains(name),
            "the dashboard queries {name}, which the daemon does not export"
        );
    }
    assert!(used.len() >= 8, "{used:?}");
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// A user who cannot read the state dir (0700, root's) nor the admin
/// socket gets status through the loopback API, told so; with no daemon,
/// a message that says what to do.
#[test]
fn status_for_a_user_who_is_not_root_goes_through_the_api() {
    if !nix::unistd::geteuid().is_root() {
        require::missing(
            "status_for_a_user_who_is_not_root_goes_through_the_api",
            "needs root (to run the CLI as another user with setpriv)",
        );
        return;
    }
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    // The user can read the config (as on a box: /etc/gondwana is 0644),
    // not the state.
    let shared = tempfile::Builder::new()
        .prefix("gw-observe")
        .tempdir()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = shared.path().join("hub.toml");
    std::fs::copy(&hub.config, &config).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&hub.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let state = hub.state.clone();
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(harness::bin())
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .args(args);
        harness::run_command(&mut cmd)
    };

    let human = as_nobody(&["status"]);
    human.ok();
    let out = human.stdout();
    assert!(
        out.contains("read via:   the loopback API (read-only)"),
        "{out}"
    );
    assert!(out.contains("role:       hub"), "{out}");
    assert!(
        human.stderr().contains("not readable by this user"),
        "{}",
        human.describe()
    );
    let json = as_nobody(&["status", "--json"]);
    let v = json.ok().json();
    assert_eq!(v["read_via"], "api");
    assert_eq!(v["role"], "hub");

    hub.stop();
    let refused = as_nobody(&["status"]);
    assert_ne!(refused.code, Some(0), "{}", refused.describe());
    let err = refused.stderr();
    assert!(
        err.contains("nothing answers at http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("run as root, or start the daemon"), "{err}");
    assert!(err.contains("not readable by this user"), "{err}");
}

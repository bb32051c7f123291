//! The files an operator writes and copies: `enroll.toml` (made by
//! `token create`, read by `enroll FILE` and the daemon) and the config.
//! A file no node can use is refused where it is made; tokens expire by
//! default; every number of the config has a range; no error about either
//! file echoes a value from it (a token pasted unquoted must never reach
//! `status` or the unauthenticated `GET /v1/status`).

mod harness;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::mesh::{Mesh, Node, get};
use harness::offline::Node as Offline;
use harness::{EXIT_CONFIG, EXIT_OK, EXIT_USAGE, Run, bin, describe_command, poll};

const SECRET: &str = "gwt1-abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst";

/// An offline hub (provisioned, no daemon) whose `[hub]` table has `hub`.
fn offline_hub(hub: &str) -> Offline {
    let b = Offline::with_config("");
    b.set_config(&format!(
        "role = \"hub\"\n[wireguard]\nbackend = \"none\"\n[api]\nadmin_socket = \"{}\"\n\
         [hub]\npublic_endpoint = \"hub.example.net:51822\"\n{hub}",
        b.path("admin.sock").display()
    ));
    b.run(&["firstboot"]).ok();
    b
}

fn token_count(b: &Offline) -> usize {
    b.run(&["token", "list", "--json"])
        .ok()
        .json()
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn token_create_refuses_an_enroll_toml_no_node_can_use() {
    for (hub, what) in [
        ("", "no URL at all"),
        ("enroll_listen = \"0.0.0.0:8799\"\n", "IPv4 wildcard"),
        ("enroll_listen = \"[::]:8799\"\n", "IPv6 wildcard"),
    ] {
        let b = offline_hub(hub);
        let out = b.path("enroll.toml");
        let r = b.run(&["token", "create", "--out", out.to_str().unwrap()]);
        r.expect_code(EXIT_CONFIG)
            .stderr_contains("[hub] public_url");
        assert!(
            !out.exists(),
            "{what}: a file was written\n{}",
            r.describe()
        );
        assert_eq!(token_count(&b), 0, "{what}: a token was created");
        if hub.contains("enroll_listen") {
            r.stderr_contains("wildcard");
        }
    }
    // A public_url that is no URL, or a wildcard one, is refused at load,
    // by every command, naming the key.
    for url in [
        "not a url",
        "http://0.0.0.0:8799",
        "https://hub:8799",
        "http://hub:0",
    ] {
        let b = Offline::with_config(&format!(
            "role = \"hub\"\n[hub]\npublic_endpoint = \"hub:51822\"\npublic_url = \"{url}\"\n"
        ));
        b.run(&["firstboot"])
            .expect_code(EXIT_CONFIG)
            .stderr_contains("hub.public_url");
        assert!(!b.state.exists(), "{url}: a refused config created state");
    }
    // A reachable listener address, or a public_url, is what the file says.
    let b = offline_hub("enroll_listen = \"192.0.2.7:8799\"\n");
    let v = b.run(&["token", "create", "--json"]).ok().json();
    assert!(
        v["enroll_toml"]
            .as_str()
            .unwrap()
            .contains("hub_url = \"http://192.0.2.7:8799\""),
        "{v}"
    );
    let b = offline_hub(
        "enroll_listen = \"0.0.0.0:8799\"\npublic_url = \"http://hub.example.net:8799\"\n",
    );
    let out = b.path("enroll.toml");
    b.run(&["token", "create", "--out", out.to_str().unwrap()])
        .ok();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("hub_url = \"http://hub.example.net:8799\""),
        "{text}"
    );
}

#[test]
fn tokens_expire_after_seven_days_unless_never() {
    let b = offline_hub("public_url = \"http://hub.example.net:8799\"\n");
    let default = b.run(&["token", "create", "--json"]).ok().json();
    let never = b
        .run(&["token", "create", "--ttl", "never", "--json"])
        .ok()
        .json();
    let hour = b
        .run(&["token", "create", "--ttl", "1h", "--json"])
        .ok()
        .json();
    let listed = b.run(&["token", "list", "--json"]).ok().json();
    let record = |created: &serde_json::Value| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == created["token_id"])
            .unwrap_or_else(|| panic!("{created} not in {listed}"))
            .clone()
    };
    let life = |t: &serde_json::Value| {
        t["expires_unix"]
            .as_u64()
            .map(|e| e - t["created_unix"].as_u64().unwrap())
    };
    assert_eq!(life(&record(&default)), Some(7 * 86_400), "{listed}");
    assert_eq!(life(&record(&never)), None, "{listed}");
    assert_eq!(life(&record(&hour)), Some(3_600), "{listed}");

    // A secret dead on arrival, or no lifetime at all, is a bad argument.
    for ttl in ["0s", "0", "500ms", "soon", "4000d"] {
        b.run(&["token", "create", "--ttl", ttl])
            .expect_code(EXIT_USAGE)
            .stderr_contains("--ttl");
    }
    b.run(&["token", "create", "--ttl=-5m"])
        .expect_code(EXIT_USAGE);
    assert_eq!(token_count(&b), 3, "a refused --ttl created a token");
}

/// `gondwana --config C --state-dir S enroll -` with `stdin` piped in.
fn enroll_from_stdin(node: &Node, stdin: &[u8]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.arg("--config")
        .arg(&node.config)
        .arg("--state-dir")
        .arg(&node.state)
        .args(["enroll", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = describe_command(&cmd);
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    Run::from_output(what, child.wait_with_output().unwrap())
}

#[test]
fn enroll_reads_the_file_token_create_wrote_or_stdin() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let file = m.root().join("enroll.toml");
    hub.token(&["--uses", "2"], &file);
    let file_s = file.to_str().unwrap();

    // No daemon: the CLI enrols from the file itself.
    let a = m.node("from-file", &hub);
    let v = a
        .cli(&["enroll", file_s, "--boxname", "from-file", "--json"])
        .ok()
        .json();
    assert_eq!(v["state"], "enrolled", "{v}");
    assert_eq!(v["boxname"], "from-file", "{v}");

    // A running daemon enrols from standard input.
    let mut b = m.node("from-stdin", &hub);
    b.start();
    let text = std::fs::read(&file).unwrap();
    let r = enroll_from_stdin(&b, &text);
    r.ok();
    let v = r.json();
    assert_eq!(v["state"], "enrolled", "{}", r.describe());
    assert_eq!(v["daemon"]["node_id"], b.node_id().as_str(), "{v}");
    assert_eq!(b.status()["enrolment"]["state"], "enrolled");
    assert_eq!(hub.node_list().len(), 2);

    // FILE and the flags are one or the other.
    a.cli(&["enroll", file_s, "--hub", "http://127.0.0.1:1"])
        .expect_code(EXIT_USAGE);
    a.cli(&["enroll"]).expect_code(EXIT_USAGE);
}

#[test]
fn a_malformed_token_is_never_echoed() {
    let m = Mesh::new();
    let mut node = Node::new(m.root(), "leaky", "http://127.0.0.1:9");
    // The token unquoted, as a hand edit would leave it.
    let text = format!(
        "hub_url = \"http://127.0.0.1:9\"\nhub_key = \"{}\"\ntoken = {SECRET}\n",
        "ab".repeat(32)
    );
    node.set_enroll(&text);
    node.start();
    let status = poll(
        Duration::from_secs(20),
        "the enroll.toml error in status",
        || {
            node.status_http()
                .filter(|v| v["enrolment"]["last_error"].is_string())
        },
        || format!("{:?}", node.status_http()),
    );
    let error = status["enrolment"]["last_error"].as_str().unwrap();
    assert!(error.contains("line 3, key `token`"), "{error}");
    let api = get(node.api_port, "/v1/status").unwrap().text();
    let cli = node.cli(&["status", "--json"]).ok().stdout();
    let human = node.cli(&["status"]).ok().stdout();
    for (what, shown) in [
        ("GET /v1/status", &api),
        ("status --json", &cli),
        ("status", &human),
    ] {
        assert!(
            !shown.contains("abcdefghij"),
            "{what} echoes the token: {shown}"
        );
    }
    // The token in the wrong key, or pasted alone on a line, likewise.
    let quoted = format!(
        "hub_url = \"{SECRET}\"\nhub_key = \"{}\"\ntoken = \"x\"\n",
        "ab".repeat(32)
    );
    let bare = format!("hub_url = \"http://h:1\"\n{SECRET}\n");
    for bad in [text.as_str(), quoted.as_str(), bare.as_str()] {
        let path = m.root().join("bad.toml");
        std::fs::write(&path, bad).unwrap();
        let r = node.cli(&["enroll", path.to_str().unwrap()]);
        assert_ne!(r.code, Some(EXIT_OK), "{}", r.describe());
        assert!(r.stderr().contains("line "), "{}", r.describe());
        assert!(!r.stderr().contains("abcdefghij"), "{}", r.describe());
    }
}

fn config_refused(text: &str, key: &str, range: &str) {
    let b = Offline::with_config(text);
    let r = b.run(&["firstboot"]);
    r.expect_code(EXIT_CONFIG)
        .stderr_contains(key)
        .stderr_contains(range);
    assert!(!b.state.exists(), "{text}: a refused config created state");
}

#[test]
fn every_number_in_the_config_has_a_range() {
    config_refused(
        "[enroll]\nretry_initial_secs = nan\n",
        "enroll.retry_initial_secs",
        "0.01 to 3600",
    );
    config_refused(
        "[enroll]\nretry_initial_secs = -1.0\n",
        "enroll.retry_initial_secs",
        "0.01 to 3600",
    );
    config_refused(
        "[enroll]\nretry_max_secs = inf\n",
        "enroll.retry_max_secs",
        "0.01 to 86400",
    );
    config_refused(
        "[enroll]\nretry_initial_secs = 10.0\nretry_max_secs = 5.0\n",
        "enroll.retry_max_secs",
        "enroll.retry_initial_secs",
    );
    config_refused(
        "[enroll]\ndirectory_pull_secs = 0\n",
        "enroll.directory_pull_secs",
        "1 to 86400",
    );
    config_refused("[mesh]\napi_port = 0\n", "mesh.api_port", "1 to 65535");
    config_refused(
        "[mesh]\nwireguard_port = 0\n",
        "mesh.wireguard_port",
        "1 to 65535",
    );
    config_refused(
        "[api]\nmax_body_bytes = 1000000000000\n",
        "api.max_body_bytes",
        "4096 to 67108864",
    );
    config_refused(
        "[hub]\nenroll_rate_burst = 0\n",
        "hub.enroll_rate_burst",
        "1 to 100000",
    );
    config_refused(
        "[api]\nlisten = \"127.0.0.1:0\"\n",
        "api.listen",
        "1 to 65535",
    );
    // A negative number for an unsigned key: the line and key, the type.
    config_refused(
        "[enroll]\ndirectory_pull_secs = -5\n",
        "line 2, key `enroll.directory_pull_secs`",
        "",
    );

    // The daemon refuses the same file instead of aborting.
    let b = Offline::with_config("[enroll]\nretry_initial_secs = nan\n");
    let mut run = b.command(&["run"]);
    let r = harness::run_command(&mut run);
    r.expect_code(EXIT_CONFIG)
        .stderr_contains("enroll.retry_initial_secs");
}

#[test]
fn config_errors_echo_no_value() {
    let key = harness::KNOWN_WG_PRIVATE;
    for text in [
        format!("[wireguard]\nprivate_key = \"{key}\"\n"),
        format!("[wireguard]\n{key}\n"),
        format!("[enroll]\nhub_api_url = {SECRET}\n"),
    ] {
        let b = Offline::with_config(&text);
        let r = b.run(&["firstboot"]);
        r.expect_code(EXIT_CONFIG).stderr_contains("line 2");
        assert!(!r.stderr().contains(&key[..12]), "{}", r.describe());
        assert!(!r.stderr().contains("abcdefghij"), "{}", r.describe());
    }
}

//! The firewall through the real binary: `gondwana run` inside a network
//! namespace this test creates applies its table; `grant add|del|list`
//! reach it over the admin socket; a restart re-applies stored grants;
//! `POST /v1/grants` refuses what is not a hub-signed command. Inspected
//! with the real `nft`. Needs root (as on CI): failing to create the
//! namespace fails the test.

mod harness;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::netns::Netns;
use harness::offline::*;
use serde_json::Value;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // `ip netns exec` execs the daemon: this pid is gondwana's.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn start(ns: &Netns, node: &Node) -> Daemon {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0, bin()])
        .arg("--state-dir")
        .arg(&node.state)
        .arg("--config")
        .arg(&node.config)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("spawn daemon");
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let socket = node.path("admin.sock");
    while Instant::now() < deadline {
        if socket.exists() && node.run(&["grant", "list", "--json"]).code == Some(0) {
            return daemon;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the daemon did not come up");
}

fn grants(node: &Node) -> Vec<(String, u64, Option<u64>)> {
    let v = node.run(&["grant", "list", "--json"]).ok().json();
    v.as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["ip"].as_str().unwrap().to_string(),
                g["port"].as_u64().unwrap(),
                g["timeout_secs"].as_u64(),
            )
        })
        .collect()
}

/// `nft list set` text without the ticking "expires …" parts.
fn without_expiry(text: &str) -> String {
    let mut out = Vec::new();
    let mut skip = false;
    for word in text.split_whitespace() {
        if skip {
            skip = false;
            if let Some(rest) = word.strip_suffix(',').or(word.strip_suffix('}')) {
                let _ = rest;
                out.push(word.chars().last().unwrap().to_string());
            }
            continue;
        }
        if word == "expires" {
            skip = true;
            continue;
        }
        out.push(word.to_string());
    }
    out.join(" ")
}

fn post(ns: &Netns, port: u16, path: &str, body: &[u8]) -> (u16, Value) {
    let body_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body_file.path(), body).unwrap();
    let out = ns.exec(&[
        "python3",
        "-c",
        "import sys, urllib.request, urllib.error, json\n\
         req = urllib.request.Request(sys.argv[1], data=open(sys.argv[2],'rb').read(), method='POST')\n\
         try:\n  r = urllib.request.urlopen(req, timeout=5); print(r.status); print(r.read().decode())\n\
         except urllib.error.HTTPError as e:\n  print(e.code); print(e.read().decode())\n",
        &format!("http://127.0.0.1:{port}{path}"),
        body_file.path().to_str().unwrap(),
    ]);
    let (status, rest) = out.split_once('\n').unwrap();
    (
        status.trim().parse().unwrap(),
        serde_json::from_str(rest.trim()).unwrap_or(Value::Null),
    )
}

#[test]
fn daemon_applies_the_table_and_grants_survive_a_restart() {
    let ns = Netns::new("gwfw-daemon");
    let api_port = 18798;
    let node = Node::new();
    node.set_config(&format!(
        "[api]\nloopback = \"127.0.0.1:{api_port}\"\nadmin_socket = \"{}\"\n\
         [enroll]\nsearch_paths = []\nconfig_volume_label = \"\"\n\
         [mesh]\napi_port = {api_port}\n[firewall]\nenabled = true\ntable = \"gwtest\"\n",
        node.path("admin.sock").display()
    ));
    ns.exec(&["nft", "add table inet operator"]);
    let operator = ns.exec(&["nft", "list table inet operator"]);

    let daemon = start(&ns, &node);
    let table = ns.exec(&["nft", "list table inet gwtest"]);
    assert!(table.contains("iifname \"wg-mesh\" ip saddr . tcp dport @grants accept"));
    assert!(table.contains(&format!("tcp dport {api_port} accept")));
    let status = node.run(&["status", "--json"]).ok().json();
    assert_eq!(status["firewall"]["enabled"], true, "{status}");

    node.run(&["grant", "add", "--ip", "10.10.0.5", "--port", "22"])
        .ok();
    node.run(&[
        "grant",
        "add",
        "--ip",
        "10.10.0.6",
        "--port",
        "443",
        "--timeout",
        "1h",
    ])
    .ok();
    node.run(&[
        "grant",
        "add",
        "--ip",
        "10.10.0.7",
        "--port",
        "80",
        "--timeout",
        "2s",
    ])
    .ok();
    let set = ns.exec(&["nft", "list set inet gwtest grants"]);
    assert!(set.contains("10.10.0.5 . 22"), "{set}");
    assert!(set.contains("10.10.0.6 . 443 timeout 1h"), "{set}");
    assert_eq!(grants(&node).len(), 3);

    // Bad input: clear error, nothing changed.
    for bad in [
        ["--ip", "10.10.1.5", "--port", "22"],
        ["--ip", "10.10.0.0", "--port", "22"],
        ["--ip", "10.10.0.9", "--port", "0"],
        ["--ip", "10.10.0.9", "--port", "65536"],
    ] {
        let mut args = vec!["grant", "add"];
        args.extend(bad);
        let run = node.run(&args);
        assert_ne!(run.code, Some(0), "{bad:?} accepted");
    }
    assert_eq!(
        without_expiry(&ns.exec(&["nft", "list set inet gwtest grants"])),
        without_expiry(&set)
    );

    node.run(&["grant", "del", "--ip", "10.10.0.5", "--port", "22"])
        .ok();
    assert_ne!(
        node.run(&["grant", "del", "--ip", "10.10.0.5", "--port", "22"])
            .code,
        Some(0),
        "deleting a missing grant is an error"
    );

    // Unauthenticated or forged API commands change nothing (compared
    // without the 2 s grant: on a loaded machine it may expire meanwhile).
    let lasting = |node: &Node| {
        let mut g = grants(node);
        g.retain(|(_, _, timeout)| *timeout != Some(2));
        g
    };
    let before = lasting(&node);
    for body in [&b""[..], b"garbage", &[0u8; 200][..]] {
        let (code, v) = post(&ns, api_port, "/v1/grants", body);
        assert!((400..500).contains(&code), "{code} {v}");
        assert!(v["error"].is_string() && v["detail"].is_string(), "{v}");
    }
    assert_eq!(lasting(&node), before);

    // Restart: the table is rebuilt and the live stored grants come back;
    // the 2 s one has expired meanwhile.
    drop(daemon);
    std::thread::sleep(Duration::from_millis(2200));
    ns.exec(&["nft", "flush ruleset"]);
    ns.exec(&["nft", "add table inet operator"]);
    let daemon = start(&ns, &node);
    let after: Vec<_> = grants(&node)
        .into_iter()
        .map(|(ip, port, _)| (ip, port))
        .collect();
    assert_eq!(after, vec![("10.10.0.6".to_string(), 443)]);
    assert_eq!(ns.exec(&["nft", "list table inet operator"]), operator);

    drop(daemon);
    node.run(&["audit", "verify"]).ok();
    let audit = node.run(&["audit", "show", "--json"]);
    let text = audit.ok().stdout();
    assert!(
        text.contains("firewall.grant") && text.contains("firewall.revoke"),
        "{text}"
    );
}

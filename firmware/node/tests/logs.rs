//! `gondwana logs` and the daemon's log ring (docs/logging.md "The ring"):
//! a daemon started with GONDWANA_LOG_RING writes its stamped lines there as
//! well as to stderr; `gondwana logs` prints them (`-n`, `--json`, `-f`)
//! without config or daemon; the ring stays bounded.

mod harness;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::mesh::Mesh;
use harness::{Run, bin, gondwana, poll, run_command};

const STAMPED: &str =
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z +(ERROR|WARN|INFO|DEBUG) \S+: ";

fn stamped(line: &str) -> bool {
    // (no regex crate here: the shape, by hand)
    let Some((time, rest)) = line.split_once(' ') else {
        return false;
    };
    let level = rest.trim_start().split(' ').next().unwrap_or("");
    time.len() == 27
        && time.ends_with('Z')
        && time.as_bytes()[10] == b'T'
        && ["ERROR", "WARN", "INFO", "DEBUG"].contains(&level)
        && rest.contains(": ")
}

fn logs(ring: &std::path::Path, args: &[&str]) -> Run {
    let mut all = vec!["logs", "--file", ring.to_str().unwrap()];
    all.extend_from_slice(args);
    gondwana(all)
}

#[test]
fn the_daemon_writes_its_ring_and_logs_reads_it() {
    let m = Mesh::new();
    let hub = m.hub();
    let ring = m.root().join("ring").join("log");
    fs::create_dir_all(ring.parent().unwrap()).unwrap();
    let mut daemon = Command::new(bin())
        .arg("--config")
        .arg(&hub.config)
        .arg("--state-dir")
        .arg(&hub.state)
        .arg("run")
        .env("GONDWANA_LOG_RING", &ring)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the daemon");
    let text = poll(
        Duration::from_secs(30),
        "the daemon's `running` line in the ring",
        || {
            let t = fs::read_to_string(&ring).ok()?;
            t.contains(") running\n").then_some(t)
        },
        || fs::read_to_string(&ring).unwrap_or_default(),
    );
    assert!(
        text.lines().all(stamped),
        "unstamped ring lines (want {STAMPED}):\n{text}"
    );

    // Follow: the lines so far, then a new one (SIGHUP makes the daemon log).
    let mut follow = Command::new(bin())
        .args(["logs", "-f", "-n", "1", "--file", ring.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn logs -f");
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains(") running"), "{first}");
    let kill = |sig: &str, pid: u32| {
        let s = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(s.success());
    };
    kill("-HUP", daemon.id());
    let next = lines.next().unwrap().unwrap();
    assert!(next.contains("SIGHUP"), "followed line: {next}");
    follow.kill().unwrap();
    follow.wait().unwrap();

    let all = logs(&ring, &[]);
    all.ok();
    let last2 = logs(&ring, &["-n", "2"]);
    last2.ok();
    let every = all.stdout();
    let every: Vec<&str> = every.lines().collect();
    assert_eq!(
        last2.stdout().lines().collect::<Vec<_>>(),
        every[every.len() - 2..]
    );
    let json = logs(&ring, &["-n", "1", "--json"]);
    json.ok();
    let v: serde_json::Value = serde_json::from_str(json.stdout().trim()).unwrap();
    assert!(v["message"].as_str().unwrap().contains("SIGHUP"), "{v}");
    assert_eq!(v["level"], "INFO");
    assert!(
        v["target"].as_str().unwrap().starts_with("gondwana_node"),
        "{v}"
    );
    assert!(
        stamped(&format!("{} INFO x: y", v["time"].as_str().unwrap())),
        "{v}"
    );

    kill("-TERM", daemon.id());
    daemon.wait().unwrap();
    // Every line went to stderr (the console) too.
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut daemon.stderr.take().unwrap(), &mut stderr).unwrap();
    for line in fs::read_to_string(&ring).unwrap().lines() {
        assert!(
            stderr.contains(line),
            "ring line not on stderr: {line}\n{stderr}"
        );
    }
}

#[test]
fn logs_reads_the_older_half_first_and_needs_no_config() {
    let m = Mesh::new();
    let ring = m.root().join("log");
    fs::write(
        m.root().join("log.1"),
        "2026-11-30T00:00:01.000000Z  INFO a: one\n",
    )
    .unwrap();
    fs::write(&ring, "2026-11-30T00:00:02.000000Z  WARN b: two\nplain\n").unwrap();
    // A config that does not parse changes nothing: logs reads no config.
    fs::write(m.root().join("bad.toml"), "role = [").unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("--config").arg(m.root().join("bad.toml")).args([
        "logs",
        "--json",
        "--file",
        ring.to_str().unwrap(),
    ]);
    let out = run_command(&mut cmd);
    out.ok();
    let v: Vec<serde_json::Value> = out
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(v.len(), 3, "{}", out.stdout());
    assert_eq!(v[0]["message"], "one");
    assert_eq!(v[1]["level"], "WARN");
    assert_eq!(v[2]["time"], serde_json::Value::Null);
    assert_eq!(v[2]["message"], "plain");

    // No ring: a clear error, exit 1.
    let none = logs(&m.root().join("nothing"), &[]);
    none.expect_code(1);
    assert!(
        none.stderr().contains("no log ring at"),
        "{}",
        none.describe()
    );
    // A bad -n is a bad argument (2).
    logs(&ring, &["-n", "many"]).expect_code(2);
}

#[test]
fn the_ring_stays_bounded() {
    let m = Mesh::new();
    let hub = m.hub();
    let ring = m.root().join("log");
    // Many SIGHUPs: each reload logs a line.
    let mut daemon = Command::new(bin())
        .arg("--config")
        .arg(&hub.config)
        .arg("--state-dir")
        .arg(&hub.state)
        .arg("run")
        .env("GONDWANA_LOG_RING", &ring)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the daemon");
    poll(
        Duration::from_secs(30),
        "the daemon to run",
        || {
            fs::read_to_string(&ring)
                .ok()?
                .contains(") running\n")
                .then_some(())
        },
        String::new,
    );
    // Fill well past two halves by hand through the same files (the
    // daemon's own writes rotate them): lines of 1000 bytes.
    let filler = format!("2026-11-30T00:00:00.000000Z  INFO t: {}\n", "x".repeat(962));
    let before = fs::read_to_string(&ring).unwrap();
    fs::write(&ring, format!("{before}{}", filler.repeat(140))).unwrap();
    Command::new("kill")
        .args(["-HUP", &daemon.id().to_string()])
        .status()
        .unwrap();
    poll(
        Duration::from_secs(10),
        "the rotation",
        || m.root().join("log.1").exists().then_some(()),
        || {
            let t = fs::read_to_string(&ring).unwrap_or_default();
            format!(
                "{} bytes, ends {:?}",
                t.len(),
                &t[t.len().saturating_sub(300)..]
            )
        },
    );
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    daemon.wait().unwrap();
    let older = fs::metadata(m.root().join("log.1")).unwrap().len();
    let current = fs::metadata(&ring).map(|m| m.len()).unwrap_or(0);
    assert!(
        older < 150 * 1024 && current < 128 * 1024,
        "older {older}, current {current}"
    );
    let out = logs(&ring, &[]);
    out.ok();
    assert!(out.stdout().contains("SIGHUP"), "{}", out.stdout());
}

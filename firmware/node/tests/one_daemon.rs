//! One daemon per admin socket. Two boxes on one host with different state
//! directories but the same `api.admin_socket`: the second daemon used to
//! take the socket over silently, and the CLI of one box then acted on the
//! other. Now the second refuses to start (exit 9, naming the first), the
//! first keeps answering as itself, the CLI of the other box refuses to
//! send to it, and a stale socket file is still taken over.
//!
//! The first box also plays an image's daemon with a hardware watchdog
//! (docs/updates.md, "Watchdog"; a plain file stands in for
//! `/dev/watchdog`): petted while it runs, the magic `V` last once it is
//! stopped with SIGTERM.

mod harness;

use std::fs;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::mesh::{Daemon, free_port, get, poll};
use harness::{EXIT_OK, cli};
use serde_json::Value;

const EXIT_ADMIN_SOCKET_TAKEN: i32 = gondwana_node::exit::ADMIN_SOCKET_TAKEN as i32;

struct TestBox {
    config: PathBuf,
    state: PathBuf,
    log: PathBuf,
    port: u16,
}

fn a_box(root: &Path, name: &str, socket: &Path) -> TestBox {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let config = dir.join("gondwana.toml");
    fs::write(
        &config,
        format!(
            "[wireguard]\nbackend = \"none\"\n[firewall]\nenabled = false\n\
             [api]\nloopback = \"127.0.0.1:{port}\"\nadmin_socket = \"{}\"\n\
             [enroll]\nsearch_paths = []\nkernel_cmdline = \"{}\"\nconfig_volume_label = \"\"\n",
            socket.display(),
            dir.join("cmdline").display()
        ),
    )
    .unwrap();
    TestBox {
        config,
        state: dir.join("state"),
        log: dir.join("daemon.log"),
        port,
    }
}

impl TestBox {
    fn spawn(&self, name: &str) -> Daemon {
        Daemon::spawn(name, &self.config, &self.state, &self.log)
    }

    fn node_id_over_http(&self) -> Option<String> {
        let r = get(self.port, "/v1/status").ok()?;
        (r.status == 200).then(|| r.json()["node_id"].as_str().unwrap().to_string())
    }

    fn status(&self) -> harness::Run {
        cli(&self.config, &self.state, &["status", "--json"])
    }
}

/// `b`'s config as on an image (the initramfs' root device file exists)
/// whose board has a watchdog at `watchdog`.
fn as_image_with_watchdog(b: &TestBox, dir: &Path, watchdog: &Path) {
    let root_device = dir.join("root-device");
    fs::write(&root_device, "/dev/nonexistent2\n").unwrap();
    fs::write(watchdog, b"").unwrap();
    let mut config = fs::read_to_string(&b.config).unwrap();
    config.push_str(&format!(
        "[update]\nroot_device_file = \"{}\"\nwatchdog = \"{}\"\nstate_file = \"{}\"\ncmdline_file = \"{}\"\n",
        root_device.display(),
        watchdog.display(),
        dir.join("update.json").display(),
        dir.join("cmdline").display()
    ));
    fs::write(&b.config, config).unwrap();
}

fn wait_running(b: &TestBox, d: &mut Daemon) -> String {
    poll(
        Duration::from_secs(30),
        "the daemon to run",
        || {
            if let Some(status) = d.exited() {
                panic!("exited ({status}): {}", d.log_text());
            }
            if d.started() {
                b.node_id_over_http()
            } else {
                None
            }
        },
        || fs::read_to_string(&b.log).unwrap_or_default(),
    )
}

#[test]
fn a_second_daemon_on_a_taken_admin_socket_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("run").join("admin.sock");
    let a = a_box(tmp.path(), "a", &socket);
    let b = a_box(tmp.path(), "b", &socket);
    let watchdog = tmp.path().join("watchdog");
    as_image_with_watchdog(&a, tmp.path(), &watchdog);
    // B is a box of its own, provisioned while nothing runs.
    let b_id = cli(&b.config, &b.state, &["firstboot", "--json"])
        .ok()
        .json()["node_id"]
        .as_str()
        .unwrap()
        .to_string();

    let mut da = a.spawn("a");
    let a_id = wait_running(&a, &mut da);

    let mut db = b.spawn("b");
    let status = poll(
        Duration::from_secs(20),
        "the second daemon to exit",
        || db.exited(),
        || fs::read_to_string(&b.log).unwrap_or_default(),
    );
    assert_eq!(
        status.code(),
        Some(EXIT_ADMIN_SOCKET_TAKEN),
        "{}",
        db.log_text()
    );
    let said = db.log_text();
    assert!(
        said.contains(&a_id[..12]),
        "names the holder's node: {said}"
    );
    assert!(
        said.contains(&fs::canonicalize(&a.state).unwrap().display().to_string()),
        "names the holder's state dir: {said}"
    );
    assert!(
        said.contains("api.admin_socket"),
        "says what to change: {said}"
    );
    assert!(b.node_id_over_http().is_none(), "B started its API anyway");

    // A keeps its socket and answers as itself, naming itself.
    let v: Value = a.status().ok().json();
    assert_eq!(v["node_id"], a_id.as_str(), "{v}");
    assert_eq!(v["daemon"]["node_id"], a_id.as_str(), "{v}");
    assert_eq!(
        v["daemon"]["state_dir"],
        a.state.display().to_string(),
        "{v}"
    );
    let v = cli(&a.config, &a.state, &["identity", "show", "--json"])
        .ok()
        .json();
    assert_eq!(v["node_id"], a_id.as_str(), "{v}");

    let r = b.status();
    assert_eq!(r.code, Some(EXIT_ADMIN_SOCKET_TAKEN), "{}", r.describe());
    r.stderr_contains(&a_id[..12]);
    assert!(!r.stdout().contains(&b_id), "{}", r.describe());
    // Nor does a fresh box's first boot ask A (it would report A's identity).
    let c = a_box(tmp.path(), "c", &socket);
    let r = cli(&c.config, &c.state, &["firstboot", "--json"]);
    assert_eq!(r.code, Some(EXIT_ADMIN_SOCKET_TAKEN), "{}", r.describe());
    assert!(!c.state.exists(), "{}", r.describe());

    // An error the daemon answers names it too.
    let r = cli(&a.config, &a.state, &["node", "show", "nobody"]);
    assert_ne!(r.code, Some(EXIT_OK));
    r.stderr_contains(&format!("node {}", &a_id[..12]));

    // A pets its watchdog while it runs, and disarms it when stopped.
    poll(
        Duration::from_secs(10),
        "two pets of the watchdog",
        || (fs::read(&watchdog).unwrap_or_default().len() >= 2).then_some(()),
        || da.log_text(),
    );
    da.terminate(Duration::from_secs(15));
    let pets = fs::read(&watchdog).unwrap();
    assert_eq!(pets.last(), Some(&b'V'), "no magic close: {pets:?}");
    assert!(pets[..pets.len() - 1].iter().all(|&b| b == 0), "{pets:?}");

    // Once A is gone its socket is stale: B takes it over.
    let stale = UnixListener::bind(&socket);
    drop(stale); // a socket file nobody listens on, as a crash leaves it
    assert!(socket.exists());
    let mut db = b.spawn("b");
    assert_eq!(wait_running(&b, &mut db), b_id);
    let v = b.status().ok().json();
    assert_eq!(v["daemon"]["node_id"], b_id.as_str(), "{v}");
}

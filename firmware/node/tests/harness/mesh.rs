//! Real `gondwana run` daemons (a hub and nodes) on loopback, each with its
//! own temp state directory, a tiny blocking HTTP client, and helpers to
//! forge enrolment submissions.
//!
//! Every daemon is a [`Daemon`]: dropping it sends SIGTERM (then SIGKILL if
//! it does not exit), so a failing test leaves nothing running.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{IDENTITY_LOG, SECRETS};
pub use super::{Run, bin, cli, poll, wait_until};
use gondwana_core::enrol::{self, EnrolGrant, EnrolRequest};
use gondwana_core::identity_log::{self, IdentityState};
use gondwana_core::keys::{SigningSecret, WireguardSecret, decode_hex32};
use gondwana_core::token::TokenSecret;
use gondwana_core::{Boxname, keys};
use nix::fcntl::{Flock, FlockArg};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Ports

/// Ports are handed out from 20000–31999, below Linux's default ephemeral
/// range (32768–60999), so the client side of some unrelated connection
/// cannot take one between our check and the daemon's bind. A port is ours
/// once we hold an flock on `$TMPDIR/gondwana-test-ports/PORT.lock` (kept
/// until this test process exits, released by the kernel even on a crash),
/// so test processes running side by side never share one; a port something
/// else is bound to is skipped.
const PORT_LOW: u32 = 20_000;
const PORT_SPAN: u32 = 12_000;
static NEXT_PORT: AtomicU32 = AtomicU32::new(u32::MAX);
static PORT_LOCKS: Mutex<Vec<Flock<File>>> = Mutex::new(Vec::new());

pub fn free_port() -> u16 {
    let dir = std::env::temp_dir().join("gondwana-test-ports");
    fs::create_dir_all(&dir).expect("port lock directory");
    // Start each process somewhere else in the range.
    let start = std::process::id().wrapping_mul(2_654_435_761) % PORT_SPAN;
    let _ = NEXT_PORT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..PORT_SPAN {
        let n = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let port = (PORT_LOW + n % PORT_SPAN) as u16;
        let Ok(file) = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
        else {
            continue;
        };
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            PORT_LOCKS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(lock);
            return port;
        }
    }
    panic!("no free port in {PORT_LOW}..{}", PORT_LOW + PORT_SPAN);
}

// ---------------------------------------------------------------------------
// Daemons

/// A running `gondwana run`. Drop stops it (SIGTERM, then SIGKILL).
pub struct Daemon {
    child: Option<Child>,
    pub name: String,
    pub log: PathBuf,
    /// Length of the (shared, appended) log file when this process started.
    log_start: u64,
}

pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg("-s")
        .arg(signal)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -s {signal} {pid} failed: {status}");
}

impl Daemon {
    /// `gondwana --config C --state-dir S run`, stderr appended to `log`.
    pub fn spawn(name: &str, config: &Path, state: &Path, log: &Path) -> Daemon {
        let err = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("open daemon log");
        let log_start = err.metadata().map(|m| m.len()).unwrap_or(0);
        let out = err.try_clone().expect("dup daemon log");
        let child = Command::new(bin())
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(state)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning daemon {name}: {e}"));
        Daemon {
            child: Some(child),
            name: name.to_string(),
            log: log.to_path_buf(),
            log_start,
        }
    }

    /// This process has bound all its listeners: it logs "… running" only
    /// after that. (A health answer alone could come from someone else's
    /// daemon on a port this one failed to bind.)
    pub fn started(&self) -> bool {
        let text = fs::read(&self.log).unwrap_or_default();
        let start = usize::try_from(self.log_start)
            .unwrap_or(usize::MAX)
            .min(text.len());
        String::from_utf8_lossy(&text[start..]).contains(") running\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("daemon reaped")
    }

    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// `Some(status)` if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait (up to `grace`, then SIGKILL). Returns the status.
    pub fn terminate(mut self, grace: Duration) -> ExitStatus {
        self.stop_child(grace).expect("daemon reaped")
    }

    /// SIGKILL: the power-cut of a process.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop_child(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .arg("-s")
            .arg("TERM")
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    return child.wait().ok();
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop_child(Duration::from_secs(5));
    }
}

// ---------------------------------------------------------------------------
// HTTP (HTTP/1.1, one request per connection)

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body of the {} answer is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request to `127.0.0.1:port`. The whole body is sent (write errors
/// are ignored: a server may answer and close before reading it all), then
/// the answer is read until the server closes.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> io::Result<Resp> {
    http_with(port, method, path, &[], body)
}

/// [`http`] with extra `(name, value)` headers.
pub fn http_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Resp> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(15)))?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A reset after (part of) the answer still leaves what was read.
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse_response(&raw)
}

pub fn get(port: u16, path: &str) -> io::Result<Resp> {
    http(port, "GET", path, &[])
}

pub fn post(port: u16, path: &str, body: &[u8]) -> io::Result<Resp> {
    http(port, "POST", path, body)
}

pub fn parse_response(raw: &[u8]) -> io::Result<Resp> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what}: {:?}", String::from_utf8_lossy(raw)),
        )
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if body.len() < len {
            return Err(bad("truncated body"));
        }
        body.truncate(len);
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// The value of an unlabelled Prometheus sample, e.g. `gondwana_enrolments_total`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        (key == name).then(|| value.parse().ok()).flatten()
    })
}

// ---------------------------------------------------------------------------
// A mesh on loopback

/// The temp directory every daemon of one test lives in.
pub struct Mesh {
    pub tmp: TempDir,
}

impl Default for Mesh {
    fn default() -> Self {
        Self::new()
    }
}

impl Mesh {
    pub fn new() -> Mesh {
        Mesh {
            tmp: tempfile::Builder::new()
                .prefix("gw-mesh")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// A hub with a generous enrolment rate limit (tests run every node
    /// from 127.0.0.1).
    pub fn hub(&self) -> Hub {
        self.hub_with("enroll_rate_burst = 100000\nenroll_rate_per_minute = 1000000\n")
    }

    /// A hub whose `[hub]` table gets `extra` lines.
    pub fn hub_with(&self, extra: &str) -> Hub {
        Hub::new(self.root(), extra)
    }

    /// A node pointed at `hub`'s API for directory pulls and mirror pushes.
    pub fn node(&self, name: &str, hub: &Hub) -> Node {
        Node::new(self.root(), name, &hub.api_url())
    }
}

pub struct Hub {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub enroll_port: u16,
    pub api_port: u16,
    pub daemon: Option<Daemon>,
}

impl Hub {
    pub fn new(root: &Path, extra_hub: &str) -> Hub {
        let dir = root.join("hub");
        fs::create_dir_all(&dir).unwrap();
        let enroll_port = free_port();
        let api_port = free_port();
        let config = dir.join("hub.toml");
        let state = dir.join("state");
        fs::write(
            &config,
            format!(
                "role = \"hub\"\n\
                 [hub]\n\
                 public_endpoint = \"127.0.0.1:51822\"\n\
                 enroll_listen = \"127.0.0.1:{enroll_port}\"\n\
                 public_url = \"http://127.0.0.1:{enroll_port}\"\n\
                 {extra_hub}\
                 [wireguard]\n\
                 backend = \"none\"\n\
                 [api]\n\
                 loopback = \"127.0.0.1:{api_port}\"\n\
                 admin_socket = \"{}\"\n\
                 [firewall]\n\
                 enabled = false\n",
                dir.join("admin.sock").display()
            ),
        )
        .unwrap();
        Hub {
            dir,
            config,
            state,
            enroll_port,
            api_port,
            daemon: None,
        }
    }

    pub fn enroll_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.enroll_port)
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("hub.log")
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }

    pub fn cli(&self, args: &[&str]) -> Run {
        cli(&self.config, &self.state, args)
    }

    pub fn spawn(&mut self) {
        assert!(self.daemon.is_none(), "hub already running");
        self.daemon = Some(Daemon::spawn("hub", &self.config, &self.state, &self.log()));
    }

    /// Waits until both listeners answer `/v1/health`.
    pub fn wait_up(&mut self) {
        let (api, enroll) = (self.api_port, self.enroll_port);
        let log = self.log();
        let daemon = self.daemon.as_mut().expect("hub not started");
        let up = |port: u16| get(port, "/v1/health").is_ok_and(|r| r.status == 200);
        poll(
            Duration::from_secs(30),
            "the hub to listen",
            || {
                if let Some(status) = daemon.exited() {
                    panic!(
                        "hub exited ({status}) during start-up\n{}",
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                (daemon.started() && up(api) && up(enroll)).then_some(())
            },
            || fs::read_to_string(&log).unwrap_or_default(),
        );
    }

    pub fn start(&mut self) {
        self.spawn();
        self.wait_up();
    }

    /// SIGTERM; asserts a clean exit.
    pub fn stop(&mut self) {
        let daemon = self.daemon.take().expect("hub not running");
        let status = daemon.terminate(Duration::from_secs(15));
        assert!(
            status.success(),
            "hub exited with {status}\n{}",
            self.log_text()
        );
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.daemon.take().expect("hub not running").kill();
    }

    /// `token create --json --out FILE <args>`; returns the JSON and writes
    /// the ready enroll.toml to `out`.
    pub fn token(&self, args: &[&str], out: &Path) -> Value {
        let out_s = out.display().to_string();
        let mut all = vec!["token", "create", "--json", "--out", out_s.as_str()];
        all.extend_from_slice(args);
        self.cli(&all).ok().json()
    }

    pub fn token_list(&self) -> Vec<Value> {
        array(self.cli(&["token", "list", "--json"]).ok().json())
    }

    pub fn token_uses(&self, id: &str) -> u64 {
        self.token_list()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("no token {id}"))["uses"]
            .as_u64()
            .unwrap()
    }

    pub fn node_list(&self) -> Vec<Value> {
        array(self.cli(&["node", "list", "--json"]).ok().json())
    }

    pub fn node_show(&self, who: &str) -> Value {
        self.cli(&["node", "show", who, "--json"]).ok().json()
    }

    pub fn directory(&self) -> Value {
        without_daemon(self.cli(&["directory", "show", "--json"]).ok().json())
    }

    /// What a refused request must not change.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            // Registry fields only: a running daemon adds what its
            // WireGuard device says now (online, last handshake).
            nodes: self
                .node_list()
                .into_iter()
                .map(|mut n| {
                    if let Some(o) = n.as_object_mut() {
                        for live in [
                            "online",
                            "this_box",
                            "last_handshake",
                            "last_handshake_unix",
                        ] {
                            o.remove(live);
                        }
                    }
                    n
                })
                .collect(),
            tokens: self.token_list(),
            directory: self.directory(),
        }
    }

    /// The hub's signing public key (the pin).
    pub fn key(&self) -> [u8; 32] {
        let v = self.cli(&["status", "--json"]).ok().json();
        decode_hex32(v["signing_public_key"].as_str().unwrap()).unwrap()
    }

    /// The hub's current WireGuard public key (what nodes prove with).
    pub fn wireguard_key(&self) -> [u8; 32] {
        let v = self.cli(&["identity", "show", "--json"]).ok().json();
        let text = v["wireguard_public_key"]
            .as_str()
            .unwrap_or_else(|| panic!("no wireguard_public_key in {v}"));
        *keys::wg_key_from_base64(text).unwrap()
    }

    pub fn metrics(&self) -> String {
        let r = get(self.api_port, "/metrics").expect("GET /metrics");
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- hub log ---\n{}", self.log_text());
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub nodes: Vec<Value>,
    pub tokens: Vec<Value>,
    pub directory: Value,
}

/// A document as it is with and without a daemon: through the admin
/// socket it also names the daemon that answered (`"daemon"`).
pub fn without_daemon(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("daemon");
    }
    v
}

fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("expected a JSON array, got {other}"),
    }
}

pub struct Node {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub api_port: u16,
    /// The one `enroll.search_paths` entry (absent until written).
    pub enroll_file: PathBuf,
    /// The node's stand-in for /proc/cmdline (absent until written).
    pub cmdline: PathBuf,
    pub hub_api_url: String,
    pub daemon: Option<Daemon>,
}

impl Node {
    pub fn new(root: &Path, name: &str, hub_api_url: &str) -> Node {
        let dir = root.join(name);
        fs::create_dir_all(dir.join("boot")).unwrap();
        let node = Node {
            name: name.to_string(),
            config: dir.join("node.toml"),
            state: dir.join("state"),
            api_port: free_port(),
            enroll_file: dir.join("boot").join("enroll.toml"),
            cmdline: dir.join("cmdline"),
            hub_api_url: hub_api_url.to_string(),
            dir,
            daemon: None,
        };
        node.write_config(1, "");
        node
    }

    /// Rewrites the config with `directory_pull_secs = pull_secs` and
    /// `extra` appended (a TOML fragment).
    pub fn write_config(&self, pull_secs: u64, extra: &str) {
        // A GW_CONFIG stick on the test machine must not enrol test nodes;
        // tests of that path name the label themselves.
        let no_stick = if extra.contains("config_volume_label") {
            ""
        } else {
            "config_volume_label = \"\"\n"
        };
        fs::write(
            &self.config,
            format!(
                "[wireguard]\n\
                 backend = \"none\"\n\
                 [api]\n\
                 loopback = \"127.0.0.1:{}\"\n\
                 admin_socket = \"{}\"\n\
                 [enroll]\n\
                 search_paths = [\"{}\"]\n\
                 kernel_cmdline = \"{}\"\n\
                 hub_api_url = \"{}\"\n\
                 directory_pull_secs = {pull_secs}\n\
                 retry_initial_secs = 0.2\n\
                 retry_max_secs = 2\n\
                 {no_stick}{extra}{}",
                self.api_port,
                self.dir.join("admin.sock").display(),
                self.enroll_file.display(),
                self.cmdline.display(),
                self.hub_api_url,
                if extra.contains("[firewall]") {
                    ""
                } else {
                    "\n[firewall]\nenabled = false\n"
                },
            ),
        )
        .unwrap();
    }

    pub fn set_enroll(&self, text: &str) {
        fs::write(&self.enroll_file, text).unwrap();
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }

    pub fn cli(&self, args: &[&str]) -> Run {
        cli(&self.config, &self.state, args)
    }

    pub fn spawn(&mut self) {
        assert!(self.daemon.is_none(), "{} already running", self.name);
        self.daemon = Some(Daemon::spawn(
            &self.name,
            &self.config,
            &self.state,
            &self.log(),
        ));
    }

    pub fn wait_up(&mut self) {
        let port = self.api_port;
        let log = self.log();
        let name = self.name.clone();
        let daemon = self.daemon.as_mut().expect("node not started");
        poll(
            Duration::from_secs(30),
            &format!("{name} to listen"),
            || {
                if let Some(status) = daemon.exited() {
                    panic!(
                        "{name} exited ({status}) during start-up\n{}",
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                (daemon.started() && get(port, "/v1/health").is_ok_and(|r| r.status == 200))
                    .then_some(())
            },
            || fs::read_to_string(&log).unwrap_or_default(),
        );
    }

    pub fn start(&mut self) {
        self.spawn();
        self.wait_up();
    }

    pub fn stop(&mut self) {
        let daemon = self.daemon.take().expect("node not running");
        let status = daemon.terminate(Duration::from_secs(15));
        assert!(
            status.success(),
            "{} exited with {status}\n{}",
            self.name,
            self.log_text()
        );
    }

    pub fn running(&mut self) -> bool {
        self.daemon.as_mut().is_some_and(|d| d.exited().is_none())
    }

    /// `GET /v1/status` (cheap; for polling). `None` if it does not answer.
    pub fn status_http(&self) -> Option<Value> {
        let r = get(self.api_port, "/v1/status").ok()?;
        (r.status == 200).then(|| r.json())
    }

    /// `gondwana status --json` (through the admin socket when running).
    pub fn status(&self) -> Value {
        self.cli(&["status", "--json"]).ok().json()
    }

    pub fn enrol_state(&self) -> Option<String> {
        self.status_http()
            .and_then(|v| v["enrolment"]["state"].as_str().map(str::to_string))
    }

    /// Waits until the daemon reports `enrolled`; returns the status.
    pub fn wait_enrolled(&self, timeout: Duration) -> Value {
        poll(
            timeout,
            &format!("{} to enrol", self.name),
            || {
                self.status_http()
                    .filter(|v| v["enrolment"]["state"] == "enrolled")
            },
            || {
                format!(
                    "last status: {:?}\n--- {} log ---\n{}",
                    self.status_http(),
                    self.name,
                    self.log_text()
                )
            },
        )
    }

    pub fn directory(&self) -> Value {
        without_daemon(self.cli(&["directory", "show", "--json"]).ok().json())
    }

    /// The node's directory through its API (JSON view); `None` if it does
    /// not answer 200.
    pub fn directory_http(&self) -> Option<Value> {
        let r = get(self.api_port, "/v1/directory?format=json").ok()?;
        (r.status == 200).then(|| r.json())
    }

    pub fn node_id(&self) -> String {
        let v = match self.status_http() {
            Some(v) => v,
            None => self.status(),
        };
        v["node_id"].as_str().unwrap().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() && self.daemon.is_some() {
            eprintln!("--- {} log ---\n{}", self.name, self.log_text());
        }
    }
}

/// `mesh_ip` of an `enrolled` status, as an address.
pub fn mesh_ip(status: &Value) -> Ipv4Addr {
    status["enrolment"]["mesh_ip"]
        .as_str()
        .unwrap_or_else(|| panic!("no mesh_ip in {status}"))
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Forging enrolment submissions

pub fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("OS RNG");
    b
}

/// An identity built in the test: its secrets, its log and its state.
pub struct FakeNode {
    pub signing: SigningSecret,
    /// The WireGuard secret this identity proves with. Normally the one
    /// its log names; an attacker's log may name another node's key.
    pub wireguard: [u8; 32],
    pub log: Vec<Vec<u8>>,
    pub state: IdentityState,
}

/// A `GET /v1/enroll/nonce` answer: the nonce and the hub's WireGuard key,
/// which the proof of the node's WireGuard key is made with.
#[derive(Debug, Clone, Copy)]
pub struct HubNonce {
    pub nonce: [u8; 32],
    pub hub_wireguard: [u8; 32],
}

impl HubNonce {
    /// The same hub, another nonce (one it never issued).
    pub fn with_nonce(self, nonce: [u8; 32]) -> HubNonce {
        HubNonce { nonce, ..self }
    }
}

/// An enrolment request and the hub WireGuard key its proof is for.
#[derive(Debug, Clone)]
pub struct Request {
    pub enrol: EnrolRequest,
    pub hub_wireguard: [u8; 32],
}

impl std::ops::Deref for Request {
    type Target = EnrolRequest;
    fn deref(&self) -> &EnrolRequest {
        &self.enrol
    }
}

impl FakeNode {
    pub fn new(boxname: &str) -> FakeNode {
        FakeNode::from_seed(random32(), boxname)
    }

    /// The same seed gives the same genesis entry, byte for byte.
    pub fn from_seed(seed: [u8; 32], boxname: &str) -> FakeNode {
        let wg = WireguardSecret::from_bytes(seed).public_key();
        FakeNode::claiming(seed, boxname, seed, wg)
    }

    /// An identity whose genesis names `wireguard_public` while it proves
    /// with `wireguard_secret`: a key taken over from another node, with
    /// its secret (the two match) or without (they do not).
    pub fn claiming(
        seed: [u8; 32],
        boxname: &str,
        wireguard_secret: [u8; 32],
        wireguard_public: [u8; 32],
    ) -> FakeNode {
        let signing = SigningSecret::from_seed(seed);
        let (genesis, state) = identity_log::build::genesis(
            &signing,
            wireguard_public,
            Boxname::parse(boxname).unwrap(),
        )
        .unwrap();
        FakeNode {
            signing,
            wireguard: wireguard_secret,
            log: vec![genesis],
            state,
        }
    }

    /// Appends a WireGuard rotation to a fresh key; returns its public key.
    pub fn rotate_wireguard(&mut self) -> [u8; 32] {
        let secret = random32();
        let public = WireguardSecret::from_bytes(secret).public_key();
        self.rotate_wireguard_to(secret, public);
        public
    }

    /// Appends a rotation to `public` and proves with `secret` from now on
    /// (another node's key, with or without its secret).
    pub fn rotate_wireguard_to(&mut self, secret: [u8; 32], public: [u8; 32]) {
        let event = identity_log::IdentityEvent::RotateWireguard {
            new_wireguard_key: public,
        };
        let (raw, next) =
            identity_log::build::next(&self.state, &self.signing, event, None).unwrap();
        self.log.push(raw);
        self.state = next;
        self.wireguard = secret;
    }

    /// The log as `POST /v1/identity/mirror` takes it.
    pub fn mirror_bundle(&self) -> Vec<u8> {
        identity_log::export_bundle(&self.log).unwrap()
    }

    /// `Gondwana-WireGuard-Proof` for pushing this log to a hub whose
    /// WireGuard key is `hub_wireguard`: the proof over the log's tip.
    pub fn mirror_proof(&self, hub_wireguard: &[u8; 32]) -> String {
        let proof = gondwana_core::wg_proof::prove(
            &WireguardSecret::from_bytes(self.wireguard),
            hub_wireguard,
            &self.state.tip,
        )
        .unwrap();
        gondwana_core::hash::to_hex(&proof)
    }

    /// `POST /v1/identity/mirror` of this log, with the proof header when
    /// `hub_wireguard` is given.
    pub fn push_mirror(&self, port: u16, hub_wireguard: Option<&[u8; 32]>) -> Resp {
        let proof = hub_wireguard.map(|k| self.mirror_proof(k));
        let headers: Vec<(&str, &str)> = proof
            .iter()
            .map(|p| ("Gondwana-WireGuard-Proof", p.as_str()))
            .collect();
        http_with(
            port,
            "POST",
            "/v1/identity/mirror",
            &headers,
            &self.mirror_bundle(),
        )
        .expect("POST /v1/identity/mirror")
    }

    /// The base64 form `node show` uses for the current WireGuard key.
    pub fn wireguard_text(&self) -> String {
        keys::wg_key_to_base64(&self.state.wireguard_key)
    }

    /// A real node's identity, read from its stopped state directory.
    pub fn from_state_dir(state_dir: &Path) -> FakeNode {
        let db = Database::open(state_dir.join("gondwana.redb")).expect("open state file");
        let txn = db.begin_read().unwrap();
        let secrets = txn.open_table(SECRETS).unwrap();
        let secret = |name: &str| -> [u8; 32] {
            secrets
                .get(name)
                .unwrap()
                .unwrap_or_else(|| panic!("no {name}"))
                .value()
                .try_into()
                .unwrap()
        };
        let seed = secret("signing_seed");
        let wireguard = secret("wireguard_private");
        let log_table = txn.open_table(IDENTITY_LOG).unwrap();
        let log: Vec<Vec<u8>> = log_table
            .iter()
            .unwrap()
            .map(|r| r.unwrap().1.value().to_vec())
            .collect();
        let state = identity_log::verify_log(&log).expect("stored identity log verifies");
        let signing = SigningSecret::from_seed(seed);
        assert_eq!(signing.public_key(), state.signing_key);
        assert_eq!(
            WireguardSecret::from_bytes(wireguard).public_key(),
            state.wireguard_key
        );
        FakeNode {
            signing,
            wireguard,
            log,
            state,
        }
    }

    pub fn request(&self, nonce: HubNonce, token: &TokenSecret) -> Request {
        Request {
            enrol: EnrolRequest {
                version: enrol::VERSION,
                hub_nonce: nonce.nonce,
                wireguard_key: self.state.wireguard_key,
                boxname: self.state.boxname.clone(),
                token_key: token.public_key(),
            },
            hub_wireguard: nonce.hub_wireguard,
        }
    }

    /// A well-formed submission for `request`, signed by this identity and
    /// proved with its WireGuard secret.
    pub fn submission(&self, request: &Request, token: &TokenSecret) -> Vec<u8> {
        self.submission_signed_by(&self.signing, request, token)
    }

    /// [`Self::submission`] with the request signed by `signing`.
    pub fn submission_signed_by(
        &self,
        signing: &SigningSecret,
        request: &Request,
        token: &TokenSecret,
    ) -> Vec<u8> {
        enrol::build_submission(
            signing,
            &WireguardSecret::from_bytes(self.wireguard),
            &request.hub_wireguard,
            &self.log,
            &request.enrol,
            token,
        )
        .unwrap()
    }

    /// Opens a 200 answer as the real node would.
    pub fn open_answer(
        &self,
        body: &[u8],
        hub_key: &[u8; 32],
        request: &EnrolRequest,
    ) -> EnrolGrant {
        let response = enrol::decode_response(body).expect("EnrolResponse");
        enrol::open_grant(&response.grant, hub_key, request, &self.state).expect("grant verifies")
    }
}

/// `GET /v1/enroll/nonce` on `port`; panics unless 200.
pub fn fetch_nonce(port: u16) -> HubNonce {
    let r = get(port, "/v1/enroll/nonce").expect("GET nonce");
    assert_eq!(r.status, 200, "nonce: {}", r.text());
    let v = r.json();
    let hex = |field: &str| {
        decode_hex32(
            v[field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field} in {v}")),
        )
        .unwrap()
    };
    HubNonce {
        nonce: hex("nonce"),
        hub_wireguard: hex("hub_wireguard_key"),
    }
}

/// The token secret of a `token create --json` answer.
pub fn token_secret(created: &Value) -> TokenSecret {
    TokenSecret::parse(created["token"].as_str().expect("token field")).unwrap()
}

/// Asserts a refusal: `status`, JSON `error == code`, a non-empty detail.
#[track_caller]
pub fn assert_refused(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(
        r.status,
        status,
        "expected {status} {code}, got {}",
        r.text()
    );
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "a refusal is JSON: {:?}",
        r.headers
    );
    let v = r.json();
    assert_eq!(v["error"], code, "{v}");
    assert!(
        v["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "a refusal has a detail: {v}"
    );
    v
}

const IDENTITY_MIRROR: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("identity_mirror");

/// The hub's mirrored identity log of `node_id`, read from its stopped
/// state directory.
pub fn stored_mirror(state_dir: &Path, node_id: &str) -> Vec<Vec<u8>> {
    let db = Database::open(state_dir.join("gondwana.redb")).expect("open state file");
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(IDENTITY_MIRROR).unwrap();
    table
        .range((node_id, 0)..=(node_id, u64::MAX))
        .unwrap()
        .map(|r| r.unwrap().1.value().to_vec())
        .collect()
}

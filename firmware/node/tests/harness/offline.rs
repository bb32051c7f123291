//! Offline boxes: the built binary run against a private state directory
//! with no daemon, and the redb state file read directly (only ever after
//! the process has exited).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use super::*;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tempfile::TempDir;

/// A node under test: a private temp dir with a state dir (not created
/// until gondwana creates it) and an explicit config file, so a config on
/// the host at /etc/gondwana never leaks into a test.
pub struct Node {
    pub tmp: TempDir,
    pub state: PathBuf,
    pub config: PathBuf,
}

impl Node {
    pub fn new() -> Node {
        Node::with_config("")
    }

    pub fn with_config(text: &str) -> Node {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("state");
        let config = tmp.path().join("gondwana.toml");
        fs::write(&config, host_safe(text)).expect("write config");
        Node { tmp, state, config }
    }

    /// A node whose state dir is a copy of `other`'s state file.
    pub fn copy_of(other: &Node) -> Node {
        let node = Node::new();
        fs::create_dir(&node.state).unwrap();
        fs::set_permissions(&node.state, fs::Permissions::from_mode(0o700)).unwrap();
        fs::copy(other.db(), node.db()).unwrap();
        node
    }

    pub fn set_config(&self, text: &str) {
        fs::write(&self.config, host_safe(text)).expect("write config");
    }

    /// A path inside the node's temp dir (outside the state dir).
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn db(&self) -> PathBuf {
        self.state.join(DB_FILE)
    }

    pub fn lock(&self) -> PathBuf {
        self.state.join(LOCK_FILE)
    }

    /// `gondwana --state-dir S --config C <args>`, not yet run.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.arg("--state-dir")
            .arg(&self.state)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        run_command(&mut self.command(args))
    }

    /// `firstboot --json`, asserted successful; returns its JSON.
    #[track_caller]
    pub fn firstboot(&self) -> serde_json::Value {
        self.run(&["firstboot", "--json"]).ok().json()
    }

    #[track_caller]
    pub fn show(&self) -> serde_json::Value {
        self.run(&["identity", "show", "--json"]).ok().json()
    }

    #[track_caller]
    pub fn node_id(&self) -> String {
        self.show()["node_id"].as_str().unwrap().to_string()
    }

    pub fn db_bytes(&self) -> Vec<u8> {
        fs::read(self.db()).expect("read state file")
    }

    /// Opens the state file with redb. Only call when no gondwana process
    /// is running on this node.
    pub fn open_db(&self) -> Database {
        Database::open(self.db()).expect("open state file with redb")
    }

    /// The two private keys as stored: (signing seed, wireguard private).
    pub fn secrets(&self) -> (Vec<u8>, Vec<u8>) {
        let db = self.open_db();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(SECRETS).unwrap();
        let signing = t.get(KEY_SIGNING_SEED).unwrap().unwrap().value().to_vec();
        let wireguard = t
            .get(KEY_WIREGUARD_PRIVATE)
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        assert_eq!(signing.len(), 32);
        assert_eq!(wireguard.len(), 32);
        (signing, wireguard)
    }

    /// Every row of a `u64 -> bytes` table (identity_log or audit).
    pub fn rows(&self, table: TableDefinition<u64, &[u8]>) -> Vec<(u64, Vec<u8>)> {
        let db = self.open_db();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(table).unwrap();
        t.iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value(), v.value().to_vec())
            })
            .collect()
    }

    /// Everything the identity is made of, as stored: secrets, identity
    /// log and audit chain.
    pub fn stored_identity(&self) -> StoredState {
        StoredState {
            secrets: self.secrets(),
            log: self.rows(IDENTITY_LOG),
            audit: self.rows(AUDIT),
        }
    }

    /// The raw `schema_version` value in the meta table.
    pub fn schema_version_bytes(&self) -> Option<Vec<u8>> {
        let db = self.open_db();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(META).unwrap();
        t.get(KEY_SCHEMA_VERSION)
            .unwrap()
            .map(|v| v.value().to_vec())
    }

    /// The schema version, which must be stored as a little-endian u32.
    pub fn schema_version(&self) -> u32 {
        let bytes = self.schema_version_bytes().expect("no schema_version");
        u32::from_le_bytes(bytes.try_into().expect("schema_version is not 4 bytes"))
    }

    /// Names of all tables in the state file, sorted.
    pub fn table_names(&self) -> Vec<String> {
        use redb::TableHandle;
        let db = self.open_db();
        let txn = db.begin_read().unwrap();
        let mut names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        names.sort();
        names
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct StoredState {
    pub secrets: (Vec<u8>, Vec<u8>),
    pub log: Vec<(u64, Vec<u8>)>,
    pub audit: Vec<(u64, Vec<u8>)>,
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Names of all entries in `dir` (sorted), or empty if it does not exist.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A tiny xorshift64* generator: enough for random delays and choices,
/// seeded from the clock (or `GONDWANA_TEST_SEED`) and printed so a
/// failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn from_env_or_time(label: &str) -> Rng {
        let seed = std::env::var("GONDWANA_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
            });
        eprintln!("{label}: RNG seed {seed} (set GONDWANA_TEST_SEED={seed} to replay)");
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, bound]`.
    pub fn below_inclusive(&mut self, bound: u64) -> u64 {
        self.next_u64() % (bound + 1)
    }
}

// ---- encodings used to look for leaked secrets ---------------------------

pub fn hex_lower(bytes: &[u8]) -> String {
    gondwana_core::hash::to_hex(bytes)
}

pub const B64_STANDARD: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub const B64_URL_SAFE: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 with `alphabet`, padded with `=` when `pad`.
pub fn base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Every textual form in which `secret` could show up in output: hex
/// (both cases), base64 (standard, unpadded, url-safe), and the part of its
/// base64 that is fixed at each byte alignment (as it would appear if it
/// were encoded as part of a longer blob).
pub fn secret_spellings(secret: &[u8]) -> Vec<String> {
    let hex = hex_lower(secret);
    let mut forms = vec![
        hex.clone(),
        hex.to_uppercase(),
        base64(secret, B64_STANDARD, true),
        base64(secret, B64_STANDARD, false),
        base64(secret, B64_URL_SAFE, true),
        base64(secret, B64_URL_SAFE, false),
    ];
    // Inside a longer base64 blob the secret starts at one of three byte
    // alignments; the groups made only of secret bytes are then fixed.
    for shift in 0..3 {
        for alphabet in [B64_STANDARD, B64_URL_SAFE] {
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(secret);
            let whole_groups = shifted.len() / 3 * 3;
            let full = base64(&shifted[..whole_groups], alphabet, false);
            // The first group mixes in the prefix (unless there is none).
            let skip = if shift == 0 { 0 } else { 4 };
            forms.push(full[skip..].to_string());
        }
    }
    forms
}

/// Panics if `haystack` contains `secret` raw or in any textual spelling.
#[track_caller]
pub fn assert_no_secret(haystack: &[u8], secret: &[u8], what: &str, secret_name: &str) {
    assert!(
        !haystack.windows(secret.len()).any(|w| w == secret),
        "{what} contains the raw bytes of {secret_name}"
    );
    let text = String::from_utf8_lossy(haystack);
    for form in secret_spellings(secret) {
        assert!(
            !text.contains(&form),
            "{what} contains {secret_name} spelled as {form:?}:\n{text}"
        );
    }
}

/// Whether `wg` (wireguard-tools) is usable here.
pub fn wg_available() -> bool {
    Command::new("wg")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A fresh WireGuard key pair `(private, public)` in base64: from `wg genkey`
/// and `wg pubkey` when available, else the fixed known pair.
pub fn wg_keypair() -> (String, String) {
    if !wg_available() {
        eprintln!("wg not available: using the fixed known key pair");
        return (KNOWN_WG_PRIVATE.into(), KNOWN_WG_PUBLIC.into());
    }
    let private = Command::new("wg").arg("genkey").output().unwrap();
    assert!(private.status.success(), "wg genkey failed");
    let private = String::from_utf8(private.stdout)
        .unwrap()
        .trim()
        .to_string();
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{private}").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "wg pubkey failed");
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    (private, public)
}

/// Decodes standard base64 (for checking keys the binary printed).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.trim_end_matches('=').bytes() {
        let v = B64_STANDARD
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("not base64: {text:?}")) as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Whether this process runs as root (uid 0), from /proc/self/status.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Asserts two byte strings are identical without dumping them.
#[track_caller]
pub fn assert_same_bytes(before: &[u8], after: &[u8], what: &str) {
    if before == after {
        return;
    }
    let first_diff = before
        .iter()
        .zip(after)
        .position(|(a, b)| a != b)
        .unwrap_or(before.len().min(after.len()));
    let differing = before.iter().zip(after).filter(|(a, b)| a != b).count();
    panic!(
        "{what}: contents changed ({} -> {} bytes, {differing} differing bytes, first at offset {first_diff})",
        before.len(),
        after.len()
    );
}

/// Daemons under these tests share the host's network namespace: their
/// firewall stays off unless a test configures it (the firewall's own
/// tests run in namespaces they create).
pub fn host_safe(text: &str) -> String {
    if text.contains("[firewall]") {
        text.to_string()
    } else {
        format!("{text}\n[firewall]\nenabled = false\n")
    }
}

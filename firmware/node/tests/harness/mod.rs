//! The one harness of the `gondwana` integration tests:
//! - this file: running the built binary ([`Run`]), exit codes (the
//!   library's), the state file's layout, waiting;
//! - [`offline`]: a box without a daemon (a private state directory);
//! - [`mesh`]: real `gondwana run` daemons (a hub and nodes) on loopback,
//!   HTTP, and forged enrolment submissions;
//! - [`flood`]: many loopback sources (the nonce-flood tests);
//! - [`netns`]: a network namespace of the test's own;
//! - [`require`]: what a privileged test needs, failing instead of skipping
//!   under `GONDWANA_REQUIRE_PRIVILEGED=1`.
//!
//! Each test binary compiles the whole harness and uses part of it.
#![allow(dead_code, unused_imports)]

pub mod flood;
pub mod mesh;
pub mod netns;
pub mod offline;
pub mod require;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gondwana_node::exit;
use redb::TableDefinition;

// Exit codes: the binary's own (docs/cli.md).
pub const EXIT_OK: i32 = exit::OK as i32;
pub const EXIT_FAILURE: i32 = exit::FAILURE as i32;
/// clap's own code for a bad command line.
pub const EXIT_USAGE: i32 = exit::USAGE as i32;
pub const EXIT_STATE_IN_USE: i32 = exit::STATE_IN_USE as i32;
pub const EXIT_STATE_UNUSABLE: i32 = exit::STATE_UNUSABLE as i32;
pub const EXIT_NO_IDENTITY: i32 = exit::NO_IDENTITY as i32;
pub const EXIT_VERIFY_FAILED: i32 = exit::VERIFY_FAILED as i32;
pub const EXIT_CONFIG: i32 = exit::CONFIG as i32;
pub const EXIT_NOT_WRITABLE: i32 = exit::STATE_NOT_WRITABLE as i32;

// The state file layout (firmware/node/src/store/schema.rs).
pub const DB_FILE: &str = "gondwana.redb";
pub const LOCK_FILE: &str = "gondwana.lock";
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
pub const IDENTITY_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("identity_log");
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
pub const KEY_SCHEMA_VERSION: &str = "schema_version";
pub const KEY_SIGNING_SEED: &str = "signing_seed";
pub const KEY_WIREGUARD_PRIVATE: &str = "wireguard_private";

/// A WireGuard key pair produced by `wg genkey | tee k | wg pubkey`.
pub const KNOWN_WG_PRIVATE: &str = "yOD0hF2KAS7TG6cZ5C7pimLRbiV4JL9e9euQLvozyVY=";
pub const KNOWN_WG_PUBLIC: &str = "3Da9URnELgG7k1TOlJdezZRaY1wH37L2eY5PwPWfZzk=";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gondwana")
}

/// The result of one finished `gondwana` run.
pub struct Run {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Run {
    pub fn from_output(what: String, out: Output) -> Run {
        Run {
            what,
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Everything the run printed, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.code,
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts the exit code and returns `self` for chaining.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Run {
        self.expect_code(EXIT_OK)
    }

    /// Stdout parsed as one JSON value.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }

    #[track_caller]
    pub fn stderr_contains(&self, needle: &str) -> &Run {
        assert!(
            self.stderr().contains(needle),
            "stderr should mention {needle:?}\n{}",
            self.describe()
        );
        self
    }
}

/// Runs the binary with exactly `args` (no implicit state dir or config).
pub fn gondwana<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(bin());
    cmd.args(args);
    run_command(&mut cmd)
}

pub fn run_command(cmd: &mut Command) -> Run {
    let what = describe_command(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    Run::from_output(what, out)
}

pub fn describe_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// `gondwana --config C --state-dir S <args>`.
pub fn cli(config: &Path, state: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state);
    cmd.args(args);
    run_command(&mut cmd)
}

/// Polls `f` every 50 ms until it gives `Some`, or panics after `timeout`
/// with `what` and the last state `describe` reports.
#[track_caller]
pub fn poll<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                describe()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! What a test does when the machine lacks root or a tool it needs.
//!
//! `scripts/test` (and so CI) sets `GONDWANA_REQUIRE_PRIVILEGED=1`: there a
//! missing prerequisite is a failure, never a silent pass. Elsewhere (a
//! developer's unprivileged `cargo test`) the test says SKIPPED and returns.
//! A limit of the host *kernel* (e.g. no vfat) is not a prerequisite the
//! suite can install: [`kernel_limit`] only reports it.
#![allow(dead_code)] // each test binary uses part of it

/// Panics under `GONDWANA_REQUIRE_PRIVILEGED=1`, else prints SKIPPED.
pub fn missing(test: &str, why: &str) {
    if std::env::var("GONDWANA_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
        panic!("{test}: {why} (GONDWANA_REQUIRE_PRIVILEGED=1: a missing prerequisite fails)");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// The host kernel cannot do what the test needs: reported, not failed.
pub fn kernel_limit(test: &str, why: &str) {
    eprintln!("SKIPPED (host kernel) {test}: {why}");
}

/// A program on `PATH` or in the sbin/bin directories (tests run with a
/// minimal `PATH` under some runners).
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| std::path::Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// Runs a helper tool (not the binary under test), asserts it succeeded
/// and returns its standard output.
#[track_caller]
pub fn run_tool(cmd: &mut std::process::Command) -> String {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

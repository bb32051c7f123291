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

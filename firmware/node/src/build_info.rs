//! What this binary is: version, commit and target (from build.rs), shown
//! by `gondwana version` and in the `gondwana_build_info` metric.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("GONDWANA_GIT_COMMIT");
pub const TARGET: &str = env!("GONDWANA_TARGET");
/// `gondwana --version`: the same line as `gondwana version`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GONDWANA_GIT_COMMIT"),
    ", target ",
    env!("GONDWANA_TARGET"),
    ")"
);

//! What this binary is: version, commit and target (from build.rs), shown
//! by `gondwana version` and in the `gondwana_build_info` metric.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("GONDWANA_GIT_COMMIT");
pub const TARGET: &str = env!("GONDWANA_TARGET");

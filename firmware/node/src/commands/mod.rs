pub mod audit;
pub mod directory;
pub mod enroll;
pub mod grant;
pub mod hub;
mod human;
pub mod identity;
pub mod logs;
pub mod modules;
pub mod offers;
pub mod output;
pub mod status;
pub mod subscriptions;
pub mod update;
pub mod version;
pub mod wireguard_bench;

use std::path::Path;

use serde_json::Value;

use crate::config::Config;
use crate::service::{Request, local};

/// Runs a use case through the running daemon, else in this process; its
/// error keeps the cause that picks the exit code.
pub(crate) fn call(state_dir: &Path, config: &Config, request: Request) -> anyhow::Result<Value> {
    local::call(state_dir, config, &request).map_err(|e| e.into_anyhow())
}

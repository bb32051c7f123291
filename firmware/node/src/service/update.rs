//! `update install` and `update status` (docs/updates.md). They need no
//! state store: the daemon and the CLI run them the same way, before
//! opening it.

use serde_json::Value;

use super::{Request, Result, ServiceError};
use crate::config::Config;
use crate::update::{self, UpdateError};

/// `None`: not an update request.
pub fn on_system(config: &Config, request: &Request) -> Option<Result<Value>> {
    let result = match request {
        Request::UpdateStatus => update::status(&config.update),
        Request::UpdateInstall(r) => update::install(&config.update, &r.bundle),
        _ => return None,
    };
    Some(result.map_err(|e| match e {
        UpdateError::Refused(d) => ServiceError::Conflict(d),
        UpdateError::Rejected(d) => ServiceError::VerifyFailed(d),
        UpdateError::Io(e) => ServiceError::Fault(e),
    }))
}

//! The daemon's shared state: one store (redb has one writer), the public
//! view of the identity, the enrolment status and the metrics.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use gondwana_core::identity_log::IdentityState;
use serde_json::{Value, json};

use crate::api::metrics::Metrics;
use crate::api::rate_limit::RateLimiter;
use crate::config::{Config, Role};
use crate::daemon::nonces::NonceBook;
use crate::store::StateStore;
use crate::store::registry::HubContext;

/// What the node knows about its enrolment, for status.
#[derive(Debug, Clone)]
pub enum EnrolStatus {
    /// No enrol.toml, command-line argument or grant.
    Unenrolled,
    Enrolling {
        attempts: u32,
        last_error: Option<String>,
        source: String,
    },
    Enrolled,
}

pub struct App {
    pub store: Arc<StateStore>,
    pub config: RwLock<Arc<Config>>,
    pub config_path: (PathBuf, bool),
    #[allow(dead_code)] // for the data plane (per-node files)
    pub state_dir: PathBuf,
    pub identity: RwLock<IdentityState>,
    pub hub: Option<HubContext>,
    pub enrol_status: Mutex<EnrolStatus>,
    /// Identity-log length the hub's mirror last reported.
    pub hub_mirror_len: Mutex<Option<u64>>,
    pub metrics: Metrics,
    pub nonces: Mutex<NonceBook>,
    pub enrol_rate: RateLimiter,
    pub started: Instant,
}

impl App {
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn identity(&self) -> IdentityState {
        match self.identity.read() {
            Ok(i) => i.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_identity(&self, state: IdentityState) {
        match self.identity.write() {
            Ok(mut i) => *i = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }

    pub fn set_status(&self, status: EnrolStatus) {
        match self.enrol_status.lock() {
            Ok(mut s) => *s = status,
            Err(poisoned) => *poisoned.into_inner() = status,
        }
    }

    pub fn status_snapshot(&self) -> EnrolStatus {
        match self.enrol_status.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn role(&self) -> Role {
        self.config().role
    }

    /// `GET /v1/status` and `gondwana status`.
    pub fn status_json(&self) -> Value {
        let config = self.config();
        let identity = self.identity();
        let mut v = crate::status::base_json(&self.store, &identity, &config);
        v["daemon"] = json!({"running": true, "uptime_secs": self.started.elapsed().as_secs()});
        if config.role == Role::Node {
            let hub_len = self.hub_mirror_len.lock().map(|g| *g).unwrap_or(None);
            v["identity"] = crate::status::mirror_json(&identity, hub_len);
            if let EnrolStatus::Enrolling {
                attempts,
                last_error,
                source,
            } = self.status_snapshot()
                && v["enrolment"]["state"] != "enrolled"
            {
                v["enrolment"] = json!({
                    "state": "enrolling", "attempts": attempts,
                    "last_error": last_error, "source": source,
                });
            }
        }
        v
    }
}

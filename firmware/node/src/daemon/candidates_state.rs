//! The hub's candidate state (docs/paths.md), shared by the report and
//! snapshot routes and the hub's loop (`daemon/candidates_hub.rs`). Apart
//! from the handlers so `App` can hold it without a module cycle.

use std::sync::Mutex;

use bytes::Bytes;
use gondwana_core::candidate_book::Book;
use tokio::sync::{Notify, watch};

use crate::api::rate_limit::RateLimiter;
use crate::daemon::view_cache::ViewCache;

/// The hub's candidate state. Exists on every daemon; only a hub fills it.
pub struct HubCandidates {
    pub book: Mutex<Book>,
    /// A node's reports: a burst of 5, then one a second (a node sends at
    /// most one a second when its addresses change).
    pub rate: RateLimiter,
    pub view: ViewCache,
    /// Wakes the loop at once: a report was accepted.
    pub kick: Notify,
    /// The last signed snapshot: (serial, bytes); serial 0 = none yet.
    pub signed: watch::Sender<(u64, Bytes)>,
}

impl Default for HubCandidates {
    fn default() -> Self {
        HubCandidates {
            book: Mutex::default(),
            rate: RateLimiter::new(5, 1.0),
            view: ViewCache::default(),
            kick: Notify::new(),
            signed: watch::Sender::new((0, Bytes::new())),
        }
    }
}

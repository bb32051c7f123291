//! What the daemon keeps for offers (docs/services.md), shared by the hub's
//! publish route (`daemon/offers_hub.rs`), the node's publisher
//! (`daemon/offers_task.rs`) and `/metrics`. Apart from the handlers so
//! `App` can hold it without a module cycle.

use tokio::sync::{Mutex, Notify};

use crate::api::rate_limit::RateLimiter;
use crate::daemon::view_cache::ViewCache;

pub struct OfferState {
    /// Hub: publications per provider (keyed by its mesh address): a burst
    /// of 10, then one every 6 s. An operator offers and withdraws by hand;
    /// a node re-sends only what the hub did not answer.
    pub rate: RateLimiter,
    /// The verified directory view, re-read when the head moves: the hub's
    /// checks and the offer metrics.
    pub view: ViewCache,
    /// Hub: one publication checked and appended at a time, so two copies
    /// of the same bytes cannot both pass the serial check.
    pub publishing: Mutex<()>,
    /// Node: the outbox has something new to send.
    pub kick: Notify,
}

impl Default for OfferState {
    fn default() -> Self {
        OfferState {
            rate: RateLimiter::new(10, 1.0 / 6.0),
            view: ViewCache::default(),
            publishing: Mutex::new(()),
            kick: Notify::new(),
        }
    }
}

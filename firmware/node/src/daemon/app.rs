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
use crate::daemon::dataplane_status::DataplaneStatus;
use crate::daemon::nonces::Nonces;
use crate::daemon::peers::PeerReport;
use crate::store::StateStore;
use crate::store::registry::HubContext;
use crate::store::revocation::NodeRevocation;

/// What the node knows about its enrolment, for status: the core
/// enrolment machine's view.
pub use gondwana_core::node_enrol::Progress as EnrolStatus;

pub struct App {
    pub store: Arc<StateStore>,
    pub config: RwLock<Arc<Config>>,
    pub config_path: (PathBuf, bool),
    pub state_dir: PathBuf,
    pub identity: RwLock<IdentityState>,
    pub hub: Option<HubContext>,
    pub enrol_status: Mutex<EnrolStatus>,
    /// Identity-log length the hub's mirror last reported.
    pub hub_mirror_len: Mutex<Option<u64>>,
    pub metrics: Metrics,
    /// Enrolment nonces (hub): stateless, only spent ones remembered.
    pub nonces: Nonces,
    pub enrol_rate: RateLimiter,
    pub started: Instant,
    /// The last `GET /v1/status` answer and when it was made: status reads
    /// two redb snapshots, and a monitoring loop hammering it must not cost
    /// the hub more than a few snapshots a second.
    pub status_cache: Mutex<Option<(Instant, bytes::Bytes)>>,
    /// Wakes the data-plane task: something the mesh depends on changed.
    pub dataplane_kick: tokio::sync::Notify,
    /// Node: pull the directory early — a candidate snapshot names a box
    /// it does not hold yet (`daemon/candidates_task.rs` to
    /// `daemon/sync_task.rs`; the sync machine decides when).
    pub pull_now: tokio::sync::Notify,
    /// Node: a directory pull appended entries — verify the held candidate
    /// snapshot again now, so a new box's entry is not dropped until the
    /// next snapshot (`daemon/sync_task.rs` to `daemon/candidates_task.rs`).
    pub directory_grew: tokio::sync::Notify,
    pub dataplane: Mutex<DataplaneStatus>,
    /// The firewall and its grants (daemon/grants.rs).
    pub grants: crate::daemon::firewall::Grants,
    /// Node: its stored revocation, once it has one (daemon/revocation.rs).
    pub revocation: RwLock<Option<NodeRevocation>>,
    /// The WireGuard device and its peers' names, read by status and
    /// `/metrics` when they are asked (daemon/peers.rs).
    pub live: crate::daemon::peers::LivePeers,
    /// The last verified candidate snapshot (docs/paths.md): on a node the
    /// hub's, fetched or restored from the state partition; on the hub its
    /// own, as last signed. Read by the path machine and the relay.
    /// Written by `daemon/candidates_task.rs` (node) and
    /// `daemon/candidates_hub.rs` (hub).
    pub candidates: tokio::sync::watch::Sender<Option<Arc<gondwana_core::candidates::Snapshot>>>,
    /// The relay's counters and its pairs' last traffic (relay/), read by
    /// `/metrics` and the relay allocator.
    pub relay: Arc<crate::relay::RelayState>,
    /// Node: the peers the path machine could not reach directly and wants
    /// the relay for (`want_relay` of its next candidate report). Written
    /// by the path driver (`daemon/paths.rs`); the candidates task sends a
    /// new report when it changes. At most `candidates::MAX_RELAY_WANTS`
    /// are reported (the first ones, in node id order).
    pub want_relay: tokio::sync::watch::Sender<Vec<gondwana_core::NodeId>>,
    /// Hub: reports, the relay allocation and the signed snapshot.
    pub candidate_hub: crate::daemon::candidates_state::HubCandidates,
    /// Lending: the provider's and the consumer's books (daemon/lending/).
    pub lending: crate::daemon::lending_state::Lending,
    /// Service offers: the hub's checks, the node's outbox (docs/services.md).
    pub offers: crate::daemon::offers_state::OfferState,
}

/// How stale a `GET /v1/status` answer may be (the admin socket's is fresh).
pub const STATUS_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(250);

/// What differs between one daemon (or test) and another; the rest of
/// [`App`] starts empty.
pub struct AppParts {
    pub store: Arc<StateStore>,
    pub config: Config,
    pub config_path: (PathBuf, bool),
    pub state_dir: PathBuf,
    pub identity: IdentityState,
    pub hub: Option<HubContext>,
    pub grants: crate::daemon::firewall::Grants,
    pub metrics: Metrics,
    pub enrol_rate: RateLimiter,
}

impl App {
    pub fn new(parts: AppParts) -> App {
        let dataplane = crate::daemon::dataplane_status::initial_status(&parts.config);
        // Read before any listener binds: a revoked node is never ready.
        let revocation = parts.store.revocation().unwrap_or_else(|e| {
            error!("reading the stored revocation: {e}");
            None
        });
        App {
            grants: parts.grants,
            store: parts.store,
            config: RwLock::new(Arc::new(parts.config)),
            config_path: parts.config_path,
            state_dir: parts.state_dir,
            identity: RwLock::new(parts.identity),
            hub: parts.hub,
            enrol_status: Mutex::new(EnrolStatus::Unenrolled),
            hub_mirror_len: Mutex::new(None),
            metrics: parts.metrics,
            nonces: Nonces::new(gondwana_core::nonce::Purpose::Enrol),
            enrol_rate: parts.enrol_rate,
            started: Instant::now(),
            status_cache: Mutex::new(None),
            dataplane_kick: tokio::sync::Notify::new(),
            pull_now: tokio::sync::Notify::new(),
            directory_grew: tokio::sync::Notify::new(),
            dataplane: Mutex::new(dataplane),
            revocation: RwLock::new(revocation),
            live: Default::default(),
            candidates: tokio::sync::watch::Sender::new(None),
            relay: Default::default(),
            want_relay: tokio::sync::watch::Sender::new(Vec::new()),
            candidate_hub: Default::default(),
            lending: Default::default(),
            offers: Default::default(),
        }
    }

    /// Node: its revocation, if it has learned of one.
    pub fn revocation(&self) -> Option<NodeRevocation> {
        match self.revocation.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The revocation is stored: status, readiness and the data plane
    /// follow it from now on.
    pub fn set_revocation(&self, revocation: NodeRevocation) {
        match self.revocation.write() {
            Ok(mut r) => *r = Some(revocation),
            Err(poisoned) => *poisoned.into_inner() = Some(revocation),
        }
        self.changed();
    }

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

    /// Something status shows has changed: the next `GET /v1/status` is
    /// fresh, and the data plane looks again (registry, directory or
    /// enrolment may be what changed; a pass that finds nothing to do is
    /// cheap).
    pub fn changed(&self) {
        self.invalidate_status();
        self.dataplane_kick.notify_one();
    }

    fn invalidate_status(&self) {
        if let Ok(mut cache) = self.status_cache.lock() {
            *cache = None;
        }
    }

    pub fn dataplane_status(&self) -> DataplaneStatus {
        match self.dataplane.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Only status changes: no kick, or the task would wake itself.
    pub fn set_dataplane_status(&self, status: DataplaneStatus) {
        match self.dataplane.lock() {
            Ok(mut s) => *s = status,
            Err(poisoned) => *poisoned.into_inner() = status,
        }
        self.invalidate_status();
    }

    pub fn set_hub_mirror_len(&self, len: u64) {
        if let Ok(mut g) = self.hub_mirror_len.lock() {
            *g = Some(len);
        }
        self.changed();
    }

    pub fn set_identity(&self, state: IdentityState) {
        match self.identity.write() {
            Ok(mut i) => *i = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
        self.changed();
    }

    pub fn set_status(&self, status: EnrolStatus) {
        match self.enrol_status.lock() {
            Ok(mut s) => *s = status,
            Err(poisoned) => *poisoned.into_inner() = status,
        }
        self.changed();
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

    /// `GET /v1/status`: the JSON of [`Self::status_json`], at most
    /// [`STATUS_MAX_AGE`] old.
    pub async fn status_bytes(&self) -> bytes::Bytes {
        let now = Instant::now();
        if let Ok(cache) = self.status_cache.lock()
            && let Some((at, body)) = cache.as_ref()
            && now.duration_since(*at) < STATUS_MAX_AGE
        {
            return body.clone();
        }
        self.refresh_offers().await;
        let peers = self.live.read().await;
        let json = self.status_json(peers.as_deref());
        let body = bytes::Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
        if let Ok(mut cache) = self.status_cache.lock() {
            *cache = Some((now, body.clone()));
        }
        body
    }

    /// Re-reads the directory view the status document's `offers` come
    /// from, when the directory moved (cheap otherwise).
    pub async fn refresh_offers(&self) {
        let authority = crate::service::directory::authority(&self.store, &self.config());
        if let Ok(Some(key)) = authority
            && let Err(e) = self.offers.view.get(&self.store, key).await
        {
            warn!("reading the directory for the status's offers: {e}");
        }
    }

    /// `GET /v1/status` and `gondwana status`; `peers` as the device
    /// reports them now (`None`: no device yet).
    pub fn status_json(&self, peers: Option<&[PeerReport]>) -> Value {
        let config = self.config();
        let identity = self.identity();
        let mut v = crate::service::status::base_json(&self.store, &identity, &config);
        v["daemon"] = json!({"running": true, "uptime_secs": self.started.elapsed().as_secs()});
        v["dataplane"] = self.dataplane_status().to_json();
        if let Some(peers) = peers {
            // The device as read now, not the last pass's count (up to
            // 10 s old).
            v["dataplane"]["peers"] = json!(peers.len());
            v["dataplane"]["peers_with_handshake"] =
                json!(peers.iter().filter(|p| p.online()).count());
        }
        v["firewall"] = self.grants.status_json();
        v["subscriptions"] = crate::daemon::lending_state::status_json(&self.lending);
        // This box's own offers, from the view the caller refreshed
        // (`refresh_offers`): a status read must not verify the directory.
        v["offers"] = match self.offers.view.peek() {
            Some(view) => crate::service::offers::own(
                &view,
                &identity.node_id,
                self.store.offer_outbox().unwrap_or_default(),
            ),
            None => Value::Null,
        };
        v["candidates"] = match self.candidates.borrow().as_deref() {
            Some(c) => json!({
                "serial": c.serial,
                "issued_unix": c.issued_unix,
                "probe_round": c.probe_round,
                "nodes": c.nodes.len(),
                "relay_pairs": c.relays.len(),
            }),
            None => Value::Null,
        };
        v["peers"] = match peers {
            Some(peers) => Value::Array(peers.iter().map(PeerReport::to_json).collect()),
            None => Value::Null,
        };
        if config.role == Role::Node {
            let hub_len = self.hub_mirror_len.lock().map(|g| *g).unwrap_or(None);
            v["identity"] = crate::service::status::mirror_json(&identity, hub_len);
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

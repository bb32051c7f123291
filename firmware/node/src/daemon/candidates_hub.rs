//! The hub's side of endpoint candidates (docs/paths.md): it takes nodes'
//! signed reports (`POST /v1/candidates/report`), looks at its WireGuard
//! device every second for the endpoints nodes' handshakes come from,
//! allocates relay pairs (on itself or on node relays), and signs a snapshot whenever any of it changes
//! (`GET /v1/candidates?after=SERIAL`, a long poll). Its own verified
//! snapshot goes into `App::candidates`, where the relay reads the pairs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use gondwana_core::candidate_book::{self, Refusal};
use gondwana_core::candidates::{self, SnapshotBody};
use gondwana_core::directory::View;
use gondwana_core::node_id::NodeId;
use gondwana_core::ordered::{map_from, set_from};
use gondwana_core::reconcile::HANDSHAKE_STALE;
use gondwana_core::relay_alloc::{RelayAllocator, RelaySettings};
use gondwana_core::time::Millis;
use http::StatusCode;
use serde_json::json;

use crate::api::{ApiError, ApiRequest, ApiResponse, CONTENT_TYPE_OCTETS};
use crate::clock::now_unix;
use crate::daemon::app::App;
use crate::daemon::drive::{blocking, joined};

pub const REFUSALS: &str = "gondwana_candidate_refusals_total";
/// Every reason a report is refused (docs/metrics.md).
pub const REFUSAL_REASONS: &[&str] = &[
    "malformed",
    "unknown_node",
    "bad_signature",
    "stale_seq",
    "bad_address",
    "endpoint_taken",
    "relay_not_member",
    "rate_limited",
];
/// How often the hub looks at its device.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How often `probe_round` steps: relayed pairs try direct again.
const PROBE_ROUND_EVERY: Duration = Duration::from_secs(300);
/// How long a long poll waits for a newer snapshot before `304`.
pub const LONG_POLL: Duration = Duration::from_secs(25);

fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        Refusal::Malformed(_) | Refusal::BadAddress(_) => StatusCode::BAD_REQUEST,
        Refusal::UnknownNode(_) | Refusal::BadSignature | Refusal::RelayNotMember(_) => {
            StatusCode::FORBIDDEN
        }
        Refusal::StaleSeq { .. } | Refusal::EndpointTaken { .. } => StatusCode::CONFLICT,
    }
}

fn refused(app: &App, reason: &'static str, e: ApiError) -> ApiError {
    app.metrics.inc(REFUSALS, &[("reason", reason)]);
    e
}

fn hub_view_key(app: &App) -> Result<[u8; 32], ApiError> {
    app.hub
        .as_ref()
        .map(|h| h.signing.public_key())
        .ok_or_else(|| ApiError::not_found("this node is not a hub"))
}

/// `POST /v1/candidates/report`.
pub async fn report(app: &Arc<App>, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let authority = hub_view_key(app)?;
    let hub = &app.candidate_hub;
    let (view, _) = hub
        .view
        .get(&app.store, authority)
        .await
        .map_err(ApiError::internal)?;
    let refuse = |r: Refusal| {
        let e = ApiError::new(refusal_status(&r), r.reason(), r.to_string());
        refused(app, r.reason(), e)
    };
    let report = candidate_book::authenticate(&req.body, &view).map_err(refuse)?;
    if !hub.rate.check(IpAddr::V4(report.mesh_ip), Instant::now()) {
        return Err(refused(
            app,
            "rate_limited",
            ApiError::rate_limited("too many candidate reports from this node"),
        ));
    }
    let (node, seq, bytes) = (
        report.body.node_id.clone(),
        report.body.seq,
        report.bytes.clone(),
    );
    let subnet = app.config().mesh.subnet;
    let changed = {
        let mut book = hub.book.lock().unwrap_or_else(|e| e.into_inner());
        book.admit(report, &subnet).map_err(refuse)?
    };
    if changed {
        let store = app.store.clone();
        let id = node.to_string();
        joined(blocking(move || store.save_candidate_report(&id, &bytes)).await).map_err(|e| {
            error!("storing the candidate report of {node}: {e}");
            ApiError::internal("the hub could not store the report; see its log")
        })?;
        hub.kick.notify_one();
    }
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"node_id": node.as_str(), "seq": seq, "changed": changed}),
    ))
}

/// `GET /v1/candidates?after=SERIAL`: the signed snapshot at once when its
/// serial is above `after`, else when one is signed within 25 s, else 304.
pub async fn snapshot(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    hub_view_key(app)?;
    let after: u64 = crate::api::parse_query_param(req.query.as_deref(), "after")?.unwrap_or(0);
    let mut rx = app.candidate_hub.signed.subscribe();
    let newer = |s: &(u64, Bytes)| s.0 > after;
    let found = match tokio::time::timeout(LONG_POLL, rx.wait_for(newer)).await {
        Ok(Ok(s)) => Some(s.1.clone()),
        _ => None,
    };
    Ok(match found {
        Some(bytes) => ApiResponse::bytes(StatusCode::OK, CONTENT_TYPE_OCTETS, bytes),
        None => ApiResponse::bytes(StatusCode::NOT_MODIFIED, CONTENT_TYPE_OCTETS, Bytes::new()),
    })
}

/// The hub's loop: never returns while the daemon runs.
pub async fn run(app: Arc<App>) {
    let Some(hub) = app.hub.as_ref() else {
        return;
    };
    let authority = hub.signing.public_key();
    let hub_id = hub.identity.node_id.clone();
    let state = &app.candidate_hub;
    let started = tokio::time::Instant::now();
    let mut serial = app.store.candidate_serial().unwrap_or_else(|e| {
        error!("reading the candidate snapshot serial: {e}");
        0
    });
    restore_reports(&app, authority).await;
    let mut relays = RelayAllocator::default();
    let mut probe_round = 0u32;
    let mut first = true;
    let mut signed_generation = 0;
    loop {
        let now = Millis::from_elapsed(started.elapsed());
        let view = match state.view.get(&app.store, authority).await {
            Ok((view, _)) => view,
            Err(e) => {
                warn!("candidates: reading the directory: {e}");
                tokio::time::sleep(LOOK_EVERY).await;
                continue;
            }
        };
        let observed = observed_endpoints(&app, &view).await;
        let (generation, wants, node_relays, dropped) = {
            let mut book = state.book.lock().unwrap_or_else(|e| e.into_inner());
            let dropped: Vec<NodeId> = book.retain_active(&view);
            if let Some(observed) = observed {
                book.set_observed(observed);
            }
            (book.generation(), book.wants(), book.node_relays(), dropped)
        };
        let changed = generation != signed_generation;
        forget_reports(&app, dropped).await;
        let active: BTreeSet<NodeId> = set_from(view.nodes.keys().cloned());
        let config = app.config();
        let settings = RelaySettings {
            ports: (config.relay.port_range.first, config.relay.port_range.last),
            idle: std::time::Duration::from_secs(config.relay.idle_secs),
            // Nodes pull the directory this often (the mesh's setting, as
            // the hub's): by then every node knows a new node relay.
            settle: std::time::Duration::from_secs(config.enroll.directory_pull_secs),
        };
        // A pair the relay passed a datagram for since the last look is
        // not idle (only the hub's own pairs run here).
        let unix = now_unix();
        for pair in relays.pairs(&hub_id) {
            if app
                .relay
                .idle_secs(&pair.a, &pair.b, unix)
                .is_some_and(|idle| idle <= LOOK_EVERY.as_secs() + 1)
            {
                relays.traffic(&pair.a, &pair.b, now);
            }
        }
        let mut changed = changed | relays.update(&settings, &wants, &active, &node_relays, now);
        let round = u32::try_from(now.0 / PROBE_ROUND_EVERY.as_millis() as u64).unwrap_or(0);
        if round != probe_round {
            probe_round = round;
            changed = true;
        }
        let kicked = state.kick.notified();
        if changed || first {
            serial += 1;
            let entries = state
                .book
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entries();
            let body = SnapshotBody {
                version: candidates::VERSION,
                hub_id: hub_id.clone(),
                serial,
                issued_unix: now_unix(),
                probe_round,
                nodes: entries,
                relays: relays.pairs(&hub_id),
            };
            publish(&app, body, view).await;
            first = false;
            signed_generation = generation;
        }
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = kicked => {}
        }
    }
}

/// Signs, persists the serial, and publishes to the long poll and to
/// `App::candidates` (verified like a node verifies it). Off the runtime's
/// thread: signing and checking every report of a large mesh takes a while.
async fn publish(app: &Arc<App>, body: SnapshotBody, view: Arc<View>) {
    let app2 = app.clone();
    let done = blocking(move || {
        let hub = app2.hub.as_ref().ok_or(anyhow::anyhow!("not a hub"))?;
        let bytes = candidates::seal_snapshot(&body, &hub.signing)
            .map_err(|e| anyhow::anyhow!("signing the candidate snapshot: {e}"))?;
        if let Err(e) = app2.store.save_candidate_serial(body.serial) {
            error!("storing the candidate snapshot serial: {e}");
        }
        let verified = candidates::verify_snapshot(&bytes, &hub.signing.public_key(), &view)
            .map_err(|e| {
                anyhow::anyhow!("the hub's own candidate snapshot does not verify: {e}")
            })?;
        anyhow::Ok((bytes, verified.snapshot))
    })
    .await;
    match joined(done) {
        Ok((bytes, snapshot)) => {
            let serial = snapshot.serial;
            app.candidates.send_replace(Some(Arc::new(snapshot)));
            app.candidate_hub
                .signed
                .send_replace((serial, Bytes::from(bytes)));
        }
        Err(e) => error!("{e}"),
    }
}

/// The stored reports, verified again; those that no longer hold (a node
/// revoked while the hub was down) are dropped.
async fn restore_reports(app: &Arc<App>, authority: [u8; 32]) {
    let state = &app.candidate_hub;
    let store = app.store.clone();
    let stored = match joined(blocking(move || store.candidate_reports()).await) {
        Ok(s) => s,
        Err(e) => return error!("reading the stored candidate reports: {e}"),
    };
    let Ok((view, _)) = state.view.get(&app.store, authority).await else {
        return;
    };
    let mut book = state.book.lock().unwrap_or_else(|e| e.into_inner());
    for bytes in stored {
        if let Err(e) = book.restore(&bytes, &view) {
            warn!("dropping a stored candidate report: {e}");
        }
    }
}

async fn forget_reports(app: &Arc<App>, nodes: Vec<NodeId>) {
    if nodes.is_empty() {
        return;
    }
    let store = app.store.clone();
    let done = blocking(move || {
        for id in &nodes {
            store.remove_candidate_report(id.as_str())?;
        }
        Ok::<_, crate::store::StoreError>(())
    })
    .await;
    if let Err(e) = joined(done) {
        error!("forgetting candidate reports of inactive nodes: {e}");
    }
}

/// The source of each node's recent handshakes, as the device shows it
/// (`None`: no device to look at).
async fn observed_endpoints(app: &App, view: &View) -> Option<BTreeMap<NodeId, SocketAddrV4>> {
    let device = app.live.device()?;
    let state = match device.get().await {
        Ok(s) => s,
        Err(e) => {
            warn!("candidates: reading {}: {e}", device.interface());
            return None;
        }
    };
    let by_key: BTreeMap<_, _> = map_from(view.nodes.iter().map(|(id, n)| (n.wireguard_key, id)));
    let now = SystemTime::now();
    let fresh = |t: &SystemTime| {
        now.duration_since(*t)
            .is_ok_and(|age| age < HANDSHAKE_STALE)
    };
    Some(map_from(
        state
            .peers
            .iter()
            .filter(|p| p.last_handshake.as_ref().is_some_and(fresh))
            .filter_map(
                |p| match (p.config.endpoint, by_key.get(&p.config.public_key)) {
                    (Some(SocketAddr::V4(addr)), Some(id)) => Some(((*id).clone(), addr)),
                    _ => None,
                },
            ),
    ))
}

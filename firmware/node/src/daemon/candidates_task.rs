//! A node's side of endpoint candidates (docs/paths.md): it signs and sends
//! its report (listen port, LAN addresses, the peers it wants relayed, its
//! relay ports when it relays) at
//! start and whenever that changes, and long-polls the hub's snapshot,
//! verifies it against the stored directory, keeps it on the state
//! partition and publishes it into `App::candidates`. At start it restores
//! the stored snapshot (verified again), so a node started while the hub
//! is down still knows where its peers were. A snapshot that names a box
//! the directory does not hold yet asks the sync task for an early
//! directory pull (`node_sync::UnknownNodes` decides), and the held
//! snapshot is verified again as soon as a pull appends entries: a newly
//! enrolled box gets its peer within seconds.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gondwana_core::candidates::{self, MAX_LAN_ADDRS, MAX_RELAY_WANTS, RelayOffer, ReportBody};
use gondwana_core::mesh::Ipv4Net;
use gondwana_core::node_id::NodeId;
use gondwana_core::node_sync::UnknownNodes;
use gondwana_core::ordered::sorted_unique;
use http::{Method, StatusCode};

use crate::api::client;
use crate::daemon::app::App;
use crate::daemon::candidates_hub::LONG_POLL;
use crate::daemon::drive::{CALL_TIMEOUT, blocking, error_text, joined, text};
use crate::daemon::sync_task::hub_api_url;
use crate::daemon::view_cache::ViewCache;
use crate::store::enrolment::Enrolment;

/// A report is re-sent this often even unchanged, so a hub that lost its
/// state learns it again.
const REFRESH: Duration = Duration::from_secs(600);
/// Retry delays after a failed call: from 1 s, doubling, at most this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What a report says, without its seq: a new report is sent when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Content {
    listen_port: u16,
    lan: Vec<SocketAddrV4>,
    want_relay: Vec<NodeId>,
    relay: Option<RelayOffer>,
}

/// Never returns while the daemon runs (ends when the node is revoked).
pub async fn run(app: Arc<App>) {
    let enrolment = loop {
        if let Ok(Some(e)) = app.store.enrolment() {
            break e;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let mut held = Held {
        views: ViewCache::default(),
        bytes: None,
        unknown: UnknownNodes::default(),
    };
    restore(&app, &enrolment, &mut held).await;
    tokio::join!(
        report_loop(&app, &enrolment),
        snapshot_loop(&app, &enrolment, held)
    );
}

fn backoff(delay: Duration) -> Duration {
    (delay * 2).min(MAX_BACKOFF)
}

/// This node's report content now.
fn content(app: &App, enrolment: &Enrolment) -> Content {
    let config = app.config();
    // The port the data plane configures the device with.
    let listen_port = gondwana_core::mesh::node_listen_port(
        config.mesh.wireguard_port,
        &enrolment.grant.subnet,
        enrolment.grant.mesh_ip,
    );
    let mut want_relay = sorted_unique(app.want_relay.borrow().iter().cloned());
    want_relay.retain(|id| *id != enrolment.grant.node_id);
    want_relay.truncate(MAX_RELAY_WANTS);
    // `relay.enabled = true`: the forwarder runs (daemon/mod.rs) and the
    // hub may name this node as a pair's relay.
    let relay = config.relay.runs_on(config.role).then_some(RelayOffer {
        first: config.relay.port_range.first,
        last: config.relay.port_range.last,
    });
    Content {
        listen_port,
        lan: lan_candidates(&config.mesh.interface, &enrolment.grant.subnet, listen_port),
        want_relay,
        relay,
    }
}

/// The unicast IPv4 addresses of the non-mesh, not point-to-point
/// interfaces (`host_addrs::lan_subnets`), with the listen
/// port (the first [`MAX_LAN_ADDRS`], in address order).
fn lan_candidates(
    mesh_interface: &gondwana_core::InterfaceName,
    mesh: &Ipv4Net,
    port: u16,
) -> Vec<SocketAddrV4> {
    let subnets = crate::net::host_addrs::lan_subnets(mesh_interface).unwrap_or_else(|e| {
        warn!("listing this box's addresses for its candidate report: {e}");
        Vec::new()
    });
    let mut out: Vec<SocketAddrV4> = sorted_unique(
        subnets
            .iter()
            .map(|n| SocketAddrV4::new(n.addr(), port))
            .filter(|a| candidates::check_endpoint(*a, Some(mesh)).is_ok()),
    );
    out.truncate(MAX_LAN_ADDRS);
    out
}

async fn report_loop(app: &App, enrolment: &Enrolment) {
    let mut wants = app.want_relay.subscribe();
    let mut sent: Option<(Content, tokio::time::Instant)> = None;
    let mut delay = Duration::from_secs(1);
    loop {
        if app.revocation().is_some() {
            return;
        }
        let now = content(app, enrolment);
        let due = match &sent {
            Some((c, at)) => *c != now || at.elapsed() >= REFRESH,
            None => true,
        };
        if due {
            match send_report(app, enrolment, &now).await {
                Ok(()) => delay = Duration::from_secs(1),
                // Refused: the content is wrong, not the link. Sending it
                // again would be refused again; wait for a change.
                Err((Some(status), e)) if status != StatusCode::TOO_MANY_REQUESTS => {
                    warn!("the hub refused this node's candidate report: {e}")
                }
                Err((_, e)) => {
                    warn!("sending this node's candidate report: {e}");
                    tokio::time::sleep(delay).await;
                    delay = backoff(delay);
                    continue;
                }
            }
            sent = Some((now, tokio::time::Instant::now()));
        }
        // At most one report a second; a new want wakes it early.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = tokio::time::timeout(Duration::from_secs(4), wants.changed()).await;
    }
}

/// Signs a report with the next seq (stored first: a crash never reuses
/// one) and posts it. The error: the hub's status if it answered.
async fn send_report(
    app: &App,
    enrolment: &Enrolment,
    content: &Content,
) -> Result<(), (Option<StatusCode>, String)> {
    let fail = |e: String| (None, e);
    let store = app.store.clone();
    let (seq, identity) = joined(
        blocking(move || {
            let seq = store.candidate_report_seq()? + 1;
            store.save_candidate_report_seq(seq)?;
            anyhow::Ok((seq, store.require_identity()?))
        })
        .await,
    )
    .map_err(fail)?;
    let body = ReportBody {
        version: candidates::VERSION,
        node_id: enrolment.grant.node_id.clone(),
        seq,
        listen_port: content.listen_port,
        lan: content.lan.iter().copied().collect(),
        want_relay: content.want_relay.iter().cloned().collect(),
        relay: content.relay,
    };
    let bytes = candidates::seal_report(&body, &identity.signing).map_err(|e| fail(text(e)))?;
    let url = format!(
        "{}/v1/candidates/report",
        hub_api_url(&app.config(), enrolment)
    );
    let answer = client::request(
        Method::POST,
        &url,
        Some(crate::api::CONTENT_TYPE_OCTETS),
        Bytes::from(bytes),
        CALL_TIMEOUT,
        4096,
    )
    .await;
    match answer {
        Ok((status, _)) if status.is_success() => Ok(()),
        Ok((status, body)) => Err((Some(status), format!("{status}: {}", error_text(&body)))),
        Err(e) => Err(fail(format!("{url}: {}", text(e)))),
    }
}

/// The snapshot this node holds (published in `App::candidates`): its
/// bytes as received, the directory view it was verified against, and the
/// ids it names that the directory lacks.
struct Held {
    views: ViewCache,
    bytes: Option<Bytes>,
    unknown: UnknownNodes,
}

/// The stored snapshot, verified against the stored directory, published
/// and held if it verifies.
async fn restore(app: &App, enrolment: &Enrolment, held: &mut Held) {
    let store = app.store.clone();
    let stored = joined(blocking(move || store.candidate_snapshot()).await);
    let bytes = match stored {
        Ok(Some(b)) => Bytes::from(b),
        Ok(None) => return,
        Err(e) => return warn!("reading the stored candidate snapshot: {e}"),
    };
    match verify(app, enrolment, &held.views, &bytes).await {
        Ok(verified) => {
            let serial = publish(app, verified, &mut held.unknown);
            info!("restored the stored candidate snapshot (serial {serial})");
            held.bytes = Some(bytes);
        }
        Err(e) => warn!("the stored candidate snapshot does not verify, ignored: {e}"),
    }
}

/// The directory changed since the held snapshot was verified (entries of
/// new nodes were dropped then): verify and publish it again.
async fn reverify(app: &App, enrolment: &Enrolment, held: &mut Held) {
    let Some(bytes) = &held.bytes else {
        return;
    };
    if !matches!(
        held.views.get(&app.store, enrolment.hub_key).await,
        Ok((_, true))
    ) {
        return;
    }
    match verify(app, enrolment, &held.views, bytes).await {
        Ok(verified) => {
            publish(app, verified, &mut held.unknown);
        }
        Err(e) => warn!("candidate snapshot after a directory change: {e}"),
    }
}

async fn verify(
    app: &App,
    enrolment: &Enrolment,
    views: &ViewCache,
    bytes: &[u8],
) -> Result<candidates::Verified, String> {
    let (view, _) = views.get(&app.store, enrolment.hub_key).await?;
    // Off the runtime's thread: a large snapshot has many signatures.
    let (bytes, hub_key) = (bytes.to_vec(), enrolment.hub_key);
    joined(blocking(move || candidates::verify_snapshot(&bytes, &hub_key, &view)).await)
}

/// Publishes a verified snapshot, now held; asks for an early directory
/// pull if it names a box the directory does not hold that the snapshot
/// held before did not name.
fn publish(app: &App, mut verified: candidates::Verified, unknown: &mut UnknownNodes) -> u64 {
    let named = verified.unknown.len();
    if unknown.held(std::mem::take(&mut verified.unknown)) {
        info!(
            "candidate snapshot {} names {named} node(s) this node's directory does not hold \
             yet: pulling the directory early",
            verified.snapshot.serial
        );
        app.pull_now.notify_one();
    }
    if verified.dropped_reports + verified.dropped_inactive + verified.dropped_relays > 0 {
        info!(
            "candidate snapshot {}: {} reports, {} entries or pairs (node not in this node's \
             directory) and {} relay pairs (relay not offering) dropped",
            verified.snapshot.serial,
            verified.dropped_reports,
            verified.dropped_inactive,
            verified.dropped_relays
        );
    }
    let serial = verified.snapshot.serial;
    app.candidates
        .send_replace(Some(Arc::new(verified.snapshot)));
    serial
}

async fn snapshot_loop(app: &App, enrolment: &Enrolment, mut held: Held) {
    let mut delay = Duration::from_secs(1);
    let mut failing = false;
    loop {
        if app.revocation().is_some() {
            return;
        }
        let serial = app.candidates.borrow().as_ref().map_or(0, |s| s.serial);
        // A pull that appended entries ends the long poll early (it is
        // asked again at once): the new box must not wait for its end.
        let fetched = tokio::select! {
            fetched = fetch(app, enrolment, serial) => fetched,
            () = app.directory_grew.notified() => {
                reverify(app, enrolment, &mut held).await;
                continue;
            }
        };
        match fetched {
            Ok(Some(bytes)) => match accept(app, enrolment, &mut held, &bytes, serial).await {
                Ok(()) => {
                    held.bytes = Some(bytes);
                    delay = Duration::from_secs(1);
                    failing = false;
                    app.live.set_hub_unreachable(false);
                    continue;
                }
                Err(e) => warn!("candidate snapshot from the hub refused: {e}"),
            },
            Ok(None) => {
                delay = Duration::from_secs(1);
                failing = false;
                app.live.set_hub_unreachable(false);
                // The directory may have grown another way (a bundle
                // imported offline) since the snapshot was verified.
                reverify(app, enrolment, &mut held).await;
                continue;
            }
            Err(e) if !failing => {
                warn!("fetching the candidate snapshot: {e} (retrying quietly)");
                failing = true;
                app.live.set_hub_unreachable(true);
            }
            Err(_) => {}
        }
        tokio::time::sleep(delay).await;
        delay = backoff(delay);
    }
}

/// One long poll: `Some(bytes)` for a new snapshot, `None` for `304`.
async fn fetch(app: &App, enrolment: &Enrolment, after: u64) -> Result<Option<Bytes>, String> {
    let url = format!(
        "{}/v1/candidates?after={after}",
        hub_api_url(&app.config(), enrolment)
    );
    let (status, body) = client::request(
        Method::GET,
        &url,
        None,
        Bytes::new(),
        LONG_POLL + CALL_TIMEOUT,
        candidates::MAX_SNAPSHOT_BYTES,
    )
    .await
    .map_err(|e| format!("{url}: {}", text(e)))?;
    match status {
        StatusCode::OK => Ok(Some(body)),
        StatusCode::NOT_MODIFIED => Ok(None),
        s => Err(format!("{url}: {s}: {}", error_text(&body))),
    }
}

/// A fetched snapshot: verified, newer than the one held, stored, published.
async fn accept(
    app: &App,
    enrolment: &Enrolment,
    held: &mut Held,
    bytes: &Bytes,
    serial: u64,
) -> Result<(), String> {
    let verified = verify(app, enrolment, &held.views, bytes).await?;
    if verified.snapshot.serial <= serial {
        return Err(format!(
            "serial {} is not newer than the held {serial}",
            verified.snapshot.serial
        ));
    }
    let store = app.store.clone();
    let raw = bytes.to_vec();
    joined(blocking(move || store.save_candidate_snapshot(&raw)).await)?;
    publish(app, verified, &mut held.unknown);
    Ok(())
}

//! A node's side of endpoint candidates (docs/paths.md): it signs and sends
//! its report (listen port, LAN addresses, the peers it wants relayed, its
//! relay ports when it relays) at
//! start and whenever that changes, and long-polls the hub's snapshot,
//! verifies it against the stored directory, keeps it on the state
//! partition and publishes it into `App::candidates`. At start it restores
//! the stored snapshot (verified again), so a node started while the hub
//! is down still knows where its peers were.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gondwana_core::candidates::{self, MAX_LAN_ADDRS, MAX_RELAY_WANTS, RelayOffer, ReportBody};
use gondwana_core::mesh::Ipv4Net;
use gondwana_core::node_id::NodeId;
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
    let views = ViewCache::default();
    let restored = restore(&app, &enrolment, &views).await;
    tokio::join!(
        report_loop(&app, &enrolment),
        snapshot_loop(&app, &enrolment, &views, restored)
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

/// The unicast IPv4 addresses of the non-mesh interfaces, with the listen
/// port (the first [`MAX_LAN_ADDRS`], in address order).
fn lan_candidates(
    mesh_interface: &gondwana_core::InterfaceName,
    mesh: &Ipv4Net,
    port: u16,
) -> Vec<SocketAddrV4> {
    let subnets = crate::net::host_addrs::host_subnets(mesh_interface).unwrap_or_else(|e| {
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

/// The stored snapshot, verified against the stored directory and
/// published; its bytes, if it holds.
async fn restore(app: &App, enrolment: &Enrolment, views: &ViewCache) -> Option<Bytes> {
    let store = app.store.clone();
    let stored = joined(blocking(move || store.candidate_snapshot()).await);
    let bytes = match stored {
        Ok(Some(b)) => Bytes::from(b),
        Ok(None) => return None,
        Err(e) => {
            warn!("reading the stored candidate snapshot: {e}");
            return None;
        }
    };
    match verify_and_publish(app, enrolment, views, &bytes).await {
        Ok((serial, _)) => {
            info!("restored the stored candidate snapshot (serial {serial})");
            Some(bytes)
        }
        Err(e) => {
            warn!("the stored candidate snapshot does not verify, ignored: {e}");
            None
        }
    }
}

/// Verifies `bytes` against the stored directory and publishes them;
/// returns the serial and whether entries of nodes the directory lacks
/// were left out.
async fn verify_and_publish(
    app: &App,
    enrolment: &Enrolment,
    views: &ViewCache,
    bytes: &[u8],
) -> Result<(u64, bool), String> {
    let verified = verify(app, enrolment, views, bytes).await?;
    Ok(publish(app, verified))
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

fn publish(app: &App, verified: candidates::Verified) -> (u64, bool) {
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
    let incomplete = verified.dropped_inactive > 0;
    app.candidates
        .send_replace(Some(Arc::new(verified.snapshot)));
    (serial, incomplete)
}

/// While the held snapshot names nodes the directory lacks (a new box,
/// maybe the new relay of one of our pairs), the directory is looked at
/// every second during the long poll, and the snapshot verified again as
/// soon as it grew: a pair the hub moved to a new node relay is followed
/// within a second of the directory pull, not at the next `304` (25 s).
async fn fetch_watching_directory(
    app: &App,
    enrolment: &Enrolment,
    views: &ViewCache,
    last: Option<&Bytes>,
    incomplete: &mut bool,
    serial: u64,
) -> Result<Option<Bytes>, String> {
    let fetching = fetch(app, enrolment, serial);
    tokio::pin!(fetching);
    loop {
        tokio::select! {
            got = &mut fetching => return got,
            _ = tokio::time::sleep(Duration::from_secs(1)), if *incomplete => {
                let Some(bytes) = last else {
                    *incomplete = false;
                    continue;
                };
                if let Ok((_, true)) = views.get(&app.store, enrolment.hub_key).await {
                    match verify_and_publish(app, enrolment, views, bytes).await {
                        Ok((_, still)) => *incomplete = still,
                        Err(e) => warn!("candidate snapshot after a directory change: {e}"),
                    }
                }
            }
        }
    }
}

async fn snapshot_loop(
    app: &App,
    enrolment: &Enrolment,
    views: &ViewCache,
    mut last: Option<Bytes>,
) {
    let mut delay = Duration::from_secs(1);
    let mut failing = false;
    // The held snapshot left out entries of nodes the directory lacks.
    let mut incomplete = last.is_some();
    loop {
        if app.revocation().is_some() {
            return;
        }
        let serial = app.candidates.borrow().as_ref().map_or(0, |s| s.serial);
        let fetched = fetch_watching_directory(
            app,
            enrolment,
            views,
            last.as_ref(),
            &mut incomplete,
            serial,
        )
        .await;
        match fetched {
            Ok(Some(bytes)) => match accept(app, enrolment, views, &bytes, serial).await {
                Ok(still) => {
                    incomplete = still;
                    last = Some(bytes);
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
                // The directory may have grown since the snapshot was
                // verified: entries of new nodes were dropped then.
                if let (Some(bytes), Ok((_, true))) =
                    (&last, views.get(&app.store, enrolment.hub_key).await)
                {
                    match verify_and_publish(app, enrolment, views, bytes).await {
                        Ok((_, still)) => incomplete = still,
                        Err(e) => warn!("candidate snapshot after a directory change: {e}"),
                    }
                }
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

/// A fetched snapshot: verified, newer than the one held, stored,
/// published. `true`: entries of nodes the directory lacks were left out.
async fn accept(
    app: &App,
    enrolment: &Enrolment,
    views: &ViewCache,
    bytes: &Bytes,
    held: u64,
) -> Result<bool, String> {
    let verified = verify(app, enrolment, views, bytes).await?;
    if verified.snapshot.serial <= held {
        return Err(format!(
            "serial {} is not newer than the held {held}",
            verified.snapshot.serial
        ));
    }
    let store = app.store.clone();
    let raw = bytes.to_vec();
    joined(blocking(move || store.save_candidate_snapshot(&raw)).await)?;
    Ok(publish(app, verified).1)
}

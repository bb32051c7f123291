//! Revocation, both sides (docs/protocol.md, "Revocation").
//!
//! Hub: `GET /v1/enroll/revocation?node=<id>` answers with the directory
//! entry that revoked the node, as stored: the hub-signed proof a node can
//! no longer pull through the tunnel the hub has just removed.
//!
//! Node: when its hub contact fails (directory pull, mirror push, a stale
//! hub handshake) it asks that URL on the hub it enrolled through, at once
//! and then with capped backoff (when: `gondwana_core::node_sync`); an
//! entry it pulls through the tunnel counts the same. A verified revocation is stored with an
//! audit record, and from then on the data plane drops its peers, status
//! says `revoked`, `/v1/ready` answers 503 and the enrolment task stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gondwana_core::NodeId;
use gondwana_core::directory::MAX_PAGE;
use gondwana_core::envelope::MAX_ENVELOPE_BYTES;
use gondwana_core::keys::PublicKey;
use gondwana_core::revocation::{self, Revocation};
use http::{Method, StatusCode};

use crate::api::{ApiError, ApiRequest, ApiResponse, CONTENT_TYPE_OCTETS, client};
use crate::clock::now_unix;
use crate::daemon::app::App;
use crate::daemon::dataplane_status::DataplaneStatus;
use crate::daemon::drive::blocking;
use crate::store::StateStore;
use crate::store::enrolment::Enrolment;
use crate::store::revocation::{NodeRevocation, revocation_entry, save_revocation};
use gondwana_core::reconcile::HANDSHAKE_STALE;

const ASK_TIMEOUT: Duration = Duration::from_secs(15);

/// Hub: the revocation record of `?node=`, or `404 not_revoked`. Behind the
/// enrolment rate limiter; stores nothing.
pub async fn serve(app: &Arc<App>, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    if app.hub.is_none() {
        return Err(ApiError::not_found("this node is not a hub"));
    }
    if !app.enrol_rate.check(req.peer.ip(), Instant::now()) {
        return Err(ApiError::rate_limited(
            "too many enrolment requests from this address",
        ));
    }
    let text = req
        .query_param("node")
        .ok_or_else(|| ApiError::bad_request("query parameter `node` (a node id) is required"))?;
    let node_id = NodeId::parse(&text)
        .map_err(|e| ApiError::bad_request(format!("query parameter `node`: {e}")))?;
    let store = app.store.clone();
    let id = node_id.as_str().to_string();
    let found = blocking(move || revocation_entry(&store, &id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| {
            error!("looking up a revocation: {e}");
            ApiError::internal("the hub could not complete the request; see its log")
        })?;
    match found {
        Some(raw) => Ok(ApiResponse::bytes(
            StatusCode::OK,
            CONTENT_TYPE_OCTETS,
            raw.into(),
        )),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_revoked",
            format!("{node_id} is not revoked by this hub"),
        )),
    }
}

/// How long the hub waits for a revoked node to take its revocation
/// before it removes the node's peer (the push is a shortcut: the node's
/// own ask is the fallback).
const PUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Hub: right after `node revoke` commits, and before the data plane removes
/// the node's peer, hands the signed `Revoke` entry to the node over the
/// tunnel (`POST /v1/revocation` on its mesh address), so it acts within
/// seconds instead of at its next failed pull. Failure is only logged.
pub async fn push_to_node(app: &App, revoked: &serde_json::Value) {
    let (Some(hub), Some(node_id), Some(mesh_ip)) = (
        app.hub.as_ref(),
        revoked["node_id"].as_str(),
        revoked["mesh_ip"].as_str(),
    ) else {
        return;
    };
    // Only through our own tunnel: with the mesh interface down (or no data
    // plane) the mesh address would route out of the host's default route.
    if app.dataplane_status().state != "up" {
        return;
    }
    let store = app.store.clone();
    let id = node_id.to_string();
    let raw = match blocking(move || revocation_entry(&store, &id)).await {
        Ok(Ok(Some(raw))) => raw,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return error!("revocation of {node_id}: {e}"),
        Err(e) => return error!("revocation of {node_id}: {e}"),
    };
    let url = format!("http://{mesh_ip}:{}/v1/revocation", hub.api_port);
    match client::request(
        Method::POST,
        &url,
        Some(CONTENT_TYPE_OCTETS),
        raw.into(),
        PUSH_TIMEOUT,
        64 * 1024,
    )
    .await
    {
        Ok((StatusCode::OK, _)) => {
            info!("revocation handed to {node_id} at {mesh_ip}")
        }
        Ok((status, _)) => warn!(
            "{url} answered {status} to the revocation of {node_id}; it will ask the public listener"
        ),
        Err(e) => warn!(
            "could not hand the revocation to {node_id} ({e}); it will ask the public listener"
        ),
    }
}

/// Node: `POST /v1/revocation` — a hub-signed `Revoke` entry of this node,
/// from whoever brings it (the hub over the tunnel, or anyone holding it):
/// self-verifying against the pinned hub key, final, so no other
/// authentication is needed. Anything else changes nothing.
pub async fn receive(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let Some(enrolment) = app
        .store
        .enrolment()
        .map_err(|e| ApiError::internal(e.to_string()))?
    else {
        return Err(ApiError::forbidden(
            "this node is not enrolled: it has no hub key to check a revocation against",
        ));
    };
    let verified = revocation::open(&req.body, &enrolment.hub_key, &enrolment.grant.node_id)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, "bad_signature", e.to_string()))?;
    commit(app, req.body.to_vec(), verified)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &serde_json::json!({"revoked": true}),
    ))
}

/// The hub handshake went stale while the interface is up: WireGuard
/// re-handshakes every 2 minutes while keepalives flow, so a peer the hub
/// removed shows here within [`HANDSHAKE_STALE`].
pub fn hub_handshake_stale(mesh: &DataplaneStatus, now_unix: u64) -> bool {
    mesh.state == "up"
        && mesh
            .hub
            .as_ref()
            .and_then(|h| h["last_handshake_unix"].as_u64())
            .is_some_and(|t| now_unix.saturating_sub(t) > HANDSHAKE_STALE.as_secs())
}

/// Asks the hub this node enrolled through whether it is revoked. `true`
/// once a verified revocation is stored; an answer that does not verify
/// (another signer, another node, not a revocation) changes nothing.
pub async fn ask_hub(app: &App, enrolment: &Enrolment) -> anyhow::Result<bool> {
    let url = format!(
        "{}/v1/enroll/revocation?node={}",
        enrolment.hub_url.trim_end_matches('/'),
        enrolment.grant.node_id
    );
    let (status, body) = client::request(
        Method::GET,
        &url,
        None,
        Bytes::new(),
        ASK_TIMEOUT,
        MAX_ENVELOPE_BYTES,
    )
    .await?;
    match status {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return Ok(false),
        other => anyhow::bail!("{url} answered {other}"),
    }
    let verified = revocation::open(&body, &enrolment.hub_key, &enrolment.grant.node_id)
        .map_err(|e| anyhow::anyhow!("{url}: {e}; ignored"))?;
    commit(app, body.to_vec(), verified).await?;
    Ok(true)
}

/// The revocation of `own` in the stored directory (pulled before this
/// version acted on it), read a page at a time so memory stays bounded.
/// Blocking: run it off the async thread.
pub fn stored(
    store: &StateStore,
    hub_key: &PublicKey,
    own: &NodeId,
) -> anyhow::Result<Option<(Vec<u8>, Revocation)>> {
    let mut after = 0;
    loop {
        let (entries, _) = store.directory_page(after, MAX_PAGE)?;
        if entries.is_empty() {
            return Ok(None);
        }
        after += entries.len() as u64;
        for raw in entries {
            let mentions_us = revocation::decode_unverified(&raw)
                .is_some_and(|e| revocation::revokes(&e, own).is_some());
            if mentions_us {
                let r = revocation::open(&raw, hub_key, own)?;
                return Ok(Some((raw, r)));
            }
        }
    }
}

/// Stores a verified revocation (one transaction, with its audit record)
/// and makes the daemon act on it.
pub async fn commit(app: &App, raw: Vec<u8>, verified: Revocation) -> anyhow::Result<()> {
    let store = app.store.clone();
    let now = now_unix();
    let record = verified.clone();
    let fresh = blocking(move || save_revocation(&store, &raw, &record, now)).await??;
    let stored = if fresh {
        NodeRevocation {
            at_unix: now,
            seq: verified.seq,
            reason: verified.reason,
        }
    } else {
        app.store
            .revocation()?
            .ok_or_else(|| anyhow::anyhow!("the stored revocation vanished"))?
    };
    warn!(
        "this node was revoked by its hub (directory entry {}): {}; \
         its tunnel is torn down and it stops contacting the hub",
        stored.seq, stored.reason
    );
    app.set_revocation(stored);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stale_hub_handshake_counts_only_on_an_up_interface() {
        let mut mesh = DataplaneStatus {
            state: "up",
            hub: Some(json!({"last_handshake_unix": 1_000})),
            ..Default::default()
        };
        assert!(!hub_handshake_stale(&mesh, 1_000 + 180));
        assert!(hub_handshake_stale(&mesh, 1_000 + 181));
        mesh.state = "revoked";
        assert!(!hub_handshake_stale(&mesh, 5_000));
        mesh.state = "up";
        // No handshake yet: pull failures speak for a tunnel never up.
        mesh.hub = Some(json!({"last_handshake_unix": null}));
        assert!(!hub_handshake_stale(&mesh, 5_000));
    }
}

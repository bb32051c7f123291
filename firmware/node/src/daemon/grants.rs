//! Hub-signed grant commands: a node's `POST /v1/grants` (and its nonce),
//! and a hub sending such a command to a node. The firewall they act on is
//! `daemon/firewall.rs`.

use std::time::Duration;

use bytes::Bytes;
use gondwana_core::grant::{self, GrantAction, GrantCommand};
use gondwana_core::hash::to_hex;
use gondwana_core::keys::decode_hex32;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{ApiError, ApiRequest, ApiResponse, CONTENT_TYPE_OCTETS};
use crate::daemon::app::App;
use crate::service;
use crate::service::request::GrantRequest;

// ---- POST /v1/grants: a hub-signed command -------------------------------

/// `GET /v1/grants/nonce`: a single-use nonce for the next command
/// (daemon/nonces.rs).
pub fn nonce(app: &App) -> Result<ApiResponse, ApiError> {
    app.grants
        .firewall
        .as_ref()
        .ok_or_else(|| ApiError::not_found("the firewall is disabled on this node"))?;
    // Stateless: asking stores nothing, so there is no load to refuse.
    let nonce = app
        .grants
        .nonces()
        .issue()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"nonce": to_hex(&nonce)}),
    ))
}

/// `POST /v1/grants`: verified against the pinned hub key, then the nonce
/// is spent (so a replay is refused), then applied.
pub async fn command(app: &std::sync::Arc<App>, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let Some(fw) = app.grants.firewall.as_ref() else {
        return Err(ApiError::not_found("the firewall is disabled on this node"));
    };
    let hub_key = match app.store.enrolment() {
        Ok(Some(e)) => e.hub_key,
        Ok(None) => {
            return Err(ApiError::forbidden(
                "this node has no pinned hub (not enrolled): it accepts no grant commands",
            ));
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    let verified =
        grant::open_command(&req.body, &hub_key, &fw.plan().subnet).map_err(|e| match e {
            grant::CommandError::Envelope(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "bad_signature",
                format!("grant command: {e}"),
            ),
            _ => ApiError::bad_request(format!("grant command: {e}")),
        })?;
    // Only now, with the hub's signature verified, is the nonce spent (and
    // remembered): an unauthenticated sender cannot grow the used set.
    if let Err(why) = app.grants.nonces().spend(&verified.nonce) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "unknown_nonce",
            format!(
                "the command's nonce was not issued here, is stale or was already used ({why})"
            ),
        ));
    }
    let app2 = app.clone();
    // The same grant change as `grant add|del` on the box itself.
    let outcome = crate::daemon::drive::blocking(move || {
        let fw = app2.grants.require()?;
        let mut request = GrantRequest {
            ip: verified.grant.ip,
            port: verified.grant.port.into(),
            timeout_secs: None,
            node: None,
        };
        match verified.action {
            GrantAction::Add { timeout_secs } => {
                request.timeout_secs = timeout_secs;
                service::grants::add(fw, &app2.store, &request, "hub")
            }
            GrantAction::Delete => service::grants::del(fw, &app2.store, &request, "hub"),
        }
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    app.changed();
    match outcome {
        Ok(v) => Ok(ApiResponse::json(StatusCode::OK, &v)),
        Err(e) if e.status().is_client_error() => {
            Err(ApiError::new(e.status(), e.code(), e.to_string()))
        }
        Err(e) => {
            error!("grant command failed: {e}");
            Err(ApiError::internal(
                "the grant could not be applied; see the node's log",
            ))
        }
    }
}

// ---- hub: send a command to a node ----------------------------------------

const REMOTE_TIMEOUT: Duration = Duration::from_secs(15);

/// Hub: signs and sends a grant command to `node` (boxname, node id or mesh
/// address) over the mesh, and returns the node's answer.
pub async fn remote(app: &App, req: GrantRequest, delete: bool) -> anyhow::Result<Value> {
    let hub = app
        .hub
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("--node needs a hub (this box's role is node)"))?;
    let who = req.node.clone().unwrap_or_default();
    let node = app
        .store
        .nodes()?
        .into_iter()
        .find(|n| {
            !n.revoked && (n.boxname == who || n.node_id == who || n.mesh_ip.to_string() == who)
        })
        .ok_or_else(|| anyhow::anyhow!("no live node {who}"))?;
    // Checked here too, so a typo fails before anything crosses the wire.
    let g = grant::Grant::new(req.ip, req.port, &hub.subnet)?;
    if let Some(t) = req.timeout_secs {
        grant::check_timeout(t)?;
    }
    let base = format!("http://{}:{}", node.mesh_ip, hub.api_port);
    let (status, body) = crate::api::client::request(
        Method::GET,
        &format!("{base}/v1/grants/nonce"),
        None,
        Bytes::new(),
        REMOTE_TIMEOUT,
        4096,
    )
    .await?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "{who}: {status}: {}",
            answer["detail"].as_str().unwrap_or("")
        );
    }
    let nonce: [u8; 32] = answer["nonce"]
        .as_str()
        .and_then(|h| decode_hex32(h).ok())
        .ok_or_else(|| anyhow::anyhow!("{who}: malformed nonce answer"))?;
    let command = GrantCommand {
        version: grant::VERSION,
        nonce,
        action: if delete {
            GrantAction::Delete
        } else {
            GrantAction::Add {
                timeout_secs: req.timeout_secs,
            }
        },
        ip: g.ip.octets(),
        port: g.port,
    };
    let sealed = grant::seal_command(&command, &hub.signing)?;
    let (status, body) = crate::api::client::request(
        Method::POST,
        &format!("{base}/v1/grants"),
        Some(CONTENT_TYPE_OCTETS),
        Bytes::from(sealed),
        REMOTE_TIMEOUT,
        64 * 1024,
    )
    .await?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "{who} refused: {status}: {}",
            answer["detail"].as_str().unwrap_or("")
        );
    }
    Ok(json!({"node": node.boxname, "mesh_ip": node.mesh_ip.to_string(), "result": answer}))
}

#[cfg(test)]
pub(crate) mod tests;

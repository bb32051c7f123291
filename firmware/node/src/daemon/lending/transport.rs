//! Subscriptions travel straight from the consumer to the provider over
//! the mesh (docs/services.md, "On the wire"), never through the hub:
//! `POST /v1/services/request` on the provider's node API, a signed
//! request in, the provider's signed decision out.
//!
//! The driver checks the size before anything is decoded; the provider's
//! book (core) checks the rest — the sender's rate, the signature against
//! the consumer's directory key, that the request is addressed to this
//! box, that the TCP source is the consumer's mesh address (the
//! directory's, and the one the request names), the offer, the counter.
//! Each refusal is counted in `gondwana_service_refusals_total{reason}`
//! and changes nothing. The mesh firewall admits the API from the mesh
//! subnet only and WireGuard binds each source address to its peer's key,
//! so the source check ties a request to the consumer's own tunnel.

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use gondwana_core::lending::MAX_REQUEST_BYTES;
use http::{Method, StatusCode};
use serde_json::Value;

use crate::api::{ApiError, CONTENT_TYPE_OCTETS};

/// The route, on every listener that serves the public API.
pub const PATH: &[&str] = &["v1", "services", "request"];

/// Every reason a request is refused, the driver's and the book's
/// (`lending::Refusal::code`): the label set of
/// `gondwana_service_refusals_total`, present at zero from the start.
pub const REFUSALS: &[&str] = &[
    "not_enrolled",
    "no_firewall",
    "too_large",
    "rate_limited",
    "malformed",
    "bad_signature",
    "unknown_node",
    "node_revoked",
    "wrong_provider",
    "wrong_address",
    "no_such_offer",
    "offer_changed",
    "stale_counter",
    "no_such_subscription",
    "not_pending",
    "full",
];

/// The size check, before anything is decoded.
pub fn check_size(body: &[u8]) -> Result<(), ApiError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "a lending request is at most {MAX_REQUEST_BYTES} bytes (got {})",
                body.len()
            ),
        ));
    }
    Ok(())
}

// ---- the consumer's side ---------------------------------------------------

/// How long a consumer waits for a provider's answer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer a consumer reads (a decision is one envelope).
const MAX_ANSWER_BYTES: usize = 8 * 1024;

/// Why a provider did not answer with a decision.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No answer at all: the provider is unreachable.
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    /// It answered with a refusal (`code`: the error code it gave).
    #[error("provider refused ({status}): {code}: {detail}")]
    Refused {
        status: StatusCode,
        code: String,
        detail: String,
    },
}

/// Sends signed request bytes to the provider's API at `ip:port`; the
/// answer's bytes (a signed decision, verified by the caller).
pub async fn send(ip: Ipv4Addr, port: u16, signed: Vec<u8>) -> Result<Vec<u8>, SendError> {
    let url = format!("http://{ip}:{port}/{}", PATH.join("/"));
    let (status, body) = crate::api::client::request(
        Method::POST,
        &url,
        Some(CONTENT_TYPE_OCTETS),
        Bytes::from(signed),
        SEND_TIMEOUT,
        MAX_ANSWER_BYTES,
    )
    .await
    .map_err(|e| SendError::Unreachable(e.to_string()))?;
    if status.is_success() {
        return Ok(body.to_vec());
    }
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Err(SendError::Refused {
        status,
        code: answer["error"].as_str().unwrap_or("unknown").into(),
        detail: answer["detail"].as_str().unwrap_or("").into(),
    })
}

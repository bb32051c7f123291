//! Subscriptions travel straight from the consumer to the provider over
//! the mesh (docs/services.md, "On the wire"), never through the hub:
//! `POST /v1/services/request` on the provider's node API, a signed
//! request in, the provider's signed decision out.
//!
//! The provider's checks before its book sees anything, cheapest first,
//! each refusal counted in `gondwana_service_refusals_total{reason}` and
//! changing nothing: the sender's rate (per source address), the size,
//! the signature against the consumer's directory key, that the request
//! is addressed to this box, and that the TCP source is the consumer's
//! mesh address — the directory's, and the one the request names. The
//! mesh firewall admits the API from the mesh subnet only and WireGuard
//! binds each source address to its peer's key, so the source check ties
//! the request to the consumer's own tunnel.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::Bytes;
use gondwana_core::NodeId;
use gondwana_core::directory::View;
use gondwana_core::hash::Hash32;
use gondwana_core::lending::{self, LendingError, MAX_REQUEST_BYTES, Request};
use http::{Method, StatusCode};
use serde_json::Value;

use crate::api::{ApiError, CONTENT_TYPE_OCTETS};

/// The route, on every listener that serves the public API.
pub const PATH: &[&str] = &["v1", "services", "request"];

/// Every reason a request is refused before the book: the label set of
/// `gondwana_service_refusals_total`, present at zero from the start.
pub const REFUSALS: &[&str] = &[
    "rate_limited",
    "too_large",
    "malformed",
    "unknown_node",
    "bad_signature",
    "wrong_provider",
    "wrong_address",
    "not_enrolled",
    "no_firewall",
];

/// A request that passed every check before the book.
pub struct Verified {
    pub request: Request,
    /// BLAKE2b-256 of the bytes as received: what the decision names.
    pub hash: Hash32,
    pub consumer_ip: Ipv4Addr,
}

/// A refusal: its reason (the metric label and the error code) and the
/// HTTP answer.
pub struct Refused {
    pub reason: &'static str,
    pub error: ApiError,
}

fn refused(reason: &'static str, status: StatusCode, detail: impl Into<String>) -> Refused {
    Refused {
        reason,
        error: ApiError::new(status, reason, detail),
    }
}

/// The stateless checks of a request from `peer`, against the directory
/// `view` and this box's node id. Pure: tested without sockets.
pub fn verify(
    body: &[u8],
    peer: IpAddr,
    view: &View,
    own: &NodeId,
) -> Result<Verified, Refused> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(refused(
            "too_large",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a lending request is at most {MAX_REQUEST_BYTES} bytes (got {})",
                body.len()
            ),
        ));
    }
    let (request, hash) =
        lending::open_request(body, |id| view.signing_key(id)).map_err(|e| match e {
            LendingError::UnknownSigner(_) => refused(
                "unknown_node",
                StatusCode::FORBIDDEN,
                format!("lending request: {e} (unknown or revoked node)"),
            ),
            LendingError::WrongSigner(_)
            | LendingError::Envelope(gondwana_core::envelope::EnvelopeError::BadSignature)
            | LendingError::Envelope(gondwana_core::envelope::EnvelopeError::WrongSigner) => {
                refused(
                    "bad_signature",
                    StatusCode::FORBIDDEN,
                    format!("lending request: {e}"),
                )
            }
            e => refused(
                "malformed",
                StatusCode::BAD_REQUEST,
                format!("lending request: {e}"),
            ),
        })?;
    if request.provider() != own {
        return Err(refused(
            "wrong_provider",
            StatusCode::FORBIDDEN,
            format!(
                "this request is for provider {}, this box is {own}",
                request.provider()
            ),
        ));
    }
    let consumer = request.consumer();
    // open_request found its key, so the directory holds it.
    let Some(record) = view.nodes.get(consumer) else {
        return Err(refused(
            "unknown_node",
            StatusCode::FORBIDDEN,
            format!("{consumer} is not an active node of the directory"),
        ));
    };
    let named = match &request {
        Request::Subscribe(s) => Some(s.consumer_ip),
        Request::Unsubscribe(_) => None,
    };
    if peer != IpAddr::V4(record.mesh_ip) || named.is_some_and(|ip| ip != record.mesh_ip) {
        return Err(refused(
            "wrong_address",
            StatusCode::FORBIDDEN,
            format!(
                "a request from {consumer} must come from and name its mesh address {} \
                 (it came from {peer}{})",
                record.mesh_ip,
                named.map(|ip| format!(" and names {ip}")).unwrap_or_default()
            ),
        ));
    }
    Ok(Verified {
        request,
        hash,
        consumer_ip: record.mesh_ip,
    })
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

//! Routes, by (method, path segments), into handler functions. Three
//! listeners, three route sets:
//! - `PublicApi` (loopback, the configured address, later the mesh address);
//! - `EnrolApi` (a hub's public enrolment listener): enrolment, revocation
//!   look-ups and health only;
//! - `AdminApi` (root-only Unix socket): tokens, nodes, rotation, enrol.

use std::sync::Arc;
use std::time::Instant;

use gondwana_core::directory::{self, MAX_PAGE};
use gondwana_core::enrol;
use gondwana_core::hash::to_hex;
use gondwana_core::identity_log::{export_bundle, import_bundle};
use http::{Method, StatusCode};
use serde_json::json;

use crate::api::{ApiError, ApiRequest, ApiResponse, CONTENT_TYPE_OCTETS, Handler};
use crate::clock::now_unix;
use crate::daemon::app::App;
use crate::daemon::candidates_hub;
use crate::daemon::grants;
use crate::daemon::lending;
use crate::daemon::metrics;
use crate::daemon::offers_hub;
use crate::daemon::revocation;
use crate::store::registry::{self, Refusal};

pub struct PublicApi(pub Arc<App>);
pub struct EnrolApi(pub Arc<App>);

impl Handler for PublicApi {
    async fn handle(&self, req: ApiRequest) -> ApiResponse {
        let label = metrics::route_label(PUBLIC_ROUTES, &req.segments());
        metrics::counted(&self.0, &label, self.route(req).await)
    }
}

impl PublicApi {
    async fn route(&self, req: ApiRequest) -> ApiResponse {
        let app = &self.0;
        let result = match (&req.method, req.segments().as_slice()) {
            (&Method::GET, ["v1", "health"]) => Ok(health()),
            (&Method::GET, ["v1", "ready"]) => Ok(ready(app)),
            (&Method::GET, ["v1", "status"]) => Ok(ApiResponse::bytes(
                StatusCode::OK,
                crate::api::CONTENT_TYPE_JSON,
                app.status_bytes().await,
            )),
            (&Method::GET, ["v1", "identity"]) => Ok(identity(app)),
            (&Method::GET, ["v1", "identity", "log"]) => identity_log(app).await,
            (&Method::GET, ["v1", "directory"]) => directory_page(app, &req).await,
            (&Method::GET, ["metrics"]) => Ok(metrics::scrape(app).await),
            (&Method::GET, ["v1", "enroll", "nonce"]) => nonce(app, &req),
            (&Method::POST, ["v1", "enroll"]) => enroll(app, &req).await,
            (&Method::GET, ["v1", "enroll", "revocation"]) => revocation::serve(app, &req).await,
            (&Method::POST, ["v1", "revocation"]) => revocation::receive(app, &req).await,
            (&Method::POST, ["v1", "identity", "mirror"]) => mirror_push(app, &req).await,
            (&Method::GET, ["v1", "grants", "nonce"]) => grants::nonce(app),
            (&Method::POST, ["v1", "grants"]) => grants::command(app, &req).await,
            (&Method::POST, ["v1", "candidates", "report"]) => {
                candidates_hub::report(app, &req).await
            }
            (&Method::GET, ["v1", "candidates"]) => candidates_hub::snapshot(app, &req).await,
            (&Method::POST, ["v1", "services", "request"]) => lending::receive(app, &req).await,
            (&Method::POST, ["v1", "services", "publish"]) => offers_hub::receive(app, &req).await,
            (&Method::GET, ["v1", "update", "bundle", hash]) => {
                crate::daemon::update_serve::bundle(app, &req, hash).await
            }
            (&Method::POST, ["v1", "update", "release"]) => {
                crate::daemon::update_serve::receive_release(app, &req).await
            }
            _ => return not_routed(&req, PUBLIC_ROUTES),
        };
        result.unwrap_or_else(ApiResponse::from)
    }
}

impl Handler for EnrolApi {
    async fn handle(&self, req: ApiRequest) -> ApiResponse {
        let label = metrics::route_label(ENROL_ROUTES, &req.segments());
        metrics::counted(&self.0, &label, self.route(req).await)
    }
}

impl EnrolApi {
    async fn route(&self, req: ApiRequest) -> ApiResponse {
        let app = &self.0;
        let result = match (&req.method, req.segments().as_slice()) {
            (&Method::GET, ["v1", "health"]) => Ok(health()),
            (&Method::GET, ["v1", "enroll", "nonce"]) => nonce(app, &req),
            (&Method::POST, ["v1", "enroll"]) => enroll(app, &req).await,
            (&Method::GET, ["v1", "enroll", "revocation"]) => revocation::serve(app, &req).await,
            _ => return not_routed(&req, ENROL_ROUTES),
        };
        result.unwrap_or_else(ApiResponse::from)
    }
}

/// Every public route, for the 405 answer's `Allow` (the match above is the
/// router; a unit test keeps the two in step).
pub(crate) const PUBLIC_ROUTES: &[(Method, &[&str])] = &[
    (Method::GET, &["v1", "health"]),
    (Method::GET, &["v1", "ready"]),
    (Method::GET, &["v1", "status"]),
    (Method::GET, &["v1", "identity"]),
    (Method::GET, &["v1", "identity", "log"]),
    (Method::GET, &["v1", "directory"]),
    (Method::GET, &["metrics"]),
    (Method::GET, &["v1", "enroll", "nonce"]),
    (Method::POST, &["v1", "enroll"]),
    (Method::GET, &["v1", "enroll", "revocation"]),
    (Method::POST, &["v1", "revocation"]),
    (Method::POST, &["v1", "identity", "mirror"]),
    (Method::GET, &["v1", "grants", "nonce"]),
    (Method::POST, &["v1", "grants"]),
    (Method::POST, &["v1", "candidates", "report"]),
    (Method::GET, &["v1", "candidates"]),
    (Method::POST, lending::transport::PATH),
    (Method::POST, &["v1", "services", "publish"]),
    (Method::GET, &["v1", "update", "bundle", "{hash}"]),
    (Method::POST, &["v1", "update", "release"]),
];

const ENROL_ROUTES: &[(Method, &[&str])] = &[
    (Method::GET, &["v1", "health"]),
    (Method::GET, &["v1", "enroll", "nonce"]),
    (Method::POST, &["v1", "enroll"]),
    (Method::GET, &["v1", "enroll", "revocation"]),
];

/// No route for this method and path: 405 with `Allow` when the path takes
/// other methods, else 404.
fn not_routed(req: &ApiRequest, routes: &[(Method, &[&str])]) -> ApiResponse {
    let segments = req.segments();
    let allow: Vec<&str> = routes
        .iter()
        .filter(|(_, path)| metrics::path_matches(path, &segments))
        .map(|(method, _)| method.as_str())
        .collect();
    if allow.is_empty() {
        return ApiError::not_found(format!("{} {}", req.method, req.path)).into();
    }
    let allow = allow.join(", ");
    let detail = format!("{} takes {allow}", req.path);
    let response = ApiResponse::from(ApiError::method_not_allowed(detail));
    match http::HeaderValue::from_str(&allow) {
        Ok(v) => response.with_header(http::header::ALLOW, v),
        Err(_) => response,
    }
}

fn health() -> ApiResponse {
    ApiResponse::json(StatusCode::OK, &json!({"status": "ok"}))
}

/// Ready when the state answers a read (and, with the data plane, when the
/// interface is up).
/// Ready: the state is readable and, once the box is in a mesh, its
/// interface is up. A node still waiting for its enrolment is ready (it
/// serves its API and enrols by itself); a down or revoked mesh is not.
fn ready(app: &App) -> ApiResponse {
    if let Err(e) = app.store.directory_head() {
        return ApiError::unavailable(format!("state: {e}")).into();
    }
    if let Some(r) = app.revocation() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "revoked",
            format!(
                "this node was revoked by its hub (directory entry {}, learned at {}): {}",
                r.seq, r.at_unix, r.reason
            ),
        )
        .into();
    }
    let mesh = app.dataplane_status();
    match mesh.state {
        "up" | "waiting" | "disabled" => {
            ApiResponse::json(StatusCode::OK, &json!({"ready": true, "mesh": mesh.state}))
        }
        other => ApiError::unavailable(format!(
            "mesh interface {} is {}{}",
            mesh.interface,
            other,
            mesh.error.map(|e| format!(": {e}")).unwrap_or_default()
        ))
        .into(),
    }
}

fn identity(app: &App) -> ApiResponse {
    let state = app.identity();
    ApiResponse::json(StatusCode::OK, &crate::service::views::identity(&state))
}

async fn identity_log(app: &App) -> Result<ApiResponse, ApiError> {
    let store = app.store.clone();
    let stored = blocking(move || store.require_identity().map_err(|e| e.to_string())).await?;
    let bundle = export_bundle(&stored.log).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(ApiResponse::bytes(
        StatusCode::OK,
        CONTENT_TYPE_OCTETS,
        bundle.into(),
    ))
}

async fn directory_page(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let after: u64 = crate::api::parse_query_param(req.query.as_deref(), "after")?.unwrap_or(0);
    let json_view = req.query_param("format").as_deref() == Some("json");
    let Some(authority) = directory_authority(app)? else {
        return Err(ApiError::unavailable(
            "no directory yet: this node is not enrolled",
        ));
    };
    let store = app.store.clone();
    let (entries, head): (Vec<Vec<u8>>, _) = blocking(move || {
        store
            .directory_page(after, MAX_PAGE)
            .map_err(|e| e.to_string())
    })
    .await?;
    if json_view {
        let store = app.store.clone();
        let (view, _) =
            blocking(move || store.directory_view(&authority).map_err(|e| e.to_string())).await?;
        return Ok(ApiResponse::json(
            StatusCode::OK,
            &crate::service::views::directory(&view, &head),
        ));
    }
    let bundle = directory::encode_bundle(&authority, after, head, &entries);
    Ok(ApiResponse::bytes(
        StatusCode::OK,
        CONTENT_TYPE_OCTETS,
        bundle.into(),
    ))
}

/// The key the directory is signed with: the hub's own, or the pinned one.
/// The key this box's directory is signed with (service/directory.rs).
fn directory_authority(app: &App) -> Result<Option<[u8; 32]>, ApiError> {
    crate::service::directory::authority(&app.store, &app.config())
        .map_err(|e| ApiError::internal(e.to_string()))
}

fn require_hub(app: &App) -> Result<&registry::HubContext, ApiError> {
    app.hub
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this node is not a hub"))
}

fn nonce(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    require_hub(app)?;
    if !app.enrol_rate.check(req.peer.ip(), Instant::now()) {
        app.metrics.inc(
            "gondwana_enrolment_failures_total",
            &[("reason", "rate_limited")],
        );
        return Err(ApiError::rate_limited(
            "too many enrolment attempts from this address",
        ));
    }
    // Stateless (daemon/nonces.rs): issuing stores nothing, so no load
    // makes it refuse.
    let nonce = app
        .nonces
        .issue()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    // The hub's key comes with the nonce so a node pinned to another hub
    // stops before it submits (and spends a token use). It proves nothing:
    // the grant's signature is what the node trusts.
    // Likewise the hub's WireGuard key, which the node's proof of its own
    // WireGuard key is made with: a substituted one only fails that proof.
    let hub_key = app.hub.as_ref().map(|h| to_hex(&h.signing.public_key()));
    let hub_wireguard_key = app.hub.as_ref().map(|h| to_hex(&h.wireguard_key()));
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({
            "nonce": to_hex(&nonce),
            "hub_key": hub_key,
            "hub_wireguard_key": hub_wireguard_key,
        }),
    ))
}

async fn enroll(app: &Arc<App>, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let hub = require_hub(app)?;
    let fail = |reason: &'static str, e: ApiError| {
        app.metrics
            .inc("gondwana_enrolment_failures_total", &[("reason", reason)]);
        e
    };
    if !app.enrol_rate.check(req.peer.ip(), Instant::now()) {
        return Err(fail(
            "rate_limited",
            ApiError::rate_limited("too many enrolment attempts from this address"),
        ));
    }
    // Every stateless check first: nothing is looked up for a forgery.
    let checked = enrol::verify_submission(&req.body, &hub.wireguard_secret());
    let verified = checked.map_err(|e| match e {
        enrol::EnrolError::WireguardProof(_) => {
            let r = Refusal::BadWireguardProof(format!("enrolment request: {e}"));
            fail(r.code(), refusal_error(r))
        }
        e => fail(
            "bad_request",
            ApiError::bad_request(format!("enrolment request: {e}")),
        ),
    })?;
    // Forged, stale or spent nonces are refused before any look-up.
    if app.nonces.check(&verified.request.hub_nonce).is_err() {
        let r = Refusal::UnknownNonce;
        return Err(fail(
            r.code(),
            ApiError::new(StatusCode::FORBIDDEN, r.code(), r.to_string()),
        ));
    }
    let _ = hub;
    let app2 = app.clone();
    let outcome = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Refusal> {
        let hub = app2
            .hub
            .as_ref()
            .ok_or(Refusal::Store("not a hub".into()))?;
        // The nonce is remembered only for an authenticated request: signed
        // with a token key the hub issued. An unknown token spends nothing.
        if !app2.store.knows_token(&verified.request.token_key)? {
            return Err(Refusal::UnknownToken);
        }
        app2.nonces
            .spend(&verified.request.hub_nonce)
            .map_err(|_| Refusal::UnknownNonce)?;
        let grant = registry::enrol(&app2.store, hub, &verified, now_unix())?;
        let (entries, head) = app2.store.directory_page(0, MAX_PAGE)?;
        let bundle = directory::encode_bundle(&hub.signing.public_key(), 0, head, &entries);
        enrol::encode_response(&grant, bundle).map_err(|e| Refusal::Store(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    match outcome {
        Ok(body) => {
            app.metrics.inc("gondwana_enrolments_total", &[]);
            app.changed();
            Ok(ApiResponse::bytes(
                StatusCode::OK,
                CONTENT_TYPE_OCTETS,
                body.into(),
            ))
        }
        Err(r) => {
            let code = r.code();
            Err(fail(code, refusal_error(r)))
        }
    }
}

/// Hub: a node's identity log, extending what the mirror holds. Self-
/// verifying: whoever sends it, only a log that extends the known one from
/// the same genesis is kept.
async fn mirror_push(app: &Arc<App>, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    require_hub(app)?;
    let (entries, state) = import_bundle(&req.body)
        .map_err(|e| ApiError::bad_request(format!("identity log: {e}")))?;
    let proof = wireguard_proof_header(req).map_err(refusal_error)?;
    let app2 = app.clone();
    let outcome = crate::daemon::drive::blocking(move || {
        let hub = app2
            .hub
            .as_ref()
            .ok_or(Refusal::Store("not a hub".into()))?;
        registry::mirror_update(
            &app2.store,
            hub,
            &state,
            &entries,
            proof.as_ref(),
            now_unix(),
        )
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let len = outcome.map_err(refusal_error)?;
    app.changed();
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"entries": len.0, "tip": to_hex(&len.1)}),
    ))
}

/// `Gondwana-WireGuard-Proof: <64 hex>`, if present; a malformed one is a
/// wrong proof.
fn wireguard_proof_header(req: &ApiRequest) -> Result<Option<[u8; 32]>, Refusal> {
    let Some(value) = req.headers.get(registry::WIREGUARD_PROOF_HEADER) else {
        return Ok(None);
    };
    let bad = || {
        Refusal::BadWireguardProof(format!(
            "{} must be 64 hexadecimal digits",
            registry::WIREGUARD_PROOF_HEADER
        ))
    };
    let text = value.to_str().map_err(|_| bad())?;
    if text.len() != 64 {
        return Err(bad());
    }
    gondwana_core::keys::decode_hex32(text)
        .map(Some)
        .map_err(|_| bad())
}

/// A refusal as the client sees it: its code and a detail, never a path of
/// the hub's (store errors are logged here and answered as "internal").
fn refusal_error(r: Refusal) -> ApiError {
    if let Refusal::Store(detail) = &r {
        error!("store error while answering a request: {detail}");
        return ApiError::internal("the hub could not complete the request; see its log");
    }
    ApiError::new(refusal_status(&r), r.code(), r.to_string())
}

/// The HTTP status of each refusal: 4xx, as docs/protocol.md ("Refusals")
/// lists them (checked by `routes/refusal_doc.rs`); only a store failure
/// is a 500.
pub(crate) fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        Refusal::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        // The request is fine; the hub's state conflicts with it.
        Refusal::BoxnameTaken(_)
        | Refusal::StaleIdentity(_)
        | Refusal::SubnetExhausted(_)
        | Refusal::WireguardKeyTaken(_) => StatusCode::CONFLICT,
        Refusal::UnknownNode(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::FORBIDDEN,
    }
}

async fn blocking<T: Send + 'static, E: Into<String> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    match crate::daemon::drive::blocking(move || f().map_err(Into::into)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

#[cfg(test)]
mod refusal_doc;
#[cfg(test)]
pub(crate) mod tests;

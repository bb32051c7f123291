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

use crate::admin::ops::{self, TokenCreate, now_unix};
use crate::api::{ApiError, ApiRequest, ApiResponse, CONTENT_TYPE_OCTETS, Handler};
use crate::config::Role;
use crate::daemon::app::App;
use crate::daemon::grants;
use crate::daemon::revocation;
use crate::store::registry::{self, Refusal};

pub struct PublicApi(pub Arc<App>);
pub struct EnrolApi(pub Arc<App>);
pub struct AdminApi(pub Arc<App>);

impl Handler for PublicApi {
    async fn handle(&self, req: ApiRequest) -> ApiResponse {
        let app = &self.0;
        let result = match (&req.method, req.segments().as_slice()) {
            (&Method::GET, ["v1", "health"]) => Ok(health()),
            (&Method::GET, ["v1", "ready"]) => Ok(ready(app)),
            (&Method::GET, ["v1", "status"]) => Ok(ApiResponse::bytes(
                StatusCode::OK,
                crate::api::CONTENT_TYPE_JSON,
                app.status_bytes(),
            )),
            (&Method::GET, ["v1", "identity"]) => Ok(identity(app)),
            (&Method::GET, ["v1", "identity", "log"]) => identity_log(app).await,
            (&Method::GET, ["v1", "directory"]) => directory_page(app, &req).await,
            (&Method::GET, ["metrics"]) => Ok(metrics(app)),
            (&Method::GET, ["v1", "enroll", "nonce"]) => nonce(app, &req),
            (&Method::POST, ["v1", "enroll"]) => enroll(app, &req).await,
            (&Method::GET, ["v1", "enroll", "revocation"]) => revocation::serve(app, &req).await,
            (&Method::POST, ["v1", "revocation"]) => revocation::receive(app, &req).await,
            (&Method::POST, ["v1", "identity", "mirror"]) => mirror_push(app, &req).await,
            (&Method::GET, ["v1", "grants", "nonce"]) => grants::nonce(app),
            (&Method::POST, ["v1", "grants"]) => grants::command(app, &req).await,
            (_, ["v1", ..] | ["metrics"]) => {
                Err(ApiError::not_found(format!("{} {}", req.method, req.path)))
            }
            _ => Err(ApiError::not_found(req.path.clone())),
        };
        result.unwrap_or_else(ApiResponse::from)
    }
}

impl Handler for EnrolApi {
    async fn handle(&self, req: ApiRequest) -> ApiResponse {
        let app = &self.0;
        let result = match (&req.method, req.segments().as_slice()) {
            (&Method::GET, ["v1", "health"]) => Ok(health()),
            (&Method::GET, ["v1", "enroll", "nonce"]) => nonce(app, &req),
            (&Method::POST, ["v1", "enroll"]) => enroll(app, &req).await,
            (&Method::GET, ["v1", "enroll", "revocation"]) => revocation::serve(app, &req).await,
            _ => Err(ApiError::not_found(
                "the enrolment listener serves only enrolment, revocation and health",
            )),
        };
        result.unwrap_or_else(ApiResponse::from)
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
    ApiResponse::json(
        StatusCode::OK,
        &crate::commands::identity::state_json(&state),
    )
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
            &crate::commands::directory::view_json(&view, &head),
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
fn directory_authority(app: &App) -> Result<Option<[u8; 32]>, ApiError> {
    if let Some(hub) = &app.hub {
        return Ok(Some(hub.signing.public_key()));
    }
    let enrolment = app
        .store
        .enrolment()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(enrolment.map(|e| e.hub_key))
}

fn metrics(app: &App) -> ApiResponse {
    app.metrics.set(
        "gondwana_uptime_seconds",
        &[],
        app.started.elapsed().as_secs(),
    );
    if let Ok(head) = app.store.directory_head() {
        app.metrics.set("gondwana_directory_entries", &[], head.len);
    }
    if app.hub.is_some() {
        let spent = app.nonces.used_len() as u64;
        app.metrics.set("gondwana_enrol_nonces_spent", &[], spent);
    }
    if app.grants.firewall.is_some() {
        let spent = app.grants.nonces_spent() as u64;
        app.metrics.set("gondwana_grant_nonces_spent", &[], spent);
    }
    app.metrics.response()
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
    let outcome = tokio::task::spawn_blocking(move || {
        let hub = app2
            .hub
            .as_ref()
            .ok_or(Refusal::Store("not a hub".into()))?;
        registry::mirror_update(&app2.store, hub, &state, &entries, proof.as_ref())
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

impl Handler for AdminApi {
    async fn handle(&self, req: ApiRequest) -> ApiResponse {
        // Root only: the socket is 0600, and this holds even if it is not.
        if req.peer_uid != Some(0) && req.peer_uid != Some(nix::unistd::geteuid().as_raw()) {
            return ApiError::forbidden("the admin socket is for root").into();
        }
        let app = self.0.clone();
        let body: serde_json::Value = if req.body.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(e) => return ApiError::bad_request(format!("JSON body: {e}")).into(),
            }
        };
        let path: Vec<String> = req.segments().iter().map(|s| s.to_string()).collect();
        let method = req.method.clone();
        if method == Method::POST && path == ["admin", "enroll"] {
            return admin_enroll(&app, body).await;
        }
        if method == Method::POST
            && let ["admin", "grant", op @ ("add" | "del")] = req.segments().as_slice()
            && body.get("node").is_some_and(|n| !n.is_null())
        {
            let delete = *op == "del";
            let result = match serde_json::from_value::<grants::GrantRequest>(body) {
                Ok(r) => grants::remote(&app, r, delete).await,
                Err(e) => Err(anyhow::anyhow!("grant request: {e}")),
            };
            return match result {
                Ok(v) => ApiResponse::json(StatusCode::OK, &v),
                Err(e) => ApiError::bad_request(format!("{e:#}")).into(),
            };
        }
        let app2 = app.clone();
        let revoking = method == Method::POST && path == ["admin", "node", "revoke"];
        let result =
            tokio::task::spawn_blocking(move || admin_blocking(&app2, &method, &path, body)).await;
        if revoking && let Ok(Ok(revoked)) = &result {
            // Before `changed()` lets the data plane remove the node's peer.
            crate::daemon::revocation::push_to_node(&app, revoked).await;
        }
        // Any admin action may change what status shows.
        app.changed();
        match result {
            Ok(Ok(v)) => ApiResponse::json(StatusCode::OK, &v),
            Ok(Err(e)) => ApiError::bad_request(format!("{e:#}")).into(),
            Err(e) => ApiError::internal(e.to_string()).into(),
        }
    }
}

fn admin_blocking(
    app: &App,
    method: &Method,
    path: &[String],
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let config = app.config();
    let store = &app.store;
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let text = |k: &str| body[k].as_str().map(str::to_string);
    match (method, p.as_slice()) {
        (&Method::GET, ["admin", "status"]) => Ok(app.status_json()),
        (&Method::GET, ["admin", "identity"]) => {
            Ok(crate::commands::identity::state_json(&app.identity()))
        }
        (&Method::GET, ["admin", "audit"]) => Ok(serde_json::Value::Array(
            crate::commands::audit::rows(store)?,
        )),
        (&Method::GET, ["admin", "audit", "verify"]) => crate::commands::audit::verify_json(store),
        (&Method::POST, ["admin", "grant", "add"]) => {
            grants::admin_add(app, &serde_json::from_value(body)?)
        }
        (&Method::POST, ["admin", "grant", "del"]) => {
            grants::admin_del(app, &serde_json::from_value(body)?)
        }
        (&Method::GET, ["admin", "grants"]) => grants::admin_list(app),
        (&Method::POST, ["admin", "token", "create"]) => {
            let spec: TokenCreate = serde_json::from_value(body)?;
            ops::token_create(store, &config, spec)
        }
        (&Method::GET, ["admin", "tokens"]) => ops::token_list(store, &config),
        (&Method::POST, ["admin", "token", "revoke"]) => {
            ops::token_revoke(store, &config, &text("id").unwrap_or_default())
        }
        (&Method::GET, ["admin", "nodes"]) => ops::node_list(store, &config),
        (&Method::POST, ["admin", "node", "show"]) => {
            ops::node_show(store, &config, &text("who").unwrap_or_default())
        }
        (&Method::POST, ["admin", "node", "revoke"]) => {
            let identity = store.require_identity()?;
            ops::node_revoke(
                store,
                &config,
                &identity,
                &text("who").unwrap_or_default(),
                &text("reason").unwrap_or_else(|| "revoked by the operator".into()),
            )
        }
        (&Method::POST, ["admin", "identity", "rotate"]) => {
            let signing = body["signing"].as_bool().unwrap_or(false);
            if signing && config.role == Role::Hub {
                anyhow::bail!(
                    "rotating a hub's signing key is not supported yet: every enroll.toml pins it and it signs the directory"
                );
            }
            let next = crate::commands::identity::rotate_in_store(store, signing)?;
            app.set_identity(next.clone());
            if let Some(hub) = &app.hub
                && !signing
            {
                registry::publish_hub_key(store, hub, store.require_identity()?.wireguard)?;
            }
            Ok(crate::commands::identity::state_json(&next))
        }
        (&Method::GET, ["admin", "directory"]) => {
            let authority = match &app.hub {
                Some(h) => Some(h.signing.public_key()),
                None => store.enrolment()?.map(|e| e.hub_key),
            };
            let authority =
                authority.ok_or_else(|| anyhow::anyhow!("no directory: not enrolled"))?;
            let (view, head) = store.directory_view(&authority)?;
            Ok(crate::commands::directory::view_json(&view, &head))
        }
        _ => anyhow::bail!("unknown admin request {method} /{}", path.join("/")),
    }
}

async fn admin_enroll(app: &Arc<App>, body: serde_json::Value) -> ApiResponse {
    let file: crate::boot::enroll_source::EnrollFile = match serde_json::from_value(body) {
        Ok(f) => f,
        Err(e) => return ApiError::bad_request(format!("enrol request: {e}")).into(),
    };
    let plan = match file.into_plan("gondwana enroll".into()) {
        Ok(p) => p,
        Err(e) => return ApiError::bad_request(e.to_string()).into(),
    };
    if let Ok(Some(e)) = app.store.enrolment() {
        let mut v = crate::status::enrolment_json(&app.store, &e);
        v["already_enrolled"] = json!(true);
        return ApiResponse::json(StatusCode::OK, &v);
    }
    match crate::daemon::enrol_task::enrol_once(&app.store, &app.config(), &plan).await {
        Ok(e) => {
            app.set_hub_mirror_len(app.identity().len);
            app.set_status(crate::daemon::app::EnrolStatus::Enrolled);
            ApiResponse::json(StatusCode::OK, &crate::commands::enroll::enrolment_json(&e))
        }
        Err(e) => ApiError::new(StatusCode::BAD_GATEWAY, "enrol_failed", format!("{e:#}")).into(),
    }
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
    match tokio::task::spawn_blocking(move || f().map_err(Into::into)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

#[cfg(test)]
mod refusal_doc;
#[cfg(test)]
pub(crate) mod tests;

//! Routes called directly, without sockets (the real listeners are tested
//! end to end in firmware/node/tests/enrolment*.rs).

use std::sync::{Arc, RwLock};

use gondwana_core::Boxname;
use gondwana_core::enrol::{self, EnrolRequest};
use gondwana_core::identity_log::build;
use gondwana_core::keys::SigningSecret;
use gondwana_core::token::TokenSecret;
use http::{Method, StatusCode};

use super::*;
use crate::api::metrics::Metrics;
use crate::api::rate_limit::RateLimiter;
use crate::config::Config;
use crate::config::Role;
use crate::daemon::admin::AdminApi;
use crate::daemon::app::AppParts;
use crate::service::request::TokenCreate;
use crate::store::registry::HubContext;
use crate::store::{OpenMode, StateStore};

/// A hub App on a fresh state dir (also used by the grants tests).
pub(crate) fn hub_app(dir: &std::path::Path) -> Arc<App> {
    let mut config = Config {
        role: Role::Hub,
        ..Config::default()
    };
    config.hub.public_endpoint = Some("hub.test:51822".into());
    config.hub.public_url = Some("http://hub.test:8799".into());
    crate::boot::firstboot::run(dir, &config).unwrap();
    let store = Arc::new(StateStore::open(dir, OpenMode::ExistingOnly).unwrap());
    let identity = store.require_identity().unwrap();
    let hub = HubContext {
        wireguard: RwLock::new(identity.wireguard),
        identity: identity.state.clone(),
        signing: identity.signing,
        subnet: config.mesh.subnet,
        endpoint: "hub.test:51822".into(),
        wireguard_port: 51822,
        api_port: 8798,
    };
    registry::ensure_hub_record(&store, &hub, 1).unwrap();
    Arc::new(App::new(AppParts {
        store,
        config,
        config_path: (dir.join("none.toml"), false),
        state_dir: dir.to_path_buf(),
        identity: identity.state,
        hub: Some(hub),
        grants: crate::daemon::firewall::Grants::disabled(),
        metrics: Metrics::new(),
        enrol_rate: RateLimiter::new(1000, 1000.0),
    }))
}

async fn call(handler: &impl Handler, method: Method, target: &str, body: Vec<u8>) -> ApiResponse {
    handler
        .handle(ApiRequest::new(method, target).with_body(body))
        .await
}

#[tokio::test]
async fn unknown_paths_are_json_404s_and_wrong_methods_405s() {
    let dir = tempfile::tempdir().unwrap();
    let app = hub_app(dir.path());
    let r = call(&PublicApi(app.clone()), Method::GET, "/v1/nothing", vec![]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json_body().unwrap()["error"], "not_found");
    let r = call(&PublicApi(app), Method::DELETE, "/v1/status", vec![]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.json_body().unwrap()["error"], "method_not_allowed");
}

#[tokio::test]
async fn enrolment_listener_serves_only_enrolment_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let app = hub_app(dir.path());
    let enrol_api = EnrolApi(app);
    assert_eq!(
        call(&enrol_api, Method::GET, "/v1/health", vec![])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&enrol_api, Method::GET, "/v1/enroll/nonce", vec![])
            .await
            .status,
        StatusCode::OK
    );
    for path in [
        "/v1/status",
        "/v1/directory",
        "/metrics",
        "/v1/identity",
        "/admin/tokens",
    ] {
        assert_eq!(
            call(&enrol_api, Method::GET, path, vec![]).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[tokio::test]
async fn enrol_then_replay_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = hub_app(dir.path());
    let config = app.config();
    let created = crate::service::hub_admin::token_create(
        &app.store,
        &config,
        TokenCreate {
            uses: 5,
            ..TokenCreate::default()
        },
    )
    .unwrap();
    let token = TokenSecret::parse(created["token"].as_str().unwrap()).unwrap();
    let api = PublicApi(app.clone());

    let nonce_answer = call(&api, Method::GET, "/v1/enroll/nonce", vec![]).await;
    let nonce_hex = nonce_answer.json_body().unwrap()["nonce"]
        .as_str()
        .unwrap()
        .to_string();
    let node = SigningSecret::from_seed([77; 32]);
    let node_wg = gondwana_core::keys::WireguardSecret::from_bytes([78; 32]);
    let hub_wg = gondwana_core::keys::decode_hex32(
        nonce_answer.json_body().unwrap()["hub_wireguard_key"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let (genesis, state) =
        build::genesis(&node, node_wg.public_key(), Boxname::parse("n1").unwrap()).unwrap();
    let request = EnrolRequest {
        version: enrol::VERSION,
        hub_nonce: gondwana_core::keys::decode_hex32(&nonce_hex).unwrap(),
        wireguard_key: state.wireguard_key,
        boxname: Boxname::parse("n1").unwrap(),
        token_key: token.public_key(),
    };
    let submission =
        enrol::build_submission(&node, &node_wg, &hub_wg, &[genesis], &request, &token).unwrap();
    let ok = call(&api, Method::POST, "/v1/enroll", submission.clone()).await;
    assert_eq!(ok.status, StatusCode::OK);
    let response = enrol::decode_response(&ok.body).unwrap();
    let grant = enrol::open_grant(
        &response.grant,
        &app.hub.as_ref().unwrap().signing.public_key(),
        &request,
        &state,
    )
    .unwrap();
    assert_eq!(grant.mesh_ip.to_string(), "10.10.0.2");

    let head = app.store.directory_head().unwrap();
    let replay = call(&api, Method::POST, "/v1/enroll", submission).await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN);
    assert_eq!(replay.json_body().unwrap()["error"], "unknown_nonce");
    assert_eq!(app.store.directory_head().unwrap(), head);
    assert_eq!(app.store.node_counts().unwrap(), (1, 1));

    let garbage = call(&api, Method::POST, "/v1/enroll", vec![1, 2, 3]).await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbage.json_body().unwrap()["error"], "bad_request");
}

#[tokio::test]
async fn admin_socket_refuses_other_users() {
    let dir = tempfile::tempdir().unwrap();
    let app = hub_app(dir.path());
    let admin = AdminApi(app);
    let req = ApiRequest::new(Method::GET, "/admin/status").with_peer_uid(4242);
    assert_eq!(admin.handle(req).await.status, StatusCode::FORBIDDEN);
    let req = ApiRequest::new(Method::GET, "/admin/status").with_peer_uid(0);
    assert_eq!(admin.handle(req).await.status, StatusCode::OK);
}

/// One error type, one mapping: refusals are 4xx with their code, a wrong
/// method is 405 with `Allow`, and nothing the caller can fix is a 5xx.
#[tokio::test]
async fn admin_errors_map_to_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let app = hub_app(dir.path());
    let admin = AdminApi(app);
    let ask = |method: Method, path: &str, body: &str| {
        let mut req = ApiRequest::new(method, path).with_peer_uid(0);
        req.body = bytes::Bytes::from(body.to_string());
        req
    };
    let wrong_method = admin.handle(ask(Method::POST, "/admin/status", "")).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        wrong_method.headers.get(http::header::ALLOW).unwrap(),
        "GET"
    );

    let unknown = admin.handle(ask(Method::GET, "/admin/nope", "")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let bad_body = admin
        .handle(ask(Method::POST, "/admin/token/revoke", "{\"idd\": 1}"))
        .await;
    assert_eq!(bad_body.status, StatusCode::BAD_REQUEST);

    let no_token = admin
        .handle(ask(
            Method::POST,
            "/admin/token/revoke",
            "{\"id\": \"nope\"}",
        ))
        .await;
    assert_eq!(no_token.status, StatusCode::NOT_FOUND);
    assert_eq!(no_token.json_body().unwrap()["error"], "not_found");

    let zero_uses = admin
        .handle(ask(Method::POST, "/admin/token/create", "{\"uses\": 0}"))
        .await;
    assert_eq!(zero_uses.status, StatusCode::BAD_REQUEST);

    let no_node = admin
        .handle(ask(
            Method::POST,
            "/admin/node/show",
            "{\"who\": \"ghost\"}",
        ))
        .await;
    assert_eq!(no_node.status, StatusCode::NOT_FOUND);

    // Store-only commands answer while the daemon holds the store.
    let export = admin
        .handle(ask(Method::GET, "/admin/identity/export", ""))
        .await;
    assert_eq!(export.status, StatusCode::OK);
    let verify = admin
        .handle(ask(Method::GET, "/admin/directory/verify", ""))
        .await;
    assert_eq!(verify.status, StatusCode::OK);
    assert_eq!(verify.json_body().unwrap()["verified"], true);
}

/// A known path asked with the wrong method is 405 naming the methods it
/// takes; an unknown path is 404; every route in the table answers
/// something else than 404/405 with its own method.
#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let dir = tempfile::tempdir().unwrap();
    let app = hub_app(dir.path());
    let api = PublicApi(app.clone());
    let r = api
        .handle(ApiRequest::new(Method::POST, "/v1/status"))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers.get(http::header::ALLOW).unwrap(), "GET");
    assert_eq!(r.json_body().unwrap()["error"], "method_not_allowed");
    let r = api.handle(ApiRequest::new(Method::GET, "/v1/enroll")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers.get(http::header::ALLOW).unwrap(), "POST");
    let r = api.handle(ApiRequest::new(Method::GET, "/v1/nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let enrol = EnrolApi(app.clone());
    let r = enrol
        .handle(ApiRequest::new(Method::DELETE, "/v1/health"))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = enrol
        .handle(ApiRequest::new(Method::GET, "/v1/status"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for (method, path) in PUBLIC_ROUTES {
        let r = api
            .handle(ApiRequest::new(
                method.clone(),
                &format!("/{}", path.join("/")),
            ))
            .await;
        assert!(
            // The grant routes are 404 on a box without a firewall.
            r.status != StatusCode::NOT_FOUND || path[..2] == ["v1", "grants"],
            "{method} {path:?}: {}",
            r.status
        );
        assert_ne!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path:?}"
        );
    }
}

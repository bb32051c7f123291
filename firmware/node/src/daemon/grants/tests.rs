//! `POST /v1/grants` called directly on a node whose firewall lives in a
//! network namespace this test creates: a hub-signed command is applied
//! (kernel, store, audit); forged, replayed, out-of-subnet and unenrolled
//! ones are 4xx JSON and change nothing.

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;

use gondwana_core::enrol::{self, EnrolGrant};
use gondwana_core::grant::{GrantAction, GrantCommand, seal_command};
use gondwana_core::keys::SigningSecret;
use gondwana_core::{Boxname, NodeId};
use http::{Method, StatusCode};

use super::*;
use crate::api::metrics::Metrics;
use crate::api::rate_limit::RateLimiter;
use crate::api::{ApiRequest, Handler};
use crate::config::Config;
use crate::daemon::app::{AppParts, EnrolStatus};
use crate::daemon::firewall::Grants;
use crate::daemon::routes::PublicApi;
use crate::store::{OpenMode, StateStore};

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Moves this (test) thread into a fresh namespace; threads it spawns
/// (tokio's blocking pool) inherit it.
fn enter_netns() -> Netns {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("gwfw-api-{}-{n}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cannot create netns {name} (root needed)");
    let ns = Netns(name);
    let file = File::open(format!("/run/netns/{}", ns.0)).unwrap();
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    ns
}

/// A hub-less test enrolment of `node` as `boxname` at `mesh_ip` (the
/// lending tests use it too).
pub(crate) fn grant_for(node: &StateStore, boxname: &str, mesh_ip: Ipv4Addr) -> EnrolGrant {
    let id = node.require_identity().unwrap().state;
    EnrolGrant {
        version: enrol::VERSION,
        hub_nonce: [1; 32],
        node_id: id.node_id.clone(),
        node_signing_key: id.signing_key,
        node_wireguard_key: id.wireguard_key,
        boxname: Boxname::parse(boxname).unwrap(),
        mesh_ip,
        subnet: "10.10.0.0/24".parse().unwrap(),
        hub_node_id: NodeId::from_genesis_key(&[5; 32]),
        hub_mesh_ip: Ipv4Addr::new(10, 10, 0, 1),
        hub_wireguard_key: [6; 32],
        hub_endpoint: "hub.test:51822".try_into().unwrap(),
        wireguard_port: 51822,
        api_port: 8798,
        directory_len: 0,
        directory_tip: [0; 32],
    }
}

fn node_app(dir: &std::path::Path, hub: Option<&SigningSecret>) -> Arc<App> {
    let mut config = Config::default();
    config.firewall.table = "gwapitest".into();
    crate::boot::firstboot::run(dir, &config).unwrap();
    let store = Arc::new(StateStore::open(dir, OpenMode::ExistingOnly).unwrap());
    if let Some(hub) = hub {
        let grant = grant_for(&store, "n1", Ipv4Addr::new(10, 10, 0, 2));
        let sealed = enrol::seal_grant(&grant, hub).unwrap();
        crate::store::enrolment::save_enrolment(
            &store,
            &sealed,
            &grant,
            "http://hub.test",
            &hub.public_key(),
            &gondwana_core::directory::encode_bundle(&hub.public_key(), 0, Default::default(), &[]),
            0,
        )
        .unwrap();
    }
    let grants = Grants::start(&config, &store).unwrap();
    let identity = store.require_identity().unwrap();
    let app = Arc::new(App::new(AppParts {
        grants,
        store,
        config,
        config_path: (dir.join("none.toml"), false),
        state_dir: dir.to_path_buf(),
        identity: identity.state,
        hub: None,
        metrics: Metrics::new(),
        enrol_rate: RateLimiter::new(1000, 1000.0),
    }));
    app.set_status(EnrolStatus::Enrolled);
    app
}

async fn call(api: &PublicApi, method: Method, target: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let mut req = ApiRequest::new(method, target);
    req.body = Bytes::from(body);
    let r = api.handle(req).await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

async fn fresh_nonce(api: &PublicApi) -> [u8; 32] {
    let (status, v) = call(api, Method::GET, "/v1/grants/nonce", vec![]).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    decode_hex32(v["nonce"].as_str().unwrap()).unwrap()
}

fn command(nonce: [u8; 32], ip: [u8; 4], port: u16, action: GrantAction) -> GrantCommand {
    GrantCommand {
        version: grant::VERSION,
        nonce,
        action,
        ip,
        port,
    }
}

const ADD: GrantAction = GrantAction::Add {
    timeout_secs: Some(600),
};

#[tokio::test]
async fn hub_signed_commands_apply_once_and_nothing_else_does() {
    let _ns = enter_netns();
    let hub = SigningSecret::from_seed([42; 32]);
    let dir = tempfile::tempdir().unwrap();
    let app = node_app(dir.path(), Some(&hub));
    let api = PublicApi(app.clone());
    let fw = app.grants.firewall.as_ref().unwrap();

    let nonce = fresh_nonce(&api).await;
    let sealed = seal_command(&command(nonce, [10, 10, 0, 3], 22, ADD), &hub).unwrap();
    let (status, v) = call(&api, Method::POST, "/v1/grants", sealed.clone()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let live = fw.list().unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0].ip, live[0].port, live[0].timeout_secs),
        (Ipv4Addr::new(10, 10, 0, 3), 22, Some(600))
    );
    assert_eq!(
        crate::store::grants::stored_grants(&app.store)
            .unwrap()
            .len(),
        1
    );

    // Replayed: the nonce is gone.
    let (status, v) = call(&api, Method::POST, "/v1/grants", sealed).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"], "unknown_nonce");

    // Forged (another key), out of subnet, the whole subnet, port 0,
    // garbage: 4xx JSON, and the nonce of a refused command stays unused
    // only if the refusal came before it was taken.
    let other = SigningSecret::from_seed([43; 32]);
    let n = fresh_nonce(&api).await;
    for (body, want) in [
        (
            seal_command(&command(n, [10, 10, 0, 4], 22, ADD), &other).unwrap(),
            StatusCode::FORBIDDEN,
        ),
        (
            seal_command(&command(n, [10, 10, 1, 4], 22, ADD), &hub).unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            seal_command(&command(n, [10, 10, 0, 0], 22, ADD), &hub).unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            seal_command(&command(n, [0, 0, 0, 0], 22, ADD), &hub).unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            seal_command(&command(n, [10, 10, 0, 4], 0, ADD), &hub).unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (vec![1, 2, 3], StatusCode::FORBIDDEN),
    ] {
        let (status, v) = call(&api, Method::POST, "/v1/grants", body).await;
        assert_eq!(status, want, "{v}");
        assert!(v["error"].is_string() && v["detail"].is_string(), "{v}");
    }
    assert_eq!(fw.list().unwrap().len(), 1);

    // A command with a never-issued nonce.
    let sealed = seal_command(&command([0; 32], [10, 10, 0, 4], 22, ADD), &hub).unwrap();
    assert_eq!(
        call(&api, Method::POST, "/v1/grants", sealed).await.0,
        StatusCode::FORBIDDEN
    );

    // Delete through a signed command.
    let n = fresh_nonce(&api).await;
    let del = seal_command(&command(n, [10, 10, 0, 3], 22, GrantAction::Delete), &hub).unwrap();
    assert_eq!(
        call(&api, Method::POST, "/v1/grants", del).await.0,
        StatusCode::OK
    );
    assert!(fw.list().unwrap().is_empty());
    assert!(
        crate::store::grants::stored_grants(&app.store)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_unenrolled_node_accepts_no_commands() {
    let _ns = enter_netns();
    let hub = SigningSecret::from_seed([42; 32]);
    let dir = tempfile::tempdir().unwrap();
    let app = node_app(dir.path(), None);
    let api = PublicApi(app.clone());
    let n = fresh_nonce(&api).await;
    let sealed = seal_command(&command(n, [10, 10, 0, 3], 22, ADD), &hub).unwrap();
    let (status, v) = call(&api, Method::POST, "/v1/grants", sealed).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(live_grants(&app).is_empty());
}

use crate::daemon::routes::tests::hub_app;

/// The grants the app's nftables set holds now (read back from the kernel).
fn live_grants(app: &App) -> Vec<crate::net::firewall::LiveGrant> {
    app.grants.firewall.as_ref().unwrap().list().unwrap()
}

/// Enrols a node (fixed keys) into the hub through its route, so the hub's
/// registry names it at 10.10.0.2.
async fn enrol_one(hub: &Arc<App>) {
    use gondwana_core::enrol::EnrolRequest;
    use gondwana_core::identity_log::build;
    use gondwana_core::token::TokenSecret;
    let created = crate::service::hub_admin::token_create(
        &hub.store,
        &hub.config(),
        crate::service::request::TokenCreate {
            uses: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let token = TokenSecret::parse(created["token"].as_str().unwrap()).unwrap();
    let api = PublicApi(hub.clone());
    let (_, v) = call(&api, Method::GET, "/v1/enroll/nonce", vec![]).await;
    let node = SigningSecret::from_seed([77; 32]);
    let node_wg = gondwana_core::keys::WireguardSecret::from_bytes([78; 32]);
    let hub_wg =
        gondwana_core::keys::decode_hex32(v["hub_wireguard_key"].as_str().unwrap()).unwrap();
    let (genesis, state) =
        build::genesis(&node, node_wg.public_key(), Boxname::parse("n1").unwrap()).unwrap();
    let request = EnrolRequest {
        version: enrol::VERSION,
        hub_nonce: decode_hex32(v["nonce"].as_str().unwrap()).unwrap(),
        wireguard_key: state.wireguard_key,
        boxname: Boxname::parse("n1").unwrap(),
        token_key: token.public_key(),
    };
    let submission =
        enrol::build_submission(&node, &node_wg, &hub_wg, &[genesis], &request, &token).unwrap();
    let mut req = ApiRequest::new(Method::POST, "/v1/enroll");
    req.body = Bytes::from(submission);
    assert_eq!(api.handle(req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_hub_grants_on_a_node_over_its_api() {
    let ns = enter_netns();
    for args in [
        ["link", "set", "lo", "up"].as_slice(),
        &["addr", "add", "10.10.0.2/32", "dev", "lo"],
    ] {
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns.0, "ip"])
            .args(args)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip {args:?}");
    }
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = hub_app(hub_dir.path());
    enrol_one(&hub).await;
    let node_dir = tempfile::tempdir().unwrap();
    let node = node_app(node_dir.path(), hub.hub.as_ref().map(|h| &h.signing));
    // The node's API on its mesh address, as the hub reaches it.
    let listener = tokio::net::TcpListener::bind("10.10.0.2:8798")
        .await
        .unwrap();
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(crate::api::serve(
        listener,
        Arc::new(PublicApi(node.clone())),
        crate::api::Limits::default(),
        stop_rx,
    ));

    let req = |port, timeout_secs| GrantRequest {
        ip: Ipv4Addr::new(10, 10, 0, 9),
        port,
        timeout_secs,
        node: Some("n1".into()),
    };
    let v = remote(&hub, req(8080, Some(120)), false).await.unwrap();
    assert_eq!(v["result"]["port"], 8080, "{v}");
    let live = live_grants(&node);
    assert_eq!(
        (live[0].ip, live[0].port),
        (Ipv4Addr::new(10, 10, 0, 9), 8080)
    );
    // Refused on the hub before anything is sent; then a delete.
    assert!(remote(&hub, req(0, None), false).await.is_err());
    assert!(
        remote(
            &hub,
            GrantRequest {
                node: Some("nobody".into()),
                ..req(1, None)
            },
            false
        )
        .await
        .is_err()
    );
    remote(&hub, req(8080, None), true).await.unwrap();
    assert!(live_grants(&node).is_empty());
}

//! `POST /v1/services/request` called on a provider whose firewall lives
//! in a network namespace this test creates (root needed, as on CI), with
//! a directory built from core's own functions: a provider, two consumers,
//! a revoked node, offers `web` (auto) and `files` (manual) and a withdrawn
//! `old`. One accepted subscription opens exactly its /32; every refusal
//! (unknown or revoked signer, no such or withdrawn offer, another
//! provider, forged, replayed, wrong mesh address, oversized, malformed,
//! flood) is a 4xx with its code and leaves the kernel's set as it was.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use gondwana_core::directory::{self, Head, Record};
use gondwana_core::enrol;
use gondwana_core::keys::SigningSecret;
use gondwana_core::lending::{
    self, Approval, Offer, OfferRef, Protocol, Publication, Request, ServiceName, Subscription,
    Verdict, Withdrawal,
};
use gondwana_core::{Boxname, NodeId};
use http::{Method, StatusCode};
use serde_json::Value;

use crate::api::rate_limit::RateLimiter;
use crate::api::{ApiRequest, Handler};
use crate::config::Config;
use crate::daemon::app::{App, AppParts, EnrolStatus};
use crate::daemon::firewall::Grants;
use crate::daemon::routes::PublicApi;
use crate::net::testns::NetNs;
use crate::store::{OpenMode, StateStore};

const PROVIDER_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 2);
const A_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 3);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 4);
const REVOKED_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 5);

struct Box_ {
    key: SigningSecret,
    id: NodeId,
}

fn node(seed: u8) -> Box_ {
    let key = SigningSecret::from_seed([seed; 32]);
    let id = NodeId::from_genesis_key(&key.public_key());
    Box_ { key, id }
}

fn node_record(b: &Box_, name: &str, ip: Ipv4Addr) -> Record {
    Record::Node {
        node_id: b.id.clone(),
        boxname: Boxname::parse(name).unwrap(),
        signing_key: b.key.public_key(),
        wireguard_key: [ip.octets()[3]; 32],
        mesh_ip: ip,
        endpoint_hint: None,
    }
}

fn offer(provider: &NodeId, name: &str, port: u16, approval: Approval, serial: u64) -> Publication {
    Publication::Offer(Offer {
        version: lending::VERSION,
        provider: provider.clone(),
        name: ServiceName::parse(name).unwrap(),
        serial,
        protocol: Protocol::Tcp,
        port,
        approval,
        description: None,
        max_duration_secs: None,
    })
}

fn lending_record(p: &Publication, key: &SigningSecret) -> Record {
    let sealed = lending::seal_publication(p, key).unwrap();
    Record::Lending(heapless::Vec::from_slice(&sealed).unwrap())
}

fn config() -> Config {
    let mut config = Config::default();
    config.firewall.table = "gwlendtest".into();
    config
}

/// The provider (its first boot done in `dir`) enrolled under `hub`, its
/// directory holding `records`.
fn provider_app(dir: &std::path::Path, hub: &SigningSecret, records: Vec<Record>) -> Arc<App> {
    let config = config();
    let store = Arc::new(StateStore::open(dir, OpenMode::ExistingOnly).unwrap());
    let id = store.require_identity().unwrap().state;
    let grant = crate::daemon::grants::tests::grant_for(&store, "provider", PROVIDER_IP);
    let sealed = enrol::seal_grant(&grant, hub).unwrap();
    crate::store::enrolment::save_enrolment(
        &store,
        &sealed,
        &grant,
        "http://hub.test",
        &hub.public_key(),
        &directory::encode_bundle(&hub.public_key(), 0, Head::default(), &[]),
        0,
    )
    .unwrap();
    let mut head = Head::default();
    let txn = store.write().unwrap();
    for record in records {
        let (raw, next) = directory::append(&head, hub, record).unwrap();
        crate::store::directory::put_entry(&txn, head.len, &raw, next).unwrap();
        head = next;
    }
    store.commit(txn).unwrap();
    let grants = Grants::start(&config, &store).unwrap();
    let app = Arc::new(App::new(AppParts {
        grants,
        store,
        config,
        config_path: (dir.join("none.toml"), false),
        state_dir: dir.to_path_buf(),
        identity: id,
        hub: None,
        metrics: crate::daemon::metrics::registry(crate::config::Role::Node, &[]),
        enrol_rate: RateLimiter::new(1000, 1000.0),
    }));
    app.set_status(EnrolStatus::Enrolled);
    app
}

fn subscribe(from: &Box_, ip: Ipv4Addr, provider: &NodeId, name: &str, counter: u64) -> Request {
    Request::Subscribe(Subscription {
        version: lending::VERSION,
        offer: OfferRef {
            provider: provider.clone(),
            name: ServiceName::parse(name).unwrap(),
            serial: 1,
        },
        consumer: from.id.clone(),
        consumer_ip: ip,
        duration_secs: 600,
        counter,
    })
}

async fn post(api: &PublicApi, from: Ipv4Addr, body: Vec<u8>) -> (StatusCode, Bytes) {
    let req = ApiRequest::new(Method::POST, "/v1/services/request")
        .with_body(body)
        .with_peer(SocketAddr::from((from, 40000)));
    let r = api.handle(req).await;
    (r.status, r.body)
}

fn code(body: &Bytes) -> String {
    serde_json::from_slice::<Value>(body).unwrap_or(Value::Null)["error"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// `ip . port` of every element of the grant set, as the kernel lists it.
fn set_elements(app: &App) -> Vec<(Ipv4Addr, u16)> {
    let fw = app.grants.firewall.as_ref().unwrap();
    fw.list().unwrap().iter().map(|g| (g.ip, g.port)).collect()
}

#[test]
fn one_subscription_opens_its_32_and_every_refusal_changes_nothing() {
    NetNs::new().run(|| async {
        let hub = SigningSecret::from_seed([42; 32]);
        let a = node(11);
        let b = node(12);
        let gone = node(13);
        let stranger = node(14);
        let dir = tempfile::tempdir().unwrap();
        // The provider's own key comes from its first boot: the directory
        // is built after it.
        crate::boot::firstboot::run(dir.path(), &config()).unwrap();
        let (provider_key, provider_id, provider_pub) = {
            let store = StateStore::open(dir.path(), OpenMode::ExistingOnly).unwrap();
            let id = store.require_identity().unwrap();
            (
                SigningSecret::from_seed(*id.signing.seed()),
                id.state.node_id.clone(),
                id.state.signing_key,
            )
        };
        let provider = Box_ {
            key: provider_key,
            id: provider_id.clone(),
        };
        assert_eq!(provider.key.public_key(), provider_pub);
        let records = vec![
            node_record(&provider, "provider", PROVIDER_IP),
            node_record(&a, "a", A_IP),
            node_record(&b, "b", B_IP),
            node_record(&gone, "gone", REVOKED_IP),
            Record::Revoke {
                node_id: gone.id.clone(),
                reason: "test".try_into().unwrap(),
            },
            lending_record(
                &offer(&provider.id, "web", 8080, Approval::Auto, 1),
                &provider.key,
            ),
            lending_record(
                &offer(&provider.id, "files", 8081, Approval::Manual, 1),
                &provider.key,
            ),
            lending_record(
                &offer(&provider.id, "old", 8082, Approval::Auto, 1),
                &provider.key,
            ),
            lending_record(
                &Publication::Withdrawal(Withdrawal {
                    version: lending::VERSION,
                    provider: provider.id.clone(),
                    name: ServiceName::parse("old").unwrap(),
                    serial: 2,
                }),
                &provider.key,
            ),
        ];
        let app = provider_app(dir.path(), &hub, records);
        let api = PublicApi(app.clone());

        // The positive control: a's subscription to web opens a's /32 only.
        let first =
            lending::seal_request(&subscribe(&a, A_IP, &provider.id, "web", 1), &a.key).unwrap();
        let (status, body) = post(&api, A_IP, first.clone()).await;
        assert_eq!(status, StatusCode::OK, "{}", code(&body));
        let decision = lending::open_decision(&body, &provider_pub).unwrap();
        assert!(matches!(
            decision.verdict,
            Verdict::Accepted { duration_secs: 600 }
        ));
        let opened = vec![(A_IP, 8080)];
        assert_eq!(set_elements(&app), opened);
        let listed =
            crate::service::grants::list(app.grants.firewall.as_ref().unwrap(), &app.store)
                .unwrap();
        assert_eq!(listed[0]["origin"]["subscription"]["service"], "web");

        // The very same bytes again: the same decision, nothing new.
        let (status, _) = post(&api, A_IP, first.clone()).await;
        assert_eq!(status, StatusCode::OK);

        // A renewal (counter 2) is taken; from then on counter 1 is a replay.
        let renewal =
            lending::seal_request(&subscribe(&a, A_IP, &provider.id, "web", 2), &a.key).unwrap();
        let (status, body) = post(&api, A_IP, renewal).await;
        assert_eq!(status, StatusCode::OK, "{}", code(&body));
        let renewal_60 = {
            let Request::Subscribe(mut s) = subscribe(&a, A_IP, &provider.id, "web", 2) else {
                unreachable!()
            };
            s.duration_secs = 60;
            lending::seal_request(&Request::Subscribe(s), &a.key).unwrap()
        };

        // A pending one (manual) opens nothing either.
        let files =
            lending::seal_request(&subscribe(&b, B_IP, &provider.id, "files", 1), &b.key).unwrap();
        let (status, body) = post(&api, B_IP, files).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            lending::open_decision(&body, &provider_pub)
                .unwrap()
                .verdict,
            Verdict::Pending
        );
        assert_eq!(set_elements(&app), opened);

        let mut forged =
            lending::seal_request(&subscribe(&b, B_IP, &provider.id, "web", 2), &b.key).unwrap();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let mut oversized = first.clone();
        oversized.resize(lending::MAX_REQUEST_BYTES + 1, 0);
        let cases: Vec<(&str, Ipv4Addr, Vec<u8>, StatusCode, &str)> = vec![
            (
                "unknown signer",
                B_IP,
                lending::seal_request(
                    &subscribe(&stranger, B_IP, &provider.id, "web", 1),
                    &stranger.key,
                )
                .unwrap(),
                StatusCode::FORBIDDEN,
                "unknown_node",
            ),
            (
                "revoked signer",
                REVOKED_IP,
                lending::seal_request(
                    &subscribe(&gone, REVOKED_IP, &provider.id, "web", 1),
                    &gone.key,
                )
                .unwrap(),
                StatusCode::FORBIDDEN,
                "node_revoked",
            ),
            (
                "no such offer",
                B_IP,
                lending::seal_request(&subscribe(&b, B_IP, &provider.id, "nothing", 3), &b.key)
                    .unwrap(),
                StatusCode::NOT_FOUND,
                "no_such_offer",
            ),
            (
                "withdrawn offer",
                B_IP,
                lending::seal_request(&subscribe(&b, B_IP, &provider.id, "old", 4), &b.key)
                    .unwrap(),
                StatusCode::NOT_FOUND,
                "no_such_offer",
            ),
            (
                "another provider",
                B_IP,
                lending::seal_request(&subscribe(&b, B_IP, &a.id, "web", 5), &b.key).unwrap(),
                StatusCode::FORBIDDEN,
                "wrong_provider",
            ),
            (
                "signed by another key than the consumer's",
                B_IP,
                lending::seal_request(&subscribe(&b, B_IP, &provider.id, "web", 6), &a.key)
                    .unwrap(),
                StatusCode::FORBIDDEN,
                "bad_signature",
            ),
            (
                "forged",
                B_IP,
                forged,
                StatusCode::FORBIDDEN,
                "bad_signature",
            ),
            (
                "replayed (counter 1 again, after counter 2 was taken)",
                A_IP,
                first.clone(),
                StatusCode::CONFLICT,
                "stale_counter",
            ),
            (
                "another request under a counter already taken",
                A_IP,
                renewal_60.clone(),
                StatusCode::CONFLICT,
                "stale_counter",
            ),
            (
                "sent from another mesh address",
                B_IP,
                lending::seal_request(&subscribe(&a, A_IP, &provider.id, "web", 7), &a.key)
                    .unwrap(),
                StatusCode::FORBIDDEN,
                "wrong_address",
            ),
            (
                "naming another mesh address",
                A_IP,
                lending::seal_request(&subscribe(&a, B_IP, &provider.id, "web", 8), &a.key)
                    .unwrap(),
                StatusCode::FORBIDDEN,
                "wrong_address",
            ),
            (
                "oversized",
                A_IP,
                oversized,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
            ),
            (
                "malformed",
                A_IP,
                vec![1, 2, 3],
                StatusCode::BAD_REQUEST,
                "malformed",
            ),
        ];
        for (what, from, body, status, want) in cases {
            let (got, answer) = post(&api, from, body).await;
            assert_eq!((got, code(&answer).as_str()), (status, want), "{what}");
            assert_eq!(set_elements(&app), opened, "{what}: the set changed");
        }

        // A flood from one address: refused once its burst is spent,
        // before anything is decoded; the set stays as it was.
        let mut limited = 0;
        for i in 0..30u64 {
            let body = lending::seal_request(
                &subscribe(&b, B_IP, &provider.id, "nothing", 100 + i),
                &b.key,
            )
            .unwrap();
            let (status, answer) = post(&api, B_IP, body).await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(code(&answer), "rate_limited");
                limited += 1;
            }
        }
        assert!(limited >= 15, "only {limited} of 30 were rate-limited");
        assert_eq!(set_elements(&app), opened);
        let refused = app
            .metrics
            .get(super::REFUSALS_METRIC, &[("reason", "rate_limited")])
            .unwrap_or(0);
        assert_eq!(refused, limited);

        // The book survived in the store: a restarted provider holds a's
        // subscription and b's pending request.
        let saved = app
            .store
            .lending_book(crate::store::lending::KEY_PROVIDER)
            .unwrap()
            .unwrap();
        let (book, reopen) = lending::ProviderBook::restore(
            provider.id.clone(),
            Default::default(),
            &saved,
            gondwana_core::time::Millis(0),
        )
        .unwrap();
        assert_eq!(book.pending(), 1);
        assert_eq!(reopen.grants.len(), 1);
    });
}

//! What `GET /metrics` exports (docs/metrics.md): the counters the daemon
//! keeps, registered here at start with every label set they can take at
//! zero, and the families computed at each scrape (peers from the device,
//! grants from the kernel, directory and nodes from the store, `process_*`).

use gondwana_core::hash::to_hex;
use http::Method;

use crate::api::ApiResponse;
use crate::api::metrics::{Kind, Metrics, Num, write_family};
use crate::build_info as version;
use crate::config::Role;
use crate::daemon::app::App;

pub const HTTP_REQUESTS: &str = "gondwana_http_requests_total";
pub const ENROLMENTS: &str = "gondwana_enrolments_total";
pub const ENROLMENT_FAILURES: &str = "gondwana_enrolment_failures_total";

/// Why a hub refuses an enrolment: the request itself, then every
/// `Refusal::code()` an enrolment can give.
const HUB_REFUSALS: &[&str] = &[
    "rate_limited",
    "bad_request",
    "unknown_nonce",
    "unknown_token",
    "token_expired",
    "token_revoked",
    "token_exhausted",
    "node_revoked",
    "boxname_taken",
    "subnet_exhausted",
    "stale_identity",
    "wireguard_key_taken",
    "bad_wireguard_proof",
    "internal",
];

/// Why a node's enrolment did not complete (daemon/enrol_task.rs).
const NODE_FAILURES: &[&str] = &["attempt_failed", "bad_config"];

/// The label a request is counted under: the route table's path for a
/// route this listener serves, `unmatched` for anything else (so a scan of
/// random paths cannot grow the label set).
pub fn route_label(routes: &[(Method, &[&str])], segments: &[&str]) -> String {
    match routes.iter().find(|(_, path)| path_matches(path, segments)) {
        Some((_, path)) => format!("/{}", path.join("/")),
        None => "unmatched".to_string(),
    }
}

/// A route's path against a request's segments; a `{name}` segment of the
/// route matches any one segment (`/v1/update/bundle/{hash}`).
pub fn path_matches(route: &[&str], segments: &[&str]) -> bool {
    route.len() == segments.len()
        && route
            .iter()
            .zip(segments)
            .all(|(r, s)| r == s || r.starts_with('{'))
}

/// The registry for a daemon of `role`, every counter present at zero.
pub fn registry(role: Role, routes: &[(Method, &[&str])]) -> Metrics {
    let metrics = Metrics::new();
    metrics.gauge(
        "gondwana_build_info",
        "Version, commit and target of this binary",
    );
    metrics.set(
        "gondwana_build_info",
        &[
            ("version", version::VERSION),
            ("commit", version::COMMIT),
            ("target", version::TARGET),
        ],
        1,
    );
    metrics.gauge(
        "gondwana_uptime_seconds",
        "Seconds since the daemon started",
    );
    metrics.set("gondwana_uptime_seconds", &[], 0);
    metrics.counter(ENROLMENTS, "Enrolments granted (hub) or completed (node)");
    metrics.zero(ENROLMENTS, &[&[]]);
    metrics.counter(
        ENROLMENT_FAILURES,
        "Refused (hub) or failed (node) enrolments, by reason",
    );
    let reasons = match role {
        Role::Hub => HUB_REFUSALS,
        Role::Node => NODE_FAILURES,
    };
    for reason in reasons {
        metrics.zero(ENROLMENT_FAILURES, &[&[("reason", reason)]]);
    }
    if role == Role::Hub {
        let name = crate::daemon::candidates_hub::REFUSALS;
        metrics.counter(name, "Candidate reports refused, by reason");
        for reason in crate::daemon::candidates_hub::REFUSAL_REASONS {
            metrics.zero(name, &[&[("reason", reason)]]);
        }
        let name = crate::daemon::offers_hub::REFUSALS;
        metrics.counter(
            name,
            "Hub: service offers and withdrawals refused, by reason",
        );
        for reason in crate::daemon::offers_hub::REFUSAL_REASONS {
            metrics.zero(name, &[&[("reason", reason)]]);
        }
        let name = crate::daemon::offers_hub::PUBLICATIONS;
        metrics.counter(
            name,
            "Hub: service offers and withdrawals appended to the directory, by kind",
        );
        for kind in crate::daemon::offers_hub::PUBLICATION_KINDS {
            metrics.zero(name, &[&[("kind", kind)]]);
        }
    }
    crate::daemon::lending::register(&metrics);
    metrics.counter(
        HTTP_REQUESTS,
        "HTTP requests answered on the TCP listeners, by route and status code",
    );
    for (_, path) in routes {
        let route = route_label(routes, path);
        metrics.zero(HTTP_REQUESTS, &[&[("route", &route), ("code", "200")]]);
    }
    metrics
}

/// Counts one answered request under `route` (see [`route_label`]).
pub fn counted(app: &App, route: &str, response: ApiResponse) -> ApiResponse {
    let code = response.status.as_u16().to_string();
    app.metrics
        .inc(HTTP_REQUESTS, &[("route", route), ("code", &code)]);
    response
}

/// `GET /metrics`.
pub async fn scrape(app: &App) -> ApiResponse {
    app.metrics.set(
        "gondwana_uptime_seconds",
        &[],
        app.started.elapsed().as_secs(),
    );
    let mut extra = String::new();
    store_families(app, &mut extra);
    grant_families(app, &mut extra);
    offer_families(app, &mut extra).await;
    let peers = app.live.read().await.unwrap_or_default();
    crate::daemon::peers::write_metrics(&mut extra, &peers);
    app.relay.counters.write_metrics(&mut extra);
    crate::api::process_metrics::write(&mut extra);
    app.metrics.response_with(&extra)
}

/// Directory size and head; a hub's nodes; spent nonces.
fn store_families(app: &App, out: &mut String) {
    let head = app.store.directory_head().ok();
    write_family(
        out,
        "gondwana_directory_entries",
        Kind::Gauge,
        "Entries in the local copy of the directory",
        &head
            .iter()
            .map(|h| (vec![], Num::Int(h.len)))
            .collect::<Vec<_>>(),
    );
    let tip = head.as_ref().map(|h| to_hex(&h.tip)).unwrap_or_default();
    write_family(
        out,
        "gondwana_directory_head_info",
        Kind::Gauge,
        "The directory's head: its tip hash as a label (1 while it is the head)",
        &head
            .iter()
            .map(|_| (vec![("tip", tip.as_str())], Num::Int(1)))
            .collect::<Vec<_>>(),
    );
    if app.hub.is_some() {
        let (live, all) = app.store.node_counts().unwrap_or_default();
        write_family(
            out,
            "gondwana_nodes",
            Kind::Gauge,
            "Hub: enrolled nodes by state (the hub itself not counted)",
            &[
                (vec![("state", "live")], Num::Int(live)),
                (
                    vec![("state", "revoked")],
                    Num::Int(all.saturating_sub(live)),
                ),
            ],
        );
        write_family(
            out,
            "gondwana_enrol_nonces_spent",
            Kind::Gauge,
            "Hub: spent enrolment nonces still remembered",
            &[(vec![], Num::Int(app.nonces.used_len() as u64))],
        );
    }
}

/// The grants the kernel holds now (no sample when the firewall is off or
/// the kernel does not answer).
fn grant_families(app: &App, out: &mut String) {
    let mut grants = Vec::new();
    let mut spent = Vec::new();
    if let Some(fw) = &app.grants.firewall {
        // One netlink dump of a small set, on this thread: cheaper (in
        // binary size too) than a blocking task per scrape.
        if let Ok(list) = fw.list() {
            grants.push((vec![], Num::Int(list.len() as u64)));
        }
        spent.push((vec![], Num::Int(app.grants.nonces_spent() as u64)));
    }
    write_family(
        out,
        "gondwana_grants",
        Kind::Gauge,
        "Firewall grants the kernel holds now",
        &grants,
    );
    write_family(
        out,
        "gondwana_grant_nonces_spent",
        Kind::Gauge,
        "Spent grant-command nonces still remembered",
        &spent,
    );
}

/// The mesh's offers in this box's directory, and this box's own: by
/// state, and whether something listens on each published one.
async fn offer_families(app: &App, out: &mut String) {
    let identity = app.identity();
    let authority = crate::service::directory::authority(&app.store, &app.config())
        .ok()
        .flatten();
    let view = match authority {
        Some(key) => app.offers.view.get(&app.store, key).await.ok().map(|v| v.0),
        None => None,
    };
    let queued = app.store.offer_outbox().map(|q| q.len() as u64).ok();
    let mut all = Vec::new();
    let mut own = Vec::new();
    let mut listening = Vec::new();
    if let Some(view) = &view {
        all.push((vec![], Num::Int(view.lending.offers.len() as u64)));
        let mine: Vec<_> = view.lending.by_provider(&identity.node_id).collect();
        own.push((vec![("state", "published")], Num::Int(mine.len() as u64)));
        for o in mine {
            let udp = o.offer.protocol == gondwana_core::lending::Protocol::Udp;
            if let Some(l) = crate::net::listening::is_listening(udp, o.offer.port) {
                listening.push((
                    vec![("service", o.offer.name.as_str())],
                    Num::Int(u64::from(l)),
                ));
            }
        }
    }
    if let Some(q) = queued {
        own.push((vec![("state", "queued")], Num::Int(q)));
    }
    let listening: Vec<(Vec<(&str, &str)>, Num)> = listening;
    write_family(
        out,
        "gondwana_directory_offers",
        Kind::Gauge,
        "Service offers of the mesh in the local copy of the directory",
        &all,
    );
    write_family(
        out,
        "gondwana_offers",
        Kind::Gauge,
        "This box's own service offers: published in the directory, or queued for the hub",
        &own,
    );
    write_family(
        out,
        "gondwana_offer_listening",
        Kind::Gauge,
        "This box's published offers: 1 when something listens on the offered port",
        &listening,
    );
}

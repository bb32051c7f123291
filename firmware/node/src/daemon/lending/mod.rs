//! Lending a service, the box's side (docs/services.md): the IO around
//! core's sans-IO books. As a provider it answers consumers' signed
//! requests on its mesh API (`transport.rs`, then `provider.rs`: the book
//! decides, the grant follows in the same store transaction); as a
//! consumer it sends its subscriptions, renewals and unsubscribes straight
//! to the provider over the mesh and keeps what it wants (`consumer.rs`).

pub mod consumer;
pub mod operator;
pub mod provider;
pub mod transport;

use std::sync::Arc;

use http::StatusCode;

use crate::api::metrics::Metrics;
use crate::api::{ApiError, ApiRequest, ApiResponse, CONTENT_TYPE_OCTETS};
use crate::daemon::app::App;

/// Lending requests refused, by reason (the driver's and the book's).
pub const REFUSALS_METRIC: &str = "gondwana_service_refusals_total";
/// Verified requests for one of this box's services, by service and verdict.
pub const REQUESTS_METRIC: &str = "gondwana_service_requests_total";

/// Registers the lending counters, every refusal reason at zero.
pub fn register(metrics: &Metrics) {
    metrics.counter(
        REFUSALS_METRIC,
        "Lending requests refused before the provider's book, by reason",
    );
    for reason in transport::REFUSALS {
        metrics.zero(REFUSALS_METRIC, &[&[("reason", reason)]]);
    }
    metrics.counter(
        REQUESTS_METRIC,
        "Verified lending requests for this box's services, by service and verdict",
    );
}

/// `POST /v1/services/request`: a consumer's signed request → the
/// provider's signed decision.
pub async fn receive(app: &Arc<App>, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let refuse = |reason: &'static str, status: StatusCode, detail: &str| {
        app.metrics.inc(REFUSALS_METRIC, &[("reason", reason)]);
        ApiError::new(status, reason, detail)
    };
    if app.grants.firewall.is_none() {
        return Err(refuse(
            "no_firewall",
            StatusCode::CONFLICT,
            "this box runs without its firewall: it lends nothing",
        ));
    }
    let hub_key = match app.store.enrolment() {
        Ok(Some(e)) => e.hub_key,
        Ok(None) => {
            return Err(refuse(
                "not_enrolled",
                StatusCode::FORBIDDEN,
                "this box is not enrolled: it has no directory to check a request against",
            ));
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    if let Err(e) = transport::check_size(&req.body) {
        app.metrics.inc(REFUSALS_METRIC, &[("reason", "too_large")]);
        return Err(e);
    }
    let (view, _) = app
        .lending
        .views
        .get(&app.store, hub_key)
        .await
        .map_err(ApiError::internal)?;
    let decision = provider::decide(app, req.body.clone(), req.peer.ip(), view).await?;
    Ok(ApiResponse::bytes(
        StatusCode::OK,
        CONTENT_TYPE_OCTETS,
        decision.into(),
    ))
}

#[cfg(test)]
mod tests;

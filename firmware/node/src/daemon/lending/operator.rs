//! The provider's operator: `service requests`, `approve`, `deny`, and the
//! provider's half of status. Each decision goes through the book and is
//! committed with its grant change (provider.rs); the consumer learns it
//! when it next asks (it polls a pending request by sending it again).

use std::sync::Arc;

use gondwana_core::NodeId;
use gondwana_core::directory::View;
use gondwana_core::lending::{Refusal, ServiceName};
use serde_json::Value;

use super::provider::with_book;
use crate::daemon::app::App;
use crate::daemon::lending_state::provider_row as row;
use crate::service::request::Verdict;
use crate::service::{Result, ServiceError};

/// The verified directory, or why there is none.
async fn view(app: &App) -> Result<Arc<View>> {
    let hub_key = match app.store.enrolment()? {
        Some(e) => e.hub_key,
        None => {
            return Err(ServiceError::Conflict(
                "this box is not enrolled: it has no directory".into(),
            ));
        }
    };
    let (view, _) = app
        .lending
        .views
        .get(&app.store, hub_key)
        .await
        .map_err(|e| ServiceError::Fault(anyhow::anyhow!(e)))?;
    Ok(view)
}

fn refusal(r: Refusal) -> ServiceError {
    match r {
        Refusal::NoSuchSubscription | Refusal::NoSuchOffer | Refusal::UnknownConsumer(_) => {
            ServiceError::NotFound(r.to_string())
        }
        Refusal::NotPending => ServiceError::Conflict(r.to_string()),
        other => ServiceError::Invalid(other.to_string()),
    }
}

/// `service requests`: the requests waiting for this box's operator.
pub async fn requests(app: &Arc<App>) -> Result<Value> {
    let view = view(app).await?;
    let app2 = app.clone();
    let all = crate::daemon::drive::blocking(move || {
        super::provider::ensure_loaded(&app2)?;
        let book = &app2.lending.provider;
        let now = book.now();
        Ok::<_, super::provider::Fault>(book.with_loaded(|b| {
            b.subscriptions(now)
                .iter()
                .map(|i| row(i, &view))
                .collect::<Vec<_>>()
        }))
    })
    .await
    .map_err(|e| ServiceError::Fault(e.into()))?
    .map_err(|e| ServiceError::Fault(anyhow::anyhow!(e)))?;
    Ok(Value::Array(
        all.into_iter()
            .filter(|r| r["state"] == "pending")
            .collect(),
    ))
}

/// `service approve` (`deny: false`) or `service deny`.
pub async fn decide(app: &Arc<App>, v: Verdict, deny: bool) -> Result<Value> {
    let view = view(app).await?;
    let name = ServiceName::parse(&v.name).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    let consumer = find_consumer(&view, &v.consumer).ok_or_else(|| {
        ServiceError::NotFound(format!("no active node {} in the directory", v.consumer))
    })?;
    let reason = v
        .reason
        .clone()
        .unwrap_or_else(|| "denied by the provider's operator".into());
    let app2 = app.clone();
    let view2 = view.clone();
    let (consumer2, name2) = (consumer.clone(), name.clone());
    let outcome = crate::daemon::drive::blocking(move || {
        with_book(&app2, |book, now| {
            let out = if deny {
                book.deny(&consumer2, &name2, &reason, &view2, now)?
            } else {
                book.approve(&consumer2, &name2, &view2, now)?
            };
            Ok((out, ()))
        })
    })
    .await
    .map_err(|e| ServiceError::Fault(e.into()))?
    .map_err(|e| ServiceError::Fault(anyhow::anyhow!(e)))?;
    outcome.map_err(refusal)?;
    let now = app.lending.provider.now();
    let found = app.lending.provider.with_loaded(|book| {
        book.subscriptions(now)
            .into_iter()
            .find(|s| s.consumer == consumer && s.name == name)
            .map(|info| row(&info, &view))
    });
    found.ok_or_else(|| ServiceError::NotFound("the subscription is gone".into()))
}

/// A node named by boxname, node id or mesh address in `view`.
pub fn find_consumer(view: &View, who: &str) -> Option<NodeId> {
    view.nodes
        .iter()
        .find(|(id, n)| {
            id.as_str() == who || n.boxname.as_str() == who || n.mesh_ip.to_string() == who
        })
        .map(|(id, _)| id.clone())
}

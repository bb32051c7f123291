//! The hub's side of offers (docs/services.md, docs/api.md): a provider's
//! signed offer or withdrawal (`POST /v1/services/publish`) is checked
//! against the provider's node record in the hub's directory — enrolled,
//! not revoked, signed by that node's directory key, the serial above the
//! last one published for the name — and appended verbatim as a `Lending`
//! record. A refusal appends nothing and is counted by reason; the same
//! bytes again are answered `changed: false` and append nothing.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use gondwana_core::audit::Field;
use gondwana_core::directory::View;
use gondwana_core::envelope::{Envelope, EnvelopeError, tag};
use gondwana_core::lending::{self, LendingError, Publication};
use gondwana_core::node_id::NodeId;
use http::StatusCode;
use serde_json::{Value, json};

use crate::api::{ApiError, ApiRequest, ApiResponse};
use crate::clock::now_unix;
use crate::daemon::app::App;
use crate::daemon::drive::{blocking, joined};
use crate::service::offers::approval_text;
use crate::store::registry;

pub const REFUSALS: &str = "gondwana_offer_refusals_total";
/// Every reason a publication is refused (docs/metrics.md, docs/api.md).
pub const REFUSAL_REASONS: &[&str] = &[
    "malformed",
    "unknown_node",
    "node_revoked",
    "bad_signature",
    "not_provider",
    "stale_serial",
    "not_offered",
    "rate_limited",
];
pub const PUBLICATIONS: &str = "gondwana_offer_publications_total";
pub const PUBLICATION_KINDS: &[&str] = &["offer", "withdrawal"];

fn refuse(app: &App, status: StatusCode, reason: &'static str, detail: String) -> ApiError {
    app.metrics.inc(REFUSALS, &[("reason", reason)]);
    ApiError::new(status, reason, detail)
}

/// `POST /v1/services/publish`.
pub async fn receive(app: &Arc<App>, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let answer = publish(app, &req.body, Some(req.peer.ip())).await?;
    Ok(ApiResponse::json(StatusCode::OK, &answer))
}

/// Checks and appends one publication: the route's work, and the hub's
/// own `service offer` (`peer` `None`: from this box itself).
pub async fn publish(
    app: &Arc<App>,
    bytes: &[u8],
    peer: Option<IpAddr>,
) -> Result<Value, ApiError> {
    let Some(hub) = app.hub.as_ref() else {
        return Err(ApiError::not_found("this node is not a hub"));
    };
    let authority = hub.signing.public_key();
    let view = hub_view(app, authority).await?;
    // The signature first: nothing of a forgery is looked at further, and
    // a forger cannot spend a real node's rate.
    let (publication, _) = lending::open_publication(bytes, |id| view.signing_key(id))
        .map_err(|e| authentication_refusal(app, &view, bytes, e))?;
    let provider = publication.provider().clone();
    let Some(node) = view.nodes.get(&provider) else {
        return Err(ApiError::internal("provider vanished from the view"));
    };
    // Over the mesh the source address is the sender's own: a node sends
    // only its own offers. (Through `enroll.hub_api_url` — a LAN, loopback
    // — it cannot be checked; the provider's signature is what counts.)
    if let Some(IpAddr::V4(source)) = peer
        && app.config().mesh.subnet.contains(&source)
        && source != node.mesh_ip
    {
        return Err(refuse(
            app,
            StatusCode::FORBIDDEN,
            "not_provider",
            format!(
                "sent from mesh address {source}, not from the provider's {}",
                node.mesh_ip
            ),
        ));
    }
    if !app
        .offers
        .rate
        .check(IpAddr::V4(node.mesh_ip), Instant::now())
    {
        return Err(refuse(
            app,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many publications from {}", node.boxname),
        ));
    }
    let boxname = node.boxname.to_string();
    let _one_at_a_time = app.offers.publishing.lock().await;
    // Again after the lock: a publication just appended moved the head.
    let view = hub_view(app, authority).await?;
    let name = publication.name().clone();
    let mut answer = json!({
        "provider": provider.as_str(),
        "name": name.as_str(),
        "kind": kind(&publication),
        "serial": publication.serial(),
    });
    match view.lending.check(bytes, |id| view.signing_key(id)) {
        Ok(_) => {}
        Err(LendingError::StaleSerial { held, found }) if found == held => {
            // The very bytes the directory holds: a retry, not a change.
            // (A withdrawal's bytes follow from its fields: the signature
            // is deterministic.)
            let current = view.lending.offer(&provider, &name);
            let same = match &publication {
                Publication::Offer(_) => current.is_some_and(|o| o.signed == bytes),
                Publication::Withdrawal(_) => current.is_none(),
            };
            if same {
                answer["changed"] = false.into();
                return Ok(answer);
            }
            return Err(stale(app, held, found));
        }
        Err(LendingError::StaleSerial { held, found }) => return Err(stale(app, held, found)),
        Err(LendingError::NotOffered) => {
            return Err(refuse(
                app,
                StatusCode::NOT_FOUND,
                "not_offered",
                format!("{boxname} has no current offer {name} to withdraw"),
            ));
        }
        Err(e) => {
            return Err(refuse(
                app,
                StatusCode::BAD_REQUEST,
                "malformed",
                e.to_string(),
            ));
        }
    }
    let (audit_kind, fields) = audit_fields(&publication, &boxname);
    let (store, signed) = (app.store.clone(), bytes.to_vec());
    let app2 = app.clone();
    let head = joined(
        blocking(move || {
            let hub = app2.hub.as_ref().ok_or(anyhow::anyhow!("not a hub"))?;
            let head = registry::append_publication(
                &store,
                &hub.signing,
                &signed,
                audit_kind,
                &fields,
                now_unix(),
            )?;
            anyhow::Ok(head)
        })
        .await,
    )
    .map_err(|e| {
        error!("appending a publication of {provider}: {e}");
        ApiError::internal("the hub could not append the publication; see its log")
    })?;
    app.metrics
        .inc(PUBLICATIONS, &[("kind", kind(&publication))]);
    app.changed();
    info!(
        "directory: {} {name} of {boxname} (serial {}), entry {}",
        kind(&publication),
        publication.serial(),
        head.len - 1
    );
    answer["changed"] = true.into();
    answer["directory_seq"] = (head.len - 1).into();
    Ok(answer)
}

async fn hub_view(app: &App, authority: [u8; 32]) -> Result<Arc<View>, ApiError> {
    let (view, _) = app
        .offers
        .view
        .get(&app.store, authority)
        .await
        .map_err(ApiError::internal)?;
    Ok(view)
}

fn kind(p: &Publication) -> &'static str {
    match p {
        Publication::Offer(_) => "offer",
        Publication::Withdrawal(_) => "withdrawal",
    }
}

fn stale(app: &App, held: u64, found: u64) -> ApiError {
    refuse(
        app,
        StatusCode::CONFLICT,
        "stale_serial",
        format!("serial {found} is not above {held}, the last one published for this name"),
    )
}

/// Why a publication does not verify against its provider's record.
fn authentication_refusal(app: &App, view: &View, bytes: &[u8], e: LendingError) -> ApiError {
    match e {
        LendingError::UnknownSigner(id) => {
            let revoked = NodeId::parse(&id).is_ok_and(|id| view.revoked.contains_key(&id));
            if revoked {
                refuse(
                    app,
                    StatusCode::FORBIDDEN,
                    "node_revoked",
                    format!("provider {id} is revoked"),
                )
            } else {
                refuse(
                    app,
                    StatusCode::FORBIDDEN,
                    "unknown_node",
                    format!("provider {id} is not an enrolled node of this mesh"),
                )
            }
        }
        LendingError::WrongSigner(id) => {
            // Signed by another node of the mesh: that node publishing for
            // someone else; by no node's key: a forgery.
            let signer = Envelope::verify(tag::LENDING_PUBLICATION, bytes)
                .ok()
                .map(|env| env.signer);
            let other = view
                .nodes
                .iter()
                .find(|(_, n)| Some(n.signing_key) == signer);
            match other {
                Some((_, n)) => refuse(
                    app,
                    StatusCode::FORBIDDEN,
                    "not_provider",
                    format!("signed by {}, but names provider {id}", n.boxname),
                ),
                None => refuse(
                    app,
                    StatusCode::FORBIDDEN,
                    "bad_signature",
                    format!("not signed by {id}'s directory signing key"),
                ),
            }
        }
        LendingError::Envelope(EnvelopeError::BadSignature) => refuse(
            app,
            StatusCode::FORBIDDEN,
            "bad_signature",
            "the signature does not verify".into(),
        ),
        e => refuse(
            app,
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("not a valid signed offer or withdrawal: {e}"),
        ),
    }
}

fn audit_fields(p: &Publication, boxname: &str) -> (&'static str, Vec<Field>) {
    let mut fields = vec![
        Field::text("provider", p.provider().as_str()),
        Field::text("boxname", boxname),
        Field::text("name", p.name().as_str()),
        Field::uint("serial", p.serial()),
    ];
    match p {
        Publication::Offer(o) => {
            fields.push(Field::text("proto", o.protocol.as_str()));
            fields.push(Field::uint("port", u64::from(o.port)));
            fields.push(Field::text("approve", &approval_text(&o.approval)));
            ("directory.offer", fields)
        }
        Publication::Withdrawal(_) => ("directory.withdraw", fields),
    }
}

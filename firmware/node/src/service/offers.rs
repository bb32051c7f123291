//! Offers of this box and of the mesh (docs/services.md): signing an offer
//! or a withdrawal with the node key, queueing it for the hub, and listing
//! the offers of the local verified directory. Publishing to the hub needs
//! the daemon (`daemon/offers_task.rs`); without one the record is signed
//! and queued, and the daemon publishes it when it runs.

use gondwana_core::audit::Field;
use gondwana_core::directory::View;
use gondwana_core::lending::{
    self, Approval, MAX_ALLOW, Offer, Principal, Protocol, Publication, PublishedOffer,
    ServiceName, Withdrawal,
};
use gondwana_core::{Boxname, NodeId};
use serde_json::{Value, json};

use super::error::{Result, ServiceError, invalid};
use super::request::{OfferSpec, ServiceAt};
use crate::clock::now_unix;
use crate::config::Config;
use crate::store::{StateStore, append_audit, offers as stored};

/// A signed publication, ready to send to the hub.
pub struct Signed {
    pub name: String,
    pub bytes: Vec<u8>,
    pub publication: Publication,
}

/// Who this box is in its directory: node id (a node: from its
/// enrolment; a hub: its own) and the directory's view.
fn this_box(store: &StateStore, config: &Config) -> Result<(NodeId, View)> {
    let identity = store.require_identity()?;
    let authority = super::directory::authority(store, config)?.ok_or_else(|| {
        ServiceError::Conflict(
            "not enrolled: this box has no directory to publish offers in".into(),
        )
    })?;
    let (view, _) = store.directory_view(&authority)?;
    Ok((identity.state.node_id, view))
}

/// The service name as the records take it (a DNS label).
pub fn service_name(text: &str) -> Result<ServiceName> {
    ServiceName::parse(text).map_err(|e| ServiceError::Invalid(format!("{text:?}: {e}")))
}

/// `auto`, `manual`, or `allow:` and a comma-separated list of boxnames,
/// `tag:NAME` for a token tag.
pub fn parse_approval(text: &str) -> Result<Approval> {
    match text {
        "auto" => return Ok(Approval::Auto),
        "manual" => return Ok(Approval::Manual),
        _ => {}
    }
    let Some(list) = text.strip_prefix("allow:") else {
        return invalid(format!(
            "--approve {text:?}: expected auto, manual or allow:BOXNAME,tag:TAG,..."
        ));
    };
    let mut out = heapless::Vec::new();
    for item in list.split(',').filter(|s| !s.is_empty()) {
        let principal = match item.strip_prefix("tag:") {
            Some(tag) => Principal::Tag(
                heapless::String::try_from(tag)
                    .map_err(|_| ServiceError::Invalid(format!("tag {tag:?} is too long")))?,
            ),
            None => Principal::Boxname(
                Boxname::parse(item)
                    .map_err(|e| ServiceError::Invalid(format!("allow: {item:?}: {e}")))?,
            ),
        };
        out.push(principal).map_err(|_| {
            ServiceError::Invalid(format!("allow: at most {MAX_ALLOW} boxnames and tags"))
        })?;
    }
    if out.is_empty() {
        return invalid("allow: names no boxname or tag");
    }
    Ok(Approval::Allow(out))
}

/// The approval mode as `--approve` takes it.
pub fn approval_text(a: &Approval) -> String {
    match a {
        Approval::Auto => "auto".into(),
        Approval::Manual => "manual".into(),
        Approval::Allow(list) => {
            let names: Vec<String> = list
                .iter()
                .map(|p| match p {
                    Principal::Boxname(b) => b.as_str().to_string(),
                    Principal::Tag(t) => format!("tag:{t}"),
                })
                .collect();
            format!("allow:{}", names.join(","))
        }
    }
}

/// The serial of this box's next publication of `name`: above both what
/// its directory copy holds and what it signed itself (its copy may lag).
fn next_serial(store: &StateStore, view: &View, me: &NodeId, name: &ServiceName) -> Result<u64> {
    let own = store.offer_serial(name.as_str())?;
    Ok(view
        .lending
        .next_serial(me, name)
        .max(own.saturating_add(1)))
}

/// `service offer`: the signed offer (nothing stored yet).
pub fn sign_offer(store: &StateStore, config: &Config, spec: &OfferSpec) -> Result<Signed> {
    let name = service_name(&spec.name)?;
    let port = match u16::try_from(spec.port) {
        Ok(p) if p > 0 => p,
        _ => return invalid(format!("--port {}: must be 1-65535", spec.port)),
    };
    let protocol = match spec.proto.as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => return invalid(format!("--proto {other:?}: tcp or udp")),
    };
    let description = match &spec.description {
        None => None,
        Some(d) => Some(heapless::String::try_from(d.as_str()).map_err(|_| {
            ServiceError::Invalid(format!(
                "--description: at most {} bytes",
                lending::MAX_DESCRIPTION_LEN
            ))
        })?),
    };
    let (me, view) = this_box(store, config)?;
    let offer = Offer {
        version: lending::VERSION,
        provider: me.clone(),
        serial: next_serial(store, &view, &me, &name)?,
        name,
        protocol,
        port,
        approval: parse_approval(&spec.approve)?,
        description,
        max_duration_secs: spec.max_duration_secs,
    };
    seal(store, Publication::Offer(offer))
}

/// `service withdraw`: the signed withdrawal of a current or queued offer.
pub fn sign_withdrawal(store: &StateStore, config: &Config, name: &str) -> Result<Signed> {
    let name = service_name(name)?;
    let (me, view) = this_box(store, config)?;
    let queued = store
        .offer_outbox()?
        .iter()
        .any(|(n, _)| n == name.as_str());
    if view.lending.offer(&me, &name).is_none() && !queued {
        return Err(ServiceError::NotFound(format!(
            "this box offers no service {name} (see gondwana service list)"
        )));
    }
    let withdrawal = Withdrawal {
        version: lending::VERSION,
        provider: me.clone(),
        serial: next_serial(store, &view, &me, &name)?,
        name,
    };
    seal(store, Publication::Withdrawal(withdrawal))
}

fn seal(store: &StateStore, publication: Publication) -> Result<Signed> {
    let identity = store.require_identity()?;
    let bytes = lending::seal_publication(&publication, &identity.signing)
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    Ok(Signed {
        name: publication.name().to_string(),
        bytes,
        publication,
    })
}

/// What became of a publication: taken by the hub, or queued.
pub enum Outcome {
    /// The hub appended it (`changed`), or already held these bytes.
    Published { changed: bool },
    /// Not published: the reason (the hub unreachable, no daemon, …).
    Queued(String),
}

/// Records the publication on this box: its serial, the audit record
/// (`service.offer` / `service.withdraw`) and, when not published, the
/// queue entry the daemon keeps sending — one transaction.
pub fn record(store: &StateStore, signed: &Signed, outcome: &Outcome) -> Result<Value> {
    let txn = store.write()?;
    stored::set_serial_in(&txn, &signed.name, signed.publication.serial())?;
    let state = match outcome {
        Outcome::Published { .. } => {
            // A queued older record of the name must not follow it.
            stored::unqueue_in(&txn, &signed.name)?;
            "published"
        }
        Outcome::Queued(_) => {
            stored::queue_in(&txn, &signed.name, &signed.bytes)?;
            "queued"
        }
    };
    let serial = Field::uint("serial", signed.publication.serial());
    let state_field = Field::text("state", state);
    match &signed.publication {
        Publication::Offer(o) => append_audit(
            &txn,
            "service.offer",
            &[
                Field::text("name", &signed.name),
                Field::text("proto", o.protocol.as_str()),
                Field::uint("port", u64::from(o.port)),
                Field::text("approve", &approval_text(&o.approval)),
                serial,
                state_field,
            ],
            now_unix(),
        )?,
        Publication::Withdrawal(_) => append_audit(
            &txn,
            "service.withdraw",
            &[Field::text("name", &signed.name), serial, state_field],
            now_unix(),
        )?,
    }
    store.commit(txn)?;
    Ok(outcome_json(signed, outcome))
}

/// `service offer|withdraw`'s answer.
pub fn outcome_json(signed: &Signed, outcome: &Outcome) -> Value {
    let kind = match signed.publication {
        Publication::Offer(_) => "offer",
        Publication::Withdrawal(_) => "withdrawal",
    };
    let mut v = json!({
        "name": signed.name,
        "kind": kind,
        "serial": signed.publication.serial(),
    });
    match outcome {
        Outcome::Published { changed } => {
            v["published"] = true.into();
            v["queued"] = false.into();
            v["changed"] = (*changed).into();
        }
        Outcome::Queued(why) => {
            v["published"] = false.into();
            v["queued"] = true.into();
            v["note"] = why.clone().into();
        }
    }
    if let Publication::Offer(o) = &signed.publication
        && crate::net::listening::is_listening(o.protocol == Protocol::Udp, o.port) == Some(false)
    {
        v["listening"] = false.into();
        v["listening_note"] = format!(
            "nothing listens on {}/{} on this box yet: the offer stands, but a subscriber \
             cannot connect until something does",
            o.protocol.as_str(),
            o.port
        )
        .into();
    }
    v
}

/// Without a daemon: sign, and queue for the daemon to publish.
pub fn offer_offline(store: &StateStore, config: &Config, spec: &OfferSpec) -> Result<Value> {
    let signed = sign_offer(store, config, spec)?;
    record(store, &signed, &Outcome::Queued(NO_DAEMON.into()))
}

pub fn withdraw_offline(store: &StateStore, config: &Config, name: &str) -> Result<Value> {
    let signed = sign_withdrawal(store, config, name)?;
    record(store, &signed, &Outcome::Queued(NO_DAEMON.into()))
}

const NO_DAEMON: &str = "no daemon runs on this box: the record is signed and queued, and is \
                         published when the daemon (gondwana run) reaches the hub";

/// `service list`: every offer of the local verified directory, then this
/// box's queued ones.
pub fn list(store: &StateStore, config: &Config) -> Result<Value> {
    let (me, view) = this_box(store, config)?;
    let mut out: Vec<Value> = view
        .lending
        .offers
        .values()
        .map(|o| offer_json(&view, o, &me, "published"))
        .collect();
    out.extend(queued_json(&view, &me, store.offer_outbox()?));
    Ok(Value::Array(out))
}

/// This box's own offers, published and queued: the status document's
/// `offers` (each with `listening`).
pub fn own(view: &View, me: &NodeId, queued: Vec<(String, Vec<u8>)>) -> Value {
    let mut out: Vec<Value> = view
        .lending
        .by_provider(me)
        .map(|o| offer_json(view, o, me, "published"))
        .collect();
    out.extend(queued_json(view, me, queued));
    Value::Array(out)
}

/// `own` for a box without a daemon: the directory read from the store.
pub fn own_from_store(store: &StateStore, config: &Config) -> Result<Value> {
    let (me, view) = this_box(store, config)?;
    Ok(own(&view, &me, store.offer_outbox()?))
}

/// This box's queued offers (withdrawals are not listed), checked like
/// anyone's: against its own record.
fn queued_json(view: &View, me: &NodeId, queued: Vec<(String, Vec<u8>)>) -> Vec<Value> {
    queued
        .into_iter()
        .filter_map(|(_, bytes)| {
            match lending::open_publication(&bytes, |id| view.signing_key(id)) {
                Ok((Publication::Offer(offer), signer)) => {
                    let queued = PublishedOffer {
                        offer,
                        signed: bytes,
                        signer,
                    };
                    Some(offer_json(view, &queued, me, "queued"))
                }
                _ => None,
            }
        })
        .collect()
}

/// `service show NAME@BOXNAME`.
pub fn show(store: &StateStore, config: &Config, at: &ServiceAt) -> Result<Value> {
    let Some((name, boxname)) = at.service.split_once('@') else {
        return invalid(format!("{:?}: expected NAME@BOXNAME", at.service));
    };
    service_name(name)?;
    let all = list(store, config)?;
    let found = all
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["name"] == name && o["provider"] == boxname && o["state"] == "published");
    let queued = all
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["name"] == name && o["provider"] == boxname && o["state"] == "queued");
    match found.or(queued) {
        Some(o) => Ok(o.clone()),
        None => Err(ServiceError::NotFound(format!(
            "no offer {name}@{boxname} in this box's directory"
        ))),
    }
}

fn offer_json(view: &View, published: &PublishedOffer, me: &NodeId, state: &str) -> Value {
    let o = &published.offer;
    let node = view.nodes.get(&o.provider);
    let this_box = o.provider == *me;
    // Only this box's own sockets can be looked at.
    let listening = this_box
        .then(|| crate::net::listening::is_listening(o.protocol == Protocol::Udp, o.port))
        .flatten();
    json!({
        "name": o.name.as_str(),
        "provider": node.map(|n| n.boxname.as_str()),
        "provider_node_id": o.provider.as_str(),
        "mesh_ip": node.map(|n| n.mesh_ip.to_string()),
        "port": o.port,
        "proto": o.protocol.as_str(),
        "approve": approval_text(&o.approval),
        "description": o.description.as_ref().map(|d| d.as_str()),
        "max_duration_secs": o.max_duration_secs,
        "serial": o.serial,
        "state": state,
        "this_box": this_box,
        "listening": listening,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_round_trips_and_refuses_garbage() {
        for text in ["auto", "manual", "allow:kitchen,garage,tag:lab"] {
            assert_eq!(approval_text(&parse_approval(text).unwrap()), text);
        }
        for bad in [
            "",
            "yes",
            "allow:",
            "allow:Not_A_Label",
            "allow:a,b,c,d,e,f,g,h,i",
        ] {
            assert!(parse_approval(bad).is_err(), "{bad:?}");
        }
    }
}

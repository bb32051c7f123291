//! The JSON documents the admin socket answers with and `--json` prints
//! (docs/api.md). One function per kind of thing, so a node, an identity or
//! a directory reads the same whichever command or route shows it.

use std::time::{Duration, UNIX_EPOCH};

use gondwana_core::audit::{Body, Field, FieldValue, decode_record};
use gondwana_core::directory::{Head, View};
use gondwana_core::hash::to_hex;
use gondwana_core::identity_log::IdentityState;
use gondwana_core::keys::wg_key_to_base64;
use serde_json::{Value, json};

use crate::net::firewall::LiveGrant;
use crate::store::enrolment::Enrolment;
use crate::store::grants::Origin;
use crate::store::registry::{NodeEntry, TokenRecord};

pub fn identity(state: &IdentityState) -> Value {
    json!({
        "node_id": state.node_id.as_str(),
        "boxname": state.boxname.as_str(),
        "signing_public_key": to_hex(&state.signing_key),
        "genesis_signing_public_key": to_hex(&state.genesis_signing_key),
        "wireguard_public_key": wg_key_to_base64(&state.wireguard_key),
        "retired": state.retired,
        "log_entries": state.len,
        "log_tip": to_hex(&state.tip),
    })
}

pub fn directory(view: &View, head: &Head) -> Value {
    let nodes: Vec<Value> = view
        .nodes
        .iter()
        .map(|(id, n)| {
            json!({
                "node_id": id.as_str(), "boxname": n.boxname.as_str(), "mesh_ip": n.mesh_ip.to_string(),
                "signing_public_key": to_hex(&n.signing_key),
                "wireguard_public_key": wg_key_to_base64(&n.wireguard_key),
                "endpoint_hint": n.endpoint_hint,
            })
        })
        .collect();
    let revoked: Vec<Value> = view
        .revoked
        .iter()
        .map(|(id, reason)| json!({"node_id": id.as_str(), "reason": reason}))
        .collect();
    json!({"entries": head.len, "tip": to_hex(&head.tip), "nodes": nodes, "revoked": revoked})
}

pub fn enrolment(e: &Enrolment) -> Value {
    json!({
        "state": "enrolled",
        "mesh_ip": e.grant.mesh_ip.to_string(),
        "subnet": e.grant.subnet.to_string(),
        "boxname": e.grant.boxname.as_str(),
        "hub": e.hub_url,
        "hub_node_id": e.grant.hub_node_id.as_str(),
        "hub_endpoint": e.grant.hub_endpoint.as_str(),
        "since_unix": e.since_unix,
    })
}

/// One audit record; an undecodable one with its error (`audit verify` is
/// the judge of the chain). `fields` holds a typed record's fields by name
/// (text as strings, numbers as numbers, times as RFC 3339); `detail` is
/// the one-line text of either version (docs/audit.md).
pub fn audit_record(key: u64, raw: &[u8]) -> Value {
    match decode_record(raw, key) {
        Ok(r) => {
            let mut v = json!({"seq": r.seq, "version": r.version, "unix_time": r.unix_time,
                   "time": rfc3339(r.unix_time), "kind": r.kind.as_str()});
            match &r.body {
                Body::Text(text) => v["detail"] = json!(text.as_str()),
                Body::Fields(fields) => {
                    let map: serde_json::Map<String, Value> = fields
                        .iter()
                        .map(|f| (f.name.to_string(), field_json(&f.value)))
                        .collect();
                    v["fields"] = Value::Object(map);
                    v["detail"] = json!(fields_text(fields));
                }
            }
            v
        }
        Err(e) => json!({"seq": key, "error": e.to_string()}),
    }
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

fn field_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::Text(t) => json!(t.as_str()),
        FieldValue::Uint(n) => json!(n),
        FieldValue::Time(t) => json!(rfc3339(*t)),
    }
}

/// `name=value …`; a text with a space, `=` or `"` (or none) is quoted.
fn fields_text(fields: &[Field]) -> String {
    let one = |f: &Field| {
        let value = match &f.value {
            FieldValue::Text(t) if t.is_empty() || t.contains([' ', '=', '"', '\t', '\n']) => {
                Value::String(t.to_string()).to_string()
            }
            FieldValue::Text(t) => t.to_string(),
            FieldValue::Uint(n) => n.to_string(),
            FieldValue::Time(t) => rfc3339(*t),
        };
        format!("{}={value}", f.name)
    };
    fields.iter().map(one).collect::<Vec<_>>().join(" ")
}

pub fn token(t: &TokenRecord) -> Value {
    json!({
        "id": t.id, "uses": t.uses, "max_uses": t.max_uses, "created_unix": t.created_unix,
        "expires_unix": t.expires_unix, "boxname": t.boxname, "tags": t.tags,
        "revoked": t.revoked, "replace": t.replace,
    })
}

pub fn node(n: &NodeEntry, mirror_len: Option<u64>) -> Value {
    json!({
        "node_id": n.node_id, "boxname": n.boxname, "mesh_ip": n.mesh_ip.to_string(),
        "signing_public_key": to_hex(&n.signing_key),
        "wireguard_public_key": wg_key_to_base64(&n.wireguard_key),
        "token_id": n.token_id, "tags": n.tags, "enrolled_unix": n.enrolled_unix,
        "revoked": n.revoked, "identity_log_entries": mirror_len,
        // The log the hub last applied to this record (enrolment, mirror
        // push or re-enrolment): equal to the mirror's length and tip.
        "identity_log_len": n.identity_len, "identity_log_tip": to_hex(&n.identity_tip),
    })
}

/// A grant, with where it came from (`operator`, `hub`, or
/// `{"subscription": {"service", "consumer"}}`; `null`: not in the store).
pub fn grant(g: &LiveGrant, origin: Option<&Origin>) -> Value {
    let origin = match origin {
        None => Value::Null,
        Some(Origin::Subscription { service, consumer }) => {
            json!({"subscription": {"service": service, "consumer": consumer}})
        }
        Some(o) => o.to_text().into(),
    };
    json!({"ip": g.ip.to_string(), "proto": g.proto.as_str(), "port": g.port,
           "timeout_secs": g.timeout_secs, "expires_in_secs": g.expires_in_secs,
           "origin": origin})
}

//! The status report, shared by the daemon (`GET /v1/status`) and the CLI
//! when no daemon runs (then it reads the store directly).

use gondwana_core::hash::to_hex;
use gondwana_core::identity_log::IdentityState;
use serde_json::{Value, json};

use crate::config::{Config, Role};
use crate::store::StateStore;

pub fn base_json(store: &StateStore, identity: &IdentityState, config: &Config) -> Value {
    let mut v = json!({
        "role": match config.role { Role::Hub => "hub", Role::Node => "node" },
        "node_id": identity.node_id.as_str(),
        "boxname": identity.boxname.as_str(),
        "signing_public_key": to_hex(&identity.signing_key),
        "state_dir": store.path().parent().map(|p| p.display().to_string()),
        "persistent": store.path().parent().and_then(crate::persistence::state_is_persistent),
    });
    let head = store.directory_head().ok().unwrap_or_default();
    v["directory"] = json!({"entries": head.len, "tip": to_hex(&head.tip)});
    match config.role {
        Role::Hub => {
            let (live, all) = store.node_counts().unwrap_or_default();
            v["hub"] = json!({
                "subnet": config.mesh.subnet.to_string(),
                "public_endpoint": config.hub.public_endpoint,
                "nodes": live,
                "revoked_nodes": all - live,
            });
        }
        Role::Node => {
            v["enrolment"] = match store.enrolment() {
                Ok(Some(e)) => enrolment_json(store, &e),
                Ok(None) => json!({"state": "unenrolled"}),
                Err(e) => json!({"state": "error", "detail": e.to_string()}),
            };
            v["identity"] = mirror_json(identity, None);
        }
    }
    v
}

/// A stored enrolment, `revoked` (with the revocation) once the node has
/// stored one.
pub fn enrolment_json(store: &StateStore, e: &crate::store::enrolment::Enrolment) -> Value {
    let mut v = super::views::enrolment(e);
    match store.revocation() {
        Ok(Some(r)) => {
            v["state"] = json!("revoked");
            v["revocation"] = json!({
                "revoked_unix": r.at_unix,
                "reason": r.reason,
                "directory_seq": r.seq,
            });
        }
        Ok(None) => {}
        Err(e) => return json!({"state": "error", "detail": e.to_string()}),
    }
    v
}

/// Local identity-log tip against what the hub's mirror holds.
pub fn mirror_json(identity: &IdentityState, hub_len: Option<u64>) -> Value {
    let behind = hub_len.map(|h| identity.len.saturating_sub(h));
    let warning = match behind {
        Some(0) => None,
        Some(n) => Some(format!(
            "the hub's mirror of this identity is {n} entries behind (it syncs when the hub is reachable)"
        )),
        None => None,
    };
    json!({
        "local_entries": identity.len,
        "local_tip": to_hex(&identity.tip),
        "hub_entries": hub_len,
        "mirror_behind": behind,
        "warning": warning,
    })
}

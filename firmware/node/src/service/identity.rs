//! The identity's use cases: show, rotate, export, verify.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gondwana_core::audit::{Field, kind};
use gondwana_core::hash::to_hex;
use gondwana_core::identity_log::{IdentityEvent, IdentityState, build, export_bundle};
use gondwana_core::keys::{SigningSecret, WireguardSecret};
use serde_json::{Value, json};

use super::error::{Result, ServiceError, conflict};
use super::views;
use crate::clock::now_unix;
use crate::config::{Config, Role};
use crate::random;
use crate::store::registry::{self, HubContext};
use crate::store::{self, StateStore, StoreError};

/// One rotation in one transaction: log entry, secret and audit record; on
/// a hub a new WireGuard key is published in the directory right after.
pub fn rotate(
    store: &StateStore,
    config: &Config,
    hub: Option<&HubContext>,
    signing: bool,
) -> Result<IdentityState> {
    if signing && config.role == Role::Hub {
        return conflict(
            "rotating a hub's signing key is not supported yet: every enroll.toml pins it and it signs the directory",
        );
    }
    let next = rotate_in_store(store, signing)?;
    if let Some(hub) = hub
        && !signing
    {
        registry::publish_hub_key(store, hub, store.require_identity()?.wireguard, now_unix())?;
    }
    Ok(next)
}

fn rotate_in_store(store: &StateStore, signing: bool) -> Result<IdentityState> {
    let txn = store.write()?;
    let identity = store::identity_in(&txn)?;
    if identity.state.retired {
        return conflict("this identity is retired; nothing can be rotated");
    }
    let state = &identity.state;
    let seed = || random::seed().map_err(ServiceError::Fault);
    let building = |e| ServiceError::Fault(anyhow::anyhow!("building the rotation entry: {e}"));
    let (next, audit_kind) = if signing {
        let new = SigningSecret::from_seed(*seed()?);
        let event = IdentityEvent::RotateSigning {
            new_signing_key: new.public_key(),
        };
        let (raw, next) =
            build::next(state, &identity.signing, event, Some(&new)).map_err(building)?;
        store::record_identity_entry(&txn, state.len, &raw, Some(&new), None)?;
        (next, kind::IDENTITY_ROTATE_SIGNING)
    } else {
        let new = WireguardSecret::from_bytes(*seed()?);
        let event = IdentityEvent::RotateWireguard {
            new_wireguard_key: new.public_key(),
        };
        let (raw, next) = build::next(state, &identity.signing, event, None).map_err(building)?;
        store::record_identity_entry(&txn, state.len, &raw, None, Some(&new))?;
        (next, kind::IDENTITY_ROTATE_WIREGUARD)
    };
    let fields = [
        Field::uint("entry", state.len),
        Field::text("tip", &to_hex(&next.tip)),
    ];
    store::append_audit(&txn, audit_kind, &fields, now_unix())?;
    store.commit(txn)?;
    Ok(next)
}

/// The identity log as a bundle (docs/identity.md), base64 in JSON.
pub fn export(store: &StateStore) -> Result<Value> {
    let identity = store.require_identity()?;
    let bundle = export_bundle(&identity.log)
        .map_err(|e| ServiceError::Fault(anyhow::anyhow!("encoding the identity log: {e}")))?;
    Ok(json!({
        "node_id": identity.state.node_id.as_str(),
        "entries": identity.state.len,
        "bundle_base64": STANDARD.encode(bundle),
    }))
}

/// Loading the identity verifies the log and that the secrets match it.
pub fn verify(store: &StateStore) -> Result<Value> {
    let identity = store.require_identity().map_err(|e| match e {
        StoreError::Corrupt { detail, .. } => ServiceError::VerifyFailed(detail),
        other => other.into(),
    })?;
    let mut v = views::identity(&identity.state);
    v["verified"] = json!(true);
    Ok(v)
}

//! The directory's use cases: show, verify, export, import — and the one
//! answer to "which key signs this box's directory".

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gondwana_core::directory::{self, Head};
use gondwana_core::hash::to_hex;
use gondwana_core::keys::PublicKey;
use serde_json::{Value, json};

use super::error::{Result, ServiceError};
use super::views;
use crate::config::{Config, Role};
use crate::store::StateStore;

/// The key this box's directory is signed with: a hub's own signing key, a
/// node's pinned hub key (`None`: a node not enrolled has no directory).
pub fn authority(store: &StateStore, config: &Config) -> Result<Option<PublicKey>> {
    if config.role == Role::Hub {
        return Ok(Some(store.require_identity()?.state.signing_key));
    }
    Ok(store.enrolment()?.map(|e| e.hub_key))
}

fn require_authority(store: &StateStore, config: &Config) -> Result<PublicKey> {
    authority(store, config)?.ok_or_else(|| {
        ServiceError::Conflict("not enrolled: no directory (and no hub key to verify one)".into())
    })
}

pub fn show(store: &StateStore, config: &Config) -> Result<Value> {
    let key = require_authority(store, config)?;
    let (view, head) = store.directory_view(&key)?;
    Ok(views::directory(&view, &head))
}

pub fn verify(store: &StateStore, config: &Config) -> Result<Value> {
    let key = require_authority(store, config)?;
    let (view, head) = store
        .directory_view(&key)
        .map_err(|e| ServiceError::VerifyFailed(e.to_string()))?;
    Ok(json!({
        "verified": true, "entries": head.len, "nodes": view.nodes.len(),
        "revoked": view.revoked.len(), "tip": to_hex(&head.tip),
    }))
}

pub fn export(store: &StateStore, config: &Config) -> Result<Value> {
    let key = require_authority(store, config)?;
    let (entries, head) = store.directory_page(0, usize::MAX)?;
    let bundle = directory::encode_bundle(&key, 0, head, &entries);
    Ok(json!({"entries": head.len, "bundle_base64": STANDARD.encode(bundle)}))
}

/// Verifies a whole bundle (from entry 0) against the authority and the
/// local entries, then appends what is new.
pub fn import(store: &StateStore, config: &Config, bundle: &[u8]) -> Result<Value> {
    let key = require_authority(store, config)?;
    let head = store.directory_head()?;
    let all = directory::verify_bundle(bundle, &key, &Head::default())
        .map_err(|e| ServiceError::VerifyFailed(e.to_string()))?;
    let known = usize::try_from(head.len).unwrap_or(usize::MAX);
    if all.len() >= known && known > 0 && all[known - 1].2 != head {
        return Err(ServiceError::VerifyFailed(format!(
            "the bundle diverges from the local directory at entry {}",
            known - 1
        )));
    }
    let new: Vec<_> = all.into_iter().skip(known).collect();
    let added = new.len();
    store.append_directory(&new, head)?;
    Ok(json!({"imported": added}))
}

pub fn decode_bundle(text: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(text)
        .map_err(|e| ServiceError::Invalid(format!("bundle_base64: {e}")))
}

//! `update install|status|publish` (docs/updates.md). Install needs no
//! state store: the daemon and the CLI run it the same way, before opening
//! it. Status adds what the directory says about releases when there is a
//! store; publish (on the hub) appends a release record to the directory.

use std::path::Path;

use gondwana_core::directory::Record;
use serde_json::{Value, json};

use super::{Request, Result, ServiceError};
use crate::clock::now_unix;
use crate::config::{Config, Role};
use crate::store::{StateStore, append_audit};
use crate::update::{self, UpdateError, mesh};
use gondwana_core::audit::Field;

/// `None`: not a request run without the store.
pub fn on_system(config: &Config, request: &Request) -> Option<Result<Value>> {
    let result = match request {
        Request::UpdateInstall(r) => update::install(&config.update, &r.bundle),
        _ => return None,
    };
    Some(result.map_err(service_error))
}

fn service_error(e: UpdateError) -> ServiceError {
    match e {
        UpdateError::Refused(d) => ServiceError::Conflict(d),
        UpdateError::Rejected(d) => ServiceError::VerifyFailed(d),
        UpdateError::Io(e) => ServiceError::Fault(e),
    }
}

/// The state directory: the store file's.
fn state_dir(store: &StateStore) -> &Path {
    store.path().parent().unwrap_or(Path::new("."))
}

/// `update status`: the slots, and the releases of the directory when
/// `store` is there (`mesh.error` says why not).
pub fn status(config: &Config, store: Option<&StateStore>) -> Value {
    let mesh = match store.map(|s| mesh_status(config, s)) {
        Some(Ok(v)) => v,
        Some(Err(e)) => json!({"error": e.to_string()}),
        None => json!({"error": "no state store"}),
    };
    update::status(&config.update, mesh)
}

fn mesh_status(config: &Config, store: &StateStore) -> Result<Value> {
    let identity = store.require_identity()?;
    let Some(authority) = super::directory::authority(store, config)? else {
        return Err(ServiceError::Conflict("not enrolled: no directory".into()));
    };
    let (view, _) = store.directory_view(&authority)?;
    Ok(mesh::status_json(
        &config.update,
        state_dir(store),
        &view.releases,
        identity.state.node_id.as_str(),
        now_unix(),
    ))
}

/// `update publish` on the hub: the record verified against the hub's
/// release keys, the bundle against the record and stored where the hub
/// serves it, then the record appended to the directory (once: publishing
/// the same record again appends nothing).
pub fn publish(store: &StateStore, config: &Config, bundle: &Path, record: &Path) -> Result<Value> {
    if config.role != Role::Hub {
        return Err(ServiceError::Conflict(
            "update publish runs on the hub (it appends to the directory): copy the bundle and its record there".into(),
        ));
    }
    let identity = store.require_identity()?;
    let verified = mesh::store_published(&config.update, state_dir(store), bundle, record)
        .map_err(service_error)?;
    let (view, _) = store.directory_view(&identity.state.signing_key)?;
    let fresh = !view.releases.contains(&verified.signed);
    let mut entries = store.directory_head()?.len;
    if fresh {
        let txn = store.write()?;
        let head = crate::store::directory::append_record(
            &txn,
            &identity.signing,
            Record::Release {
                signed: verified.signed.clone(),
            },
        )?;
        let body = &verified.body;
        append_audit(
            &txn,
            "update.publish",
            &[
                Field::text("board", &body.board),
                Field::text("version", &body.version.to_string()),
                Field::text("label", &body.label),
                Field::text(
                    "bundle_blake2b",
                    &gondwana_core::hash::to_hex(&body.bundle_blake2b),
                ),
            ],
            now_unix(),
        )?;
        store.commit(txn)?;
        entries = head.len;
        info!(
            "update: published version {} ({}) for {}",
            body.version, body.label, body.board
        );
    }
    Ok(json!({
        "published": fresh,
        "release": mesh::release_json(&verified.body),
        "bundle": update::held::bundle_path(state_dir(store), &verified.body.bundle_blake2b).display().to_string(),
        "directory_entries": entries,
    }))
}

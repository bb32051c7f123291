//! `update install|status|publish|trust|cancel` (docs/updates.md). Install
//! and cancel run without a state store too (the daemon and the CLI run
//! them the same way); with one, install trusts and keeps the release-key
//! rotations; trust needs one (it stores a rotation there). Status adds what the directory says about releases when there is a
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

/// `None`: not a request run without the store (`store`: when there is one).
pub fn on_system(
    config: &Config,
    store: Option<&StateStore>,
    request: &Request,
) -> Option<Result<Value>> {
    let result = match request {
        Request::UpdateInstall(r) => update::install(&config.update, store, &r.bundle),
        Request::UpdateCancel => update::cancel(&config.update, now_unix()),
        Request::UpdateTrust(r) => match store {
            Some(store) => update::trust(&config.update, store, &r.record, now_unix()),
            None => Err(UpdateError::Refused(
                "update trust needs the state store (run `gondwana firstboot` first)".into(),
            )),
        },
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
        &store.release_rotations()?,
        &view.releases,
        identity.state.node_id.as_str(),
        now_unix(),
    ))
}

/// `update publish` on the hub: the record verified against the hub's
/// release keys, the bundle against the record and stored where the hub
/// serves it, then the record appended to the directory (once: publishing
/// the same record again appends nothing). On a node the daemon runs
/// [`store_for_publish`] and sends the record to the hub.
pub fn publish(store: &StateStore, config: &Config, bundle: &Path, record: &Path) -> Result<Value> {
    if config.role != Role::Hub {
        return Err(ServiceError::Conflict(
            "on a node, update publish needs the daemon running (it serves the bundle and sends the record to the hub)".into(),
        ));
    }
    let verified = store_for_publish(store, config, bundle, record)?;
    let (fresh, entries) = append_release(store, &verified)?;
    Ok(published_json(store, &verified, fresh, Some(entries)))
}

/// The files' part of a publish: checked and kept where this box serves
/// the bundle from.
pub fn store_for_publish(
    store: &StateStore,
    config: &Config,
    bundle: &Path,
    record: &Path,
) -> Result<mesh::Verified> {
    let stored = store.release_rotations()?;
    mesh::store_published(&config.update, state_dir(store), &stored, bundle, record)
        .map_err(service_error)
}

pub fn published_json(
    store: &StateStore,
    verified: &mesh::Verified,
    fresh: bool,
    entries: Option<u64>,
) -> Value {
    json!({
        "published": fresh,
        "release": mesh::release_json(&verified.body),
        "bundle": update::held::bundle_path(state_dir(store), &verified.body.bundle_blake2b).display().to_string(),
        "directory_entries": entries,
    })
}

/// Hub: appends a verified release record to the directory, with an
/// `update.publish` audit record, unless the directory holds it already.
/// Returns whether it was appended and the directory's length.
pub fn append_release(store: &StateStore, verified: &mesh::Verified) -> Result<(bool, u64)> {
    let identity = store.require_identity()?;
    let (view, head) = store.directory_view(&identity.state.signing_key)?;
    if view.releases.contains(&verified.signed) {
        return Ok((false, head.len));
    }
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
    info!(
        "update: published version {} ({}) for {}",
        body.version, body.label, body.board
    );
    Ok((true, head.len))
}

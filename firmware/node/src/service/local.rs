//! Running a [`Request`] in the CLI's own process, when no daemon answers
//! on the admin socket: the store is opened for the one call (read-only
//! when the request only looks).

use std::path::Path;

use serde_json::{Value, json};

use super::error::{Result, ServiceError, conflict};
use super::socket as client;
use super::{Request, grants, identity, on_store, status, views};
use crate::config::Config;
use crate::store::{OpenMode, StateStore};

/// Through the running daemon when there is one, else in this process.
pub fn call(state_dir: &Path, config: &Config, request: &Request) -> Result<Value> {
    if let Some(v) = client::send(config, state_dir, request)? {
        return Ok(v);
    }
    run(state_dir, config, request)
}

pub fn open(state_dir: &Path, request: &Request) -> Result<StateStore> {
    let mode = if request.writes() {
        OpenMode::ExistingOnly
    } else {
        OpenMode::ReadOnly
    };
    Ok(StateStore::open(state_dir, mode)?)
}

/// No daemon: this process does it.
pub fn run(state_dir: &Path, config: &Config, request: &Request) -> Result<Value> {
    if let Request::UpdateTrust(_) = request {
        // Stores the record: the store must open (its own error if not).
        let store = StateStore::open(state_dir, OpenMode::ExistingOnly)?;
        if let Some(result) = super::update::on_system(config, Some(&store), request) {
            return result;
        }
    }
    if let Request::UpdateCancel = request
        && let Some(result) = super::update::on_system(config, None, request)
    {
        // No store: the boot environment and the trial record only.
        return result;
    }
    if let Request::UpdateInstall(_) = request {
        // The stored rotation records, when this box has a state store.
        let store = StateStore::open(state_dir, OpenMode::ExistingOnly).ok();
        if let Some(result) = super::update::on_system(config, store.as_ref(), request) {
            return result;
        }
    }
    if let Request::UpdateStatus = request {
        // The slots' part stands without a store (a box not enrolled yet).
        let store = open(state_dir, request).ok();
        return Ok(super::update::status(config, store.as_ref()));
    }
    let store = open(state_dir, request)?;
    if let Some(result) = on_store(&store, config, request) {
        return result;
    }
    match request {
        Request::Status => {
            let identity = store.require_identity()?;
            let mut v = status::base_json(&store, &identity.state, config);
            v["daemon"] = json!({"running": false});
            v["offers"] = super::offers::own_from_store(&store, config).unwrap_or(Value::Null);
            Ok(v)
        }
        Request::Identity => Ok(views::identity(&store.require_identity()?.state)),
        Request::IdentityRotate(r) => {
            let hub = super::hub_context(&store, config)?;
            let next = identity::rotate(&store, config, hub.as_ref(), r.signing)?;
            Ok(views::identity(&next))
        }
        Request::GrantAdd(r) | Request::GrantDel(r) if r.node.is_some() => {
            conflict("--node needs the hub's daemon running (it signs and sends the command)")
        }
        Request::GrantAdd(r) => {
            grants::add(&grants::local_firewall(config, &store)?, &store, r, "cli")
        }
        Request::GrantDel(r) => {
            grants::del(&grants::local_firewall(config, &store)?, &store, r, "cli")
        }
        Request::GrantList => grants::list(&grants::local_firewall(config, &store)?, &store),
        // Signed and queued: the daemon publishes it when it runs.
        Request::ServiceOffer(spec) => super::offers::offer_offline(&store, config, spec),
        Request::ServiceWithdraw(w) => super::offers::withdraw_offline(&store, config, &w.name),
        // `gondwana enroll` enrols by itself without a daemon
        // (commands/enroll.rs); the rest is in `on_store`.
        other => Err(ServiceError::Fault(anyhow::anyhow!(
            "{} {} has no in-process form",
            other.route().0,
            other.route().1
        ))),
    }
}

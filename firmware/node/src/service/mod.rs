//! The use cases of a box — identity, tokens, nodes, directory, audit,
//! grants, status, updates, service offers — with typed requests ([`Request`]) and one error type
//! ([`ServiceError`]). The daemon runs them for its root-only admin socket
//! (`daemon/admin.rs`); the CLI sends them there when a daemon runs, else
//! runs them in-process ([`local`]). Dependencies point down: CLI and daemon
//! → service → store, net, core.

pub mod audit;
pub mod directory;
pub mod error;
pub mod grants;
pub mod hub_admin;
pub mod identity;
pub mod local;
pub mod offers;
pub mod request;
pub mod socket;
pub mod status;
pub mod update;
pub mod views;

use std::sync::RwLock;

use anyhow::Context;
use serde_json::Value;

pub use error::{Result, ServiceError};
pub use request::Request;

use crate::config::{Config, Role};
use crate::store::StateStore;
use crate::store::registry::HubContext;

/// The requests that need nothing but the store and the config, run the
/// same way by the daemon and by the CLI without one. `None`: the caller
/// runs this request itself (it needs the daemon's memory, the firewall,
/// the network or effects after the store write).
pub fn on_store(store: &StateStore, config: &Config, request: &Request) -> Option<Result<Value>> {
    Some(match request {
        Request::IdentityExport => identity::export(store),
        Request::IdentityVerify => identity::verify(store),
        Request::Audit => audit::rows(store),
        Request::AuditVerify => audit::verify(store),
        Request::TokenCreate(spec) => hub_admin::token_create(store, config, spec.clone()),
        Request::TokenList => hub_admin::token_list(store, config),
        Request::TokenRevoke(t) => hub_admin::token_revoke(store, config, &t.id),
        Request::NodeList => hub_admin::node_list(store, config),
        Request::NodeShow(n) => hub_admin::node_show(store, config, &n.who),
        Request::NodeRevoke(r) => hub_admin::node_revoke(store, config, r),
        Request::Directory => directory::show(store, config),
        Request::DirectoryVerify => directory::verify(store, config),
        Request::DirectoryExport => directory::export(store, config),
        Request::DirectoryImport(b) => directory::decode_bundle(&b.bundle_base64)
            .and_then(|bytes| directory::import(store, config, &bytes)),
        Request::ServiceList => offers::list(store, config),
        Request::ServiceShow(at) => offers::show(store, config, at),
        Request::UpdateStatus => Ok(update::status(config, Some(store))),
        Request::UpdatePublish(r) => update::publish(store, config, &r.bundle, &r.record),
        _ => return None,
    })
}

/// Who this box is to the mesh when it is a hub: its keys, subnet and
/// endpoint (`None` on a node). Built once by the daemon, and by the CLI
/// for a use case that needs it without a daemon.
pub fn hub_context(store: &StateStore, config: &Config) -> anyhow::Result<Option<HubContext>> {
    if config.role != Role::Hub {
        return Ok(None);
    }
    let identity = store.require_identity()?;
    let endpoint = config
        .hub
        .public_endpoint
        .clone()
        .context("role = \"hub\" needs hub.public_endpoint")?;
    Ok(Some(HubContext {
        wireguard: RwLock::new(identity.wireguard),
        identity: identity.state.clone(),
        signing: identity.signing,
        subnet: config.mesh.subnet,
        endpoint,
        wireguard_port: config.mesh.wireguard_port,
        api_port: config.mesh.api_port,
    }))
}

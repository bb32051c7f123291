//! Grants on this box's own firewall: add, delete, list. The daemon runs
//! them on its firewall; without a daemon the CLI runs them on one it
//! starts for the call (the table the daemon applied at its last start).

use gondwana_core::mesh::Ipv4Net;
use serde_json::{Value, json};

use super::error::{Result, ServiceError, conflict};
use super::request::GrantRequest;
use super::views;
use crate::clock::now_unix;
use crate::config::Config;
use crate::net::firewall::plan::Ruleset;
use crate::net::firewall::{Firewall, FirewallError};
use crate::store::StateStore;

/// The mesh subnet the firewall guards: the hub-assigned one once enrolled,
/// else the configured one (a hub, or a node not enrolled yet).
pub fn mesh_subnet(config: &Config, store: &StateStore) -> Ipv4Net {
    match store.enrolment() {
        Ok(Some(e)) => e.grant.subnet,
        _ => config.mesh.subnet,
    }
}

/// A firewall handle for a CLI call without a daemon.
pub fn local_firewall(config: &Config, store: &StateStore) -> Result<Firewall> {
    if !config.firewall.enabled {
        return conflict("the firewall is disabled ([firewall] enabled = false)");
    }
    let ruleset = Ruleset::new(
        &config.firewall.table,
        &config.mesh.interface,
        mesh_subnet(config, store),
        config.mesh.api_port,
    )
    .map_err(|e| fault(e.into()))?;
    Ok(Firewall::new(ruleset))
}

/// A grant outside the subnet or on a bad port is the caller's to fix; the
/// kernel refusing is this box's fault.
fn fault(e: FirewallError) -> ServiceError {
    match e {
        FirewallError::Plan(_) | FirewallError::Grant(_) => ServiceError::Invalid(e.to_string()),
        FirewallError::NoSuchGrant(..) => ServiceError::NotFound(e.to_string()),
        FirewallError::Store(s) => ServiceError::Store(s),
        FirewallError::Kernel(_) => ServiceError::Fault(e.into()),
    }
}

pub fn add(fw: &Firewall, store: &StateStore, req: &GrantRequest, origin: &str) -> Result<Value> {
    let g = fw
        .grant(
            store,
            req.ip,
            req.port,
            req.timeout_secs,
            now_unix(),
            origin,
        )
        .map_err(fault)?;
    Ok(views::grant(&g))
}

pub fn del(fw: &Firewall, store: &StateStore, req: &GrantRequest, origin: &str) -> Result<Value> {
    fw.revoke(store, req.ip, req.port, origin).map_err(fault)?;
    Ok(json!({"revoked": {"ip": req.ip.to_string(), "port": req.port}}))
}

pub fn list(fw: &Firewall) -> Result<Value> {
    Ok(Value::Array(
        fw.list().map_err(fault)?.iter().map(views::grant).collect(),
    ))
}

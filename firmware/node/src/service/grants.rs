//! Grants on this box's own firewall: add, delete, list. The daemon runs
//! them on its firewall; without a daemon the CLI runs them on one it
//! starts for the call (the table the daemon applied at its last start).

use std::net::Ipv4Addr;

use gondwana_core::grant;
use gondwana_core::lending::provider::State;
use gondwana_core::lending::{Protocol, ProviderBook};
use gondwana_core::mesh::Ipv4Net;
use serde_json::{Value, json};

use super::error::{Result, ServiceError, conflict};
use super::request::GrantRequest;
use super::views;
use crate::clock::now_unix;
use crate::config::{BackendChoice, Config};
use crate::net::firewall::plan::{self, Ruleset};
use crate::net::firewall::{Firewall, FirewallError, LiveGrant, element};
use crate::store::grants::{self as stored, Origin, StoredGrant};
use crate::store::{StateStore, StoreError};

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
    let ruleset = ruleset(config, mesh_subnet(config, store)).map_err(|e| fault(e.into()))?;
    Ok(Firewall::new(ruleset))
}

/// Our table as the config describes it, guarding `subnet`.
fn ruleset(config: &Config, subnet: Ipv4Net) -> std::result::Result<Ruleset, plan::PlanError> {
    Ruleset::new(
        &config.firewall.table,
        &config.mesh.interface,
        subnet,
        config.mesh.api_port,
    )
    .map(|r| r.with_open_ports(&config.firewall.mesh_open_ports))
}

/// A grant outside the subnet, on a bad port, or missing is the caller's
/// to fix; the kernel or the store refusing is this box's fault.
fn refusal(e: GrantChangeError) -> ServiceError {
    match e {
        GrantChangeError::NoSuchGrant(..) => ServiceError::NotFound(e.to_string()),
        GrantChangeError::Store(s) => ServiceError::Store(s),
        GrantChangeError::Firewall(f) => fault(f),
    }
}

fn fault(e: FirewallError) -> ServiceError {
    if e.is_input_error() {
        ServiceError::Invalid(e.to_string())
    } else {
        ServiceError::Fault(e.into())
    }
}

pub fn add(fw: &Firewall, store: &StateStore, req: &GrantRequest, by: &str) -> Result<Value> {
    let now = now_unix();
    let origin = if by == "hub" {
        Origin::Hub
    } else {
        Origin::Operator
    };
    let change = GrantChange {
        ip: req.ip,
        port: req.port,
        timeout_secs: req.timeout_secs,
        origin: &origin,
        by,
    };
    let g = add_grant(fw, store, &change, now).map_err(refusal)?;
    Ok(views::grant(&g, Some(&origin)))
}

pub fn del(fw: &Firewall, store: &StateStore, req: &GrantRequest, by: &str) -> Result<Value> {
    remove_grant(fw, store, req.ip, req.port, now_unix(), by).map_err(refusal)?;
    Ok(json!({"revoked": {"ip": req.ip.to_string(), "port": req.port}}))
}

/// The grants the kernel holds, each with its stored origin (`null` for
/// one the store does not know: added to the set by hand). A UDP grant
/// is a subscription's: the provider's book holds it, not `grants`.
pub fn list(fw: &Firewall, store: &StateStore) -> Result<Value> {
    let origins = stored::origins(store)?;
    let stored_keys: Vec<_> = stored::stored_grants(store)?
        .into_iter()
        .map(|s| s.grant)
        .collect();
    let udp = udp_origins(store)?;
    Ok(Value::Array(
        fw.list()
            .map_err(fault)?
            .iter()
            .map(|g| {
                let key = grant::Grant {
                    ip: g.ip,
                    port: g.port,
                };
                let origin = match g.proto {
                    Protocol::Udp => udp.iter().find(|(k, _)| *k == key).map(|(_, o)| o),
                    // A stored grant from before schema 5 has no origin
                    // row: an operator's.
                    Protocol::Tcp => origins
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, o)| o)
                        .or(stored_keys.contains(&key).then_some(&Origin::Operator)),
                };
                views::grant(g, origin)
            })
            .collect(),
    ))
}

/// The UDP grants the provider's stored book holds open, with their
/// subscriptions as origins.
fn udp_origins(store: &StateStore) -> Result<Vec<(grant::Grant, Origin)>> {
    let (Some(bytes), Some(identity)) = (
        store.lending_book(crate::store::lending::KEY_PROVIDER)?,
        store.identity()?,
    ) else {
        return Ok(Vec::new());
    };
    let me = identity.state.node_id;
    let now = gondwana_core::time::Millis(0);
    let Ok((book, _)) = ProviderBook::restore(me, Default::default(), &bytes, now) else {
        return Ok(Vec::new());
    };
    Ok(book
        .subscriptions(now)
        .into_iter()
        .filter_map(|s| match s.state {
            State::Active { grant: g, .. } if g.protocol == Protocol::Udp => Some((
                grant::Grant {
                    ip: g.ip,
                    port: g.port,
                },
                Origin::Subscription {
                    service: s.name.to_string(),
                    consumer: s.consumer.to_string(),
                },
            )),
            _ => None,
        })
        .collect())
}

// ---- the store and the kernel in step --------------------------------
//
// The firewall adapter (net/firewall) only executes; which grants its
// table holds comes from here, where the store is written too (the
// daemon and the CLI without a daemon both call these).

/// A grant change that failed: in the kernel, in the store, or because
/// there was nothing to change.
#[derive(Debug, thiserror::Error)]
pub enum GrantChangeError {
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no grant for {0}:{1}")]
    NoSuchGrant(Ipv4Addr, u16),
}

/// The daemon's start: replaces our table with the base ruleset and every
/// live stored grant (with the time it has left), dropping expired ones
/// from the store. `Ok(None)` when the config disables the firewall.
pub fn start_firewall(
    config: &Config,
    mesh_subnet: Ipv4Net,
    store: &StateStore,
    now_unix: u64,
) -> std::result::Result<Option<Firewall>, GrantChangeError> {
    // Control plane only: no interface, so nothing to filter.
    if !config.firewall.enabled || config.wireguard.backend == BackendChoice::None {
        return Ok(None);
    }
    let fw = Firewall::new(ruleset(config, mesh_subnet).map_err(FirewallError::from)?);
    let live = stored::prune_expired(store, now_unix)?;
    fw.apply(&stored_elements(&live, &fw.plan().subnet, now_unix))?;
    Ok(Some(fw))
}

/// A node enrolled into another subnet than the one its table was built
/// for (it starts with `mesh.subnet` before its enrolment): rebuild the
/// table for the granted one, with the stored grants that lie inside it.
/// Nothing happens when the subnet is already right.
pub fn follow_subnet(
    fw: &Firewall,
    subnet: Ipv4Net,
    store: &StateStore,
    now_unix: u64,
) -> std::result::Result<bool, GrantChangeError> {
    let current = fw.plan();
    if current.subnet == subnet.trunc() {
        return Ok(false);
    }
    let next = Ruleset::new(&current.table, &current.interface, subnet, current.api_port)
        .map_err(FirewallError::from)?
        .with_open_ports(&current.open_ports);
    let live = stored::prune_expired(store, now_unix)?;
    let elements = stored_elements(&live, &next.subnet, now_unix);
    fw.replace(next, &elements)?;
    Ok(true)
}

/// One grant to add: what, for how long, where it comes from (listed) and
/// who asked (audited).
pub struct GrantChange<'a> {
    pub ip: Ipv4Addr,
    pub port: u32,
    pub timeout_secs: Option<u64>,
    pub origin: &'a Origin,
    pub by: &'a str,
}

/// `grant add`: the kernel and the store (with its audit record) both
/// change, or neither does.
pub fn add_grant(
    fw: &Firewall,
    store: &StateStore,
    change: &GrantChange<'_>,
    now_unix: u64,
) -> std::result::Result<LiveGrant, GrantChangeError> {
    let txn = store.write()?;
    let (g, live) = add_grant_in(fw, &txn, change, now_unix)?;
    if let Err(e) = store.commit(txn) {
        let _ = fw.kernel_delete(Protocol::Tcp, &g);
        return Err(e.into());
    }
    Ok(live)
}

/// The grant in `txn` (record, origin, audit) and in the kernel. The
/// caller commits `txn` with whatever else the change touches (a
/// subscription's book), and deletes the kernel element if that commit
/// fails.
pub fn add_grant_in(
    fw: &Firewall,
    txn: &crate::store::WriteTxn<'_>,
    change: &GrantChange<'_>,
    now_unix: u64,
) -> std::result::Result<(grant::Grant, LiveGrant), GrantChangeError> {
    let timeout_secs = change.timeout_secs;
    let g = fw.check(change.ip, change.port)?;
    if let Some(t) = timeout_secs {
        grant::check_timeout(t).map_err(FirewallError::from)?;
    }
    let record = StoredGrant {
        grant: g,
        expires_unix: timeout_secs.map(|t| now_unix.saturating_add(t)),
    };
    stored::put_grant(txn, &record, change.origin, change.by, now_unix)?;
    fw.kernel_add(Protocol::Tcp, &g, timeout_secs)?;
    let live = LiveGrant {
        ip: g.ip,
        proto: Protocol::Tcp,
        port: g.port,
        timeout_secs,
        expires_in_secs: timeout_secs,
    };
    Ok((g, live))
}

/// `grant del`: removes it from the kernel and the store (audited).
pub fn remove_grant(
    fw: &Firewall,
    store: &StateStore,
    ip: Ipv4Addr,
    port: u32,
    now_unix: u64,
    by: &str,
) -> std::result::Result<(), GrantChangeError> {
    let txn = store.write()?;
    if !remove_grant_in(fw, &txn, ip, port, now_unix, by)? {
        return Err(GrantChangeError::NoSuchGrant(ip, port as u16));
    }
    store.commit(txn)?;
    Ok(())
}

/// The grant out of `txn` (audited) and out of the kernel; false if
/// neither held it. The kernel changes at once: a grant being taken away
/// is closed even if the caller's commit then fails.
pub fn remove_grant_in(
    fw: &Firewall,
    txn: &crate::store::WriteTxn<'_>,
    ip: Ipv4Addr,
    port: u32,
    now_unix: u64,
    by: &str,
) -> std::result::Result<bool, GrantChangeError> {
    let g = fw.check(ip, port)?;
    let in_store = stored::remove_grant(txn, &g, by, now_unix)?;
    let in_kernel = fw.kernel_delete(Protocol::Tcp, &g)?;
    Ok(in_store || in_kernel)
}

/// The set elements for the stored grants inside `subnet`.
fn stored_elements(
    live: &[StoredGrant],
    subnet: &Ipv4Net,
    now_unix: u64,
) -> Vec<([u8; 8], Option<u64>)> {
    live.iter()
        .filter(|s| subnet.contains(&s.grant.ip))
        .map(|s| element(&s.grant, remaining(s, now_unix)))
        .collect()
}

/// Milliseconds a stored grant has left: at least 1 s (one about to expire
/// is not re-applied without a timeout), at most the longest timeout (a
/// clock that is far behind must not make it nearly permanent).
fn remaining(s: &StoredGrant, now_unix: u64) -> Option<u64> {
    s.expires_unix
        .map(|t| plan::timeout_ms(t.saturating_sub(now_unix).clamp(1, grant::MAX_TIMEOUT_SECS)))
}

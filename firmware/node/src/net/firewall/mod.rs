//! The mesh firewall: one nf_tables table of our own (`inet gondwana` by
//! default), replaced atomically at start, plus grants — (mesh address,
//! TCP port) pairs in a set with kernel-side timeouts. See docs/firewall.md.
//!
//! `plan.rs` is the ruleset as data, `nfmsg.rs` the messages rustables
//! cannot write, `netlink.rs` the socket. [`Firewall`] is what the daemon
//! owns; the grant operations here also keep the store (and its audit
//! log) in step with the kernel.

pub mod netlink;
pub mod nfmsg;
pub mod plan;

use std::net::Ipv4Addr;
use std::sync::Mutex;

use gondwana_core::grant::{self, Grant, GrantError};
use gondwana_core::mesh::Ipv4Net;
use serde::Serialize;

use crate::config::Config;
use crate::store::grants::{self, StoredGrant};
use crate::store::{StateStore, StoreError};
use netlink::NetlinkError;
use nfmsg::{ElemOp, element_messages, grant_key};
use plan::{GRANT_SET, Ruleset};

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error(
        "nf_tables: {0} (is the nf_tables module loaded and do we have CAP_NET_ADMIN? \
         set [firewall] enabled = false to run without a firewall)"
    )]
    Kernel(NetlinkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no grant for {0}:{1}")]
    NoSuchGrant(Ipv4Addr, u16),
}

// By hand, not `#[from]`: the message already names the cause, and a
// `source` would make anyhow print it twice.
impl From<NetlinkError> for FirewallError {
    fn from(e: NetlinkError) -> Self {
        FirewallError::Kernel(e)
    }
}

impl FirewallError {
    /// Whether the caller's input was at fault (4xx) rather than the box.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            FirewallError::Grant(_) | FirewallError::NoSuchGrant(..) | FirewallError::Plan(_)
        )
    }
}

/// A grant as the kernel holds it right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveGrant {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The timeout it was given, in seconds (`None`: until revoked).
    pub timeout_secs: Option<u64>,
    /// Seconds left before the kernel drops it.
    pub expires_in_secs: Option<u64>,
}

/// The daemon's handle on its table. Element changes are serialised by a
/// mutex so a refresh (delete + add) never races another change.
pub struct Firewall {
    /// Replaced when a node's enrolment brings another subnet than the one
    /// the daemon started with ([`Firewall::follow_subnet`]).
    plan: std::sync::RwLock<Ruleset>,
    lock: Mutex<()>,
}

impl Firewall {
    /// The entry point the daemon calls at start: replaces our table with
    /// the base ruleset and every live stored grant (with the time it has
    /// left), dropping expired ones from the store. `Ok(None)` when the
    /// config disables the firewall.
    pub fn start(
        config: &Config,
        mesh_subnet: Ipv4Net,
        store: &StateStore,
        now_unix: u64,
    ) -> Result<Option<Firewall>, FirewallError> {
        // Control plane only: no interface, so nothing to filter.
        if !config.firewall.enabled
            || config.wireguard.backend == crate::net::wireguard::BackendChoice::None
        {
            return Ok(None);
        }
        let fw = Firewall::new(Ruleset::new(
            &config.firewall.table,
            &config.mesh.interface,
            mesh_subnet,
            config.mesh.api_port,
        )?);
        let live = grants::prune_expired(store, now_unix)?;
        let elements: Vec<_> = live
            .iter()
            .filter(|s| fw.plan().subnet.contains(&s.grant.ip))
            .map(|s| element(&s.grant, remaining(s, now_unix)))
            .collect();
        fw.apply(&elements)?;
        Ok(Some(fw))
    }

    pub fn new(plan: Ruleset) -> Firewall {
        Firewall {
            plan: std::sync::RwLock::new(plan),
            lock: Mutex::new(()),
        }
    }

    pub fn plan(&self) -> Ruleset {
        self.plan.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A node enrolled into another subnet than the one its table was
    /// built for (it starts with `mesh.subnet` before its enrolment):
    /// rebuild the table for the granted one, with the stored grants that
    /// lie inside it. Nothing happens when the subnet is already right.
    pub fn follow_subnet(
        &self,
        subnet: Ipv4Net,
        store: &StateStore,
        now_unix: u64,
    ) -> Result<bool, FirewallError> {
        let current = self.plan();
        if current.subnet == subnet.trunc() {
            return Ok(false);
        }
        let next = Ruleset::new(&current.table, &current.interface, subnet, current.api_port)?;
        let live = grants::prune_expired(store, now_unix)?;
        let elements: Vec<_> = live
            .iter()
            .filter(|s| next.subnet.contains(&s.grant.ip))
            .map(|s| element(&s.grant, remaining(s, now_unix)))
            .collect();
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        netlink::send_batch(netlink::replace_table_batch(&next, &elements))?;
        *self.plan.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(true)
    }

    /// Replaces the table: base ruleset plus `elements` (key, timeout ms).
    pub fn apply(&self, elements: &[([u8; 8], Option<u64>)]) -> Result<(), FirewallError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        netlink::send_batch(netlink::replace_table_batch(&self.plan(), elements))?;
        Ok(())
    }

    /// Checks a requested grant against the mesh subnet.
    pub fn check(&self, ip: Ipv4Addr, port: u32) -> Result<Grant, FirewallError> {
        Ok(Grant::new(ip, port, &self.plan().subnet)?)
    }

    /// Adds (or refreshes) one grant in the kernel only.
    pub fn kernel_add(&self, g: &Grant, timeout_secs: Option<u64>) -> Result<(), FirewallError> {
        if let Some(t) = timeout_secs {
            grant::check_timeout(t)?;
        }
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let present = self.kernel_has(g)?;
        let mut ops = Vec::new();
        // An existing element keeps its old timeout on a plain add; delete
        // and re-add it in the same batch so the new timeout holds.
        if present {
            ops.extend(self.elements(ElemOp::Delete, &[element(g, None)]));
        }
        ops.extend(self.elements(
            ElemOp::Add,
            &[element(g, timeout_secs.map(plan::timeout_ms))],
        ));
        netlink::send_batch(netlink::elements_batch(&ops))?;
        Ok(())
    }

    /// Adds many grants in one batch (the benchmark's path; all or none).
    pub fn kernel_add_many(&self, grants: &[(Grant, Option<u64>)]) -> Result<(), FirewallError> {
        let elements: Vec<_> = grants
            .iter()
            .map(|(g, t)| element(g, t.map(plan::timeout_ms)))
            .collect();
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        netlink::send_batch(netlink::elements_batch(
            &self.elements(ElemOp::Add, &elements),
        ))?;
        Ok(())
    }

    /// Removes one grant from the kernel; false if it was not there.
    pub fn kernel_delete(&self, g: &Grant) -> Result<bool, FirewallError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.kernel_has(g)? {
            return Ok(false);
        }
        let ops = self.elements(ElemOp::Delete, &[element(g, None)]);
        match netlink::send_batch(netlink::elements_batch(&ops)) {
            Ok(()) => Ok(true),
            // It timed out between the look and the delete.
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The grants the kernel holds, read back from it.
    pub fn list(&self) -> Result<Vec<LiveGrant>, FirewallError> {
        let mut out: Vec<LiveGrant> = netlink::dump_elements(&self.plan().table)?
            .into_iter()
            .filter_map(|e| {
                let (ip, port) = plan::parse_grant_key(&e.key)?;
                Some(LiveGrant {
                    ip,
                    port,
                    timeout_secs: e.timeout_ms.map(|ms| ms.div_ceil(1000)),
                    expires_in_secs: e.expires_in_ms.map(|ms| ms.div_ceil(1000)),
                })
            })
            .collect();
        out.sort_by_key(|g| (g.ip, g.port));
        Ok(out)
    }

    fn kernel_has(&self, g: &Grant) -> Result<bool, FirewallError> {
        let key = grant_key(g.ip, g.port);
        Ok(netlink::dump_elements(&self.plan().table)?
            .iter()
            .any(|e| e.key == key))
    }

    fn elements(&self, op: ElemOp, elements: &[([u8; 8], Option<u64>)]) -> Vec<Vec<u8>> {
        element_messages(&self.plan().table, GRANT_SET, op, elements)
    }

    /// `grant add`: the kernel and the store (with its audit record) both
    /// change, or neither does.
    pub fn grant(
        &self,
        store: &StateStore,
        ip: Ipv4Addr,
        port: u32,
        timeout_secs: Option<u64>,
        now_unix: u64,
        by: &str,
    ) -> Result<LiveGrant, FirewallError> {
        let g = self.check(ip, port)?;
        if let Some(t) = timeout_secs {
            grant::check_timeout(t)?;
        }
        let stored = StoredGrant {
            grant: g,
            expires_unix: timeout_secs.map(|t| now_unix.saturating_add(t)),
        };
        let txn = store.write()?;
        grants::put_grant(&txn, &stored, by, now_unix)?;
        self.kernel_add(&g, timeout_secs)?;
        if let Err(e) = store.commit(txn) {
            let _ = self.kernel_delete(&g);
            return Err(e.into());
        }
        Ok(LiveGrant {
            ip: g.ip,
            port: g.port,
            timeout_secs,
            expires_in_secs: timeout_secs,
        })
    }

    /// `grant del`: removes it from the kernel and the store (audited).
    pub fn revoke(
        &self,
        store: &StateStore,
        ip: Ipv4Addr,
        port: u32,
        by: &str,
    ) -> Result<(), FirewallError> {
        let g = self.check(ip, port)?;
        let txn = store.write()?;
        let in_store = grants::remove_grant(&txn, &g, by, crate::clock::now_unix())?;
        let in_kernel = self.kernel_delete(&g)?;
        if !in_store && !in_kernel {
            return Err(FirewallError::NoSuchGrant(g.ip, g.port));
        }
        store.commit(txn)?;
        Ok(())
    }
}

fn element(g: &Grant, timeout_ms: Option<u64>) -> ([u8; 8], Option<u64>) {
    (grant_key(g.ip, g.port), timeout_ms)
}

/// Milliseconds a stored grant has left: at least 1 s (one about to expire
/// is not re-applied without a timeout), at most the longest timeout (a
/// clock that is far behind must not make it nearly permanent).
fn remaining(s: &StoredGrant, now_unix: u64) -> Option<u64> {
    s.expires_unix
        .map(|t| plan::timeout_ms(t.saturating_sub(now_unix).clamp(1, grant::MAX_TIMEOUT_SECS)))
}

#[cfg(test)]
mod tests;

//! The mesh firewall: one nf_tables table of our own (`inet gondwana` by
//! default), replaced atomically at start, plus grants — (mesh address,
//! port) pairs in a set per protocol (TCP, UDP) with kernel-side
//! timeouts. See docs/firewall.md.
//!
//! `plan.rs` is the ruleset as data, `nfmsg.rs` the messages rustables
//! cannot write, `netlink.rs` the socket. [`Firewall`] is what the daemon
//! owns. It only executes: which grants the table holds, and keeping the
//! store (and its audit log) in step with the kernel, is the caller's
//! (`daemon/grants.rs`).

pub mod netlink;
pub mod nfmsg;
pub mod plan;

use std::net::Ipv4Addr;
use std::sync::Mutex;

use gondwana_core::grant::{self, Grant, GrantError};
use gondwana_core::lending::Protocol;
use serde::Serialize;

use netlink::NetlinkError;
use nfmsg::{ElemOp, element_messages, grant_key};
use plan::{Ruleset, grant_set};

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
        matches!(self, FirewallError::Grant(_) | FirewallError::Plan(_))
    }
}

/// A grant as the kernel holds it right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveGrant {
    pub ip: Ipv4Addr,
    pub proto: Protocol,
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
    pub fn new(plan: Ruleset) -> Firewall {
        Firewall {
            plan: std::sync::RwLock::new(plan),
            lock: Mutex::new(()),
        }
    }

    pub fn plan(&self) -> Ruleset {
        self.plan.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the table with another ruleset (a node enrolled into
    /// another subnet than the one its table was built for) holding
    /// `elements`, in one batch.
    pub fn replace(
        &self,
        next: Ruleset,
        elements: &[([u8; 8], Option<u64>)],
    ) -> Result<(), FirewallError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        netlink::send_batch(netlink::replace_table_batch(&next, elements))?;
        *self.plan.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
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
    pub fn kernel_add(
        &self,
        proto: Protocol,
        g: &Grant,
        timeout_secs: Option<u64>,
    ) -> Result<(), FirewallError> {
        if let Some(t) = timeout_secs {
            grant::check_timeout(t)?;
        }
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let present = self.kernel_has(proto, g)?;
        let mut ops = Vec::new();
        // An existing element keeps its old timeout on a plain add; delete
        // and re-add it in the same batch so the new timeout holds.
        if present {
            ops.extend(self.elements(proto, ElemOp::Delete, &[element(g, None)]));
        }
        ops.extend(self.elements(
            proto,
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
        netlink::send_batch(netlink::elements_batch(&self.elements(
            Protocol::Tcp,
            ElemOp::Add,
            &elements,
        )))?;
        Ok(())
    }

    /// Removes one grant from the kernel; false if it was not there.
    pub fn kernel_delete(&self, proto: Protocol, g: &Grant) -> Result<bool, FirewallError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.kernel_has(proto, g)? {
            return Ok(false);
        }
        let ops = self.elements(proto, ElemOp::Delete, &[element(g, None)]);
        match netlink::send_batch(netlink::elements_batch(&ops)) {
            Ok(()) => Ok(true),
            // It timed out between the look and the delete.
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The grants the kernel holds (TCP, then UDP), read back from it.
    pub fn list(&self) -> Result<Vec<LiveGrant>, FirewallError> {
        let table = self.plan().table;
        let mut out = Vec::new();
        for proto in [Protocol::Tcp, Protocol::Udp] {
            let mut live: Vec<LiveGrant> = netlink::dump_elements(&table, proto)?
                .into_iter()
                .filter_map(|e| {
                    let (ip, port) = plan::parse_grant_key(&e.key)?;
                    Some(LiveGrant {
                        ip,
                        proto,
                        port,
                        timeout_secs: e.timeout_ms.map(|ms| ms.div_ceil(1000)),
                        expires_in_secs: e.expires_in_ms.map(|ms| ms.div_ceil(1000)),
                    })
                })
                .collect();
            live.sort_by_key(|g| (g.ip, g.port));
            out.extend(live);
        }
        Ok(out)
    }

    fn kernel_has(&self, proto: Protocol, g: &Grant) -> Result<bool, FirewallError> {
        let key = grant_key(g.ip, g.port);
        Ok(netlink::dump_elements(&self.plan().table, proto)?
            .iter()
            .any(|e| e.key == key))
    }

    fn elements(
        &self,
        proto: Protocol,
        op: ElemOp,
        elements: &[([u8; 8], Option<u64>)],
    ) -> Vec<Vec<u8>> {
        element_messages(&self.plan().table, grant_set(proto).0, op, elements)
    }
}

/// A grant as a set element: its key and timeout in milliseconds.
pub fn element(g: &Grant, timeout_ms: Option<u64>) -> ([u8; 8], Option<u64>) {
    (grant_key(g.ip, g.port), timeout_ms)
}

#[cfg(test)]
mod tests;

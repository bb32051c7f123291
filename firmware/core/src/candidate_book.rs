//! The hub's book of candidates (docs/paths.md, "Candidates"): every active
//! node's last accepted report and the endpoint the hub observes it at, and
//! the checks a new report must pass. Sans-IO: the daemon feeds it request
//! bodies, the directory view and what its WireGuard device shows.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::candidates::{
    CandidateError, NodeEntry, RelayOffer, ReportBody, SignedReport, check_report, decode_report,
};
use crate::directory::View;
use crate::mesh::Ipv4Net;
use crate::node_id::NodeId;
use crate::ordered::set_from;

/// Why a report was refused; [`Refusal::reason`] is the metric label and
/// the API's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("report: {0}")]
    Malformed(CandidateError),
    #[error("{0} is not an active node of the directory")]
    UnknownNode(NodeId),
    #[error("the report's signature does not hold under the node's directory key")]
    BadSignature,
    #[error("report seq {got} is not newer than the accepted {have}")]
    StaleSeq { have: u64, got: u64 },
    #[error("report: {0}")]
    BadAddress(CandidateError),
    #[error("{addr} is already a candidate of {by}")]
    EndpointTaken { addr: SocketAddrV4, by: NodeId },
    #[error("the report asks the relay for {0}, which is not an active node of the directory")]
    RelayNotMember(NodeId),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::UnknownNode(_) => "unknown_node",
            Refusal::BadSignature => "bad_signature",
            Refusal::StaleSeq { .. } => "stale_seq",
            Refusal::BadAddress(_) => "bad_address",
            Refusal::EndpointTaken { .. } => "endpoint_taken",
            Refusal::RelayNotMember(_) => "relay_not_member",
        }
    }
}

/// A report whose signature holds under its node's directory key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentic {
    pub bytes: Vec<u8>,
    pub signed: SignedReport,
    pub body: ReportBody,
    /// The node's mesh address (the rate limit's key).
    pub mesh_ip: Ipv4Addr,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    reports: BTreeMap<NodeId, Authentic>,
    observed: BTreeMap<NodeId, SocketAddrV4>,
    /// Counts changes: the snapshot is signed again when it moves.
    generation: u64,
}

/// Decodes `bytes` and checks the signature against the directory key of
/// the node it names, which must be active.
pub fn authenticate(bytes: &[u8], view: &View) -> Result<Authentic, Refusal> {
    let (signed, body) = decode_report(bytes).map_err(Refusal::Malformed)?;
    let record = view
        .nodes
        .get(&body.node_id)
        .ok_or_else(|| Refusal::UnknownNode(body.node_id.clone()))?;
    if !signed.verify(&record.signing_key) {
        return Err(Refusal::BadSignature);
    }
    // A relay pair is only ever between two active members.
    if let Some(id) = body
        .want_relay
        .iter()
        .find(|id| !view.nodes.contains_key(*id))
    {
        return Err(Refusal::RelayNotMember(id.clone()));
    }
    Ok(Authentic {
        bytes: bytes.to_vec(),
        signed,
        mesh_ip: record.mesh_ip,
        body,
    })
}

impl Book {
    /// Checks an authentic report against the book (seq, addresses, other
    /// nodes' endpoints) and keeps it. `Ok(false)`: the very report already
    /// held (a retry), nothing changes. A refusal changes nothing.
    pub fn admit(&mut self, report: Authentic, mesh: &Ipv4Net) -> Result<bool, Refusal> {
        let node = report.body.node_id.clone();
        if let Some(have) = self.reports.get(&node) {
            if have.bytes == report.bytes {
                return Ok(false);
            }
            if report.body.seq <= have.body.seq {
                return Err(Refusal::StaleSeq {
                    have: have.body.seq,
                    got: report.body.seq,
                });
            }
        }
        check_report(&report.body, Some(mesh)).map_err(Refusal::BadAddress)?;
        for addr in &report.body.lan {
            if let Some(by) = self.holder_of(addr, &node) {
                return Err(Refusal::EndpointTaken { addr: *addr, by });
            }
        }
        self.reports.insert(node, report);
        self.generation += 1;
        Ok(true)
    }

    /// A stored report at start: authentic and well-formed is enough (it
    /// was admitted before).
    pub fn restore(&mut self, bytes: &[u8], view: &View) -> Result<(), Refusal> {
        let report = authenticate(bytes, view)?;
        check_report(&report.body, None).map_err(Refusal::BadAddress)?;
        self.reports.insert(report.body.node_id.clone(), report);
        self.generation += 1;
        Ok(())
    }

    /// Another node that reported `addr` or is observed at it.
    fn holder_of(&self, addr: &SocketAddrV4, node: &NodeId) -> Option<NodeId> {
        let reported = self
            .reports
            .iter()
            .find(|(id, r)| *id != node && r.body.lan.contains(addr))
            .map(|(id, _)| id.clone());
        reported.or_else(|| {
            self.observed
                .iter()
                .find(|(id, a)| *id != node && *a == addr)
                .map(|(id, _)| id.clone())
        })
    }

    /// The endpoints the hub's device shows now; `true` if any changed.
    pub fn set_observed(&mut self, observed: BTreeMap<NodeId, SocketAddrV4>) -> bool {
        if self.observed == observed {
            return false;
        }
        self.observed = observed;
        self.generation += 1;
        true
    }

    /// Drops what belongs to nodes no longer active; returns the nodes
    /// whose reports were dropped (to forget them in the store too).
    pub fn retain_active(&mut self, view: &View) -> Vec<NodeId> {
        let gone: Vec<NodeId> = self
            .reports
            .keys()
            .filter(|id| !view.nodes.contains_key(*id))
            .cloned()
            .collect();
        for id in &gone {
            self.reports.remove(id);
        }
        let observed = self.observed.len();
        self.observed.retain(|id, _| view.nodes.contains_key(id));
        if !gone.is_empty() || observed != self.observed.len() {
            self.generation += 1;
        }
        gone
    }

    /// Every node's `want_relay`.
    pub fn wants(&self) -> BTreeMap<NodeId, Vec<NodeId>> {
        self.reports
            .iter()
            .map(|(id, r)| (id.clone(), r.body.want_relay.to_vec()))
            .collect()
    }

    /// The nodes that may relay others' pairs now (docs/paths.md, "Node
    /// relays"): a report offering relaying, an endpoint the hub observes
    /// (a handshake younger than 180 s) whose IP is one of the node's own
    /// reported addresses — nothing in front of it translates addresses,
    /// so other boxes can send to its relay ports. With the offered ports.
    pub fn node_relays(&self) -> BTreeMap<NodeId, RelayOffer> {
        self.reports
            .iter()
            .filter_map(|(id, r)| {
                let offer = r.body.relay?;
                let observed = self.observed.get(id)?;
                let public = r.body.lan.iter().any(|a| a.ip() == observed.ip());
                public.then(|| (id.clone(), offer))
            })
            .collect()
    }

    /// Moves with every change of what [`Self::entries`] returns.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn report(&self, node: &NodeId) -> Option<&Authentic> {
        self.reports.get(node)
    }

    /// The snapshot's entries: every node with an observed endpoint or a
    /// report, in node id order, reports verbatim.
    pub fn entries(&self) -> Vec<NodeEntry> {
        let ids = set_from(self.reports.keys().chain(self.observed.keys()).cloned());
        ids.into_iter()
            .map(|id| NodeEntry {
                observed: self.observed.get(&id).copied(),
                report: self.reports.get(&id).map(|r| r.signed.clone()),
                node_id: id,
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "candidates/book_tests.rs"]
mod tests;

//! Endpoint candidates: where a node can be reached, and which pairs the
//! relay carries. Two signed messages (byte layouts: docs/protocol.md,
//! "Endpoint candidates"; the design and its reasons: docs/paths.md):
//!
//! - a node's **report** ([`ReportBody`], signed by the node's signing key,
//!   domain `gondwana/v1/candidate-report`): its listen port, its LAN
//!   addresses, the peers it wants relayed; sent to the hub over the mesh
//!   whenever it changes;
//! - the hub's **snapshot** ([`SnapshotBody`], signed by the hub's key,
//!   domain `gondwana/v1/candidate-snapshot`): for every active node the
//!   public endpoint the hub observes in its handshakes and the node's last
//!   report (verbatim, so every node checks it against the reporter's own
//!   key), plus the relay pairs the hub allocated. Fetched by long poll,
//!   cached on the state partition.
//!
//! Candidates change often; they are not directory records (the directory
//! is append-only and every node keeps all of it forever).
//!
//! Verified forms ([`Candidates`], [`Snapshot`]) are what the path machine
//! (`paths`) and the relay consume.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};

use crate::directory::View;
use crate::envelope::{DecodeError, decode_canonical, encode, signed_message, tag};
use crate::keys::{PublicKey, SignatureBytes, SigningSecret, verify_signature};
use crate::mesh::Ipv4Net;
use crate::node_id::NodeId;

pub const VERSION: u8 = 1;
/// LAN addresses one report may carry.
pub const MAX_LAN_ADDRS: usize = 8;
/// Peers one report may ask a relay for.
pub const MAX_RELAY_WANTS: usize = 64;
/// Largest report body: version, node id, seq, port, 8 LAN addresses and
/// 64 node ids (each at most 56 bytes with its length) fit with room.
pub const MAX_REPORT_BODY: usize = 4096;
/// A [`SignedReport`] as encoded: body with its length prefix, signature
/// with its length prefix.
pub const MAX_REPORT_BYTES: usize = MAX_REPORT_BODY + 3 + 65;
/// Largest snapshot body: sized for 10,000 nodes whose reports are all of
/// the largest size (a typical report is ~150 bytes, so a typical
/// 10,000-node snapshot is ~2.5 MB).
pub const MAX_SNAPSHOT_BODY: usize = 48 << 20;
/// A [`SignedSnapshot`] as encoded.
pub const MAX_SNAPSHOT_BYTES: usize = MAX_SNAPSHOT_BODY + 4 + 65;

/// What a node says about itself (signed by its node signing key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportBody {
    pub version: u8,
    pub node_id: NodeId,
    /// Strictly increasing per node (the hub keeps the report with the
    /// highest `seq` and refuses older ones: a replay changes nothing).
    pub seq: u64,
    /// The WireGuard listen port (per node, see docs/paths.md).
    pub listen_port: u16,
    /// Unicast IPv4 addresses of the node's non-mesh interfaces, with the
    /// listen port: the same-LAN candidates.
    pub lan: heapless::Vec<SocketAddrV4, MAX_LAN_ADDRS>,
    /// Peers this node could not reach directly: it asks the relay for them.
    pub want_relay: heapless::Vec<NodeId, MAX_RELAY_WANTS>,
    /// `Some`: this node runs the relay (`relay.enabled = true`) on these
    /// ports of the address the hub observes it at.
    pub relay: Option<RelayOffer>,
}

/// The ports a node relays on (its `relay.port_range`, inclusive): the
/// hub may name it as the relay of a pair, with two ports from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayOffer {
    pub first: u16,
    pub last: u16,
}

impl RelayOffer {
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

/// A report as sent and as republished: the exact body bytes and the
/// node's signature over `tag || body`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReport {
    pub body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: SignatureBytes,
}

/// The snapshot as sent and stored: the exact body bytes and the hub's
/// signature over `tag || body`. Its own framing, not an
/// [`crate::envelope::Envelope`]: a snapshot exceeds the 1 KiB envelope body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSnapshot {
    pub body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: SignatureBytes,
}

/// One node's entry in the hub's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub node_id: NodeId,
    /// The source address of the node's last handshake with the hub.
    pub observed: Option<SocketAddrV4>,
    pub report: Option<SignedReport>,
}

/// Two nodes whose WireGuard ciphertext `relay` forwards: `a` points its
/// peer `b` at `relay`'s host and `port_a`, `b` points its peer `a` at
/// `port_b`. `a < b` (node id order), one pair at most per two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayPair {
    pub a: NodeId,
    pub b: NodeId,
    pub relay: NodeId,
    pub port_a: u16,
    pub port_b: u16,
}

/// The hub's snapshot (signed by the hub's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBody {
    pub version: u8,
    pub hub_id: NodeId,
    /// Increases with every change; the long poll waits for a higher one.
    pub serial: u64,
    pub issued_unix: u64,
    /// Incremented by the hub every re-probe interval: both sides of a
    /// relayed pair try the direct path again when it changes.
    pub probe_round: u32,
    /// In node id order.
    pub nodes: Vec<NodeEntry>,
    /// In (a, b) order.
    pub relays: Vec<RelayPair>,
}

/// One node's candidates after verification (report signature under the
/// node's directory key, node active).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    pub observed: Option<SocketAddrV4>,
    pub listen_port: Option<u16>,
    pub lan: Vec<SocketAddrV4>,
    pub want_relay: Vec<NodeId>,
    /// The node offers to relay on these ports (its report says so).
    pub relay: Option<RelayOffer>,
}

/// A verified snapshot: what the path machine and the relay consume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub serial: u64,
    pub issued_unix: u64,
    pub probe_round: u32,
    pub nodes: BTreeMap<NodeId, Candidates>,
    pub relays: Vec<RelayPair>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandidateError {
    #[error("malformed: {0}")]
    Malformed(DecodeError),
    #[error("unknown version {0}")]
    UnknownVersion(u8),
    #[error("signature does not verify under the signer's key")]
    BadSignature,
    #[error("listen port 0")]
    ZeroPort,
    #[error("{0}: not a usable unicast IPv4 endpoint")]
    BadAddress(SocketAddrV4),
    #[error("{0} is inside the mesh subnet")]
    MeshAddress(SocketAddrV4),
    #[error("{0} is listed twice")]
    Duplicate(SocketAddrV4),
    #[error("a node cannot ask the relay for itself")]
    RelaySelf,
    #[error("relay ports {first}-{last}: need two ports or more, not 0, without the listen port")]
    BadRelayPorts { first: u16, last: u16 },
    #[error("the body is {0} bytes, more than the limit")]
    TooLarge(usize),
}

/// An IPv4 address another box could send to: not 0/8, loopback,
/// link-local (169.254/16: not routed, and every box has the same),
/// multicast, the reserved 240/4 or broadcast.
pub fn is_unicast(ip: Ipv4Addr) -> bool {
    let first = ip.octets()[0];
    !(first == 0 || ip.is_loopback() || ip.is_link_local() || ip.is_multicast() || first >= 240)
}

/// A candidate endpoint: unicast, port not 0, outside the mesh subnet.
pub fn check_endpoint(addr: SocketAddrV4, mesh: Option<&Ipv4Net>) -> Result<(), CandidateError> {
    if !is_unicast(*addr.ip()) || addr.port() == 0 {
        return Err(CandidateError::BadAddress(addr));
    }
    if mesh.is_some_and(|m| m.contains(addr.ip())) {
        return Err(CandidateError::MeshAddress(addr));
    }
    Ok(())
}

/// The checks a report's content must pass (the signature is checked
/// apart): version, port, addresses (`mesh`: the mesh subnet, when known),
/// no duplicates, no relay for itself.
pub fn check_report(body: &ReportBody, mesh: Option<&Ipv4Net>) -> Result<(), CandidateError> {
    if body.version != VERSION {
        return Err(CandidateError::UnknownVersion(body.version));
    }
    if body.listen_port == 0 {
        return Err(CandidateError::ZeroPort);
    }
    let mut seen = BTreeSet::new();
    for addr in &body.lan {
        check_endpoint(*addr, mesh)?;
        if !seen.insert(*addr) {
            return Err(CandidateError::Duplicate(*addr));
        }
    }
    if body.want_relay.contains(&body.node_id) {
        return Err(CandidateError::RelaySelf);
    }
    if let Some(offer) = body.relay
        && (offer.first == 0 || offer.first >= offer.last || offer.contains(body.listen_port))
    {
        return Err(CandidateError::BadRelayPorts {
            first: offer.first,
            last: offer.last,
        });
    }
    Ok(())
}

/// Node: signs its report; the bytes to `POST`.
pub fn seal_report(body: &ReportBody, key: &SigningSecret) -> Result<Vec<u8>, CandidateError> {
    let body = encode(body);
    if body.len() > MAX_REPORT_BODY {
        return Err(CandidateError::TooLarge(body.len()));
    }
    let signature = key.sign(&signed_message(tag::CANDIDATE_REPORT, &body));
    Ok(encode(&SignedReport { body, signature }))
}

/// Decodes a report canonically *without* checking its signature: the hub
/// needs the node id to find the key. Use [`SignedReport::verify`] next.
pub fn decode_report(bytes: &[u8]) -> Result<(SignedReport, ReportBody), CandidateError> {
    let signed: SignedReport =
        decode_canonical(bytes, MAX_REPORT_BYTES).map_err(CandidateError::Malformed)?;
    let body = signed.decode_body()?;
    Ok((signed, body))
}

impl SignedReport {
    fn decode_body(&self) -> Result<ReportBody, CandidateError> {
        let body: ReportBody =
            decode_canonical(&self.body, MAX_REPORT_BODY).map_err(CandidateError::Malformed)?;
        if body.version != VERSION {
            return Err(CandidateError::UnknownVersion(body.version));
        }
        Ok(body)
    }

    /// Does the signature hold under `key` (the node's directory signing key)?
    pub fn verify(&self, key: &PublicKey) -> bool {
        verify_signature(
            key,
            &signed_message(tag::CANDIDATE_REPORT, &self.body),
            &self.signature,
        )
    }
}

/// Hub: signs a snapshot body; the bytes nodes fetch and store.
pub fn seal_snapshot(body: &SnapshotBody, hub: &SigningSecret) -> Result<Vec<u8>, CandidateError> {
    let body = encode(body);
    if body.len() > MAX_SNAPSHOT_BODY {
        return Err(CandidateError::TooLarge(body.len()));
    }
    let signature = hub.sign(&signed_message(tag::CANDIDATE_SNAPSHOT, &body));
    Ok(encode(&SignedSnapshot { body, signature }))
}

/// A verified snapshot and what verification left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub snapshot: Snapshot,
    /// Reports dropped: signature not under the node's directory key, body
    /// malformed, another node's id, or content that fails [`check_report`].
    pub dropped_reports: usize,
    /// Entries and relay pairs dropped: a node not active in `view`.
    pub dropped_inactive: usize,
    /// Node ids the snapshot names (entries, relay pairs) that `view` holds
    /// neither active nor revoked: boxes enrolled after the node's last
    /// directory pull (`node_sync::UnknownNodes` decides on an early pull).
    pub unknown: BTreeSet<NodeId>,
    /// Relay pairs dropped: their relay is neither the hub nor a node of
    /// the snapshot whose verified report offers relaying on both ports
    /// and that has an observed endpoint, or it is one of the two.
    pub dropped_relays: usize,
}

/// Checks the hub's signature, decodes canonically, then keeps only what
/// holds against `view`: entries of active nodes, reports signed by their
/// node's directory key, relay pairs between active nodes.
pub fn verify_snapshot(
    bytes: &[u8],
    hub_key: &PublicKey,
    view: &View,
) -> Result<Verified, CandidateError> {
    let signed: SignedSnapshot =
        decode_canonical(bytes, MAX_SNAPSHOT_BYTES).map_err(CandidateError::Malformed)?;
    if !verify_signature(
        hub_key,
        &signed_message(tag::CANDIDATE_SNAPSHOT, &signed.body),
        &signed.signature,
    ) {
        return Err(CandidateError::BadSignature);
    }
    let body: SnapshotBody =
        decode_canonical(&signed.body, MAX_SNAPSHOT_BODY).map_err(CandidateError::Malformed)?;
    if body.version != VERSION {
        return Err(CandidateError::UnknownVersion(body.version));
    }
    let mut out = Verified {
        snapshot: Snapshot {
            serial: body.serial,
            issued_unix: body.issued_unix,
            probe_round: body.probe_round,
            ..Snapshot::default()
        },
        dropped_reports: 0,
        dropped_inactive: 0,
        unknown: BTreeSet::new(),
        dropped_relays: 0,
    };
    let held = |id: &NodeId| view.nodes.contains_key(id) || view.revoked.contains_key(id);
    for entry in body.nodes {
        let Some(record) = view.nodes.get(&entry.node_id) else {
            out.dropped_inactive += 1;
            if !held(&entry.node_id) {
                out.unknown.insert(entry.node_id);
            }
            continue;
        };
        let mut candidates = Candidates {
            observed: entry.observed.filter(|a| check_endpoint(*a, None).is_ok()),
            ..Candidates::default()
        };
        if let Some(report) = &entry.report {
            match verified_report(report, &record.signing_key, &entry.node_id) {
                Some(r) => {
                    candidates.listen_port = Some(r.listen_port);
                    candidates.lan = r.lan.to_vec();
                    candidates.want_relay = r.want_relay.to_vec();
                    candidates.relay = r.relay;
                }
                None => out.dropped_reports += 1,
            }
        }
        out.snapshot.nodes.insert(entry.node_id, candidates);
    }
    for pair in body.relays {
        let active = |id: &NodeId| view.nodes.contains_key(id);
        if !(pair.a < pair.b && active(&pair.a) && active(&pair.b) && active(&pair.relay)) {
            out.dropped_inactive += 1;
            for id in [pair.a, pair.b, pair.relay] {
                if !held(&id) {
                    out.unknown.insert(id);
                }
            }
        } else if pair.relay == body.hub_id || node_relay_holds(&out.snapshot, &pair) {
            out.snapshot.relays.push(pair);
        } else {
            out.dropped_relays += 1;
        }
    }
    Ok(out)
}

/// A pair a node relays: the node is not one of the two, its verified
/// report offers relaying on both (distinct) ports, and the hub observes
/// it (its address is the relay's host). Anything else would point two
/// nodes at an address that never agreed to carry them.
fn node_relay_holds(snapshot: &Snapshot, pair: &RelayPair) -> bool {
    let Some(relay) = snapshot.nodes.get(&pair.relay) else {
        return false;
    };
    let offered = relay
        .relay
        .is_some_and(|o| o.contains(pair.port_a) && o.contains(pair.port_b));
    pair.relay != pair.a
        && pair.relay != pair.b
        && pair.port_a != pair.port_b
        && offered
        && relay.observed.is_some()
}

impl Snapshot {
    /// Where `relay`'s ports are, as this snapshot says: the observed IP
    /// of a node relay; `None` for the hub (its endpoint is known apart)
    /// or a node without one.
    pub fn node_relay_host(&self, relay: &NodeId) -> Option<Ipv4Addr> {
        self.nodes
            .get(relay)
            .filter(|c| c.relay.is_some())
            .and_then(|c| c.observed)
            .map(|o| *o.ip())
    }
}

fn verified_report(report: &SignedReport, key: &PublicKey, node: &NodeId) -> Option<ReportBody> {
    if !report.verify(key) {
        return None;
    }
    let body = report.decode_body().ok()?;
    (body.node_id == *node && check_report(&body, None).is_ok()).then_some(body)
}

#[cfg(test)]
pub(crate) mod tests;

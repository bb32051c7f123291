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

use std::collections::BTreeMap;
use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};

use crate::keys::SignatureBytes;
use crate::node_id::NodeId;

pub const VERSION: u8 = 1;
/// LAN addresses one report may carry.
pub const MAX_LAN_ADDRS: usize = 8;
/// Peers one report may ask a relay for.
pub const MAX_RELAY_WANTS: usize = 64;

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
}

/// A report as sent and as republished: the exact body bytes and the
/// node's signature over `tag || body`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReport {
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

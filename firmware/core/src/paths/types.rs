//! What goes in and out of the path machine.

use std::net::SocketAddr;
use std::time::SystemTime;

use crate::NodeId;

/// The path a peer's traffic takes, for status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathKind {
    /// Straight to an address inside one of this box's own subnets.
    Lan,
    /// Straight to the peer's public (or any other non-LAN) address.
    Direct,
    /// Through the relay.
    Relay,
    /// No working path (yet).
    None,
}

impl PathKind {
    /// Every kind, in the order status and `/metrics` list them.
    pub const ALL: [PathKind; 4] = [
        PathKind::Lan,
        PathKind::Direct,
        PathKind::Relay,
        PathKind::None,
    ];

    /// The name status, `/metrics` and docs/paths.md use.
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Lan => "lan",
            PathKind::Direct => "direct",
            PathKind::Relay => "relay",
            PathKind::None => "none",
        }
    }
}

/// One peer as the device reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    pub last_handshake: Option<SystemTime>,
    pub endpoint: Option<SocketAddr>,
}

/// What the driver does about the machine's decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The endpoint to configure for `peer` changed: run a data-plane pass.
    Endpoint {
        peer: NodeId,
        endpoint: Option<SocketAddr>,
    },
    /// `peer`'s path is now `kind` (a working path, or `None` when lost).
    Path { peer: NodeId, kind: PathKind },
    /// The peers this node asks the relay for changed: report them.
    WantRelay(Vec<NodeId>),
    /// A probe starts while the device has a session with `peer`: remove
    /// and re-add the peer in the next pass, so a handshake over the new
    /// endpoint comes at once (WireGuard keeps a session over an endpoint
    /// change, and only a new handshake proves the path).
    NewSession(NodeId),
}

/// One peer's path, for status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerPath {
    pub kind: PathKind,
    pub endpoint: Option<SocketAddr>,
    /// A handshake younger than [`FRESH`]: `false` on a relayed pair whose
    /// relay is gone.
    pub fresh: bool,
    /// Relayed by a node relay, not by the hub: the hub being unreachable
    /// does not stop it.
    pub node_relay: bool,
}

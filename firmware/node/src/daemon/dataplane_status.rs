//! What the data plane reports (status, `/v1/ready`), apart from the task
//! that makes it true, so the app state can hold it without depending on
//! the task.

use std::net::SocketAddr;

use gondwana_core::dataplane;
use gondwana_core::keys::{PublicKey, wg_key_to_base64};
use ipnet::Ipv4Net;
use serde_json::{Value, json};

use crate::config::{BackendChoice, Config};

/// Where the mesh stands, for status and `/v1/ready`.
#[derive(Debug, Clone, Default)]
pub struct DataplaneStatus {
    pub state: &'static str,
    pub backend: Option<&'static str>,
    pub interface: String,
    pub address: Option<Ipv4Net>,
    pub listen_port: Option<u16>,
    pub public_key: Option<PublicKey>,
    pub peers: usize,
    pub peers_with_handshake: usize,
    /// Node: other nodes `mesh.max_peers` left without a peer.
    pub peers_omitted: usize,
    pub hub: Option<Value>,
    pub mesh_listener: Option<SocketAddr>,
    pub last_pass_unix: Option<u64>,
    pub error: Option<String>,
    /// Hub: WireGuard keys that more than one live record names, left
    /// without a peer (see `gondwana_core::dataplane::hub_peers`).
    pub key_conflicts: Vec<dataplane::KeyConflict>,
}

impl DataplaneStatus {
    pub fn to_json(&self) -> Value {
        json!({
            "state": self.state,
            "backend": self.backend,
            "interface": self.interface,
            "address": self.address.map(|a| a.to_string()),
            "listen_port": self.listen_port,
            "public_key": self.public_key.map(|k| wg_key_to_base64(&k)),
            "peers": self.peers,
            "peers_with_handshake": self.peers_with_handshake,
            "peers_omitted": self.peers_omitted,
            "hub": self.hub,
            "mesh_listener": self.mesh_listener.map(|a| a.to_string()),
            "last_pass_unix": self.last_pass_unix,
            "error": self.error,
            "wireguard_key_conflicts": self.key_conflicts.iter().map(conflict_json).collect::<Vec<_>>(),
        })
    }
}

fn conflict_json(c: &dataplane::KeyConflict) -> Value {
    json!({
        "public_key": wg_key_to_base64(&c.public_key),
        "node_ids": c.node_ids.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
    })
}

/// What status says before the first pass: "disabled" for a control-plane
/// daemon (set before the listeners bind, so `/v1/ready` never sees it
/// "starting"), else "starting".
pub fn initial_status(config: &Config) -> DataplaneStatus {
    DataplaneStatus {
        state: if config.wireguard.backend == BackendChoice::None {
            "disabled"
        } else {
            "starting"
        },
        interface: config.mesh.interface.to_string(),
        ..Default::default()
    }
}

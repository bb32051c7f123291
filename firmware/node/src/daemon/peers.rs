//! The peers as the WireGuard device reports them *now* (read when status or
//! `/metrics` asks, not kept from the last data-plane pass), named from the
//! verified directory: the peers table of `gondwana status`, `node list`'s
//! "online" and the per-peer metrics.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gondwana_core::NodeId;
use gondwana_core::directory::View;
use gondwana_core::keys::{PublicKey, wg_key_to_base64};
use gondwana_core::paths::{PathKind, PeerPath};
use gondwana_core::reconcile::HANDSHAKE_STALE;
use serde_json::{Value, json};

use crate::api::metrics::{Kind, Num, write_family};
use crate::net::wireguard::{PeerState, WireGuard};

/// A peer is online when its last handshake is younger than this: 180 s,
/// WireGuard's `REJECT_AFTER_TIME`. A live session re-handshakes every
/// 120 s (`REKEY_AFTER_TIME`), so a peer that is up never crosses it.
pub const ONLINE_WITHIN: Duration = HANDSHAKE_STALE;

/// How long a status or scrape waits for the device.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Who a WireGuard key is, from the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerName {
    pub boxname: String,
    pub id: NodeId,
    pub node_id: String,
    pub mesh_ip: Ipv4Addr,
}

pub type PeerNames = BTreeMap<PublicKey, PeerName>;

/// Every live node of the directory by its WireGuard key.
pub fn names_from(view: &View) -> PeerNames {
    view.nodes
        .iter()
        .map(|(id, n)| {
            let name = PeerName {
                boxname: n.boxname.to_string(),
                id: id.clone(),
                node_id: id.to_string(),
                mesh_ip: n.mesh_ip,
            };
            (n.wireguard_key, name)
        })
        .collect()
}

/// What the data plane shares with status and metrics: the open device
/// and the names of its peers. Empty until the first pass opens the device.
#[derive(Default)]
pub struct LivePeers {
    device: std::sync::Mutex<Option<Arc<WireGuard>>>,
    names: std::sync::Mutex<Arc<PeerNames>>,
    /// Node: each other node's path as the path machine last judged it.
    paths: std::sync::Mutex<Arc<BTreeMap<NodeId, PeerPath>>>,
    /// Node: the hub's candidate long poll is failing (set by
    /// `candidates_task.rs`): what a relayed pair's status blames.
    hub_unreachable: std::sync::atomic::AtomicBool,
}

/// One peer, read now.
#[derive(Debug, Clone)]
pub struct PeerReport {
    pub public_key: String,
    pub name: Option<PeerName>,
    pub peer: PeerState,
    /// Seconds since the last handshake (`None`: never, or in the future).
    pub handshake_age: Option<u64>,
    /// Node: the path machine's judgement for another node; `None` for
    /// the hub and on the hub.
    pub path: Option<PeerPath>,
    /// Node: the hub's candidate service does not answer (a relayed pair
    /// cannot work then).
    pub hub_unreachable: bool,
}

impl PeerReport {
    pub fn online(&self) -> bool {
        self.handshake_age
            .is_some_and(|a| a < ONLINE_WITHIN.as_secs())
    }

    /// The path kind: the path machine's, else `direct` for a peer that
    /// is online through an endpoint it has (the hub's view of its nodes,
    /// a node's hub) and `none` for one that is not.
    pub fn path_kind(&self) -> PathKind {
        match &self.path {
            Some(p) => p.kind,
            None if self.online() && self.peer.config.endpoint.is_some() => PathKind::Direct,
            None => PathKind::None,
        }
    }

    /// Why a path is not working, for status: `null` when it works.
    pub fn path_note(&self) -> Option<&'static str> {
        let path = self.path.as_ref()?;
        match path.kind {
            // A node relay's pairs outlive the hub.
            PathKind::Relay if self.hub_unreachable && !path.node_relay => {
                Some("relay: hub unreachable")
            }
            PathKind::Relay if !path.fresh => Some("relay: no handshake within 180 s"),
            PathKind::None if self.hub_unreachable => {
                Some("no direct path yet, and the relay (hub) is unreachable")
            }
            PathKind::None => Some("probing: no candidate has answered yet"),
            _ if !path.fresh => Some("no handshake within 180 s"),
            _ => None,
        }
    }

    /// The mesh address: the directory's, else the peer's `/32`.
    pub fn mesh_ip(&self) -> Option<Ipv4Addr> {
        self.name.as_ref().map(|n| n.mesh_ip).or_else(|| {
            self.peer
                .config
                .allowed_ips
                .iter()
                .find(|n| n.prefix_len() == 32)
                .map(|n| n.addr())
        })
    }

    /// One entry of status's `peers` (docs/api.md).
    pub fn to_json(&self) -> Value {
        let last = self
            .peer
            .last_handshake
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        json!({
            "name": self.name.as_ref().map(|n| n.boxname.as_str()),
            "node_id": self.name.as_ref().map(|n| n.node_id.as_str()),
            "public_key": self.public_key,
            "mesh_ip": self.mesh_ip().map(|a| a.to_string()),
            "path": self.path_kind().as_str(),
            "path_note": self.path_note(),
            "endpoint": self.peer.config.endpoint.map(|e| e.to_string()),
            "allowed_ips": self.peer.config.allowed_ips.iter().map(|n| n.to_string())
                .chain(self.peer.foreign_allowed_ips.iter().cloned())
                .collect::<Vec<_>>(),
            "last_handshake_unix": last,
            "last_handshake": last.map(rfc3339),
            "handshake_age_secs": self.handshake_age,
            "online": self.online(),
            "rx_bytes": self.peer.rx_bytes,
            "tx_bytes": self.peer.tx_bytes,
        })
    }
}

/// Unix seconds as RFC 3339 (UTC, seconds).
pub fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

impl LivePeers {
    pub fn set_device(&self, wg: Arc<WireGuard>) {
        if let Ok(mut d) = self.device.lock() {
            *d = Some(wg);
        }
    }

    pub fn set_paths(&self, paths: BTreeMap<NodeId, PeerPath>) {
        if let Ok(mut p) = self.paths.lock() {
            *p = Arc::new(paths);
        }
    }

    pub fn set_hub_unreachable(&self, unreachable: bool) {
        self.hub_unreachable
            .store(unreachable, std::sync::atomic::Ordering::Relaxed);
    }

    /// The open device, if any (the hub's candidates look at its peers'
    /// endpoints).
    pub fn device(&self) -> Option<Arc<WireGuard>> {
        self.device.lock().ok()?.clone()
    }

    pub fn set_names(&self, names: PeerNames) {
        if let Ok(mut n) = self.names.lock() {
            *n = Arc::new(names);
        }
    }

    /// The device's peers now, named; `None` when there is no device (no
    /// data plane, not enrolled yet) or it did not answer in time.
    pub async fn read(&self) -> Option<Vec<PeerReport>> {
        let wg = self.device.lock().ok()?.clone()?;
        let names = self.names.lock().ok()?.clone();
        let paths = self.paths.lock().ok()?.clone();
        let device = match tokio::time::timeout(READ_TIMEOUT, wg.get()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                warn!("reading {} for status: {e}", wg.interface());
                return None;
            }
            Err(_) => {
                warn!(
                    "reading {} for status: no answer within {READ_TIMEOUT:?}",
                    wg.interface()
                );
                return None;
            }
        };
        let now = SystemTime::now();
        let reports = device
            .peers
            .iter()
            .map(|p| PeerReport {
                public_key: wg_key_to_base64(&p.config.public_key),
                name: names.get(&p.config.public_key).cloned(),
                path: names
                    .get(&p.config.public_key)
                    .and_then(|n| paths.get(&n.id))
                    .cloned(),
                hub_unreachable: self
                    .hub_unreachable
                    .load(std::sync::atomic::Ordering::Relaxed),
                peer: p.clone(),
                handshake_age: p
                    .last_handshake
                    .and_then(|t| now.duration_since(t).ok())
                    .map(|d| d.as_secs()),
            })
            .collect();
        Some(reports)
    }
}

/// The per-peer families (docs/metrics.md), headers even without peers.
pub fn write_metrics(out: &mut String, peers: &[PeerReport]) {
    let labels: Vec<(String, String, String)> = peers
        .iter()
        .map(|p| {
            let name = p
                .name
                .as_ref()
                .map(|n| n.boxname.clone())
                .unwrap_or_default();
            let ip = p.mesh_ip().map(|a| a.to_string()).unwrap_or_default();
            (name, p.public_key.clone(), ip)
        })
        .collect();
    let series = |value: &dyn Fn(&PeerReport) -> Option<u64>| -> Vec<(Vec<(&str, &str)>, Num)> {
        peers
            .iter()
            .zip(&labels)
            .filter_map(|(p, (name, key, ip))| {
                let set = vec![
                    ("peer", name.as_str()),
                    ("public_key", key.as_str()),
                    ("mesh_ip", ip.as_str()),
                ];
                value(p).map(|v| (set, Num::Int(v)))
            })
            .collect()
    };
    let online = Num::Int(peers.iter().filter(|p| p.online()).count() as u64);
    write_family(
        out,
        "gondwana_peers",
        Kind::Gauge,
        "WireGuard peers on the mesh interface",
        &[(vec![], Num::Int(peers.len() as u64))],
    );
    write_family(
        out,
        "gondwana_peers_online",
        Kind::Gauge,
        "Peers with a handshake in the last 180 s",
        &[(vec![], online)],
    );
    let by_path: Vec<(Vec<(&str, &str)>, Num)> = PathKind::ALL
        .iter()
        .map(|kind| {
            let n = peers.iter().filter(|p| p.path_kind() == *kind).count();
            (vec![("path", kind.as_str())], Num::Int(n as u64))
        })
        .collect();
    write_family(
        out,
        "gondwana_peers_by_path",
        Kind::Gauge,
        "Peers by the path their traffic takes (lan, direct, relay, none)",
        &by_path,
    );
    write_family(
        out,
        "gondwana_peer_last_handshake_age_seconds",
        Kind::Gauge,
        "Seconds since the peer's last WireGuard handshake (no sample: none yet)",
        &series(&|p| p.handshake_age),
    );
    write_family(
        out,
        "gondwana_peer_last_handshake_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the peer's last WireGuard handshake (no sample: none yet)",
        &series(&|p| {
            p.peer
                .last_handshake
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        }),
    );
    write_family(
        out,
        "gondwana_peer_receive_bytes_total",
        Kind::Counter,
        "Bytes received from the peer (as the device counts them)",
        &series(&|p| Some(p.peer.rx_bytes)),
    );
    write_family(
        out,
        "gondwana_peer_transmit_bytes_total",
        Kind::Counter,
        "Bytes sent to the peer (as the device counts them)",
        &series(&|p| Some(p.peer.tx_bytes)),
    );
}

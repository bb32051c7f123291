//! The data-plane task: keeps `wg-mesh` (or the configured interface) equal
//! to what the registry and directory say, touching only what differs.
//!
//! Each pass: open or adopt the interface, make sure it has our key, port,
//! mesh address and is up, fold new directory entries into the view, plan
//! the peers (`gondwana_core::dataplane`) against what the interface has,
//! apply the plan, bind the API on the mesh address. Passes run at start,
//! whenever something the mesh depends on changed (`App::changed`), and
//! every [`PASS_EVERY`] to catch drift, a roaming hub and stale DNS.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use gondwana_core::dataplane;
use gondwana_core::directory::{self, Head, View};
use gondwana_core::keys::{PublicKey, wg_key_to_base64};
use gondwana_core::mesh;
use ipnet::Ipv4Net;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api;
use crate::config::{Config, Role};
use crate::daemon::app::App;
use crate::daemon::routes::PublicApi;
use crate::net::link::{self, Links};
use crate::net::wireguard::{
    BackendChoice, DeviceState, OpenOptions, PeerConfig, PeerState, WireGuard,
};
use crate::store::enrolment::Enrolment;

/// Re-check the interface this often even when nothing was signalled.
pub const PASS_EVERY: Duration = Duration::from_secs(10);
/// Re-resolve the hub's endpoint name when no handshake for this long
/// (WireGuard re-handshakes every 2 minutes while traffic flows; keepalive
/// keeps traffic flowing), at most every [`RESOLVE_MIN_INTERVAL`].
pub const HANDSHAKE_STALE: Duration = Duration::from_secs(180);
const RESOLVE_MIN_INTERVAL: Duration = Duration::from_secs(30);

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

/// What this box is in the mesh, from its role and enrolment.
struct Membership {
    address: Ipv4Net,
    /// Node only: the hub's key, endpoint text and enrolment.
    node: Option<NodeSide>,
}

struct NodeSide {
    hub_id: gondwana_core::NodeId,
    hub_key: PublicKey,
    hub_endpoint: String,
    own_id: gondwana_core::NodeId,
}

pub struct Reconciler {
    app: Arc<App>,
    stop: watch::Receiver<bool>,
    wireguard: Option<WireGuard>,
    links: Option<Links>,
    view: View,
    head: Head,
    hub_endpoint: Option<(SocketAddr, Instant)>,
    mesh_listener: Option<SocketAddr>,
}

/// The task: never returns while the daemon runs.
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
        interface: config.mesh.interface.clone(),
        ..Default::default()
    }
}

pub async fn run(app: Arc<App>, stop: watch::Receiver<bool>) {
    if app.config().wireguard.backend == BackendChoice::None {
        return;
    }
    let mut r = Reconciler {
        app: app.clone(),
        stop,
        wireguard: None,
        links: None,
        view: View::default(),
        head: Head::default(),
        hub_endpoint: None,
        mesh_listener: None,
    };
    loop {
        let outcome = r.pass().await;
        r.record(outcome);
        tokio::select! {
            _ = app.dataplane_kick.notified() => {
                // Let a burst of changes (an enrolment storm) settle.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ = tokio::time::sleep(PASS_EVERY) => {}
        }
    }
}

impl Reconciler {
    fn record(&mut self, outcome: anyhow::Result<Option<DataplaneStatus>>) {
        let mut status = match outcome {
            Ok(Some(s)) => s,
            Ok(None) => DataplaneStatus {
                state: "waiting",
                interface: self.app.config().mesh.interface.clone(),
                ..Default::default()
            },
            Err(e) => {
                let message = format!("{e:#}");
                let mut s = self.app.dataplane_status();
                if s.error.as_deref() != Some(message.as_str()) {
                    error!("data plane: {message}");
                }
                s.state = "down";
                s.error = Some(message);
                s
            }
        };
        status.mesh_listener = self.mesh_listener;
        status.last_pass_unix = Some(crate::admin::ops::now_unix());
        self.app.set_dataplane_status(status);
    }

    /// One pass; `Ok(None)` when there is no mesh yet (a node before its
    /// enrolment).
    async fn pass(&mut self) -> anyhow::Result<Option<DataplaneStatus>> {
        let config = self.app.config();
        let Some(member) = self.membership(&config)? else {
            return Ok(None);
        };
        self.follow_directory()?;
        if let Some(fw) = &self.app.grants.firewall {
            let store = self.app.store.clone();
            if fw.follow_subnet(
                member.address.trunc(),
                &store,
                crate::admin::ops::now_unix(),
            )? {
                info!("firewall: now guarding {}", member.address.trunc());
            }
        }

        let stored = {
            let store = self.app.store.clone();
            tokio::task::spawn_blocking(move || store.require_identity()).await??
        };
        let iface = config.mesh.interface.clone();
        if self.wireguard.is_none() {
            let wg = WireGuard::open(&iface, config.wireguard.backend, &OpenOptions::default())
                .await
                .with_context(|| format!("opening WireGuard interface {iface}"))?;
            info!(
                "data plane: {} ({} backend)",
                wg.interface(),
                wg.backend().as_str()
            );
            self.wireguard = Some(wg);
        }
        let Some(wg) = self.wireguard.as_ref() else {
            return Ok(None);
        };
        let mut device = wg.get().await?;
        let own_key = stored.wireguard.public_key();
        if device.public_key != Some(own_key) || device.listen_port != config.mesh.wireguard_port {
            wg.configure(&stored.wireguard.to_bytes(), config.mesh.wireguard_port)
                .await?;
            device = wg.get().await?;
        }
        if self.links.is_none() {
            self.links = Some(Links::new()?);
        }
        if let Some(links) = &self.links {
            links.ensure_address(&iface, member.address).await?;
            links.set_up(&iface).await?;
        }
        if config.role == Role::Hub {
            // Node-to-node traffic hairpins through the hub.
            link::enable_ipv4_forwarding()?;
        }

        // Seen in our directory, or stored after the hub's public listener
        // answered (daemon/revocation.rs): no peers from now on.
        let revoked = member.node.as_ref().is_some_and(|n| {
            self.view.revoked.contains_key(&n.own_id) || self.app.revocation().is_some()
        });
        let mut key_conflicts = Vec::new();
        let desired = match &member.node {
            None => {
                let identity = self.app.identity();
                let hub = dataplane::hub_peers(&self.view, &identity.node_id, &own_key);
                report_conflicts(&self.app.dataplane_status().key_conflicts, &hub.conflicts);
                key_conflicts = hub.conflicts;
                hub.peers
            }
            Some(_) if revoked => Vec::new(),
            Some(node) => {
                let hub_key = self
                    .view
                    .nodes
                    .get(&node.hub_id)
                    .map(|h| h.wireguard_key)
                    .unwrap_or(node.hub_key);
                let endpoint = resolve_hub(
                    &mut self.hub_endpoint,
                    &node.hub_endpoint,
                    &device,
                    &hub_key,
                )
                .await;
                dataplane::node_peers(hub_key, member.address, endpoint)
            }
        };
        let seen: Vec<PeerConfig> = device.peers.iter().map(|p| p.config.clone()).collect();
        let mut plan = dataplane::plan_peers(&desired, &seen);
        // A peer the device also gives allowed IPs outside our IPv4 model
        // (an operator's IPv6 `wg set`) differs too: re-setting it replaces them.
        for want in &desired {
            let foreign = device
                .peers
                .iter()
                .any(|p| p.config.public_key == want.public_key && !p.satisfies(want));
            if foreign && !plan.upsert.iter().any(|u| u.public_key == want.public_key) {
                plan.upsert.push(want.clone());
            }
        }
        if !plan.is_empty() {
            wg.apply_peers(&plan.upsert, &plan.remove).await?;
            if plan.remove.len() + plan.upsert.len() <= 8 {
                for p in &plan.upsert {
                    info!("data plane: peer {} set", wg_key_to_base64(&p.public_key));
                }
                for k in &plan.remove {
                    info!("data plane: peer {} removed", wg_key_to_base64(k));
                }
            } else {
                info!(
                    "data plane: {} peers set, {} removed",
                    plan.upsert.len(),
                    plan.remove.len()
                );
            }
            device = wg.get().await?;
        }
        bind_mesh_listener(
            &mut self.mesh_listener,
            &self.app,
            &self.stop,
            &config,
            member.address.addr(),
        )
        .await;

        let now = SystemTime::now();
        let fresh = |p: &&PeerState| {
            p.last_handshake
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age < HANDSHAKE_STALE)
        };
        let hub = member
            .node
            .as_ref()
            .and_then(|_| device.peers.first())
            .map(peer_json);
        Ok(Some(DataplaneStatus {
            state: if revoked { "revoked" } else { "up" },
            backend: Some(wg.backend().as_str()),
            interface: iface,
            address: Some(member.address),
            listen_port: Some(device.listen_port),
            public_key: device.public_key,
            peers: device.peers.len(),
            peers_with_handshake: device.peers.iter().filter(fresh).count(),
            hub,
            mesh_listener: None,
            last_pass_unix: None,
            error: None,
            key_conflicts,
        }))
    }

    fn membership(&self, config: &Config) -> anyhow::Result<Option<Membership>> {
        match config.role {
            Role::Hub => {
                let subnet = config.mesh.subnet;
                let ip = mesh::hub_address(&subnet);
                Ok(Some(Membership {
                    address: Ipv4Net::new(ip, subnet.prefix_len())?,
                    node: None,
                }))
            }
            Role::Node => {
                let Some(Enrolment { grant, .. }) = self.app.store.enrolment()? else {
                    return Ok(None);
                };
                Ok(Some(Membership {
                    address: Ipv4Net::new(grant.mesh_ip, grant.subnet.prefix_len())?,
                    node: Some(NodeSide {
                        hub_id: grant.hub_node_id.clone(),
                        hub_key: grant.hub_wireguard_key,
                        hub_endpoint: grant.hub_endpoint.to_string(),
                        own_id: grant.node_id.clone(),
                    }),
                }))
            }
        }
    }

    /// Folds directory entries past our head into the view (they were
    /// verified when stored; verified again here, cheaply, one at a time).
    fn follow_directory(&mut self) -> anyhow::Result<()> {
        let authority = match self.app.hub.as_ref() {
            Some(hub) => hub.signing.public_key(),
            None => match self.app.store.enrolment()? {
                Some(e) => e.hub_key,
                None => return Ok(()),
            },
        };
        loop {
            let (entries, _) = self.app.store.directory_page(self.head.len, 4096)?;
            if entries.is_empty() {
                return Ok(());
            }
            for raw in &entries {
                let (entry, next) = directory::verify_next(&self.head, &authority, raw)
                    .context("stored directory")?;
                self.view.apply(&entry.record);
                self.head = next;
            }
        }
    }
}

/// Logs each key conflict once, when it appears (passes run every few
/// seconds; status shows the current ones).
fn report_conflicts(before: &[dataplane::KeyConflict], now: &[dataplane::KeyConflict]) {
    for c in now.iter().filter(|c| !before.contains(c)) {
        let ids: Vec<String> = c.node_ids.iter().map(|id| id.to_string()).collect();
        warn!(
            "data plane: WireGuard key {} is named by {} live records ({}): no peer for it until all but one are revoked",
            wg_key_to_base64(&c.public_key),
            ids.len(),
            ids.join(", ")
        );
    }
}

/// The hub's endpoint, resolved once and again when handshakes stop.
async fn resolve_hub(
    cache: &mut Option<(SocketAddr, Instant)>,
    text: &str,
    device: &DeviceState,
    hub_key: &PublicKey,
) -> Option<SocketAddr> {
    let stale = device
        .peers
        .iter()
        .find(|p| &p.config.public_key == hub_key)
        .and_then(|p| p.last_handshake)
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_none_or(|age| age > HANDSHAKE_STALE);
    let due = match cache {
        None => true,
        Some((_, at)) => stale && at.elapsed() > RESOLVE_MIN_INTERVAL,
    };
    if due {
        match tokio::net::lookup_host(text).await {
            Ok(addrs) => {
                let mut addrs: Vec<SocketAddr> = addrs.collect();
                // IPv4 first: the underlay of most boxes.
                addrs.sort_by_key(|a| !a.is_ipv4());
                match addrs.first() {
                    Some(a) => *cache = Some((*a, Instant::now())),
                    None => warn!("data plane: {text} resolved to nothing"),
                }
            }
            Err(e) => warn!("data plane: resolving hub endpoint {text}: {e}"),
        }
    }
    cache.map(|(a, _)| a)
}

/// The node API on the mesh address, once that address exists.
async fn bind_mesh_listener(
    bound: &mut Option<SocketAddr>,
    app: &Arc<App>,
    stop: &watch::Receiver<bool>,
    config: &Config,
    ip: Ipv4Addr,
) {
    let addr = SocketAddr::from((ip, config.mesh.api_port));
    if *bound == Some(addr) {
        return;
    }
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            info!("API on http://{addr} (mesh)");
            let limits = api::Limits {
                max_body_bytes: config.api.max_body_bytes,
                ..api::Limits::default()
            };
            tokio::spawn(api::serve(
                listener,
                Arc::new(PublicApi(app.clone())),
                limits,
                stop.clone(),
            ));
            *bound = Some(addr);
        }
        Err(e) => error!("data plane: binding the API on {addr}: {e}"),
    }
}

fn peer_json(p: &PeerState) -> Value {
    json!({
        "public_key": wg_key_to_base64(&p.config.public_key),
        "endpoint": p.config.endpoint.map(|e| e.to_string()),
        "allowed_ips": p.config.allowed_ips.iter().map(|n| n.to_string())
            .chain(p.foreign_allowed_ips.iter().cloned())
            .collect::<Vec<_>>(),
        "last_handshake_unix": p.last_handshake
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        "rx_bytes": p.rx_bytes,
        "tx_bytes": p.tx_bytes,
    })
}

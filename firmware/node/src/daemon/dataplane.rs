//! The data-plane task: keeps `wg-mesh` (or the configured interface) equal
//! to what the registry and directory say, touching only what differs.
//!
//! A thin driver around `gondwana_core::reconcile::Reconciler`, which makes
//! every decision (membership, revoked ⇒ no peers, which hub key wins, when
//! to re-resolve the hub's endpoint, handshake freshness, when to pass
//! again). Each pass here: read the enrolment and feed new directory
//! entries, rebuild the firewall for the granted subnet, open or adopt the
//! interface, give it our mesh address and bring it up, read the device
//! once, hand it to the reconciler and execute what it answers (configure
//! the key, resolve the hub's name, apply the one peer diff), bind the API
//! on the mesh address. Passes run at start, whenever something the mesh
//! depends on changed (`App::changed`), and every `gondwana_core::reconcile::PASS_EVERY`.
//!
//! On a node each pass also steps the path machine (`daemon/paths.rs`)
//! on the device it read, and plans the other nodes' peers with the
//! endpoints it chose; a new candidate snapshot or a probe's timeout asks
//! for a pass.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use gondwana_core::keys::wg_key_to_base64;
use gondwana_core::reconcile::{Membership, Output, PassInput, Reconciler};
use gondwana_core::{dataplane, mesh};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::config::{BackendChoice, Config, Role};
use crate::daemon::app::App;
use crate::daemon::dataplane_status::DataplaneStatus;
use crate::daemon::paths::PathDriver;
use crate::net::link::Links;
use crate::net::wireguard::{OpenOptions, PeerDiff, PeerOp, PeerState, WireGuard};

pub struct Driver {
    app: Arc<App>,
    reconciler: Reconciler,
    paths: PathDriver,
    /// Shared with status and `/metrics`, which read it when asked.
    wireguard: Option<Arc<WireGuard>>,
    links: Option<Links>,
    mesh_listener: Option<SocketAddr>,
    serve_mesh_api: ServeMeshApi,
}

/// The task: never returns while the daemon runs.
pub async fn run(app: Arc<App>, serve_mesh_api: ServeMeshApi) {
    if app.config().wireguard.backend == BackendChoice::None {
        return;
    }
    let mut d = Driver {
        app: app.clone(),
        reconciler: Reconciler::new(Instant::now()),
        paths: PathDriver::new(app.candidates.subscribe()),
        wireguard: None,
        links: None,
        mesh_listener: None,
        serve_mesh_api,
    };
    loop {
        if d.reconciler.handle_timeout(Instant::now()) {
            let outcome = d.pass().await;
            d.record(outcome);
        }
        // A probe's timeout is a kick: the pass after it steps the machine.
        let pass_at = d.reconciler.poll_timeout();
        let probe_at = d.paths.poll_timeout().filter(|t| *t < pass_at);
        let deadline = tokio::time::Instant::from_std(probe_at.unwrap_or(pass_at));
        tokio::select! {
            _ = app.dataplane_kick.notified() => d.reconciler.handle_kick(Instant::now()),
            _ = d.paths.snapshot_changed() => d.reconciler.handle_kick(Instant::now()),
            _ = tokio::time::sleep_until(deadline) => {
                if probe_at.is_some() {
                    d.reconciler.handle_kick(Instant::now());
                }
            }
        }
    }
}

impl Driver {
    fn record(&mut self, outcome: anyhow::Result<Option<DataplaneStatus>>) {
        let mut status = match outcome {
            Ok(Some(s)) => s,
            Ok(None) => DataplaneStatus {
                state: "waiting",
                interface: self.app.config().mesh.interface.to_string(),
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
        status.last_pass_unix = Some(crate::clock::now_unix());
        self.app.set_dataplane_status(status);
    }

    /// One pass; `Ok(None)` when there is no mesh yet (a node before its
    /// enrolment).
    async fn pass(&mut self) -> anyhow::Result<Option<DataplaneStatus>> {
        let config = self.app.config();
        let Some(membership) = self.membership(&config)? else {
            return Ok(None);
        };
        self.follow_directory()?;
        if let Some(fw) = &self.app.grants.firewall {
            let subnet = membership.subnet();
            let now = crate::clock::now_unix();
            if crate::service::grants::follow_subnet(fw, subnet, &self.app.store, now)? {
                info!("firewall: now guarding {subnet}");
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
            let wg = Arc::new(wg);
            self.app.live.set_device(wg.clone());
            self.wireguard = Some(wg);
        }
        let Some(wg) = self.wireguard.clone() else {
            return Ok(None);
        };
        if self.links.is_none() {
            self.links = Some(Links::new()?);
        }
        if let Some(links) = &self.links {
            links.ensure_address(&iface, membership.address).await?;
            links.set_up(&iface).await?;
        }

        // The hub listens on the configured port, a node above it by its
        // host number (docs/paths.md, "Listen ports").
        let listen_port = match membership.node {
            Some(_) => mesh::node_listen_port(
                config.mesh.wireguard_port,
                &membership.subnet(),
                membership.address.addr(),
            ),
            None => config.mesh.wireguard_port,
        };
        let before = wg.get().await?;
        let (endpoints, new_sessions) = match &membership.node {
            Some(node) => {
                let relay_host = self.reconciler.hub_endpoint().map(|a| a.ip());
                let step = self.paths.step(
                    &self.app.store,
                    node,
                    self.reconciler.view(),
                    &before,
                    relay_host,
                    &iface,
                );
                if let Some(want) = step.want_relay {
                    self.app.want_relay.send_replace(want);
                }
                self.app.live.set_paths(step.paths);
                (step.endpoints, step.new_sessions)
            }
            None => Default::default(),
        };
        let input = PassInput {
            own_node_id: self.app.identity().node_id.clone(),
            own_wireguard_key: stored.wireguard.public_key(),
            listen_port,
            revocation_stored: self.app.revocation().is_some(),
            membership,
            endpoints,
            max_peers: config.mesh.max_peers,
            new_sessions,
        };
        self.reconciler
            .handle_device(&input, before.clone(), Instant::now(), SystemTime::now());
        let mut changed = false;
        while let Some(output) = self.reconciler.poll_output() {
            match output {
                Output::Configure => {
                    wg.configure(&stored.wireguard.to_bytes(), listen_port)
                        .await?;
                    changed = true;
                }
                Output::Resolve(text) => {
                    let addrs = match tokio::net::lookup_host(text.as_str()).await {
                        Ok(addrs) => Some(addrs.collect()),
                        Err(e) => {
                            warn!("data plane: resolving hub endpoint {text}: {e}");
                            None
                        }
                    };
                    self.reconciler
                        .handle_resolved(&text, addrs, Instant::now());
                }
                Output::ResolvedToNothing(text) => {
                    warn!("data plane: {text} resolved to nothing");
                }
                Output::KeyConflictAppeared(c) => report_conflict(&c),
                Output::PeersOmitted(0) => {
                    info!("data plane: every other node has a peer again")
                }
                Output::PeersOmitted(n) => warn!(
                    "data plane: mesh.max_peers = {} leaves {n} other nodes without a peer",
                    config.mesh.max_peers
                ),
                Output::ApplyPeers(diff) => {
                    wg.apply(&diff).await?;
                    log_peer_changes(&diff);
                    if input.membership.node.is_some() {
                        poke_new_endpoints(&diff).await;
                    }
                    changed = true;
                }
            }
        }
        bind_mesh_listener(
            &mut self.mesh_listener,
            &self.serve_mesh_api,
            &config,
            input.membership.address.addr(),
        )
        .await;

        // For status only (nothing is planned from it): what the device
        // holds now.
        let device = if changed { wg.get().await? } else { before };
        let summary = self.reconciler.summary(&device, SystemTime::now());
        Ok(Some(DataplaneStatus {
            state: if summary.revoked { "revoked" } else { "up" },
            backend: Some(wg.backend().as_str()),
            interface: iface.to_string(),
            address: Some(input.membership.address),
            listen_port: Some(device.listen_port),
            public_key: device.public_key,
            peers: summary.peers,
            peers_with_handshake: summary.peers_with_handshake,
            peers_omitted: summary.peers_omitted,
            hub: summary.hub.map(peer_json),
            mesh_listener: None,
            last_pass_unix: None,
            error: None,
            key_conflicts: summary.key_conflicts.to_vec(),
        }))
    }

    fn membership(&self, config: &Config) -> anyhow::Result<Option<Membership>> {
        Ok(match config.role {
            Role::Hub => Some(Membership::hub(config.mesh.subnet)),
            Role::Node => self
                .app
                .store
                .enrolment()?
                .map(|e| Membership::node(&e.grant)),
        })
    }

    /// Feeds directory entries past the reconciler's head into its view
    /// (they were verified when stored; verified again there, cheaply,
    /// one at a time).
    fn follow_directory(&mut self) -> anyhow::Result<()> {
        let authority = match self.app.hub.as_ref() {
            Some(hub) => hub.signing.public_key(),
            None => match self.app.store.enrolment()? {
                Some(e) => e.hub_key,
                None => return Ok(()),
            },
        };
        let start = self.reconciler.head().len;
        loop {
            let from = self.reconciler.head().len;
            let (entries, _) = self.app.store.directory_page(from, 4096)?;
            if entries.is_empty() {
                if from != start || start == 0 {
                    // Names for status and metrics follow the directory.
                    self.app
                        .live
                        .set_names(crate::daemon::peers::names_from(self.reconciler.view()));
                }
                return Ok(());
            }
            for raw in &entries {
                self.reconciler
                    .handle_directory_entry(&authority, raw)
                    .context("stored directory")?;
            }
        }
    }
}

/// Logs a key conflict when it appears (passes run every few seconds;
/// status shows the current ones).
fn report_conflict(c: &dataplane::KeyConflict) {
    let ids: Vec<String> = c.node_ids.iter().map(|id| id.to_string()).collect();
    warn!(
        "data plane: WireGuard key {} is named by {} live records ({}): no peer for it until all but one are revoked",
        wg_key_to_base64(&c.public_key),
        ids.len(),
        ids.join(", ")
    );
}

fn log_peer_changes(diff: &PeerDiff) {
    if diff.ops.len() > 8 {
        let c = diff.changes();
        info!(
            "data plane: {} peers set, {} removed",
            c.added + c.updated,
            c.removed
        );
        return;
    }
    for op in &diff.ops {
        match op {
            PeerOp::Add(p) | PeerOp::Update(p) => {
                info!("data plane: peer {} set", wg_key_to_base64(&p.public_key))
            }
            PeerOp::Remove(k) => {
                info!("data plane: peer {} removed", wg_key_to_base64(k))
            }
        }
    }
}

/// Starts a handshake with every peer that just got an endpoint: one
/// empty UDP datagram to its mesh address (the discard port; its firewall
/// drops it). A probe must not wait for traffic: boringtun starts a
/// handshake only for a packet to send, and the kernel sends a keepalive
/// when a peer is added, not when only its endpoint changes. Both sides
/// of a pair do this on the same snapshot, so their handshakes cross and
/// open cone NATs (docs/paths.md).
async fn poke_new_endpoints(diff: &PeerDiff) {
    let targets: Vec<Ipv4Addr> = diff
        .ops
        .iter()
        .filter_map(|op| match op {
            PeerOp::Add(p) | PeerOp::Update(p) if p.endpoint.is_some() => Some(p),
            _ => None,
        })
        .flat_map(|p| p.allowed_ips.iter())
        .filter(|net| net.prefix_len() == 32)
        .map(|net| net.addr())
        .collect();
    if targets.is_empty() {
        return;
    }
    let socket = match tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await {
        Ok(s) => s,
        Err(e) => {
            warn!("data plane: a socket to start handshakes: {e}");
            return;
        }
    };
    for ip in targets {
        // Best effort: a failure only means the handshake waits for
        // traffic or the keepalive.
        let _ = socket.send_to(&[], (ip, DISCARD_PORT)).await;
    }
}

/// RFC 863's discard port: nothing on a box listens there.
const DISCARD_PORT: u16 = 9;

/// Serves the node API on a listener the data plane bound on the mesh
/// address (given by the daemon, which owns the routes).
pub type ServeMeshApi = Box<dyn Fn(TcpListener) + Send + Sync>;

/// The node API on the mesh address, once that address exists.
async fn bind_mesh_listener(
    bound: &mut Option<SocketAddr>,
    serve: &ServeMeshApi,
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
            serve(listener);
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

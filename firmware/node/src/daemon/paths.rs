//! The path driver: feeds `gondwana_core::paths::PathMachine` from the
//! data-plane task, which owns the device, and hands the endpoints it
//! chose to the same pass (docs/paths.md, "The path machine").
//!
//! Each node pass, before the peers are planned: the verified snapshot
//! from `App::candidates` (when a new one arrived), this box's own subnets
//! (every interface but the mesh one), the hub's host as a relay (its
//! endpoint as the reconciler last resolved it; a pair a node relays uses
//! that node's observed IP from the snapshot), the device's peers as
//! read for the pass, then the probes' timeouts. What comes out: the
//! endpoint of each other node's peer (into `PassInput::endpoints`), the
//! peers to ask the relay for (`App::want_relay`, which the candidates
//! task reports), and each peer's path for status. A probe's timeout, or a
//! new snapshot, asks the data-plane task for a pass
//! ([`PathDriver::poll_timeout`], [`PathDriver::snapshot_changed`]).
//!
//! The endpoints that had a fresh handshake are kept on the state
//! partition (`store/path_endpoints.rs`, written when one changes) and
//! given to the machine when it starts: a node started while the hub is
//! unreachable probes its last direct paths at once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use gondwana_core::candidates::Snapshot;
use gondwana_core::directory::View;
use gondwana_core::mesh::Ipv4Net;
use gondwana_core::ordered::{map_from, sorted_unique};
use gondwana_core::paths::{self, Event, PathMachine, PeerPath};
use gondwana_core::peer_diff::DeviceState;
use gondwana_core::reconcile::NodeSide;
use gondwana_core::{InterfaceName, NodeId};
use tokio::sync::watch;

use crate::store::StateStore;

type SnapshotWatch = watch::Receiver<Option<Arc<Snapshot>>>;

pub struct PathDriver {
    machine: Option<(NodeSide, PathMachine)>,
    snapshots: SnapshotWatch,
    /// The snapshot last fed in (compared by pointer: each new one is a
    /// new `Arc`).
    fed: Option<Arc<Snapshot>>,
    /// The last good endpoints as stored.
    stored: BTreeMap<NodeId, SocketAddr>,
}

/// What a node pass takes from the machine.
pub struct PathStep {
    pub endpoints: BTreeMap<NodeId, SocketAddr>,
    /// `Some` when the peers to ask the relay for changed.
    pub want_relay: Option<Vec<NodeId>>,
    /// Peers this pass re-adds, so their session restarts.
    pub new_sessions: BTreeSet<NodeId>,
    pub paths: BTreeMap<NodeId, PeerPath>,
}

impl PathDriver {
    pub fn new(snapshots: SnapshotWatch) -> PathDriver {
        PathDriver {
            machine: None,
            snapshots,
            fed: None,
            stored: BTreeMap::new(),
        }
    }

    /// When a probe times out (`None`: nothing being probed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.machine.as_ref().and_then(|(_, m)| m.poll_timeout())
    }

    /// Resolves when a new snapshot is published (cancel-safe; never, once
    /// the sender is gone).
    pub async fn snapshot_changed(&mut self) {
        if self.snapshots.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// One node pass; see the module doc.
    pub fn step(
        &mut self,
        store: &StateStore,
        node: &NodeSide,
        view: &View,
        device: &DeviceState,
        relay_host: Option<IpAddr>,
        mesh_interface: &InterfaceName,
    ) -> PathStep {
        let (now, wall) = (Instant::now(), SystemTime::now());
        // A new enrolment (another id or hub) starts over.
        if self
            .machine
            .as_ref()
            .is_none_or(|(side, _)| side.own_id != node.own_id || side.hub_id != node.hub_id)
        {
            self.stored = store.path_endpoints().unwrap_or_else(|e| {
                warn!("paths: reading the stored endpoints: {e}");
                BTreeMap::new()
            });
            let machine =
                PathMachine::new(node.own_id.clone(), node.hub_id.clone(), &self.stored, wall);
            self.machine = Some((node.clone(), machine));
            self.fed = None;
        }
        let snapshot = self.snapshots.borrow_and_update().clone();
        let Some((_, machine)) = self.machine.as_mut() else {
            return PathStep {
                endpoints: BTreeMap::new(),
                want_relay: None,
                new_sessions: BTreeSet::new(),
                paths: BTreeMap::new(),
            };
        };
        machine.handle_lan_subnets(own_subnets(mesh_interface), now, wall);
        machine.handle_relay_host(relay_host);
        // The device first: a session the other side already opened (its
        // probe raced ours) is adopted before a new snapshot starts a probe
        // that would replace it.
        machine.handle_device(&paths::observe(view, device), now, wall);
        if let Some(s) = &snapshot
            && !self.fed.as_ref().is_some_and(|f| Arc::ptr_eq(f, s))
        {
            machine.handle_snapshot(s, now, wall);
            self.fed = snapshot.clone();
        }
        machine.handle_timeout(now, wall);
        let mut want_relay = None;
        let mut new_sessions = BTreeSet::new();
        while let Some(event) = machine.poll_event() {
            match event {
                Event::Path { peer, kind } => {
                    let name = view
                        .nodes
                        .get(&peer)
                        .map(|n| n.boxname.to_string())
                        .unwrap_or_else(|| peer.to_string());
                    info!("paths: {name} is now {}", kind.as_str());
                }
                Event::WantRelay(peers) => want_relay = Some(peers),
                Event::NewSession(peer) => {
                    new_sessions.insert(peer);
                }
                // The endpoints go into this very pass.
                Event::Endpoint { .. } => {}
            }
        }
        let paths = map_from(
            view.nodes
                .keys()
                .filter_map(|id| machine.status(id).map(|p| (id.clone(), p))),
        );
        let step = PathStep {
            endpoints: machine.endpoints(),
            want_relay,
            new_sessions,
            paths,
        };
        let good = machine.good_endpoints();
        self.keep_good(store, view, good);
        step
    }

    /// Stores the endpoints with a fresh handshake when one changed (a
    /// stale one stays: it is the last that worked), for live nodes only.
    fn keep_good(&mut self, store: &StateStore, view: &View, good: BTreeMap<NodeId, SocketAddr>) {
        let mut next = self.stored.clone();
        next.extend(good);
        next.retain(|id, _| view.nodes.contains_key(id));
        if next == self.stored {
            return;
        }
        match store.save_path_endpoints(&next) {
            Ok(()) => self.stored = next,
            Err(e) => warn!("paths: storing the endpoints: {e}"),
        }
    }
}

/// This box's own IPv4 addresses with their prefixes, but the mesh's:
/// what "same LAN" means (and which candidates are ourselves).
fn own_subnets(mesh_interface: &InterfaceName) -> Vec<Ipv4Net> {
    match crate::net::host_addrs::host_subnets(mesh_interface) {
        // Host bits kept: the machine skips candidates at our own
        // addresses.
        Ok(nets) => sorted_unique(nets),
        Err(e) => {
            warn!("paths: listing this host's addresses: {e}");
            Vec::new()
        }
    }
}

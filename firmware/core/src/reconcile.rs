//! The data plane's decisions, sans I/O: which peers the mesh interface
//! should have (from the enrolment grant, the directory and the config),
//! against what the device reports; when to re-resolve the hub's endpoint;
//! whether a handshake is fresh; when the next pass is due. The daemon's
//! task (`node`'s `daemon/dataplane.rs`) reads the store and the device,
//! feeds them in, and executes what comes out.
//!
//! # Call order
//!
//! A [`Reconciler`] is created with [`Reconciler::new`]`(now)`. Then, in a
//! loop:
//!
//! 1. [`Reconciler::handle_kick`]`(now)` whenever something the mesh
//!    depends on changed; [`Reconciler::poll_timeout`] is when to wake up.
//! 2. [`Reconciler::handle_timeout`]`(now)`: `true` when a pass is due.
//!    For a pass, the driver:
//!    - feeds directory entries past [`Reconciler::head`] through
//!      [`Reconciler::handle_directory_entry`];
//!    - reads the device and calls [`Reconciler::handle_device`] once;
//!    - drains [`Reconciler::poll_output`] until `None`, executing each
//!      [`Output`] in order. [`Output::Resolve`] must be answered with
//!      [`Reconciler::handle_resolved`] before polling again: the peer
//!      diff that follows depends on it.
//!    - reports with [`Reconciler::summary`] on the device as it is after.
//!
//! Time is an argument: `now` (monotonic) paces passes and re-resolution,
//! `wall` (wall clock) is compared with the device's handshake times. No
//! randomness.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use ipnet::Ipv4Net;

use crate::NodeId;
use crate::dataplane::{self, HubPeer, KeyConflict, PeerSpec};
use crate::directory::{self, DirectoryError, Head, View};
use crate::enrol::EnrolGrant;
use crate::keys::PublicKey;
use crate::mesh;
use crate::ordered::set_from;
use crate::peer_diff::{DevicePeer, DeviceState, PeerDiff, PeerOp};

/// A pass runs at least this often, to catch drift, a roaming hub and
/// stale DNS.
pub const PASS_EVERY: Duration = Duration::from_secs(10);
/// After a kick, wait this long so a burst of changes (an enrolment
/// storm) settles into one pass.
pub const SETTLE: Duration = Duration::from_millis(100);
/// A handshake older than this is not fresh. WireGuard re-handshakes
/// every 2 minutes while traffic flows, and the node's keepalive keeps
/// traffic flowing: older means the hub is not answering.
pub const HANDSHAKE_STALE: Duration = Duration::from_secs(180);
/// The hub's endpoint name is re-resolved at most this often.
pub const RESOLVE_MIN_INTERVAL: Duration = Duration::from_secs(30);

/// What this box is in the mesh, from its role and enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Our mesh address, with the mesh's prefix length.
    pub address: Ipv4Net,
    /// Node only.
    pub node: Option<NodeSide>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSide {
    pub own_id: NodeId,
    pub hub_id: NodeId,
    /// The hub's WireGuard key as the grant gave it (the directory's, when
    /// it names the hub, wins: the hub may have rotated it since).
    pub hub_key: PublicKey,
    /// `host:port`, a DNS name allowed.
    pub hub_endpoint: String,
}

impl Membership {
    /// The hub: the first address of the configured subnet.
    pub fn hub(subnet: Ipv4Net) -> Membership {
        let address =
            Ipv4Net::new(mesh::hub_address(&subnet), subnet.prefix_len()).unwrap_or(subnet);
        Membership {
            address,
            node: None,
        }
    }

    /// A node, from the grant its enrolment brought.
    pub fn node(grant: &EnrolGrant) -> Membership {
        let address =
            Ipv4Net::new(grant.mesh_ip, grant.subnet.prefix_len()).unwrap_or(grant.subnet);
        Membership {
            address,
            node: Some(NodeSide {
                own_id: grant.node_id.clone(),
                hub_id: grant.hub_node_id.clone(),
                hub_key: grant.hub_wireguard_key,
                hub_endpoint: grant.hub_endpoint.to_string(),
            }),
        }
    }

    /// The subnet the firewall guards and the interface routes.
    pub fn subnet(&self) -> Ipv4Net {
        self.address.trunc()
    }
}

/// What the driver read for a pass, besides the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassInput {
    pub membership: Membership,
    /// This box's node id (the hub leaves itself out of its peers).
    pub own_node_id: NodeId,
    pub own_wireguard_key: PublicKey,
    pub listen_port: u16,
    /// Node: a revocation is stored (the hub pushed it, or its public
    /// listener answered it) even if our directory has not seen it yet.
    pub revocation_stored: bool,
    /// Node: the endpoint of each other node's peer, as the path machine
    /// (`paths::PathMachine::endpoints`) chose it; a node missing here gets
    /// a peer without endpoint (it learns it from the other's handshake).
    pub endpoints: BTreeMap<NodeId, SocketAddr>,
    /// Node: at most this many peers, the hub included (`mesh.max_peers`).
    pub max_peers: usize,
    /// Node: other nodes whose peer this pass removes and adds again, so
    /// its session restarts (`paths::Event::NewSession`).
    pub new_sessions: BTreeSet<NodeId>,
}

/// What the driver does next, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Set the device's private key and listen port: it has others.
    Configure,
    /// Resolve this `host:port`; answer with [`Reconciler::handle_resolved`].
    Resolve(String),
    /// The name resolved to no address (worth a log line).
    ResolvedToNothing(String),
    /// Execute these peer operations, in order.
    ApplyPeers(PeerDiff),
    /// A key conflict appeared this pass (logged once; the summary has
    /// the current ones).
    KeyConflictAppeared(KeyConflict),
    /// Node: `mesh.max_peers` leaves this many other nodes out, a number
    /// that changed since the last pass (logged once; 0 when it ends).
    PeersOmitted(usize),
}

/// Where the mesh stands after a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<'a> {
    pub revoked: bool,
    pub peers: usize,
    pub peers_with_handshake: usize,
    /// Node: its peer the hub, as the device has it.
    pub hub: Option<&'a DevicePeer>,
    pub key_conflicts: &'a [KeyConflict],
    /// Node: other nodes `mesh.max_peers` left out.
    pub peers_omitted: usize,
}

/// A pass waiting for the hub's endpoint to resolve.
#[derive(Debug)]
struct Pending {
    device: DeviceState,
    hub_key: PublicKey,
    address: Ipv4Net,
    own_id: NodeId,
    own_wireguard_key: PublicKey,
    endpoints: BTreeMap<NodeId, SocketAddr>,
    max_peers: usize,
    new_sessions: BTreeSet<NodeId>,
    /// Keys with a handshake younger than [`HANDSHAKE_STALE`].
    fresh: BTreeSet<PublicKey>,
}

#[derive(Debug)]
pub struct Reconciler {
    view: View,
    head: Head,
    /// The hub's endpoint as last resolved, and when.
    hub_endpoint: Option<(SocketAddr, Instant)>,
    next_pass: Instant,
    outputs: VecDeque<Output>,
    pending: Option<Pending>,
    /// Hub: the key conflicts of the last pass.
    conflicts: Vec<KeyConflict>,
    /// Node: revoked as of the last pass.
    revoked: bool,
    /// Node: the hub's key as of the last pass.
    hub_key: Option<PublicKey>,
    /// Node: other nodes left out by `max_peers` in the last pass.
    omitted: usize,
}

impl Reconciler {
    /// The first pass is due at once.
    pub fn new(now: Instant) -> Reconciler {
        Reconciler {
            view: View::default(),
            head: Head::default(),
            hub_endpoint: None,
            next_pass: now,
            outputs: VecDeque::new(),
            pending: None,
            conflicts: Vec::new(),
            revoked: false,
            hub_key: None,
            omitted: 0,
        }
    }

    // ---- getters ----------------------------------------------------

    /// How much of the directory has been folded in.
    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    /// Node: the hub's endpoint as last resolved (in this version also
    /// the relay's host).
    pub fn hub_endpoint(&self) -> Option<SocketAddr> {
        self.hub_endpoint.map(|(a, _)| a)
    }

    /// When the next pass is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_pass
    }

    // ---- inputs -----------------------------------------------------

    /// Something the mesh depends on changed: pass soon.
    pub fn handle_kick(&mut self, now: Instant) {
        self.next_pass = self.next_pass.min(now + SETTLE);
    }

    /// `true` when a pass is due now (and the one after is scheduled).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if now < self.next_pass {
            return false;
        }
        self.next_pass = now + PASS_EVERY;
        true
    }

    /// Folds the next directory entry, signed by `authority` (the hub's
    /// key), into the view. A bad entry changes nothing.
    pub fn handle_directory_entry(
        &mut self,
        authority: &PublicKey,
        raw: &[u8],
    ) -> Result<(), DirectoryError> {
        let (entry, next) = directory::verify_next(&self.head, authority, raw)?;
        self.view.apply(&entry.record);
        self.head = next;
        Ok(())
    }

    /// Starts a pass on the device as it was just read. The outputs that
    /// follow take it to the desired state.
    pub fn handle_device(
        &mut self,
        input: &PassInput,
        mut device: DeviceState,
        now: Instant,
        wall: SystemTime,
    ) {
        self.outputs.clear();
        self.pending = None;
        if device.public_key != Some(input.own_wireguard_key)
            || device.listen_port != input.listen_port
        {
            self.outputs.push_back(Output::Configure);
            device.public_key = Some(input.own_wireguard_key);
            device.listen_port = input.listen_port;
        }
        let membership = &input.membership;
        let Some(node) = &membership.node else {
            self.revoked = false;
            self.hub_key = None;
            self.omitted = 0;
            let hub =
                dataplane::hub_peers(&self.view, &input.own_node_id, &input.own_wireguard_key);
            for c in hub.conflicts.iter().filter(|c| !self.conflicts.contains(c)) {
                self.outputs
                    .push_back(Output::KeyConflictAppeared(c.clone()));
            }
            self.conflicts = hub.conflicts;
            self.push_diff(&device, &hub.peers);
            return;
        };
        self.conflicts.clear();
        // Seen in our directory, or stored after the hub said so: no peers
        // from now on.
        self.revoked = self.view.revoked.contains_key(&node.own_id) || input.revocation_stored;
        if self.revoked {
            self.omitted = 0;
            self.push_diff(&device, &[]);
            return;
        }
        let hub_key = self
            .view
            .nodes
            .get(&node.hub_id)
            .map(|h| h.wireguard_key)
            .unwrap_or(node.hub_key);
        self.hub_key = Some(hub_key);
        let fresh = device
            .peers
            .iter()
            .filter(|p| is_fresh(p, wall))
            .map(|p| p.config.public_key)
            .collect();
        let pending = Pending {
            device,
            hub_key,
            address: membership.address,
            own_id: node.own_id.clone(),
            own_wireguard_key: input.own_wireguard_key,
            endpoints: input.endpoints.clone(),
            max_peers: input.max_peers,
            new_sessions: input.new_sessions.clone(),
            fresh,
        };
        if self.resolve_due(&pending, now, wall) {
            self.outputs
                .push_back(Output::Resolve(node.hub_endpoint.clone()));
            self.pending = Some(pending);
        } else {
            self.finish_node_pass(pending);
        }
    }

    /// The answer to [`Output::Resolve`]: the addresses the name resolved
    /// to, or `None` when the lookup failed (the last address stays).
    pub fn handle_resolved(&mut self, text: &str, addrs: Option<Vec<SocketAddr>>, now: Instant) {
        if let Some(mut addrs) = addrs {
            // IPv4 first: the underlay of most boxes.
            addrs.sort_by_key(|a| !a.is_ipv4());
            match addrs.first() {
                Some(a) => self.hub_endpoint = Some((*a, now)),
                None => self
                    .outputs
                    .push_back(Output::ResolvedToNothing(text.to_string())),
            }
        }
        if let Some(pending) = self.pending.take() {
            self.finish_node_pass(pending);
        }
    }

    // ---- outputs ----------------------------------------------------

    /// The next thing to do; `None` when the pass is done (or waits for
    /// [`Reconciler::handle_resolved`]).
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Where the mesh stands, on the device as read after the pass.
    pub fn summary<'a>(&'a self, device: &'a DeviceState, wall: SystemTime) -> Summary<'a> {
        Summary {
            revoked: self.revoked,
            peers: device.peers.len(),
            peers_with_handshake: device.peers.iter().filter(|p| is_fresh(p, wall)).count(),
            hub: self
                .hub_key
                .and_then(|k| device.peers.iter().find(|p| p.config.public_key == k)),
            key_conflicts: &self.conflicts,
            peers_omitted: self.omitted,
        }
    }

    // ---- the decisions ----------------------------------------------

    /// Resolve once, then again when handshakes with the hub stopped (a
    /// handshake "in the future" counts as none), at most every
    /// [`RESOLVE_MIN_INTERVAL`].
    fn resolve_due(&self, pending: &Pending, now: Instant, wall: SystemTime) -> bool {
        let Some((_, resolved_at)) = self.hub_endpoint else {
            return true;
        };
        let stale = pending
            .device
            .peers
            .iter()
            .find(|p| p.config.public_key == pending.hub_key)
            .and_then(|p| p.last_handshake)
            .and_then(|t| wall.duration_since(t).ok())
            .is_none_or(|age| age > HANDSHAKE_STALE);
        stale && now.saturating_duration_since(resolved_at) > RESOLVE_MIN_INTERVAL
    }

    fn finish_node_pass(&mut self, pending: Pending) {
        let hub = HubPeer {
            public_key: pending.hub_key,
            mesh_ip: mesh::hub_address(&pending.address.trunc()),
            endpoint: self.hub_endpoint.map(|(a, _)| a),
        };
        let desired = dataplane::node_peers(
            &self.view,
            &pending.own_id,
            &pending.own_wireguard_key,
            hub,
            &pending.endpoints,
            &pending.fresh,
            pending.max_peers,
        );
        if desired.omitted != self.omitted {
            self.omitted = desired.omitted;
            self.outputs
                .push_back(Output::PeersOmitted(desired.omitted));
        }
        let mut diff = PeerDiff::new(&pending.device.peers, &desired.peers);
        let renew: BTreeSet<PublicKey> = set_from(
            pending
                .new_sessions
                .iter()
                .filter_map(|id| self.view.nodes.get(id))
                .map(|n| n.wireguard_key),
        );
        renew_sessions(&mut diff, &pending.device, &desired.peers, &renew);
        if !diff.is_empty() {
            self.outputs.push_back(Output::ApplyPeers(diff));
        }
    }

    fn push_diff(&mut self, device: &DeviceState, desired: &[PeerSpec]) {
        let diff = PeerDiff::new(&device.peers, desired);
        if !diff.is_empty() {
            self.outputs.push_back(Output::ApplyPeers(diff));
        }
    }
}

/// Makes `diff` remove and add again each peer of `renew` the device has
/// and `desired` keeps: the removal drops its session, the add starts a
/// new one (a keepalive at once), on either backend.
fn renew_sessions(
    diff: &mut PeerDiff,
    device: &DeviceState,
    desired: &[PeerSpec],
    renew: &BTreeSet<PublicKey>,
) {
    for spec in desired.iter().filter(|s| renew.contains(&s.public_key)) {
        if !device
            .peers
            .iter()
            .any(|p| p.config.public_key == spec.public_key)
        {
            continue;
        }
        let before = diff.ops.len();
        diff.ops.retain(|op| match op {
            PeerOp::Update(s) => s.public_key != spec.public_key,
            _ => true,
        });
        if diff.ops.len() == before {
            diff.unchanged = diff.unchanged.saturating_sub(1);
        }
        diff.ops.insert(0, PeerOp::Remove(spec.public_key));
        diff.ops.push(PeerOp::Add(spec.clone()));
    }
}

/// A handshake younger than [`HANDSHAKE_STALE`] (one "in the future"
/// counts as none).
fn is_fresh(p: &DevicePeer, wall: SystemTime) -> bool {
    p.last_handshake
        .and_then(|t| wall.duration_since(t).ok())
        .is_some_and(|age| age < HANDSHAKE_STALE)
}

#[cfg(test)]
mod tests;

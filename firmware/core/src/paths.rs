//! The path machine, sans I/O: per other node, which endpoint its
//! WireGuard peer gets — a same-LAN address, the public one the hub
//! observes, or the relay — judged from the device's handshakes
//! (docs/paths.md, "The path machine", and the reasons there).
//!
//! # Call order
//!
//! [`PathMachine::new`] with this node's and the hub's ids and the
//! endpoints restored from the state partition (each is probed first).
//! Then, whenever it changes or at [`PathMachine::poll_timeout`]:
//!
//! 1. [`PathMachine::handle_lan_subnets`]: this box's own interface
//!    subnets (non-mesh), which decide what "same LAN" means;
//! 2. [`PathMachine::handle_relay_host`]: the hub's IP as a relay (its
//!    endpoint as resolved), `None` while unknown; a pair a node relays
//!    uses that node's observed IP from the snapshot instead;
//! 3. [`PathMachine::handle_device`]: the device's peers by node id, last
//!    handshake and endpoint ([`observe`] maps the device's keys). No
//!    probe starts before the first one: a session the device already
//!    has is adopted. Before the snapshot: a session the other side
//!    opened while its probe raced ours is adopted, not replaced;
//! 4. [`PathMachine::handle_snapshot`]: the verified snapshot, each time a
//!    new one arrives (peers start probing when it shows them);
//! 5. [`PathMachine::handle_timeout`]: advances probes whose
//!    [`PROBE_TIMEOUT`] passed. Call it after `handle_device`, so a
//!    handshake that just came in counts before its probe times out.
//!
//! Then drain [`PathMachine::poll_event`]: [`Event::Endpoint`] (configure
//! it: run a data-plane pass with [`PathMachine::endpoints`]),
//! [`Event::NewSession`] (that pass re-adds the peer),
//! [`Event::Path`] (worth a log line), [`Event::WantRelay`] (the set the
//! next report carries). [`PathMachine::status`] is what status shows;
//! [`PathMachine::good_endpoints`] is what to store for the next start.
//!
//! Time is an argument: `now` (monotonic) paces probes, `wall` is compared
//! with the device's handshake times.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use ipnet::Ipv4Net;

use crate::NodeId;
use crate::candidates::{RelayPair, Snapshot};
use crate::ordered::{map_from, set_from};

mod device;
mod types;

pub use device::observe;
use device::{handshake_after, ip_in, is_fresh};
pub use types::{Event, PathKind, PeerPath, Seen};

/// How long one candidate is given: a WireGuard handshake retry is 5 s.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(6);
/// A handshake older than this means the path is gone (WireGuard's rekey
/// window: with a 25 s keepalive a live session re-handshakes every 2 min).
pub const FRESH: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing to try (no candidate known).
    Idle,
    /// Trying `candidates[index]` until `deadline`. `reprobe`: we came
    /// from the relay and keep asking for it meanwhile.
    Probing {
        index: usize,
        deadline: Instant,
        reprobe: bool,
    },
    /// A handshake came through: following the device's endpoint.
    Up,
    /// No candidate answered: waiting for the snapshot to list a relay
    /// pair (or for the other side to reach us after all).
    WantRelay,
    /// Through the relay since `round`; re-probed when it changes.
    Relayed { round: u32 },
}

#[derive(Debug, Clone)]
struct Peer {
    candidates: Vec<SocketAddr>,
    /// Restored from the state partition: probed first, once.
    restored: Option<SocketAddr>,
    phase: Phase,
    endpoint: Option<SocketAddr>,
    /// When we last set `endpoint`: a handshake after it proves it.
    set_at: SystemTime,
    /// So does one the device did not show when `endpoint` was set (newer
    /// than `handshake_at_set`) that is no older than `unseen_floor`: the
    /// device read before the setting, less a second for the device's
    /// whole seconds and the driver's clock read. The other side's probe
    /// completed between the pass's read and our setting, and the session
    /// being fresh, no further handshake follows.
    handshake_at_set: Option<SystemTime>,
    unseen_floor: SystemTime,
    kind: PathKind,
    seen: Seen,
    /// Relay endpoints this peer was set to (the last few): a handshake
    /// there is never a direct path, even once the snapshot no longer
    /// lists the pair (a snapshot that dropped it for a while, a pair
    /// moved to another relay).
    relay_ends: Vec<SocketAddr>,
}

/// How many past relay endpoints a peer remembers.
const RELAY_ENDS_KEPT: usize = 4;

#[derive(Debug)]
pub struct PathMachine {
    own_id: NodeId,
    hub_id: NodeId,
    lan_subnets: Vec<Ipv4Net>,
    relay_host: Option<IpAddr>,
    snapshot: Option<Snapshot>,
    peers: BTreeMap<NodeId, Peer>,
    wanted: Vec<NodeId>,
    events: VecDeque<Event>,
    wall: SystemTime,
    /// When the device was last read (`handle_device`'s `wall`).
    read_at: SystemTime,
    /// No probe starts before the device was read once: a session it
    /// already has (a daemon restart) is adopted, not probed away.
    device_seen: bool,
}

impl PathMachine {
    /// `restored`: per peer, the last endpoint that had a fresh handshake
    /// (state partition); each is probed first, from the first
    /// [`PathMachine::handle_device`] on, so a node started while the hub
    /// is unreachable finds its direct paths again.
    pub fn new(
        own_id: NodeId,
        hub_id: NodeId,
        restored: &BTreeMap<NodeId, SocketAddr>,
        wall: SystemTime,
    ) -> PathMachine {
        let mut m = PathMachine {
            own_id,
            hub_id,
            lan_subnets: Vec::new(),
            relay_host: None,
            snapshot: None,
            peers: BTreeMap::new(),
            wanted: Vec::new(),
            events: VecDeque::new(),
            wall,
            read_at: wall,
            device_seen: false,
        };
        for (id, endpoint) in restored {
            if m.is_other(id) {
                let peer = m.peers.entry(id.clone()).or_insert_with(|| Peer::new(wall));
                peer.restored = Some(*endpoint);
                peer.candidates = vec![*endpoint];
            }
        }
        m
    }

    // ---- inputs -----------------------------------------------------

    /// This box's own (non-mesh) interface subnets.
    /// `subnets` carry this box's own address in each (host bits kept):
    /// a candidate at one of them is skipped.
    pub fn handle_lan_subnets(&mut self, subnets: Vec<Ipv4Net>, now: Instant, wall: SystemTime) {
        if subnets != self.lan_subnets {
            self.lan_subnets = subnets;
            self.refresh_candidates(now, wall);
        }
    }

    /// The hub's IP as a relay (its resolved endpoint), `None` while
    /// unknown. Pairs a node relays do not need it.
    pub fn handle_relay_host(&mut self, host: Option<IpAddr>) {
        if host != self.relay_host {
            self.relay_host = host;
            self.follow_relays();
        }
    }

    /// A new verified snapshot. Peers it shows for the first time start
    /// probing (the other side does the same on the same snapshot); a
    /// relayed pair re-probes when `probe_round` changed; a pair the
    /// relay now carries moves to it.
    pub fn handle_snapshot(&mut self, snapshot: &Snapshot, now: Instant, wall: SystemTime) {
        let round_before = self.snapshot.as_ref().map(|s| s.probe_round);
        self.snapshot = Some(snapshot.clone());
        self.refresh_candidates(now, wall);
        if round_before.is_some_and(|r| r != snapshot.probe_round) {
            let waiting: Vec<NodeId> = self
                .peers
                .iter()
                .filter(|(_, p)| matches!(p.phase, Phase::Relayed { .. } | Phase::WantRelay))
                .map(|(id, _)| id.clone())
                .collect();
            for id in waiting {
                self.start_probe(&id, 0, true, now, wall);
            }
        }
        self.follow_relays();
        self.update_wanted();
    }

    /// The device's peers, by node id (see [`observe`]). A handshake newer
    /// than the endpoint we set proves the path; the device's endpoint
    /// after it is the path (it may have roamed there). A working direct
    /// path whose handshake grew older than [`FRESH`] is probed again.
    pub fn handle_device(&mut self, seen: &BTreeMap<NodeId, Seen>, now: Instant, wall: SystemTime) {
        self.wall = wall;
        self.read_at = wall;
        let ids: Vec<NodeId> = seen
            .keys()
            .filter(|id| self.is_other(id))
            .cloned()
            .collect();
        for id in ids {
            let s = seen.get(&id).copied().unwrap_or_default();
            let relayed = self.relay_endpoint(&id);
            let peer = self
                .peers
                .entry(id.clone())
                .or_insert_with(|| Peer::new(wall));
            peer.seen = s;
            let (phase, ours) = (peer.phase, peer.endpoint);
            let fresh = is_fresh(s.last_handshake, wall);
            // A handshake through a relay (this pair's now, or one it used
            // before) proves no direct path.
            let at_relay = s.endpoint.is_some()
                && (s.endpoint == relayed
                    || s.endpoint.is_some_and(|e| peer.relay_ends.contains(&e)));
            let proven = fresh && peer.proves(s.last_handshake) && !at_relay;
            // The device roamed to an address we did not set, and not to
            // the relay: an authenticated packet came from there, the other
            // side's probe reached us (it may have raced ours).
            let reached = fresh && s.endpoint.is_some() && s.endpoint != ours && !at_relay;
            match phase {
                Phase::Up if !fresh => {
                    // Lost: probed again from the start.
                    peer.kind = PathKind::None;
                    self.events.push_back(Event::Path {
                        peer: id.clone(),
                        kind: PathKind::None,
                    });
                    self.start_probe(&id, 0, false, now, wall);
                }
                Phase::Up => self.follow_device(&id),
                // Never set anything: a working session the device already
                // has (a daemon restart) is adopted as it is.
                Phase::Idle if fresh && s.endpoint.is_some() => self.succeed(&id),
                Phase::Idle | Phase::Probing { .. } | Phase::WantRelay if proven || reached => {
                    self.succeed(&id)
                }
                // The other side's direct probe reached us: follow it.
                Phase::Relayed { .. } if proven && s.endpoint.is_some() => self.succeed(&id),
                _ => {}
            }
        }
        self.device_seen = true;
        let idle: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.phase == Phase::Idle && !p.candidates.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle {
            self.start_probe(&id, 0, false, now, wall);
        }
        self.update_wanted();
    }

    /// Moves on from candidates that did not answer within
    /// [`PROBE_TIMEOUT`]; after the last one, to the relay.
    pub fn handle_timeout(&mut self, now: Instant, wall: SystemTime) {
        self.wall = wall;
        let due: Vec<(NodeId, usize, bool)> = self
            .peers
            .iter()
            .filter_map(|(id, p)| match p.phase {
                Phase::Probing {
                    index,
                    deadline,
                    reprobe,
                } if deadline <= now => Some((id.clone(), index + 1, reprobe)),
                _ => None,
            })
            .collect();
        for (id, next, reprobe) in due {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            // A restored endpoint is tried once.
            if peer.restored.is_some() && peer.candidates.get(next - 1) == peer.restored.as_ref() {
                peer.restored = None;
            }
            let count = peer.candidates.len();
            if next < count {
                self.start_probe(&id, next, reprobe, now, wall);
            } else if let Some(p) = self.peers.get_mut(&id) {
                p.phase = Phase::WantRelay;
            }
        }
        self.follow_relays();
        self.update_wanted();
    }

    // ---- outputs ----------------------------------------------------

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`PathMachine::handle_timeout`] is next due (`None`: nothing
    /// is being probed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| match p.phase {
                Phase::Probing { deadline, .. } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// The endpoint of each peer that has one: the data plane's input.
    pub fn endpoints(&self) -> BTreeMap<NodeId, SocketAddr> {
        map_from(
            self.peers
                .iter()
                .filter_map(|(id, p)| p.endpoint.map(|e| (id.clone(), e))),
        )
    }

    /// The peers to ask the relay for (the report's `want_relay`), in id
    /// order: those no candidate reached, those relayed, and those being
    /// re-probed from the relay.
    pub fn want_relay(&self) -> &[NodeId] {
        &self.wanted
    }

    /// A peer's path, for status (`None`: the machine does not know it).
    pub fn status(&self, peer: &NodeId) -> Option<PeerPath> {
        let via_node = self
            .relay_pair(peer)
            .is_some_and(|r| r.relay != self.hub_id);
        self.peers.get(peer).map(|p| PeerPath {
            kind: p.kind,
            endpoint: p.endpoint,
            fresh: is_fresh(p.seen.last_handshake, self.wall),
            node_relay: p.kind == PathKind::Relay && via_node,
        })
    }

    /// Per peer, the endpoint with a fresh handshake now: what to store
    /// for the next start.
    pub fn good_endpoints(&self) -> BTreeMap<NodeId, SocketAddr> {
        map_from(
            self.peers
                .iter()
                .filter(|(_, p)| is_fresh(p.seen.last_handshake, self.wall))
                .filter_map(|(id, p)| p.seen.endpoint.map(|e| (id.clone(), e))),
        )
    }

    // ---- the decisions ----------------------------------------------

    fn is_other(&self, id: &NodeId) -> bool {
        *id != self.own_id && *id != self.hub_id
    }

    /// Same-LAN candidates first (inside one of our own subnets), then the
    /// public one; a restored endpoint not yet proven goes before both.
    fn candidates_of(&self, id: &NodeId, restored: Option<SocketAddr>) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = restored.into_iter().collect();
        if let Some(c) = self.snapshot.as_ref().and_then(|s| s.nodes.get(id)) {
            let lan = c.lan.iter().filter(|a| self.is_lan_ip(IpAddr::V4(*a.ip())));
            for a in lan.chain(c.observed.iter()) {
                // One of our own addresses (two boxes behind separate NATs
                // that number their LANs alike): it would reach ourselves.
                if self.lan_subnets.iter().any(|n| n.addr() == *a.ip()) {
                    continue;
                }
                let a = SocketAddr::V4(*a);
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    fn is_lan_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.lan_subnets.iter().any(|n| n.contains(&v4)),
            IpAddr::V6(_) => false,
        }
    }

    /// Rebuilds every peer's candidates from the snapshot. A peer seen
    /// for the first time starts probing; one probing a candidate that
    /// disappeared starts over; one waiting for the relay tries new ones.
    fn refresh_candidates(&mut self, now: Instant, wall: SystemTime) {
        let ids: BTreeSet<NodeId> = set_from(
            self.snapshot
                .iter()
                .flat_map(|s| s.nodes.keys())
                .chain(self.peers.keys())
                .filter(|id| self.is_other(id))
                .cloned(),
        );
        for id in ids {
            let restored = self.peers.get(&id).and_then(|p| p.restored);
            let list = self.candidates_of(&id, restored);
            // A same-LAN address that was not a candidate before (a box
            // whose DHCP answered after its first probes, an address
            // added by hand): worth leaving the relay for at once.
            let new_lan = {
                let old = self.peers.get(&id).map_or(&[][..], |p| &p.candidates);
                list.iter()
                    .any(|c| self.is_lan_ip(c.ip()) && !old.contains(c))
            };
            let peer = self
                .peers
                .entry(id.clone())
                .or_insert_with(|| Peer::new(wall));
            if list == peer.candidates {
                continue;
            }
            let current = match peer.phase {
                Phase::Probing { index, .. } => peer.candidates.get(index).copied(),
                _ => None,
            };
            let phase = peer.phase;
            peer.candidates = list;
            match phase {
                Phase::Idle | Phase::WantRelay
                    if self.device_seen && !peer.candidates.is_empty() =>
                {
                    self.start_probe(&id, 0, false, now, wall)
                }
                Phase::Probing {
                    deadline, reprobe, ..
                } => match current.and_then(|c| peer.candidates.iter().position(|x| *x == c)) {
                    Some(index) => {
                        peer.phase = Phase::Probing {
                            index,
                            deadline,
                            reprobe,
                        }
                    }
                    None if peer.candidates.is_empty() => peer.phase = Phase::WantRelay,
                    None => self.start_probe(&id, 0, reprobe, now, wall),
                },
                // Relayed: re-probed from the relay (kept meanwhile) when a
                // new LAN candidate appears, not only at the next
                // `probe_round`. Public candidates that change (a
                // symmetric NAT's ports) wait for the round: a re-probe
                // restarts the relayed session.
                Phase::Relayed { .. } if self.device_seen && new_lan => {
                    self.start_probe(&id, 0, true, now, wall)
                }
                _ => {}
            }
        }
    }

    fn start_probe(
        &mut self,
        id: &NodeId,
        index: usize,
        reprobe: bool,
        now: Instant,
        wall: SystemTime,
    ) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let Some(candidate) = peer.candidates.get(index).copied() else {
            peer.phase = if peer.candidates.is_empty() {
                Phase::Idle
            } else {
                Phase::WantRelay
            };
            return;
        };
        peer.phase = Phase::Probing {
            index,
            deadline: now + PROBE_TIMEOUT,
            reprobe,
        };
        peer.mark_set(wall, self.read_at);
        // Only a new handshake proves a path, and WireGuard keeps an
        // existing session over an endpoint change (a re-probe from the
        // relay): the session is dropped so one starts at once.
        let session = is_fresh(peer.seen.last_handshake, wall);
        self.set_endpoint(id, Some(candidate), wall);
        if session {
            self.events.push_back(Event::NewSession(id.clone()));
        }
    }

    fn set_endpoint(&mut self, id: &NodeId, endpoint: Option<SocketAddr>, wall: SystemTime) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        if peer.endpoint != endpoint {
            peer.endpoint = endpoint;
            peer.mark_set(wall, self.read_at);
            self.events.push_back(Event::Endpoint {
                peer: id.clone(),
                endpoint,
            });
        }
    }

    /// A handshake came through: the path is where the device has the peer
    /// now (it may have roamed).
    fn succeed(&mut self, id: &NodeId) {
        if let Some(p) = self.peers.get_mut(id) {
            p.phase = Phase::Up;
        }
        self.follow_device(id);
    }

    /// Up: the device's endpoint is the path (kernel roaming wins).
    fn follow_device(&mut self, id: &NodeId) {
        let relayed = self.relay_endpoint(id);
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let endpoint = peer.seen.endpoint.or(peer.endpoint);
        let kind = match endpoint {
            Some(e) if Some(e) == relayed => PathKind::Relay,
            Some(e) if self.lan_subnets.iter().any(|n| ip_in(n, e.ip())) => PathKind::Lan,
            Some(_) => PathKind::Direct,
            None => PathKind::None,
        };
        if peer.kind != kind {
            peer.kind = kind;
            self.events.push_back(Event::Path {
                peer: id.clone(),
                kind,
            });
        }
        // Adopting the device's endpoint is not "setting" one: no new
        // `set_at`, no pass needed (the device already has it).
        peer.endpoint = endpoint;
    }

    /// The snapshot's relay pair of this node and `peer`.
    fn relay_pair(&self, peer: &NodeId) -> Option<&RelayPair> {
        self.snapshot
            .as_ref()?
            .relays
            .iter()
            .find(|r| (r.a == self.own_id && r.b == *peer) || (r.b == self.own_id && r.a == *peer))
    }

    /// Where this node's side of the relay pair with `peer` is, if the
    /// snapshot lists one and the relay's host is known: the hub's
    /// endpoint for a pair the hub relays, the observed IP of a node
    /// relay (the snapshot's) for one a node relays.
    fn relay_endpoint(&self, peer: &NodeId) -> Option<SocketAddr> {
        let pair = self.relay_pair(peer)?;
        let host = if pair.relay == self.hub_id {
            self.relay_host?
        } else {
            IpAddr::V4(self.snapshot.as_ref()?.node_relay_host(&pair.relay)?)
        };
        let port = if pair.a == self.own_id {
            pair.port_a
        } else {
            pair.port_b
        };
        Some(SocketAddr::new(host, port))
    }

    /// Peers waiting for the relay move to it once the snapshot lists
    /// their pair; relayed ones whose pair is gone wait again.
    fn follow_relays(&mut self) {
        let round = self.snapshot.as_ref().map_or(0, |s| s.probe_round);
        let ids: Vec<NodeId> = self.peers.keys().cloned().collect();
        for id in ids {
            let relayed = self.relay_endpoint(&id);
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            match (peer.phase, relayed) {
                (Phase::WantRelay, Some(e)) => {
                    peer.phase = Phase::Relayed { round };
                    peer.remember_relay(e);
                    if peer.kind != PathKind::Relay {
                        peer.kind = PathKind::Relay;
                        self.events.push_back(Event::Path {
                            peer: id.clone(),
                            kind: PathKind::Relay,
                        });
                    }
                    let wall = self.wall;
                    self.set_endpoint(&id, Some(e), wall);
                }
                (Phase::Relayed { .. }, None) => peer.phase = Phase::WantRelay,
                (Phase::Relayed { .. }, Some(e)) if peer.endpoint != Some(e) => {
                    peer.remember_relay(e);
                    // The pair moved (another relay, other ports): both
                    // sides see it in the same snapshot; a new session
                    // makes each send through the new relay at once, so
                    // it learns where both are.
                    let wall = self.wall;
                    self.set_endpoint(&id, Some(e), wall);
                    self.events.push_back(Event::NewSession(id.clone()));
                }
                _ => {}
            }
        }
    }

    fn update_wanted(&mut self) {
        let wanted: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                matches!(
                    p.phase,
                    Phase::WantRelay | Phase::Relayed { .. } | Phase::Probing { reprobe: true, .. }
                )
            })
            .map(|(id, _)| id.clone())
            .collect();
        if wanted != self.wanted {
            self.wanted = wanted.clone();
            self.events.push_back(Event::WantRelay(wanted));
        }
    }
}

impl Peer {
    fn new(wall: SystemTime) -> Peer {
        Peer {
            candidates: Vec::new(),
            restored: None,
            phase: Phase::Idle,
            endpoint: None,
            set_at: wall,
            handshake_at_set: None,
            unseen_floor: wall,
            kind: PathKind::None,
            seen: Seen::default(),
            relay_ends: Vec::new(),
        }
    }

    fn mark_set(&mut self, wall: SystemTime, read_at: SystemTime) {
        self.set_at = wall;
        self.handshake_at_set = self.seen.last_handshake;
        self.unseen_floor = read_at
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(read_at);
    }

    /// Whether a handshake at `t` proves the endpoint last set (see
    /// `handshake_at_set`).
    fn proves(&self, t: Option<SystemTime>) -> bool {
        let unseen = t.is_some_and(|t| self.handshake_at_set.is_none_or(|b| t > b));
        handshake_after(t, self.set_at) || (unseen && handshake_after(t, self.unseen_floor))
    }

    fn remember_relay(&mut self, endpoint: SocketAddr) {
        if !self.relay_ends.contains(&endpoint) {
            if self.relay_ends.len() == RELAY_ENDS_KEPT {
                self.relay_ends.remove(0);
            }
            self.relay_ends.push(endpoint);
        }
    }
}

#[cfg(test)]
mod tests;

//! The relay: forwards WireGuard ciphertext between two nodes that cannot
//! reach each other directly, without any key (docs/paths.md, "The
//! relay"). Run by the hub's daemon (and by a node's with `relay.enabled =
//! true`) for every pair of the verified candidate snapshot whose `relay`
//! is this box.
//!
//! This module follows the snapshot: it binds each pair's two ports (on
//! `relay.listen`, only inside `relay.port_range`), starts the pair's task
//! (`pair.rs`), tells running pairs when a node's observed IP changes, and
//! closes the ports of pairs the snapshot no longer lists. Which pairs
//! exist, and when an idle one is released, is the allocator's decision
//! (core `relay_alloc`); it reads [`RelayState::idle_secs`].

mod bucket;
mod counters;
mod pair;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gondwana_core::candidates::{RelayPair, Snapshot};
use gondwana_core::node_id::NodeId;
use gondwana_core::ordered::map_from;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use counters::Counters;
#[cfg(test)]
use counters::DropReason;
use pair::{Activity, Ends, Forwarder};

use crate::config::{PortRange, RelayConfig};

/// Each pair socket's receive buffer: a TCP window's burst through the
/// relay waits here while the task sends the previous datagrams on,
/// instead of being dropped at the default (~208 KiB, shared by every
/// flow of the pair). A cap on what the kernel may queue, not memory
/// taken up front.
const RECEIVE_BUFFER: usize = 1 << 20;

/// How often a pair whose ports could not be bound is tried again.
const RETRY_BIND: Duration = Duration::from_secs(5);

/// A pair as the forwarder knows it: its nodes and ports. Another port
/// for the same nodes is another pair (the old ports close).
type PairKey = (NodeId, NodeId, u16, u16);

/// Shared with `/metrics` and the allocator: counters and each running
/// pair's last traffic.
#[derive(Debug, Default)]
pub struct RelayState {
    pub counters: Arc<Counters>,
    active: Mutex<BTreeMap<(NodeId, NodeId), Arc<Activity>>>,
}

impl RelayState {
    /// Seconds since the pair of `a` and `b` last carried a datagram
    /// (`None`: not running here; since its start when it never did).
    pub fn idle_secs(&self, a: &NodeId, b: &NodeId, now_unix: u64) -> Option<u64> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let activity = active.get(&(a.clone(), b.clone()))?;
        Some(now_unix.saturating_sub(activity.last_unix.load(Ordering::Relaxed)))
    }

    fn set_active(&self, key: &PairKey, activity: Option<Arc<Activity>>) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let id = (key.0.clone(), key.1.clone());
        match activity {
            Some(a) => active.insert(id, a),
            None => active.remove(&id),
        };
    }
}

/// What the forwarder needs of `[relay]`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub listen: Ipv4Addr,
    pub ports: PortRange,
    pub max_kbit_per_pair: u64,
}

impl From<&RelayConfig> for Settings {
    fn from(c: &RelayConfig) -> Settings {
        Settings {
            listen: c.listen,
            ports: c.port_range,
            max_kbit_per_pair: c.max_kbit_per_pair,
        }
    }
}

struct Running {
    ends: watch::Sender<Ends>,
    task: JoinHandle<()>,
}

/// The relay task: follows `snapshots` until its sender is gone.
pub async fn run(
    own: NodeId,
    settings: Settings,
    mut snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    state: Arc<RelayState>,
) {
    let mut relay = Relay {
        own,
        settings,
        state,
        running: BTreeMap::new(),
        refused: BTreeSet::new(),
    };
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        let unbound = relay.follow(snapshot.as_deref()).await;
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep(RETRY_BIND), if unbound => {}
        }
    }
    relay.follow(None).await;
}

struct Relay {
    own: NodeId,
    settings: Settings,
    state: Arc<RelayState>,
    running: BTreeMap<PairKey, Running>,
    /// Pairs refused (ports outside the range, or not bindable): logged
    /// once, not at every retry.
    refused: BTreeSet<PairKey>,
}

impl Relay {
    /// Makes the running pairs those of `snapshot` naming this box;
    /// true when some could not be bound (to be tried again).
    async fn follow(&mut self, snapshot: Option<&Snapshot>) -> bool {
        let wanted: BTreeMap<PairKey, Ends> = snapshot
            .map(|s| {
                map_from(
                    s.relays
                        .iter()
                        .filter(|p| p.relay == self.own)
                        .map(|p| (key(p), ends(s, p))),
                )
            })
            .unwrap_or_default();
        let gone: Vec<PairKey> = self
            .running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(r) = self.running.remove(&k) {
                // Awaited: once this returns the ports are closed.
                r.task.abort();
                let _ = r.task.await;
                self.state.set_active(&k, None);
                info!("relay: pair {} ↔ {} closed", k.0, k.1);
            }
        }
        self.refused.retain(|k| wanted.contains_key(k));
        let mut unbound = false;
        for (k, e) in wanted {
            if let Some(r) = self.running.get(&k) {
                r.ends
                    .send_if_modified(|old| std::mem::replace(old, e) != e);
                continue;
            }
            match self.start(&k, e).await {
                Ok(r) => {
                    info!("relay: pair {} ↔ {} on ports {}/{}", k.0, k.1, k.2, k.3);
                    self.refused.remove(&k);
                    self.running.insert(k, r);
                }
                Err(why) => {
                    unbound |= why.retry;
                    if self.refused.insert(k.clone()) {
                        warn!("relay: pair {} ↔ {}: {}", k.0, k.1, why.message);
                    }
                }
            }
        }
        let count = self.running.len() as u64;
        self.state.counters.pairs.store(count, Ordering::Relaxed);
        unbound
    }

    async fn start(&self, k: &PairKey, e: Ends) -> Result<Running, Refusal> {
        let ports = self.settings.ports;
        if !ports.contains(k.2) || !ports.contains(k.3) || k.2 == k.3 {
            return Err(Refusal {
                message: format!(
                    "ports {}/{} are not two ports of relay.port_range {ports}",
                    k.2, k.3
                ),
                retry: false,
            });
        }
        let bind = |port| async move {
            let socket = UdpSocket::bind(SocketAddrV4::new(self.settings.listen, port)).await?;
            // The *Force variant passes net.core.rmem_max (the daemon has
            // CAP_NET_ADMIN); without it the capped one still helps.
            use nix::sys::socket::{setsockopt, sockopt};
            if setsockopt(&socket, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
                let _ = setsockopt(&socket, sockopt::RcvBuf, &RECEIVE_BUFFER);
            }
            Ok::<_, std::io::Error>(socket)
        };
        let sockets = match (bind(k.2).await, bind(k.3).await) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                return Err(Refusal {
                    message: format!(
                        "binding ports {}/{}: {e} (tried again every few seconds)",
                        k.2, k.3
                    ),
                    retry: true,
                });
            }
        };
        let (tx, rx) = watch::channel(e);
        let activity = Arc::new(Activity::default());
        activity
            .last_unix
            .store(crate::clock::now_unix(), Ordering::Relaxed);
        self.state.set_active(k, Some(activity.clone()));
        let forwarder = Forwarder::new(
            sockets,
            rx,
            self.settings.max_kbit_per_pair,
            Arc::clone(&self.state.counters),
            activity,
        );
        Ok(Running {
            ends: tx,
            task: tokio::spawn(forwarder.run()),
        })
    }
}

struct Refusal {
    message: String,
    retry: bool,
}

fn key(p: &RelayPair) -> PairKey {
    (p.a.clone(), p.b.clone(), p.port_a, p.port_b)
}

fn ends(s: &Snapshot, p: &RelayPair) -> Ends {
    let observed = |id: &NodeId| s.nodes.get(id).and_then(|c| c.observed);
    Ends {
        a: observed(&p.a),
        b: observed(&p.b),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wg_tests;

//! One relay pair: two bound UDP ports and the task that passes datagrams
//! between them, unchanged. A datagram on `port_a` from node a's observed
//! IP (any port: a symmetric NAT changes it) goes out of `port_b` to the
//! address b last sent from on `port_b`, and the other way round. Until b
//! has sent anything there, b's observed endpoint is used: the first
//! handshake from a then reaches b wherever b's NAT lets the relay's
//! address in (no NAT, same LAN, an address-restricted NAT when the relay
//! is the hub), instead of waiting for b to send first.
//!
//! One task per pair, one receive buffer per pair, reused for every
//! datagram: no allocation on the packet path. The task waits for either
//! socket to become readable and then drains it without blocking
//! (`try_recv_from`), a bounded batch at a time so the other direction is
//! not starved.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::bucket::TokenBucket;
use super::counters::{Counters, DropReason};

/// Large enough for any IPv4 UDP payload, so nothing is truncated. The
/// vector is zeroed by the allocator (`calloc`): pages that datagrams
/// never reach are never made resident, so a pair of 1,500-byte traffic
/// costs one page, not 64 KiB.
const MAX_DATAGRAM: usize = 65_536;
/// Datagrams taken from one socket before the other gets its turn.
const BATCH: usize = 64;

/// The nodes' observed endpoints in the snapshot: each side's datagrams
/// must come from its IP (`None`: the snapshot has none; that side's
/// datagrams are dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ends {
    pub a: Option<SocketAddrV4>,
    pub b: Option<SocketAddrV4>,
}

/// When a pair last carried a datagram (unix seconds), for the allocator's
/// idle release.
#[derive(Debug, Default)]
pub struct Activity {
    pub last_unix: AtomicU64,
}

/// One side of the pair: its socket, its node's observed endpoint, the
/// address its node last sent from.
struct Side {
    socket: UdpSocket,
    observed: Option<SocketAddrV4>,
    learned: Option<SocketAddrV4>,
}

impl Side {
    fn expect(&mut self, observed: Option<SocketAddrV4>) {
        if self.expected() != observed.map(|o| *o.ip()) {
            // An address learned from the old IP is not the node's now.
            self.learned = None;
        }
        self.observed = observed;
    }

    fn expected(&self) -> Option<Ipv4Addr> {
        self.observed.map(|o| *o.ip())
    }

    /// Where datagrams for this side's node go.
    fn destination(&self) -> Option<SocketAddrV4> {
        self.learned.or(self.observed)
    }
}

pub struct Forwarder {
    a: Side,
    b: Side,
    ends: watch::Receiver<Ends>,
    bucket: TokenBucket,
    counters: Arc<Counters>,
    activity: Arc<Activity>,
    buf: Vec<u8>,
}

impl Forwarder {
    pub fn new(
        (a, b): (UdpSocket, UdpSocket),
        ends: watch::Receiver<Ends>,
        max_kbit: u64,
        counters: Arc<Counters>,
        activity: Arc<Activity>,
    ) -> Forwarder {
        let side = |socket| Side {
            socket,
            observed: None,
            learned: None,
        };
        Forwarder {
            a: side(a),
            b: side(b),
            ends,
            bucket: TokenBucket::new(max_kbit, Instant::now()),
            counters,
            activity,
            buf: vec![0; MAX_DATAGRAM],
        }
    }

    /// Forwards until the pair's `Ends` sender is dropped (or the task is
    /// aborted); the sockets close with it.
    pub async fn run(mut self) {
        self.follow_ends();
        loop {
            tokio::select! {
                ready = self.a.socket.readable() => match ready {
                    Ok(()) => self.drain(true).await,
                    Err(e) => { warn!("relay: port a: {e}"); return; }
                },
                ready = self.b.socket.readable() => match ready {
                    Ok(()) => self.drain(false).await,
                    Err(e) => { warn!("relay: port b: {e}"); return; }
                },
                changed = self.ends.changed() => match changed {
                    Ok(()) => self.follow_ends(),
                    Err(_) => return,
                },
            }
        }
    }

    fn follow_ends(&mut self) {
        let ends = *self.ends.borrow_and_update();
        self.a.expect(ends.a);
        self.b.expect(ends.b);
    }

    /// Takes up to [`BATCH`] datagrams from side a (`from_a`) or b and
    /// sends each on from the other side.
    async fn drain(&mut self, from_a: bool) {
        let (from, to) = if from_a {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        };
        for _ in 0..BATCH {
            let (n, source) = match from.socket.try_recv_from(&mut self.buf) {
                Ok(got) => got,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // An ICMP error queued on the socket (the destination was
                // unreachable): nothing to forward, keep reading.
                Err(_) => continue,
            };
            self.counters
                .bytes_in
                .fetch_add(n as u64, Ordering::Relaxed);
            let source = match source {
                SocketAddr::V4(s) if Some(*s.ip()) == from.expected() => s,
                _ => {
                    self.counters.dropped(DropReason::WrongSource);
                    continue;
                }
            };
            from.learned = Some(source);
            self.activity
                .last_unix
                .store(crate::clock::now_unix(), Ordering::Relaxed);
            let Some(destination) = to.destination() else {
                self.counters.dropped(DropReason::NoDestination);
                continue;
            };
            if !self.bucket.take(n, Instant::now()) {
                self.counters.dropped(DropReason::Rate);
                continue;
            }
            // Waits only when the socket's send buffer is full: the
            // kernel's receive queue then holds (or drops) what comes in.
            match to.socket.send_to(&self.buf[..n], destination).await {
                Ok(_) => {
                    self.counters
                        .bytes_out
                        .fetch_add(n as u64, Ordering::Relaxed);
                    self.counters.packets.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => self.counters.dropped(DropReason::SendFailed),
            }
        }
    }
}

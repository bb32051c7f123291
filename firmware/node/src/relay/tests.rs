//! The relay with real UDP sockets, in a network namespace of its own (so
//! its fixed ports never meet another test's): two "nodes" are plain
//! sockets on loopback addresses that stand for their observed IPs.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gondwana_core::candidates::{Candidates, RelayPair, Snapshot};
use gondwana_core::node_id::NodeId;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::*;
use crate::net::testns::NetNs;

const RELAY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const A_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const B_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const STRANGER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
const PORT_A: u16 = 56_000;
const PORT_B: u16 = 56_001;
/// Where the snapshot says both nodes are observed.
const OBSERVED_PORT: u16 = 51_830;

fn id(n: u8) -> NodeId {
    NodeId::from_genesis_key(&[n; 32])
}

/// Nodes 1 and 2 (in id order: a < b) relayed by `relay` on
/// 56000/56001, observed at `a_ip` and `b_ip`; plus a pair that another
/// relay carries on 56002/56003.
fn snapshot(relay: &NodeId, a_ip: Ipv4Addr, b_ip: Ipv4Addr) -> Snapshot {
    let (mut a, mut b) = (id(1), id(2));
    if b < a {
        std::mem::swap(&mut a, &mut b);
    }
    let observed = |ip| Candidates {
        observed: Some(SocketAddrV4::new(ip, OBSERVED_PORT)),
        ..Candidates::default()
    };
    Snapshot {
        serial: 1,
        nodes: [(a.clone(), observed(a_ip)), (b.clone(), observed(b_ip))].into(),
        relays: vec![
            RelayPair {
                a: a.clone(),
                b: b.clone(),
                relay: relay.clone(),
                port_a: PORT_A,
                port_b: PORT_B,
            },
            RelayPair {
                a,
                b,
                relay: id(99),
                port_a: 56_002,
                port_b: 56_003,
            },
        ],
        ..Snapshot::default()
    }
}

fn settings(max_kbit_per_pair: u64) -> Settings {
    Settings {
        listen: RELAY_IP,
        ports: "56000-56009".parse().unwrap(),
        max_kbit_per_pair,
    }
}

struct Fixture {
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    state: Arc<RelayState>,
}

impl Fixture {
    fn start(max_kbit: u64) -> Fixture {
        let (snapshots, rx) = watch::channel(None);
        let state = Arc::new(RelayState::default());
        tokio::spawn(run(id(7), settings(max_kbit), rx, state.clone()));
        Fixture { snapshots, state }
    }

    /// Started, with the pair of [`snapshot`] bound.
    async fn with_pair(max_kbit: u64) -> Fixture {
        let f = Fixture::start(max_kbit);
        f.publish(snapshot(&id(7), A_IP, B_IP));
        f.wait_pairs(1).await;
        f
    }

    fn publish(&self, s: Snapshot) {
        self.snapshots.send_replace(Some(Arc::new(s)));
    }

    fn dropped(&self, reason: DropReason) -> u64 {
        self.state.counters.dropped_total(reason)
    }

    async fn wait_pairs(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.state.counters.pairs.load(Ordering::Relaxed) != n {
            assert!(Instant::now() < deadline, "never {n} pairs");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn node(ip: Ipv4Addr) -> UdpSocket {
    UdpSocket::bind(SocketAddrV4::new(ip, 0)).await.unwrap()
}

fn relay_port(port: u16) -> SocketAddr {
    SocketAddr::from((RELAY_IP, port))
}

/// The next datagram within a second, with its source.
async fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    let got = tokio::time::timeout(Duration::from_secs(1), s.recv_from(&mut buf)).await;
    got.ok().map(|r| {
        let (n, from) = r.unwrap();
        (buf[..n].to_vec(), from)
    })
}

/// Nothing arrives within 300 ms.
async fn silent(s: &UdpSocket) -> bool {
    let mut buf = [0u8; 2048];
    tokio::time::timeout(Duration::from_millis(300), s.recv_from(&mut buf))
        .await
        .is_err()
}

#[test]
fn forwards_both_ways_unchanged_and_drops_strangers() {
    NetNs::new().run(|| async {
        let f = Fixture::with_pair(100_000).await;
        let a = node(A_IP).await;
        // b listens where the snapshot says it is observed.
        let b = UdpSocket::bind(SocketAddrV4::new(B_IP, OBSERVED_PORT))
            .await
            .unwrap();

        // b has not sent yet: a's datagram goes to b's observed endpoint.
        a.send_to(b"early", relay_port(PORT_A)).await.unwrap();
        assert_eq!(
            recv(&b).await,
            Some((b"early".to_vec(), relay_port(PORT_B)))
        );

        // b's first datagram goes to a's last source, out of port_a.
        b.send_to(b"to a", relay_port(PORT_B)).await.unwrap();
        assert_eq!(recv(&a).await, Some((b"to a".to_vec(), relay_port(PORT_A))));
        let payload: Vec<u8> = (0..1400).map(|i| (i * 7) as u8).collect();
        a.send_to(&payload, relay_port(PORT_A)).await.unwrap();
        assert_eq!(recv(&b).await, Some((payload, relay_port(PORT_B))));

        // A symmetric NAT gives a another port: followed.
        let a2 = node(A_IP).await;
        a2.send_to(b"new port", relay_port(PORT_A)).await.unwrap();
        assert_eq!(recv(&b).await.unwrap().0, b"new port");
        b.send_to(b"reply", relay_port(PORT_B)).await.unwrap();
        assert_eq!(recv(&a2).await.unwrap().0, b"reply");
        assert!(silent(&a).await, "the old port is not a's any more");

        // Another IP on either port, and a on b's port, are dropped.
        let stranger = node(STRANGER_IP).await;
        stranger.send_to(b"x", relay_port(PORT_A)).await.unwrap();
        stranger.send_to(b"x", relay_port(PORT_B)).await.unwrap();
        a2.send_to(b"x", relay_port(PORT_B)).await.unwrap();
        assert!(silent(&b).await && silent(&a2).await);
        assert_eq!(f.dropped(DropReason::WrongSource), 3);
        // A stranger did not become b's address either.
        a2.send_to(b"still b", relay_port(PORT_A)).await.unwrap();
        assert_eq!(recv(&b).await.unwrap().0, b"still b");

        let mut metrics = String::new();
        f.state.counters.write_metrics(&mut metrics);
        for line in [
            "gondwana_relay_pairs 1",
            "gondwana_relay_packets_total 6",
            "gondwana_relay_dropped_total{reason=\"wrong_source\"} 3",
            "gondwana_relay_dropped_total{reason=\"no_destination\"} 0",
            "gondwana_relay_dropped_total{reason=\"rate\"} 0",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
        }
        // The pair another relay carries is not bound here.
        drop(std::net::UdpSocket::bind(relay_port(56_002)).unwrap());
        let (a_id, b_id) = (id(1).min(id(2)), id(1).max(id(2)));
        let idle = f.state.idle_secs(&a_id, &b_id, crate::clock::now_unix());
        assert!(idle.is_some_and(|s| s <= 2), "{idle:?}");

        // b's observed IP changes: its old one is refused, the new one
        // learned.
        let b5_ip = Ipv4Addr::new(127, 0, 0, 5);
        f.publish(snapshot(&id(7), A_IP, b5_ip));
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.send_to(b"old ip", relay_port(PORT_B)).await.unwrap();
        assert!(silent(&a2).await);
        assert_eq!(f.dropped(DropReason::WrongSource), 4);
        let b5 = node(b5_ip).await;
        b5.send_to(b"new ip", relay_port(PORT_B)).await.unwrap();
        assert_eq!(recv(&a2).await.unwrap().0, b"new ip");

        // A snapshot without b's endpoint: b's side takes nothing, and a's
        // datagrams have nowhere to go.
        let mut s = snapshot(&id(7), A_IP, b5_ip);
        s.nodes.values_mut().for_each(|c| {
            if c.observed.is_some_and(|o| *o.ip() == b5_ip) {
                c.observed = None;
            }
        });
        f.publish(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
        b5.send_to(b"gone", relay_port(PORT_B)).await.unwrap();
        a2.send_to(b"nowhere", relay_port(PORT_A)).await.unwrap();
        assert!(silent(&a2).await && silent(&b5).await);
        assert_eq!(f.dropped(DropReason::WrongSource), 5);
        assert_eq!(f.dropped(DropReason::NoDestination), 1);

        // The pair leaves the snapshot: its ports are closed.
        f.publish(Snapshot::default());
        f.wait_pairs(0).await;
        for port in [PORT_A, PORT_B] {
            drop(std::net::UdpSocket::bind(relay_port(port)).expect("port closed"));
        }
        assert_eq!(f.state.idle_secs(&a_id, &b_id, 0), None);
    });
}

#[test]
fn each_pair_is_held_to_its_rate() {
    NetNs::new().run(|| async {
        // 800 kbit/s: 100,000 bytes a second after a 16 KiB burst.
        let f = Fixture::with_pair(800).await;
        let (a, b) = (node(A_IP).await, node(B_IP).await);
        b.send_to(b"hello", relay_port(PORT_B)).await.unwrap();
        // Handled before a's (the relay serves its two ports in any order).
        tokio::time::sleep(Duration::from_millis(50)).await;
        a.send_to(b"hello", relay_port(PORT_A)).await.unwrap();
        assert!(recv(&b).await.is_some());
        let before = f.state.counters.bytes_out.load(Ordering::Relaxed);

        // 500 KB offered in about half a second: ten times the bound.
        let start = Instant::now();
        let datagram = [0u8; 1000];
        for i in 0..500 {
            a.send_to(&datagram, relay_port(PORT_A)).await.unwrap();
            if i % 10 == 9 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let mut received = 0u64;
        while let Some((d, _)) = recv(&b).await {
            received += d.len() as u64;
            if silent(&b).await {
                break;
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let forwarded = f.state.counters.bytes_out.load(Ordering::Relaxed) - before;
        let bound = 16_384.0 + 100_000.0 * elapsed;
        assert!(
            (forwarded as f64) <= bound,
            "{forwarded} bytes in {elapsed:.2} s, bound {bound:.0}"
        );
        assert!(
            forwarded >= 40_000,
            "the bound is met, not undercut: {forwarded}"
        );
        assert!(received <= forwarded);
        assert!(
            f.dropped(DropReason::Rate) >= 200,
            "{}",
            f.dropped(DropReason::Rate)
        );
    });
}

#[test]
fn ports_outside_the_range_are_not_bound() {
    NetNs::new().run(|| async {
        let f = Fixture::start(100_000);
        let mut s = snapshot(&id(7), A_IP, B_IP);
        s.relays[0].port_b = 22;
        f.publish(s);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(f.state.counters.pairs.load(Ordering::Relaxed), 0);
        drop(std::net::UdpSocket::bind(relay_port(PORT_A)).expect("not bound"));
    });
}

/// A box that is not the pair's named relay (here a node relay, id 7,
/// while the snapshot names node 8) binds nothing and forwards nothing:
/// a datagram sent to the pair's port is not passed on.
#[test]
fn a_box_that_is_not_the_named_relay_does_not_forward() {
    NetNs::new().run(|| async {
        let f = Fixture::start(100_000);
        f.publish(snapshot(&id(8), A_IP, B_IP));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(f.state.counters.pairs.load(Ordering::Relaxed), 0);
        let a = node(A_IP).await;
        a.send_to(b"handshake", relay_port(PORT_A)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let counters = &f.state.counters;
        assert_eq!(counters.bytes_in.load(Ordering::Relaxed), 0, "not received");
        assert_eq!(counters.packets.load(Ordering::Relaxed), 0, "not passed on");
        drop(std::net::UdpSocket::bind(relay_port(PORT_A)).expect("not bound"));
    });
}

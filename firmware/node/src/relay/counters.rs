//! What the relay counts, as atomics bumped by the pair tasks (no lock, no
//! label lookup per datagram) and written at each scrape of `/metrics`
//! (docs/metrics.md).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::api::metrics::{Kind, Num, write_family};

/// Why a datagram on a relay port was not sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Its source IP is not the observed IP of the node that side belongs
    /// to (or the snapshot has none for that node).
    WrongSource,
    /// The other side has neither sent from its observed IP yet nor an
    /// observed endpoint: there is no address to send it to.
    NoDestination,
    /// Over the pair's `relay.max_kbit_per_pair`.
    Rate,
    /// The kernel refused the send.
    SendFailed,
}

impl DropReason {
    pub const ALL: [DropReason; 4] = [
        DropReason::WrongSource,
        DropReason::NoDestination,
        DropReason::Rate,
        DropReason::SendFailed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::WrongSource => "wrong_source",
            DropReason::NoDestination => "no_destination",
            DropReason::Rate => "rate",
            DropReason::SendFailed => "send_failed",
        }
    }
}

#[derive(Debug, Default)]
pub struct Counters {
    /// Pairs whose two ports are bound now.
    pub pairs: AtomicU64,
    /// Bytes of every datagram that arrived on a relay port…
    pub bytes_in: AtomicU64,
    /// …and of those sent on.
    pub bytes_out: AtomicU64,
    /// Datagrams sent on.
    pub packets: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl Counters {
    pub fn dropped(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped_total(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    /// The relay's families, in the exposition format.
    pub fn write_metrics(&self, out: &mut String) {
        let get = |c: &AtomicU64| Num::Int(c.load(Ordering::Relaxed));
        write_family(
            out,
            "gondwana_relay_pairs",
            Kind::Gauge,
            "Relay pairs whose two ports this box has bound now",
            &[(vec![], get(&self.pairs))],
        );
        write_family(
            out,
            "gondwana_relay_bytes_total",
            Kind::Counter,
            "Relay: bytes arriving on pair ports (in) and sent on (out)",
            &[
                (vec![("direction", "in")], get(&self.bytes_in)),
                (vec![("direction", "out")], get(&self.bytes_out)),
            ],
        );
        write_family(
            out,
            "gondwana_relay_packets_total",
            Kind::Counter,
            "Relay: datagrams sent on to the other side of their pair",
            &[(vec![], get(&self.packets))],
        );
        let dropped: Vec<_> = DropReason::ALL
            .iter()
            .map(|r| {
                (
                    vec![("reason", r.label())],
                    Num::Int(self.dropped_total(*r)),
                )
            })
            .collect();
        write_family(
            out,
            "gondwana_relay_dropped_total",
            Kind::Counter,
            "Relay: datagrams not sent on, by reason",
            &dropped,
        );
    }
}

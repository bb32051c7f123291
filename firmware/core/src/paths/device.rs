//! The device as the path machine sees it, and the time rules it judges
//! handshakes by.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;

use super::{FRESH, Seen};
use crate::NodeId;
use crate::directory::View;
use crate::ordered::map_from;
use crate::peer_diff::DeviceState;

/// The device's peers by node id: each live node of `view` whose key the
/// device has.
pub fn observe(view: &View, device: &DeviceState) -> BTreeMap<NodeId, Seen> {
    map_from(view.nodes.iter().filter_map(|(id, node)| {
        let p = device
            .peers
            .iter()
            .find(|p| p.config.public_key == node.wireguard_key)?;
        Some((
            id.clone(),
            Seen {
                last_handshake: p.last_handshake,
                endpoint: p.config.endpoint,
            },
        ))
    }))
}

pub(super) fn ip_in(net: &Ipv4Net, ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if net.contains(&v4))
}

pub(super) fn is_fresh(handshake: Option<SystemTime>, wall: SystemTime) -> bool {
    handshake
        .and_then(|t| wall.duration_since(t).ok())
        .is_some_and(|age| age < FRESH)
}

/// A handshake at or after the second `set_at` falls in: devices report
/// handshake times in whole seconds (boringtun) and a probe's handshake
/// often completes within the second its endpoint was set. A handshake
/// over the old path in that same second could be taken for the new one;
/// that is why success then follows the device's endpoint, not ours.
pub(super) fn handshake_after(handshake: Option<SystemTime>, set_at: SystemTime) -> bool {
    let set_second = set_at
        .duration_since(UNIX_EPOCH)
        .map(|d| UNIX_EPOCH + Duration::from_secs(d.as_secs()))
        .unwrap_or(set_at);
    handshake.is_some_and(|t| t >= set_second)
}

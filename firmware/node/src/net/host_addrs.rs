//! The IPv4 subnets already on this host, for the collision guard: a mesh
//! subnet that overlaps one of them would hijack or lose traffic.

use gondwana_core::InterfaceName;
use gondwana_core::mesh::Ipv4Net;
use nix::ifaddrs::{InterfaceAddress, getifaddrs};
use nix::net::if_::InterfaceFlags;

/// Every IPv4 address with its prefix, except on `skip_interface` (the mesh
/// interface itself, which of course holds a mesh address) and loopback's
/// 127/8.
pub fn host_subnets(skip_interface: &InterfaceName) -> std::io::Result<Vec<Ipv4Net>> {
    subnets(skip_interface, |_| true)
}

/// The addresses this box is reached at on its own links, for its LAN
/// candidates: [`host_subnets`] without point-to-point interfaces. An
/// address on another WireGuard device, a TUN or PPP link is reached
/// through that tunnel, not on a LAN: offered as a LAN candidate it would
/// be tried first and could carry the mesh inside another tunnel.
pub fn lan_subnets(skip_interface: &InterfaceName) -> std::io::Result<Vec<Ipv4Net>> {
    subnets(skip_interface, |ifa| {
        !ifa.flags.contains(InterfaceFlags::IFF_POINTOPOINT)
    })
}

fn subnets(
    skip_interface: &InterfaceName,
    keep: impl Fn(&InterfaceAddress) -> bool,
) -> std::io::Result<Vec<Ipv4Net>> {
    let mut out = Vec::new();
    for ifa in getifaddrs().map_err(std::io::Error::from)? {
        if ifa.interface_name == skip_interface.as_str() || !keep(&ifa) {
            continue;
        }
        let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let (Some(addr), Some(mask)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) else {
            continue;
        };
        let ip = addr.ip();
        if ip.is_loopback() {
            continue;
        }
        let prefix = u32::from(mask.ip()).leading_ones() as u8;
        if let Ok(net) = Ipv4Net::new(ip, prefix) {
            out.push(net);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_without_loopback_and_the_skipped_interface() {
        let all = host_subnets(&InterfaceName::parse("none-such0").unwrap()).unwrap();
        assert!(all.iter().all(|n| !n.addr().is_loopback()));
        // Skipping every interface name present leaves nothing of theirs.
        for ifa in getifaddrs().unwrap() {
            let name = InterfaceName::parse(&ifa.interface_name).unwrap();
            let skipped = host_subnets(&name).unwrap();
            assert!(skipped.len() <= all.len());
        }
    }

    /// In a namespace of ours: an Ethernet-like link's address is a LAN
    /// address, a TUN's (point-to-point, like WireGuard's) is not; the
    /// collision guard still sees both.
    #[test]
    fn lan_subnets_leave_out_point_to_point_links() {
        let ns = crate::net::testns::NetNs::new();
        ns.exec(&[
            "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
        ]);
        ns.exec(&["ip", "addr", "add", "192.168.77.1/24", "dev", "lan0"]);
        ns.exec(&["ip", "link", "set", "lan0", "up"]);
        ns.exec(&["ip", "tuntap", "add", "dev", "tun0", "mode", "tun"]);
        ns.exec(&["ip", "addr", "add", "10.99.0.3/24", "dev", "tun0"]);
        let (lan, all) = ns.run(|| async {
            let skip = InterfaceName::parse("wg-mesh").unwrap();
            (lan_subnets(&skip).unwrap(), host_subnets(&skip).unwrap())
        });
        let lan0: Ipv4Net = "192.168.77.1/24".parse().unwrap();
        let tun0: Ipv4Net = "10.99.0.3/24".parse().unwrap();
        assert_eq!(lan, vec![lan0]);
        assert!(all.contains(&lan0) && all.contains(&tun0), "{all:?}");
    }
}

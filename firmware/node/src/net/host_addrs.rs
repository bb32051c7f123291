//! The IPv4 subnets already on this host, for the collision guard: a mesh
//! subnet that overlaps one of them would hijack or lose traffic.

use gondwana_core::InterfaceName;
use gondwana_core::mesh::Ipv4Net;
use nix::ifaddrs::getifaddrs;

/// Every IPv4 address with its prefix, except on `skip_interface` (the mesh
/// interface itself, which of course holds a mesh address) and loopback's
/// 127/8.
pub fn host_subnets(skip_interface: &InterfaceName) -> std::io::Result<Vec<Ipv4Net>> {
    let mut out = Vec::new();
    for ifa in getifaddrs().map_err(std::io::Error::from)? {
        if ifa.interface_name == skip_interface.as_str() {
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
}

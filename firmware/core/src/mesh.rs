//! The mesh's address plan: subnet, collision guard and address allocation.
//!
//! The hub takes the first host address; every node gets the lowest free
//! one. A mesh subnet must overlap neither a reserved subnet nor anything
//! already on the host, and bring-up refuses naming the overlap.

use core::fmt;
use std::net::Ipv4Addr;

pub use ipnet::Ipv4Net;

/// Defaults from the field (see docs/config.md).
pub const DEFAULT_SUBNET: &str = "10.10.0.0/24";
pub const DEFAULT_WG_PORT: u16 = 51822;
pub const DEFAULT_API_PORT: u16 = 8798;
pub const DEFAULT_INTERFACE: &str = "wg-mesh";
pub const DEFAULT_RESERVED: [&str; 4] = [
    "10.100.0.0/24",
    "10.55.0.0/24",
    "10.0.3.0/24",
    "10.99.0.0/24",
];
/// Smallest mesh: hub plus two nodes (a /30 has two usable hosts, too few).
pub const MAX_PREFIX_LEN: u8 = 29;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapSource {
    Reserved,
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("mesh subnet {subnet} overlaps {against} subnet {other}")]
    Overlap {
        subnet: Ipv4Net,
        other: Ipv4Net,
        against: OverlapSource,
    },
    #[error("mesh subnet {0} is too small: at most /{MAX_PREFIX_LEN}")]
    TooSmall(Ipv4Net),
    #[error("mesh subnet {0} is not a network address (did you mean {1}?)")]
    NotNetwork(Ipv4Net, Ipv4Net),
    #[error("mesh subnet {0} has no free address left")]
    Exhausted(Ipv4Net),
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Checks the shape of a mesh subnet and that it collides with nothing.
pub fn check_subnet(
    subnet: &Ipv4Net,
    reserved: &[Ipv4Net],
    host: &[Ipv4Net],
) -> Result<(), PlanError> {
    if subnet.prefix_len() > MAX_PREFIX_LEN {
        return Err(PlanError::TooSmall(*subnet));
    }
    if subnet.addr() != subnet.network() {
        return Err(PlanError::NotNetwork(*subnet, subnet.trunc()));
    }
    let sources = reserved
        .iter()
        .map(|n| (n, OverlapSource::Reserved))
        .chain(host.iter().map(|n| (n, OverlapSource::Host)));
    for (other, source) in sources {
        if overlaps(subnet, other) {
            return Err(PlanError::Overlap {
                subnet: *subnet,
                other: *other,
                against: source,
            });
        }
    }
    Ok(())
}

/// The hub's address: the first host address.
pub fn hub_address(subnet: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// The lowest host address after the hub's for which `taken` is false.
pub fn lowest_free(
    subnet: &Ipv4Net,
    taken: impl Fn(Ipv4Addr) -> bool,
) -> Result<Ipv4Addr, PlanError> {
    let first = u32::from(subnet.network()) + 2;
    let last = u32::from(subnet.broadcast()) - 1;
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|a| !taken(*a))
        .ok_or(PlanError::Exhausted(*subnet))
}

/// Whether `addr` is a node address of `subnet` (not network, hub or broadcast).
pub fn is_node_address(subnet: &Ipv4Net, addr: Ipv4Addr) -> bool {
    subnet.contains(&addr)
        && addr != subnet.network()
        && addr != subnet.broadcast()
        && addr != hub_address(subnet)
}

/// Node listen ports are spread over this many ports above the base.
pub const LISTEN_PORT_SPAN: u32 = 4096;

/// A node's WireGuard listen port: `base` plus its host number in the
/// mesh subnet modulo [`LISTEN_PORT_SPAN`] (10.10.0.7/24, 51820 → 51827),
/// so two boxes behind one NAT do not share a source port (docs/paths.md,
/// "Listen ports"). The hub listens on `base` itself. When `base + n`
/// would pass 65535 the port is `base − n` instead: still distinct from
/// every other node's and from the hub's.
pub fn node_listen_port(base: u16, subnet: &Ipv4Net, ip: Ipv4Addr) -> u16 {
    let n = u32::from(ip).wrapping_sub(u32::from(subnet.network())) % LISTEN_PORT_SPAN;
    let up = u32::from(base) + n;
    match u16::try_from(up) {
        Ok(port) => port,
        // base > 61440 here, so base − n ≥ 57345: no underflow.
        Err(_) => u16::try_from(u32::from(base) - n).unwrap_or(base),
    }
}

impl fmt::Display for OverlapSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OverlapSource::Reserved => "the reserved",
            OverlapSource::Host => "this host's",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn defaults() -> Vec<Ipv4Net> {
        DEFAULT_RESERVED.iter().map(|s| net(s)).collect()
    }

    #[test]
    fn default_subnet_is_clear_of_defaults() {
        assert_eq!(check_subnet(&net(DEFAULT_SUBNET), &defaults(), &[]), Ok(()));
    }

    #[test]
    fn overlaps_are_named() {
        let err = check_subnet(&net("10.0.0.0/8"), &defaults(), &[]).unwrap_err();
        assert_eq!(
            err,
            PlanError::Overlap {
                subnet: net("10.0.0.0/8"),
                other: net("10.100.0.0/24"),
                against: OverlapSource::Reserved
            }
        );
        assert_eq!(
            err.to_string(),
            "mesh subnet 10.0.0.0/8 overlaps the reserved subnet 10.100.0.0/24"
        );
        let host = [net("10.10.0.77/16")];
        let err = check_subnet(&net("10.10.0.0/24"), &defaults(), &host).unwrap_err();
        assert!(err.to_string().contains("this host's subnet 10.10.0.77/16"));
        // Inside a reserved one, too.
        assert!(check_subnet(&net("10.55.0.0/28"), &defaults(), &[]).is_err());
    }

    #[test]
    fn shape_is_checked() {
        assert_eq!(
            check_subnet(&net("10.10.0.0/30"), &[], &[]),
            Err(PlanError::TooSmall(net("10.10.0.0/30")))
        );
        assert_eq!(
            check_subnet(&net("10.10.0.5/24"), &[], &[]),
            Err(PlanError::NotNetwork(
                net("10.10.0.5/24"),
                net("10.10.0.0/24")
            ))
        );
    }

    #[test]
    fn allocation_is_lowest_free_after_the_hub() {
        let s = net("10.10.0.0/24");
        assert_eq!(hub_address(&s), Ipv4Addr::new(10, 10, 0, 1));
        assert_eq!(lowest_free(&s, |_| false), Ok(Ipv4Addr::new(10, 10, 0, 2)));
        let used = [Ipv4Addr::new(10, 10, 0, 2), Ipv4Addr::new(10, 10, 0, 4)];
        assert_eq!(
            lowest_free(&s, |a| used.contains(&a)),
            Ok(Ipv4Addr::new(10, 10, 0, 3))
        );
        let small = net("10.10.0.0/29");
        // .2 … .6 are node addresses; .7 is broadcast.
        assert_eq!(
            lowest_free(&small, |a| a.octets()[3] < 6),
            Ok(Ipv4Addr::new(10, 10, 0, 6))
        );
        assert_eq!(
            lowest_free(&small, |_| true),
            Err(PlanError::Exhausted(small))
        );
        assert!(is_node_address(&s, Ipv4Addr::new(10, 10, 0, 254)));
        assert!(!is_node_address(&s, Ipv4Addr::new(10, 10, 0, 1)));
        assert!(!is_node_address(&s, Ipv4Addr::new(10, 10, 0, 255)));
        assert!(!is_node_address(&s, Ipv4Addr::new(10, 10, 1, 2)));
    }

    #[test]
    fn node_listen_ports_follow_the_host_number() {
        let s = net("10.10.0.0/24");
        assert_eq!(
            node_listen_port(51820, &s, Ipv4Addr::new(10, 10, 0, 7)),
            51827
        );
        let big = net("10.10.0.0/16");
        // 10.10.16.2 is host 4098: modulo 4096 → 2.
        assert_eq!(
            node_listen_port(51820, &big, Ipv4Addr::new(10, 10, 16, 2)),
            51822
        );
        // Near the top of the port range it counts down instead.
        assert_eq!(
            node_listen_port(65000, &big, Ipv4Addr::new(10, 10, 4, 0)),
            65000 - 1024
        );
        assert_eq!(
            node_listen_port(65000, &big, Ipv4Addr::new(10, 10, 0, 2)),
            65002
        );
    }
}

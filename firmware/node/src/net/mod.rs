//! The host's network, as far as the mesh needs it. (Links, routes and
//! WireGuard over netlink arrive with the data plane.)

pub mod host_addrs;
pub mod firewall;

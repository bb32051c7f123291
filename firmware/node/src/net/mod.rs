//! The host's network, as far as the mesh needs it. (Links, routes and
//! WireGuard over netlink arrive with the data plane.)

pub mod firewall;
pub mod host_addrs;

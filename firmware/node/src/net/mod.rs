//! The host's network, as far as the mesh needs it: addresses already in
//! use (collision guard), links/addresses/routes over rtnetlink, and the
//! WireGuard interface (kernel or userspace backend).

pub mod firewall;
pub mod host_addrs;
// A few methods (delete, routes, address listing) serve the tests and the
// bench driver only: the daemon never tears its interface down.
#[cfg_attr(not(test), allow(dead_code))]
pub mod link;
pub mod listening;
#[cfg(test)]
pub mod testns;
#[cfg_attr(not(test), allow(dead_code))]
pub mod wireguard;

#[cfg(test)]
mod link_tests;

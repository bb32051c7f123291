//! The host's network, as far as the mesh needs it: addresses already in
//! use (collision guard), links/addresses/routes over rtnetlink, and the
//! WireGuard interface (kernel or userspace backend).

pub mod firewall;
pub mod host_addrs;
// Used by the reconciler (daemon/), which lands separately; until then
// parts are only reached from tests.
#[allow(dead_code)]
pub mod link;
#[cfg(test)]
pub mod testns;
#[allow(dead_code)]
pub mod wireguard;

#[cfg(test)]
mod link_tests;

//! Firewall grants: one mesh source address allowed to reach one TCP port of
//! this node, optionally until a timeout. What makes a grant valid, and the
//! hub-signed command that asks a node to add or remove one remotely.
//!
//! Remote commands use a challenge instead of a clock (nodes may have no
//! RTC): the node hands out a single-use nonce, the hub signs a command that
//! carries it, and the node accepts the command only if the signature is the
//! pinned hub key's and the nonce is one it issued and has not seen back yet.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, EnvelopeError, tag};
use crate::keys::{PublicKey, SigningSecret};
use crate::mesh::Ipv4Net;

pub const VERSION: u8 = 1;
pub const NONCE_LEN: usize = 32;
pub type Nonce = [u8; NONCE_LEN];
/// Longest timeout a grant may have (the kernel takes milliseconds in a u64;
/// a year is plenty and keeps arithmetic far from overflow).
pub const MAX_TIMEOUT_SECS: u64 = 366 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub ip: Ipv4Addr,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("address {ip} is not inside the mesh subnet {subnet}")]
    OutsideSubnet { ip: Ipv4Addr, subnet: Ipv4Net },
    #[error("address {ip} is the network or broadcast address of {subnet}, not a host")]
    NotAHost { ip: Ipv4Addr, subnet: Ipv4Net },
    #[error("port must be 1-65535 (got {0})")]
    BadPort(u32),
    #[error("timeout must be between 1 second and {MAX_TIMEOUT_SECS} seconds (got {0} s)")]
    BadTimeout(u64),
}

impl Grant {
    /// A grant for exactly one host address of `subnet` and one port. Never
    /// the whole subnet, never 0.0.0.0 (which no mesh subnet contains as a
    /// host: it is outside every subnet allowed by `mesh::check_subnet`, or
    /// its network address).
    pub fn new(ip: Ipv4Addr, port: u32, subnet: &Ipv4Net) -> Result<Grant, GrantError> {
        if !subnet.contains(&ip) {
            return Err(GrantError::OutsideSubnet {
                ip,
                subnet: *subnet,
            });
        }
        if ip == subnet.network() || ip == subnet.broadcast() || ip.is_unspecified() {
            return Err(GrantError::NotAHost {
                ip,
                subnet: *subnet,
            });
        }
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(GrantError::BadPort(port))?;
        Ok(Grant { ip, port })
    }
}

pub fn check_timeout(secs: u64) -> Result<u64, GrantError> {
    if secs == 0 || secs > MAX_TIMEOUT_SECS {
        return Err(GrantError::BadTimeout(secs));
    }
    Ok(secs)
}

/// What a remote command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantAction {
    /// Add (or refresh) the grant; `None` = no timeout.
    Add {
        timeout_secs: Option<u64>,
    },
    Delete,
}

/// A hub-signed grant command (domain `gondwana/v1/grant-command`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCommand {
    pub version: u8,
    /// The nonce the target node issued: binds the command to that node and
    /// to this one use.
    pub nonce: Nonce,
    pub action: GrantAction,
    pub ip: [u8; 4],
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Envelope(#[from] EnvelopeError),
    #[error("unsupported grant command version {0}")]
    Version(u8),
    #[error("{0}")]
    Grant(#[from] GrantError),
}

/// A command whose signature and contents hold; the caller still has to
/// take its nonce (single use) before acting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCommand {
    pub nonce: Nonce,
    pub grant: Grant,
    pub action: GrantAction,
}

pub fn seal_command(command: &GrantCommand, hub: &SigningSecret) -> Result<Vec<u8>, EnvelopeError> {
    Envelope::seal(tag::GRANT_COMMAND, command, hub)
}

/// Verifies a command against the pinned hub key and the mesh subnet.
/// Nothing is decoded before the signature holds.
pub fn open_command(
    bytes: &[u8],
    hub_key: &PublicKey,
    subnet: &Ipv4Net,
) -> Result<VerifiedCommand, CommandError> {
    let (command, _) = Envelope::open::<GrantCommand>(tag::GRANT_COMMAND, bytes, Some(hub_key))?;
    if command.version != VERSION {
        return Err(CommandError::Version(command.version));
    }
    let grant = Grant::new(Ipv4Addr::from(command.ip), u32::from(command.port), subnet)?;
    if let GrantAction::Add {
        timeout_secs: Some(t),
    } = command.action
    {
        check_timeout(t)?;
    }
    Ok(VerifiedCommand {
        nonce: command.nonce,
        grant,
        action: command.action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Ipv4Net {
        "10.10.0.0/24".parse().unwrap()
    }

    #[test]
    fn grants_only_host_addresses_of_the_subnet_and_real_ports() {
        let ok = Grant::new(Ipv4Addr::new(10, 10, 0, 5), 22, &net()).unwrap();
        assert_eq!(ok.port, 22);
        for ip in [
            Ipv4Addr::new(10, 10, 1, 5),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(192, 168, 0, 1),
        ] {
            assert!(matches!(
                Grant::new(ip, 22, &net()),
                Err(GrantError::OutsideSubnet { .. })
            ));
        }
        for ip in [Ipv4Addr::new(10, 10, 0, 0), Ipv4Addr::new(10, 10, 0, 255)] {
            assert!(matches!(
                Grant::new(ip, 22, &net()),
                Err(GrantError::NotAHost { .. })
            ));
        }
        for port in [0, 65536, u32::MAX] {
            assert_eq!(
                Grant::new(Ipv4Addr::new(10, 10, 0, 5), port, &net()),
                Err(GrantError::BadPort(port))
            );
        }
        assert!(Grant::new(Ipv4Addr::new(10, 10, 0, 5), 65535, &net()).is_ok());
    }

    #[test]
    fn timeouts_are_bounded() {
        assert!(check_timeout(0).is_err());
        assert!(check_timeout(MAX_TIMEOUT_SECS + 1).is_err());
        assert_eq!(check_timeout(2), Ok(2));
    }

    fn command(ip: [u8; 4], port: u16) -> GrantCommand {
        GrantCommand {
            version: VERSION,
            nonce: [7; 32],
            action: GrantAction::Add {
                timeout_secs: Some(60),
            },
            ip,
            port,
        }
    }

    #[test]
    fn signed_command_round_trip_and_refusals() {
        let hub = SigningSecret::from_seed([1; 32]);
        let other = SigningSecret::from_seed([2; 32]);
        let bytes = seal_command(&command([10, 10, 0, 9], 8080), &hub).unwrap();
        let v = open_command(&bytes, &hub.public_key(), &net()).unwrap();
        assert_eq!(v.grant.ip, Ipv4Addr::new(10, 10, 0, 9));
        assert_eq!(v.nonce, [7; 32]);

        // Signed by someone else.
        let forged = seal_command(&command([10, 10, 0, 9], 8080), &other).unwrap();
        assert!(matches!(
            open_command(&forged, &hub.public_key(), &net()),
            Err(CommandError::Envelope(EnvelopeError::WrongSigner))
        ));
        // A flipped byte breaks the signature.
        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(open_command(&tampered, &hub.public_key(), &net()).is_err());
        // Outside the subnet / the whole subnet / port 0, even when signed.
        for c in [
            command([10, 10, 1, 9], 8080),
            command([10, 10, 0, 0], 8080),
            command([0, 0, 0, 0], 8080),
            command([10, 10, 0, 9], 0),
        ] {
            let b = seal_command(&c, &hub).unwrap();
            assert!(matches!(
                open_command(&b, &hub.public_key(), &net()),
                Err(CommandError::Grant(_))
            ));
        }
        // Another domain's signature over the same body is not a command.
        let body = crate::envelope::encode(&command([10, 10, 0, 9], 8080));
        let wrong_domain =
            Envelope::seal(tag::ENROL_GRANT, &command([10, 10, 0, 9], 8080), &hub).unwrap();
        assert!(!body.is_empty());
        assert!(open_command(&wrong_domain, &hub.public_key(), &net()).is_err());
        // Garbage never panics.
        assert!(open_command(&[], &hub.public_key(), &net()).is_err());
        assert!(open_command(&[0xff; 300], &hub.public_key(), &net()).is_err());
    }
}

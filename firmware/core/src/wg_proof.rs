//! Proof of possession of a WireGuard private key.
//!
//! X25519 keys cannot sign, so a node proves it holds the private half of
//! the WireGuard key it names with a MAC under the X25519 shared secret of
//! that key and the hub's WireGuard key:
//!
//! ```text
//! key   = X25519(node WireGuard secret, hub WireGuard public)
//!       = X25519(hub WireGuard secret, node WireGuard public)
//! proof = BLAKE2b-256-MAC(key; "gondwana/v1/wireguard-proof\0" || message)
//! ```
//!
//! Only the holder of one of the two secrets can compute it; the hub checks
//! it with its own secret and the node's public key. An all-zero shared
//! secret (a low-order public key) is refused on both sides: it would make
//! the MAC key public. The message binds the proof to one exchange (the
//! signed enrolment request body, which contains the hub's fresh nonce; or
//! the hash of the identity-log entry that rotates the key).

use blake2::Blake2bMac;
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};

use crate::envelope::tag;
use crate::keys::{PublicKey, WireguardSecret};

pub const PROOF_LEN: usize = 32;
pub type WireguardProof = [u8; PROOF_LEN];

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the X25519 shared secret is all zeros (a low-order public key)")]
    LowOrder,
    #[error("the WireGuard proof does not verify")]
    Mismatch,
}

fn mac(secret: &WireguardSecret, peer: &PublicKey) -> Result<Blake2bMac<U32>, ProofError> {
    let shared = secret.shared_secret(peer).ok_or(ProofError::LowOrder)?;
    // A 32-byte key is within BLAKE2b's 1..=64: this cannot fail.
    let mut mac =
        Blake2bMac::<U32>::new_from_slice(&shared[..]).map_err(|_| ProofError::LowOrder)?;
    mac.update(tag::WIREGUARD_PROOF);
    Ok(mac)
}

/// Node side: the proof over `message` for the key pair (`own`, `peer`).
pub fn prove(
    own: &WireguardSecret,
    peer: &PublicKey,
    message: &[u8],
) -> Result<WireguardProof, ProofError> {
    let mut mac = mac(own, peer)?;
    mac.update(message);
    Ok(mac.finalize().into_bytes().into())
}

/// Hub side: checks `proof` in constant time.
pub fn verify(
    own: &WireguardSecret,
    peer: &PublicKey,
    message: &[u8],
    proof: &WireguardProof,
) -> Result<(), ProofError> {
    let mut mac = mac(own, peer)?;
    mac.update(message);
    mac.verify_slice(proof).map_err(|_| ProofError::Mismatch)
}

#[cfg(test)]
mod tests;

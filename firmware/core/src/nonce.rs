//! Stateless single-use nonces: the hub's enrolment nonces and a node's
//! grant-command nonces.
//!
//! A nonce is 32 bytes:
//!
//! ```text
//! issued_at:u64 LE | random:[8] | tag:[16]
//! tag = BLAKE2b-128, keyed with the book's 32-byte secret,
//!       over purpose_tag || issued_at || random
//! ```
//!
//! `issued_at` is in whole seconds on the book's own monotonic clock (0 when
//! the book was created). Issuing stores nothing, so asking for nonces
//! costs the issuer no memory. A nonce is accepted once: its tag verifies
//! (compared in constant time), its age is under [`NONCE_TTL_SECS`] and it
//! is not in the used set. Only *spent* nonces are remembered, and only
//! until they expire, so the used set holds at most the nonces spent in the
//! last [`NONCE_TTL_SECS`] — and the caller spends one only for a request
//! that has passed authentication.
//!
//! The purpose tag is part of the MAC input, so an enrolment nonce is no
//! grant-command nonce even under one secret.
//!
//! Here, not in the binary: everything is pure (the secret, the random bytes
//! and `now` come in as arguments), so the book is tested on a virtual
//! clock. The daemon's wrapper (`firmware/node/src/daemon/nonces.rs`)
//! supplies the OS RNG and the monotonic clock.

use std::collections::BTreeSet;

use blake2::Blake2bMac;
use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use zeroize::Zeroizing;

pub type Nonce = [u8; 32];

/// How long a nonce stays usable after it was issued.
pub const NONCE_TTL_SECS: u64 = 120;

/// Bytes of one used-set entry's key: `issued_at || random`.
pub const USED_ENTRY_BYTES: usize = 16;

/// What a nonce is for: its tag is the MAC's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `GET /v1/enroll/nonce` on a hub.
    Enrol,
    /// `GET /v1/grants/nonce` on a node.
    GrantCommand,
}

impl Purpose {
    pub const fn tag(self) -> &'static [u8] {
        match self {
            Purpose::Enrol => b"gondwana/v1/nonce-enrol\0",
            Purpose::GrantCommand => b"gondwana/v1/nonce-grant-command\0",
        }
    }
}

/// Why a nonce is not accepted (all answered as `unknown_nonce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceRefusal {
    #[error("not issued here (its tag does not verify)")]
    Forged,
    #[error("expired")]
    Expired,
    #[error("already used")]
    Used,
}

pub struct NonceBook {
    secret: Zeroizing<[u8; 32]>,
    purpose: Purpose,
    /// Spent nonces as (issued_at, random), oldest first: expiry pops the
    /// front. The tag is not kept: once it has verified, these 16 bytes
    /// name the nonce.
    used: BTreeSet<(u64, [u8; 8])>,
}

impl NonceBook {
    pub fn new(secret: &[u8; 32], purpose: Purpose) -> NonceBook {
        NonceBook {
            secret: Zeroizing::new(*secret),
            purpose,
            used: BTreeSet::new(),
        }
    }

    /// A fresh nonce issued at `now` (seconds on the book's clock). Takes
    /// `&self`: issuing remembers nothing.
    pub fn issue(&self, now: u64, random: [u8; 8]) -> Nonce {
        let mut nonce = [0u8; 32];
        nonce[..8].copy_from_slice(&now.to_le_bytes());
        nonce[8..16].copy_from_slice(&random);
        let tag = self.mac(&nonce[..16]).finalize().into_bytes();
        nonce[16..].copy_from_slice(&tag);
        nonce
    }

    /// Whether `nonce` would be accepted at `now`; changes nothing. Lets a
    /// caller refuse a forged or spent nonce before doing any work.
    pub fn check(&self, nonce: &Nonce, now: u64) -> Result<(), NonceRefusal> {
        let key = self.verified_key(nonce, now)?;
        if self.used.contains(&key) {
            return Err(NonceRefusal::Used);
        }
        Ok(())
    }

    /// Accepts `nonce` once: checks it and records it as used, atomically
    /// (the caller holds `&mut self`). Forgets what has expired first.
    pub fn spend(&mut self, nonce: &Nonce, now: u64) -> Result<(), NonceRefusal> {
        let key = self.verified_key(nonce, now)?;
        self.forget_expired(now);
        if !self.used.insert(key) {
            return Err(NonceRefusal::Used);
        }
        Ok(())
    }

    /// Spent nonces still remembered.
    pub fn used_len(&self) -> usize {
        self.used.len()
    }

    fn verified_key(&self, nonce: &Nonce, now: u64) -> Result<(u64, [u8; 8]), NonceRefusal> {
        self.mac(&nonce[..16])
            .verify_slice(&nonce[16..])
            .map_err(|_| NonceRefusal::Forged)?;
        let mut at = [0u8; 8];
        at.copy_from_slice(&nonce[..8]);
        let issued_at = u64::from_le_bytes(at);
        // A tag that verifies but a time ahead of the clock: not from this
        // book's clock (cannot happen unless the secret is shared).
        let age = now.checked_sub(issued_at).ok_or(NonceRefusal::Forged)?;
        if age >= NONCE_TTL_SECS {
            return Err(NonceRefusal::Expired);
        }
        let mut random = [0u8; 8];
        random.copy_from_slice(&nonce[8..16]);
        Ok((issued_at, random))
    }

    /// Drops every entry whose nonce is expired at `now`: it would be
    /// refused as expired anyway.
    fn forget_expired(&mut self, now: u64) {
        while let Some(&(issued_at, _)) = self.used.first() {
            if now.saturating_sub(issued_at) < NONCE_TTL_SECS {
                break;
            }
            self.used.pop_first();
        }
    }

    fn mac(&self, prefix: &[u8]) -> Blake2bMac<U16> {
        // A 32-byte key is always a valid BLAKE2b key (1..=64 bytes).
        let mut mac = <Blake2bMac<U16> as KeyInit>::new_from_slice(&self.secret[..])
            .unwrap_or_else(|_| unreachable!("a 32-byte BLAKE2b key"));
        mac.update(self.purpose.tag());
        mac.update(prefix);
        mac
    }
}

#[cfg(test)]
mod tests;

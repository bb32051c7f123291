//! The hub's outstanding enrolment nonces: single use, short-lived, bounded.
//! Kept in memory on purpose: a hub restart invalidates them all, which only
//! makes nodes fetch a fresh one (they retry anyway), and a replayed request
//! can never find its nonce again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gondwana_core::enrol::Nonce;

pub const NONCE_TTL: Duration = Duration::from_secs(120);
pub const MAX_OUTSTANDING: usize = 10_000;

#[derive(Default)]
pub struct NonceBook {
    issued: HashMap<Nonce, Instant>,
}

impl NonceBook {
    /// Records a fresh nonce; false when too many are outstanding.
    pub fn issue(&mut self, nonce: Nonce, now: Instant) -> bool {
        if self.issued.len() >= MAX_OUTSTANDING {
            self.issued
                .retain(|_, at| now.duration_since(*at) < NONCE_TTL);
            if self.issued.len() >= MAX_OUTSTANDING {
                return false;
            }
        }
        self.issued.insert(nonce, now);
        true
    }

    /// Takes a nonce out (so it can be used once); false if unknown or stale.
    pub fn take(&mut self, nonce: &Nonce, now: Instant) -> bool {
        match self.issued.remove(nonce) {
            Some(at) => now.duration_since(at) < NONCE_TTL,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use_and_expiry() {
        let mut book = NonceBook::default();
        let t0 = Instant::now();
        assert!(book.issue([1; 32], t0));
        assert!(book.take(&[1; 32], t0));
        assert!(!book.take(&[1; 32], t0), "second use");
        assert!(!book.take(&[2; 32], t0), "never issued");
        assert!(book.issue([3; 32], t0));
        assert!(!book.take(&[3; 32], t0 + NONCE_TTL), "expired");
    }

    #[test]
    fn bounded() {
        let mut book = NonceBook::default();
        let t0 = Instant::now();
        for i in 0..MAX_OUTSTANDING as u32 {
            let mut n = [0u8; 32];
            n[..4].copy_from_slice(&i.to_le_bytes());
            assert!(book.issue(n, t0));
        }
        assert!(!book.issue([0xff; 32], t0));
        assert!(book.issue([0xff; 32], t0 + NONCE_TTL), "stale ones evicted");
    }
}

//! The daemon's nonce books (enrolment on a hub, grant commands on a node):
//! the pure book of `gondwana_core::nonce` plus what it must not have — the
//! OS RNG and a monotonic clock. Kept here rather than in core for exactly
//! those two.
//!
//! Each book draws its 32-byte secret from the OS RNG when it issues its
//! first nonce and keeps it in memory only: a restart voids every nonce
//! (nodes just fetch a fresh one; they retry anyway).

use std::sync::Mutex;
use std::time::Instant;

use gondwana_core::nonce::{Nonce, NonceBook, NonceRefusal, Purpose};

pub struct Nonces {
    purpose: Purpose,
    /// The book's clock starts here (monotonic: wall-clock steps do not
    /// age or revive a nonce).
    epoch: Instant,
    /// `None` until the first nonce is issued (no secret yet, so nothing
    /// can verify).
    book: Mutex<Option<NonceBook>>,
}

impl Nonces {
    pub fn new(purpose: Purpose) -> Nonces {
        Nonces {
            purpose,
            epoch: Instant::now(),
            book: Mutex::new(None),
        }
    }

    /// A fresh nonce. Stores nothing (the secret aside, drawn once), so it
    /// never refuses for load; fails only if the OS RNG does.
    pub fn issue(&self) -> anyhow::Result<Nonce> {
        let mut random = [0u8; 8];
        getrandom::getrandom(&mut random)
            .map_err(|e| anyhow::anyhow!("reading the OS random number generator: {e}"))?;
        let mut guard = self.book.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let secret = crate::random::seed()?;
            *guard = Some(NonceBook::new(&secret, self.purpose));
        }
        let book = guard
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no nonce book"))?;
        Ok(book.issue(self.now(), random))
    }

    /// Would `nonce` be accepted now? Changes nothing: for refusing forged,
    /// stale or spent nonces before any work.
    pub fn check(&self, nonce: &Nonce) -> Result<(), NonceRefusal> {
        let guard = self.book.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(book) => book.check(nonce, self.now()),
            None => Err(NonceRefusal::Forged),
        }
    }

    /// Accepts `nonce` once and remembers it until it expires. Check and
    /// record happen under one lock: of two identical requests exactly one
    /// gets `Ok`. Call only for an authenticated request.
    pub fn spend(&self, nonce: &Nonce) -> Result<(), NonceRefusal> {
        let mut guard = self.book.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(book) => book.spend(nonce, self.now()),
            None => Err(NonceRefusal::Forged),
        }
    }

    /// Spent nonces remembered now (a metric: the set's whole cost).
    pub fn used_len(&self) -> usize {
        let guard = self.book.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map_or(0, NonceBook::used_len)
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_nonces_are_spent_once_and_cost_nothing() {
        let book = Nonces::new(Purpose::Enrol);
        let nonces: Vec<Nonce> = (0..20_000).map(|_| book.issue().unwrap()).collect();
        assert_eq!(book.used_len(), 0, "issuing remembers nothing");
        assert_eq!(book.check(&nonces[7]), Ok(()));
        assert_eq!(book.spend(&nonces[7]), Ok(()));
        assert_eq!(book.spend(&nonces[7]), Err(NonceRefusal::Used));
        assert_eq!(book.spend(&[0; 32]), Err(NonceRefusal::Forged));
        assert_eq!(book.used_len(), 1);
    }

    #[test]
    fn another_book_or_purpose_does_not_accept_them() {
        let enrol = Nonces::new(Purpose::Enrol);
        let grant = Nonces::new(Purpose::GrantCommand);
        assert_eq!(
            Nonces::new(Purpose::Enrol).spend(&[1; 32]),
            Err(NonceRefusal::Forged),
            "nothing issued yet: nothing verifies"
        );
        let n = enrol.issue().unwrap();
        let _ = grant.issue().unwrap();
        assert_eq!(grant.spend(&n), Err(NonceRefusal::Forged));
        // A restart is a new book with a new secret.
        let restarted = Nonces::new(Purpose::Enrol);
        let _ = restarted.issue().unwrap();
        assert_eq!(restarted.spend(&n), Err(NonceRefusal::Forged));
        assert_eq!(enrol.spend(&n), Ok(()));
    }

    #[test]
    fn concurrent_spends_of_one_nonce_let_exactly_one_through() {
        let book = std::sync::Arc::new(Nonces::new(Purpose::Enrol));
        let n = book.issue().unwrap();
        let winners: usize = (0..16)
            .map(|_| {
                let book = book.clone();
                std::thread::spawn(move || book.spend(&n).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(winners, 1);
    }
}

//! The nonce book on a virtual clock: `now` is whatever the test says.

use super::*;

const SECRET: [u8; 32] = [0x11; 32];

fn book() -> NonceBook {
    NonceBook::new(&SECRET, Purpose::Enrol)
}

#[test]
fn a_nonce_is_accepted_once_within_its_lifetime() {
    let mut book = book();
    let n = book.issue(1000, [7; 8]);
    assert_eq!(book.check(&n, 1000), Ok(()));
    assert_eq!(book.check(&n, 1000 + NONCE_TTL_SECS - 1), Ok(()));
    assert_eq!(book.spend(&n, 1010), Ok(()));
    assert_eq!(book.check(&n, 1011), Err(NonceRefusal::Used));
    assert_eq!(book.spend(&n, 1011), Err(NonceRefusal::Used));
    assert_eq!(book.used_len(), 1);
}

#[test]
fn expired_at_the_ttl() {
    let mut book = book();
    let n = book.issue(5, [1; 8]);
    assert_eq!(
        book.check(&n, 5 + NONCE_TTL_SECS),
        Err(NonceRefusal::Expired)
    );
    assert_eq!(
        book.spend(&n, 5 + NONCE_TTL_SECS + 1000),
        Err(NonceRefusal::Expired)
    );
    assert_eq!(book.used_len(), 0, "a refused nonce is not recorded");
}

#[test]
fn a_forged_or_altered_nonce_is_refused() {
    let mut book = book();
    let n = book.issue(50, [3; 8]);
    for i in 0..32 {
        let mut bad = n;
        bad[i] ^= 0x01;
        assert_eq!(book.spend(&bad, 60), Err(NonceRefusal::Forged), "byte {i}");
    }
    assert_eq!(book.spend(&[0u8; 32], 60), Err(NonceRefusal::Forged));
    // Another secret's nonce, even for the same purpose and time.
    let other = NonceBook::new(&[0x22; 32], Purpose::Enrol).issue(50, [3; 8]);
    assert_eq!(book.spend(&other, 60), Err(NonceRefusal::Forged));
    // A time ahead of the clock is no nonce of this book's either.
    assert_eq!(book.check(&n, 49), Err(NonceRefusal::Forged));
    assert_eq!(book.used_len(), 0);
    assert_eq!(book.spend(&n, 60), Ok(()), "the real one still works");
}

#[test]
fn purposes_are_not_interchangeable() {
    let mut enrol = NonceBook::new(&SECRET, Purpose::Enrol);
    let mut grant = NonceBook::new(&SECRET, Purpose::GrantCommand);
    let e = enrol.issue(10, [9; 8]);
    let g = grant.issue(10, [9; 8]);
    assert_ne!(e, g);
    assert_eq!(grant.spend(&e, 11), Err(NonceRefusal::Forged));
    assert_eq!(enrol.spend(&g, 11), Err(NonceRefusal::Forged));
    assert_eq!(enrol.spend(&e, 11), Ok(()));
    assert_eq!(grant.spend(&g, 11), Ok(()));
}

#[test]
fn issuing_stores_nothing() {
    let mut book = book();
    // `issue` takes `&self`; the used set stays empty however many go out.
    let mut last = [0u8; 32];
    for i in 0..200_000u64 {
        last = book.issue(i / 1000, i.to_le_bytes());
    }
    assert_eq!(book.used_len(), 0);
    // And the newest one is still good.
    assert_eq!(book.spend(&last, 199), Ok(()));
    assert_eq!(book.used_len(), 1);
}

#[test]
fn the_used_set_forgets_expired_entries() {
    let mut book = book();
    for i in 0..1000u64 {
        let n = book.issue(i / 10, i.to_le_bytes());
        assert_eq!(book.spend(&n, i / 10), Ok(()));
    }
    assert_eq!(book.used_len(), 1000, "all still within the TTL");
    // At t = 99 + 120 only those issued at 99 are still alive; the next
    // spend drops the rest.
    let t = 99 + NONCE_TTL_SECS;
    let n = book.issue(t, [0xee; 8]);
    assert_eq!(book.spend(&n, t), Ok(()));
    assert_eq!(book.used_len(), 1);
    // Spending at a steady rate keeps the set at rate × TTL.
    let mut book = self::book();
    for s in 0..1000u64 {
        let n = book.issue(s, s.to_le_bytes());
        assert_eq!(book.spend(&n, s), Ok(()));
        assert!(
            book.used_len() as u64 <= NONCE_TTL_SECS,
            "{}",
            book.used_len()
        );
    }
}

#[test]
fn published_vector() {
    // docs/protocol.md and tests/independent-vectors.py: secret 11 × 32,
    // issued at 5 s, random 02 × 8, for each purpose.
    let n = book().issue(5, [2; 8]);
    assert_eq!(
        crate::hash::to_hex(&n),
        "05000000000000000202020202020202cdce985b5678ed54ad61da90a59320f8"
    );
    let g = NonceBook::new(&SECRET, Purpose::GrantCommand).issue(5, [2; 8]);
    assert_eq!(
        crate::hash::to_hex(&g),
        "050000000000000002020202020202029d8f79b983088d3ec578b0fdeac67bcc"
    );
}

//! Per-sender token buckets on the driver's monotonic clock.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::time::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests a sender may make at once.
    pub burst: u32,
    /// One more request is allowed per this long, up to `burst`.
    pub refill: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    tokens: u32,
    /// When the tokens were last counted up.
    at: Millis,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Buckets(BTreeMap<Ipv4Addr, Bucket>);

impl Buckets {
    /// Takes one token of `from`'s bucket; `false`: none left.
    pub(crate) fn take(&mut self, limit: RateLimit, from: Ipv4Addr, now: Millis) -> bool {
        let bucket = self.0.entry(from).or_insert(Bucket {
            tokens: limit.burst,
            at: now,
        });
        refill(bucket, limit, now);
        if bucket.tokens == 0 {
            return false;
        }
        bucket.tokens -= 1;
        true
    }

    /// Forgets buckets that are full again (a sender heard from long ago).
    pub(crate) fn prune(&mut self, limit: RateLimit, now: Millis) {
        self.0.retain(|_, b| {
            refill(b, limit, now);
            b.tokens < limit.burst
        });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

fn refill(bucket: &mut Bucket, limit: RateLimit, now: Millis) {
    let step = u64::try_from(limit.refill.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let gained = now.0.saturating_sub(bucket.at.0) / step;
    let tokens = u64::from(bucket.tokens).saturating_add(gained);
    if tokens >= u64::from(limit.burst) {
        bucket.tokens = limit.burst;
        bucket.at = now;
    } else {
        // Below `burst`, so it fits a u32; the remainder of a step is kept.
        bucket.tokens = u32::try_from(tokens).unwrap_or(limit.burst);
        bucket.at = Millis(bucket.at.0.saturating_add(gained * step));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_refill_per_sender() {
        let limit = RateLimit {
            burst: 3,
            refill: Duration::from_secs(2),
        };
        let a = Ipv4Addr::new(10, 10, 0, 2);
        let b = Ipv4Addr::new(10, 10, 0, 3);
        let mut buckets = Buckets::default();
        for _ in 0..3 {
            assert!(buckets.take(limit, a, Millis(0)));
        }
        assert!(!buckets.take(limit, a, Millis(1999)));
        assert!(buckets.take(limit, b, Millis(1999)), "another sender");
        assert!(buckets.take(limit, a, Millis(2000)));
        assert!(!buckets.take(limit, a, Millis(2500)));
        // The half step kept: the next token at 4000, not 4500.
        assert!(buckets.take(limit, a, Millis(4000)));
        // b is full again by 5000 and forgotten; a is not.
        buckets.prune(limit, Millis(5000));
        assert_eq!(buckets.len(), 1);
        buckets.prune(limit, Millis(60_000));
        assert_eq!(buckets.len(), 0);
    }
}

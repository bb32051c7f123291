//! A token bucket in bytes: the per-pair rate bound. Integer arithmetic on
//! the elapsed nanoseconds, so it needs no float formatting and no clock of
//! its own (the caller passes `now`, the tests a virtual one).

use std::time::{Duration, Instant};

/// The smallest burst a pair may send at once: a few full-size WireGuard
/// datagrams, so a slow bound still passes a handshake and a TCP window.
const MIN_BURST_BYTES: u64 = 16 * 1024;
/// The burst is the bound's worth of this long.
const BURST_WINDOW: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Bytes per second.
    rate: u64,
    capacity: u64,
    tokens: u64,
    /// Nanoseconds' worth of tokens not credited yet (rounding carry).
    carry_nanos: u128,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `kbit_per_sec` (1 kbit = 1000 bits).
    pub fn new(kbit_per_sec: u64, now: Instant) -> TokenBucket {
        let rate = kbit_per_sec.saturating_mul(1000) / 8;
        let window = u128::from(rate) * BURST_WINDOW.as_nanos() / 1_000_000_000;
        let capacity = u64::try_from(window)
            .unwrap_or(u64::MAX)
            .max(MIN_BURST_BYTES);
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            carry_nanos: 0,
            last: now,
        }
    }

    /// Takes `bytes` if the bucket holds them; false (and nothing taken)
    /// otherwise.
    pub fn take(&mut self, bytes: usize, now: Instant) -> bool {
        self.refill(now);
        let bytes = bytes as u64;
        if self.tokens < bytes {
            return false;
        }
        self.tokens -= bytes;
        true
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos() + self.carry_nanos;
        self.last = now;
        if self.tokens >= self.capacity {
            self.carry_nanos = 0;
            return;
        }
        let earned = elapsed * u128::from(self.rate) / 1_000_000_000;
        // What did not make a whole byte is kept for the next call, so
        // many small refills earn as much as one large one.
        self.carry_nanos = if self.rate == 0 {
            0
        } else {
            elapsed - earned * 1_000_000_000 / u128::from(self.rate)
        };
        let earned = u64::try_from(earned).unwrap_or(u64::MAX);
        self.tokens = self.tokens.saturating_add(earned).min(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate_after_the_burst() {
        let t0 = Instant::now();
        // 800 kbit/s = 100,000 bytes/s; burst max(10,000, 16 KiB).
        let mut b = TokenBucket::new(800, t0);
        let mut sent = 0u64;
        let mut now = t0;
        // 1,000-byte datagrams every 1 ms for 2 s: twice the bound offered.
        for _ in 0..2000 {
            now += Duration::from_millis(1);
            if b.take(1000, now) {
                sent += 1000;
            }
        }
        let bound = 16 * 1024 + 2 * 100_000;
        assert!(sent <= bound, "{sent} > {bound}");
        assert!(
            sent >= 200_000 - 1000,
            "{sent}: the bound is met, not undercut"
        );
    }

    #[test]
    fn small_refills_add_up_and_the_bucket_caps() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(8, t0); // 1,000 bytes/s
        assert!(b.take(16 * 1024, t0));
        assert!(!b.take(1, t0));
        let mut now = t0;
        for _ in 0..1000 {
            now += Duration::from_micros(100); // 0.1 byte each
        }
        assert!(b.take(100, now), "100 ms at 1,000 B/s is 100 bytes");
        assert!(!b.take(1, now));
        // A long pause fills it to the cap only.
        now += Duration::from_secs(3600);
        assert!(b.take(16 * 1024, now));
        assert!(!b.take(1, now));
    }
}

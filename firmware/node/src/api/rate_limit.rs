//! Per-source rate limiting: a token bucket per client address, kept as one
//! instant per source (GCRA, the "virtual scheduling" form of a token
//! bucket). Sans-IO: the caller passes `now`.
//!
//! Written here rather than taken from `governor`: that crate brings its own
//! clock abstraction, a concurrent map and several dependencies for what is
//! one `HashMap<IpAddr, Instant>` and two comparisons.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default cap on the number of sources remembered at once.
pub const DEFAULT_MAX_SOURCES: usize = 10_000;

/// Allows each source a burst of `burst` requests, refilled at `per_second`.
///
/// Sources are client addresses; an IPv6 client counts per /64 (one host
/// usually holds a whole /64) and an IPv4-mapped IPv6 address as the IPv4
/// address. A source whose bucket is full again carries no information and is
/// forgotten when room is needed. When `max_sources` sources are all still
/// limited, a new source is refused until one of them refills: memory stays
/// bounded and the sources already known keep their accounting.
#[derive(Debug)]
pub struct RateLimiter {
    /// Time that one request costs (1 / rate).
    interval: Duration,
    /// How far ahead of `now` a source's schedule may run: the burst.
    tolerance: Duration,
    max_sources: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When each source's bucket is full again ("theoretical arrival time").
    full_at: HashMap<IpAddr, Instant>,
    /// No entry is forgettable before this; saves sweeping in vain.
    no_sweep_before: Option<Instant>,
}

impl RateLimiter {
    /// # Panics
    /// If `burst` is 0 or `per_second` is not a positive finite number.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self::with_max_sources(burst, per_second, DEFAULT_MAX_SOURCES)
    }

    /// # Panics
    /// As [`RateLimiter::new`], and if `max_sources` is 0.
    pub fn with_max_sources(burst: u32, per_second: f64, max_sources: usize) -> Self {
        assert!(burst > 0, "a rate limit needs a burst of at least 1");
        assert!(
            per_second.is_finite() && per_second > 0.0,
            "a rate limit needs a positive rate, got {per_second}"
        );
        assert!(max_sources > 0, "a rate limiter must remember a source");
        let interval = Duration::from_secs_f64(1.0 / per_second);
        RateLimiter {
            interval,
            tolerance: interval.saturating_mul(burst - 1),
            max_sources,
            state: Mutex::new(State::default()),
        }
    }

    /// Takes one token for `ip` at `now`: `true` if the request may proceed.
    /// A refused request costs nothing.
    pub fn check(&self, ip: IpAddr, now: Instant) -> bool {
        let source = source_of(ip);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let scheduled = match state.full_at.get(&source) {
            Some(&full_at) => full_at.max(now),
            None => {
                if state.full_at.len() >= self.max_sources
                    && !state.make_room(now, self.max_sources)
                {
                    return false;
                }
                now
            }
        };
        if scheduled.saturating_duration_since(now) > self.tolerance {
            return false;
        }
        state.full_at.insert(source, scheduled + self.interval);
        true
    }

    /// Sources remembered now.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .full_at
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    /// Forgets every source whose bucket is full at `now`; true if that left
    /// room for one more.
    fn make_room(&mut self, now: Instant, max: usize) -> bool {
        if self.no_sweep_before.is_some_and(|t| now < t) {
            return false;
        }
        self.full_at.retain(|_, full_at| *full_at > now);
        self.no_sweep_before = self.full_at.values().min().copied();
        self.full_at.len() < max
    }
}

fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_refill_at_the_rate() {
        let limiter = RateLimiter::new(3, 10.0); // 3 at once, then one per 100 ms
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert!(limiter.check(a, t0));
        assert!(limiter.check(a, t0));
        assert!(limiter.check(a, t0));
        assert!(!limiter.check(a, t0));
        assert!(!limiter.check(a, t0 + ms(99)));
        assert!(limiter.check(a, t0 + ms(100)));
        assert!(!limiter.check(a, t0 + ms(100)));
        // After a long pause the burst is back, but no more than the burst.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| limiter.check(a, later)));
        assert!(!limiter.check(a, later));
    }

    #[test]
    fn refusals_do_not_cost_tokens() {
        let limiter = RateLimiter::new(1, 1.0);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert!(limiter.check(a, t0));
        for i in 1..10 {
            assert!(!limiter.check(a, t0 + ms(i * 90)));
        }
        assert!(limiter.check(a, t0 + ms(1000)));
    }

    #[test]
    fn rates_below_one_per_second() {
        let limiter = RateLimiter::new(1, 0.1); // one per 10 s
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert!(limiter.check(a, t0));
        assert!(!limiter.check(a, t0 + Duration::from_secs(9)));
        assert!(limiter.check(a, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn sources_are_independent() {
        let limiter = RateLimiter::new(1, 1.0);
        let t0 = Instant::now();
        assert!(limiter.check(ip("192.0.2.1"), t0));
        assert!(!limiter.check(ip("192.0.2.1"), t0));
        assert!(limiter.check(ip("192.0.2.2"), t0));
        assert!(limiter.check(ip("2001:db8:0:1::1"), t0));
        assert_eq!(limiter.len(), 3);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limiter = RateLimiter::new(1, 1.0);
        let t0 = Instant::now();
        assert!(limiter.check(ip("2001:db8:0:1::1"), t0));
        assert!(!limiter.check(ip("2001:db8:0:1:ffff:ffff:ffff:ffff"), t0));
        assert!(limiter.check(ip("2001:db8:0:2::1"), t0));
        assert!(limiter.check(ip("198.51.100.7"), t0));
        assert!(!limiter.check(ip("::ffff:198.51.100.7"), t0));
    }

    #[test]
    fn a_stale_now_is_refused_not_a_panic() {
        // Instants only go forward, but a caller may pass one taken before
        // an await: it looks early against the schedule, so it is refused.
        let limiter = RateLimiter::new(2, 1.0);
        let t0 = Instant::now() + Duration::from_secs(10);
        let a = ip("192.0.2.1");
        assert!(limiter.check(a, t0));
        assert!(!limiter.check(a, t0 - Duration::from_secs(5)));
        assert!(limiter.check(a, t0));
        assert!(!limiter.check(a, t0));
    }

    #[test]
    fn memory_is_bounded_and_full_buckets_are_forgotten() {
        let limiter = RateLimiter::with_max_sources(2, 1.0, 100);
        let t0 = Instant::now();
        let nth = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000u32 + i));
        for i in 0..100 {
            assert!(limiter.check(nth(i), t0));
        }
        assert_eq!(limiter.len(), 100);
        // All 100 are still limited: a new source is refused, known ones go on.
        assert!(!limiter.check(nth(100), t0 + ms(500)));
        assert!(limiter.check(nth(5), t0 + ms(500)));
        assert_eq!(limiter.len(), 100);
        // Once buckets are full again they are forgotten to make room.
        let later = t0 + Duration::from_secs(5);
        assert!(limiter.check(nth(100), later));
        assert_eq!(limiter.len(), 1);
        assert!(limiter.len() <= 100);
    }

    #[test]
    fn a_refused_sweep_is_not_repeated_until_something_can_expire() {
        let limiter = RateLimiter::with_max_sources(1, 1.0, 2);
        let t0 = Instant::now();
        assert!(limiter.check(ip("192.0.2.1"), t0));
        assert!(limiter.check(ip("192.0.2.2"), t0 + ms(500)));
        assert!(!limiter.check(ip("192.0.2.3"), t0 + ms(600)));
        assert!(!limiter.check(ip("192.0.2.3"), t0 + ms(700)));
        // The first source's bucket is full at t0 + 1 s: it makes room.
        assert!(limiter.check(ip("192.0.2.3"), t0 + ms(1000)));
        assert!(!limiter.check(ip("192.0.2.4"), t0 + ms(1100)));
        assert!(limiter.check(ip("192.0.2.4"), t0 + ms(1500)));
    }

    #[test]
    #[should_panic(expected = "positive rate")]
    fn zero_rate_is_refused() {
        let _ = RateLimiter::new(1, 0.0);
    }

    #[test]
    #[should_panic(expected = "burst")]
    fn zero_burst_is_refused() {
        let _ = RateLimiter::new(0, 1.0);
    }
}

//! Capped exponential backoff with jitter, as a pure function: the caller
//! supplies the attempt number and a random fraction ([`Jitter`] gives a
//! seeded stream of them, so machines that back off stay deterministic).

use core::time::Duration;

/// Delay before retry number `attempt` (1 = first retry): `initial * 2^(attempt-1)`
/// capped at `max`, then scaled into `[half, full]` by `jitter` ∈ [0, 1), so
/// many boxes restarted together (a power cut) do not hit the hub in step.
pub fn delay(attempt: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = initial.saturating_mul(1u32 << exp).min(max);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    full.mul_f64(0.5 + 0.5 * jitter)
}

/// A deterministic stream of jitter fractions from a seed given at
/// construction (SplitMix64): jitter only spreads retries, it protects
/// nothing, so the driver may seed it from anything that differs per box.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter { state: seed }
    }

    /// The next fraction, uniform in [0, 1).
    pub fn fraction(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_seeded_and_stays_in_the_unit_interval() {
        let mut a = Jitter::new(7);
        let mut b = Jitter::new(7);
        let mut c = Jitter::new(8);
        let xs: Vec<f64> = (0..1000).map(|_| a.fraction()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(
            xs.iter()
                .zip((0..1000).map(|_| b.fraction()))
                .all(|(x, y)| *x == y)
        );
        assert_ne!(xs[0], c.fraction());
        // Spread, not stuck: both halves of the interval occur.
        assert!(xs.iter().any(|x| *x < 0.5) && xs.iter().any(|x| *x >= 0.5));
    }

    #[test]
    fn grows_then_caps_and_jitters_within_half_to_full() {
        let i = Duration::from_secs(1);
        let m = Duration::from_secs(60);
        assert_eq!(delay(1, i, m, 1.0), Duration::from_secs(1));
        assert_eq!(delay(3, i, m, 1.0), Duration::from_secs(4));
        assert_eq!(delay(10, i, m, 1.0), m);
        assert_eq!(delay(u32::MAX, i, m, 1.0), m);
        assert_eq!(delay(3, i, m, 0.0), Duration::from_secs(2));
        assert_eq!(delay(3, i, m, f64::NAN), Duration::from_secs(2));
        for k in 0..100 {
            let d = delay(7, i, m, k as f64 / 100.0);
            assert!(d >= m / 2 && d <= m);
        }
    }
}

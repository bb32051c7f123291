//! Capped exponential backoff with jitter, as a pure function: the caller
//! supplies the attempt number and a random fraction.

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

#[cfg(test)]
mod tests {
    use super::*;

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

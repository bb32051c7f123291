//! Monotonic time as the sans-IO machines see it.
//!
//! [`Millis`] counts milliseconds since an epoch the driver picks (the
//! daemon: the moment it built the machine; tests: zero). Machines only
//! compare and add, so the epoch never matters and a test clock is just a
//! number the test advances.

use core::ops::Add;
use core::time::Duration;

use serde::{Deserialize, Serialize};

/// A point on the driver's monotonic clock, in milliseconds since its epoch.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Millis(pub u64);

impl Millis {
    pub const ZERO: Millis = Millis(0);

    /// The point `elapsed` after the epoch (saturating: ~584 million years).
    pub fn from_elapsed(elapsed: Duration) -> Millis {
        Millis(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    }

    /// The time since the epoch, for the driver to turn back into its clock.
    pub fn since_epoch(self) -> Duration {
        Duration::from_millis(self.0)
    }

    /// How long after `earlier` this is; zero if it is not after.
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Millis {
    type Output = Millis;

    /// Rounds sub-millisecond delays up, so a deadline is never early.
    fn add(self, delay: Duration) -> Millis {
        let ms = delay.as_nanos().div_ceil(1_000_000);
        Millis(self.0.saturating_add(u64::try_from(ms).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_rounding_up_and_saturates() {
        assert_eq!(Millis(5) + Duration::from_micros(1), Millis(6));
        assert_eq!(Millis(5) + Duration::from_millis(10), Millis(15));
        assert_eq!(Millis(u64::MAX) + Duration::from_secs(1), Millis(u64::MAX));
        assert_eq!(Millis(15).since(Millis(5)), Duration::from_millis(10));
        assert_eq!(Millis(5).since(Millis(15)), Duration::ZERO);
        assert_eq!(
            Millis::from_elapsed(Duration::from_millis(1234)).since_epoch(),
            Duration::from_millis(1234)
        );
    }
}

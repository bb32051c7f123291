//! The OS RNG, the only source of key material.

use anyhow::Context;
use zeroize::Zeroizing;

pub fn seed() -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut seed[..]).context("reading the OS random number generator")?;
    Ok(seed)
}

/// A uniform fraction in [0, 1) for jitter; 0.5 if the RNG fails (jitter is
/// not security-relevant).
pub fn fraction() -> f64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

//! The OS RNG, the only source of key material.

use anyhow::Context;
use zeroize::Zeroizing;

pub fn seed() -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(&mut seed[..]).context("reading the OS random number generator")?;
    Ok(seed)
}

/// A seed for the sans-IO machines' jitter (`gondwana_core::backoff::Jitter`);
/// the process id and clock if the RNG fails (jitter is not
/// security-relevant: it only has to differ between boxes).
pub fn jitter_seed() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::getrandom(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            u64::from(std::process::id()) << 32 | u64::from(nanos)
        }
    }
}

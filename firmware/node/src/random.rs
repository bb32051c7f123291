//! The OS RNG, the only source of key material.

use anyhow::Context;
use zeroize::Zeroizing;

pub fn seed() -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut seed[..]).context("reading the OS random number generator")?;
    Ok(seed)
}

//! The userspace WireGuard device process (`gondwana wireguard-userspace`).
//! Implementation in progress.

use std::path::Path;

pub fn main(iface: &str, socket_dir: &Path) -> anyhow::Result<()> {
    anyhow::bail!("userspace device for {iface} in {}: not implemented yet", socket_dir.display())
}

//! `gondwana wireguard-bench` (hidden): the daemon's WireGuard code path,
//! driven from a wg-style peer file, for scripts/bench. Opens (or adopts)
//! the interface with the configured backend, sets the key from the file's
//! `[Interface] PrivateKey` and its `ListenPort`, reads the device, plans
//! its `[Peer]`s with `gondwana_core`'s `PeerDiff` (the daemon's one
//! planner) and applies the diff, prints timings as JSON; `--hold` then waits for stdin to
//! close, so the daemon side's memory can be measured.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use gondwana_core::InterfaceName;
use gondwana_core::keys::wg_key_from_base64;

use crate::net::wireguard::{BackendChoice, OpenOptions, PeerConfig, PeerDiff, WireGuard};

pub fn run(
    iface: &str,
    peers_file: &Path,
    backend: BackendChoice,
    hold: bool,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(peers_file)
        .with_context(|| format!("reading {}", peers_file.display()))?;
    let iface = InterfaceName::parse(iface)?;
    let (key, port, peers) = parse(&text)?;
    let runtime = crate::runtime::current_thread()?;
    let started = Instant::now();
    let (open_ms, apply_ms, wg) = runtime.block_on(async {
        let wg = WireGuard::open(&iface, backend, &OpenOptions::default()).await?;
        wg.configure(&key, port).await?;
        let opened = started.elapsed();
        // The peers the file names, and only them: the daemon's pass.
        let device = wg.get().await?;
        let diff = PeerDiff::new(&device.peers, &peers);
        wg.apply(&diff).await?;
        let changes = diff.changes();
        let applied = started.elapsed() - opened;
        if changes.added + changes.unchanged != peers.len() {
            bail!("applied {changes:?}, expected {} peers", peers.len());
        }
        anyhow::Ok((opened.as_secs_f64() * 1e3, applied.as_secs_f64() * 1e3, wg))
    })?;
    println!(
        "{}",
        serde_json::json!({
            "backend": wg.backend().as_str(),
            "peers": peers.len(),
            "open_configure_ms": open_ms,
            "apply_ms": apply_ms,
        })
    );
    if hold {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    }
    Ok(())
}

type Parsed = (zeroize::Zeroizing<[u8; 32]>, u16, Vec<PeerConfig>);

fn parse(text: &str) -> anyhow::Result<Parsed> {
    let mut key = None;
    let mut port = 0u16;
    let mut peers: Vec<PeerConfig> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line == "[Peer]" {
            peers.push(PeerConfig {
                public_key: [0; 32],
                endpoint: None,
                allowed_ips: Vec::new(),
                keepalive: None,
            });
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match (k, peers.last_mut()) {
            ("PrivateKey", None) => key = Some(wg_key_from_base64(v)?),
            ("ListenPort", None) => port = v.parse()?,
            ("PublicKey", Some(p)) => p.public_key = *wg_key_from_base64(v)?,
            ("AllowedIPs", Some(p)) => {
                for net in v.split(',') {
                    p.allowed_ips.push(net.trim().parse()?);
                }
            }
            ("Endpoint", Some(p)) => p.endpoint = Some(v.parse()?),
            ("PersistentKeepalive", Some(p)) => p.keepalive = Some(v.parse()?),
            _ => {}
        }
    }
    let key = key.context("no [Interface] PrivateKey")?;
    Ok((key, port, peers))
}

//! A trial boot's health watch (docs/updates.md, "Mark good"): every two
//! seconds, against a deadline counted from the kernel's start, the node
//! looks at itself, `gondwana_core::update::Trial`
//! decides, and this marks the slot good or records why not and reboots
//! to the good slot. A trial that hangs is reset by the hardware watchdog
//! the daemon pets on every boot (`daemon/watchdog.rs`), when the board has
//! one.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use gondwana_core::update::{Health, Trial, Verdict};

use crate::daemon::app::App;
use crate::daemon::drive::blocking;
use crate::update::{Slot, trial};

const EVERY: Duration = Duration::from_secs(2);

pub async fn run(app: Arc<App>, slot: Slot) {
    let config = app.config();
    let cfg = config.update.clone();
    let deadline = Duration::from_secs(cfg.trial_deadline_secs);
    info!(
        "update: slot {} is on trial: marked good once healthy, else back to the good slot after {} s",
        slot.name(),
        deadline.as_secs()
    );
    // From the kernel's start, not the daemon's: a daemon that crashes and
    // is restarted by init must not get a new deadline each time.
    let mut machine = Trial::new(0, deadline.as_millis() as u64);
    let api = config.api.loopback.unwrap_or(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        config.mesh.api_port,
    )));
    loop {
        let a = app.clone();
        let health = blocking(move || observe(&a, api)).await.unwrap_or_default();
        let now = since_boot_ms();
        match machine.observe(now, &health) {
            Verdict::Wait => {}
            Verdict::Good => {
                let c = cfg.clone();
                match blocking(move || trial::mark_good(&c, slot, crate::clock::now_unix())).await {
                    Ok(Ok(text)) => info!("update: {text}"),
                    Ok(Err(e)) => error!("update: could not mark slot {} good: {e:#}", slot.name()),
                    Err(e) => error!("update: mark good: {e}"),
                }
                return;
            }
            Verdict::Failed(why) => {
                error!(
                    "update: trial of slot {} failed: {why}; rebooting to the good slot",
                    slot.name()
                );
                let c = cfg.clone();
                let w = why.clone();
                if let Ok(Err(e)) = blocking(move || trial::record_failure(&c, slot, &w)).await {
                    error!("update: could not record the failure: {e:#}");
                }
                crate::update::reboot_now();
                return;
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// CLOCK_BOOTTIME: milliseconds since the kernel started (suspend included).
fn since_boot_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}

fn observe(app: &App, api: SocketAddr) -> Health {
    let enrolment = app.store.enrolment().ok().flatten();
    let head = app.store.directory_head();
    Health {
        state_writable: state_writable(&app.state_dir),
        api_ready: api_answers(api),
        enrolled: enrolment.is_some(),
        wireguard_up: app.dataplane_status().state == "up",
        directory_verified: head.map(|h| h.len > 0).unwrap_or(false),
    }
}

/// On a persistent filesystem (not the tmpfs fallback) and writable now.
fn state_writable(dir: &std::path::Path) -> bool {
    if crate::persistence::state_is_persistent(dir) != Some(true) {
        return false;
    }
    let probe = dir.join(".update-health");
    let ok = std::fs::write(&probe, b"ok").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// `GET /v1/status` on the loopback API answers 200: what
/// `report-ready` waits for too.
fn api_answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /v1/status HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[8..12] == b" 200"
}

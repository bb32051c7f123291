//! The hardware watchdog (docs/updates.md, "Watchdog"). On an image (the
//! initramfs wrote `update.root_device_file`) whose board has one, the
//! daemon holds `update.watchdog` open for as long as it runs and pets it
//! every 2 s from the async runtime: a kernel or a runtime that hangs —
//! on a trial boot or any other — is reset by the hardware, and a reset
//! during a trial boots the good slot. A clean stop (SIGTERM, an error
//! return) drops the task, which writes the magic `V` before closing, so
//! the driver stops the timer; a crash (`panic = "abort"`, SIGKILL) leaves
//! it running, and init's respawn must open it again in time.
//!
//! Plain writes only: any write pets a Linux watchdog, no ioctl needed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::Duration;

use crate::config::UpdateConfig;

const EVERY: Duration = Duration::from_secs(2);

struct Watchdog(File);

impl Watchdog {
    fn pet(&mut self) {
        if let Err(e) = self.0.write_all(b"\0") {
            warn!("watchdog: pet: {e}");
        }
    }
}

impl Drop for Watchdog {
    /// The magic close: the driver stops the timer (unless built `nowayout`).
    fn drop(&mut self) {
        let _ = self.0.write_all(b"V");
    }
}

/// Not on an image (a developer's machine, the tests) or no device: no
/// watchdog, and nothing to run.
fn open(cfg: &UpdateConfig) -> Option<Watchdog> {
    if !cfg.root_device_file.exists() || !cfg.watchdog.exists() {
        return None;
    }
    match OpenOptions::new().write(true).open(&cfg.watchdog) {
        Ok(f) => {
            info!(
                "watchdog: {} open, petted every {} s",
                cfg.watchdog.display(),
                EVERY.as_secs()
            );
            Some(Watchdog(f))
        }
        Err(e) => {
            warn!("watchdog: {}: {e}", cfg.watchdog.display());
            None
        }
    }
}

pub async fn run(cfg: UpdateConfig) {
    let Some(mut dog) = open(&cfg) else { return };
    loop {
        dog.pet();
        tokio::time::sleep(EVERY).await;
    }
}

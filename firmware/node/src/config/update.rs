//! `[update]`: where signed updates find the running slot, the boot
//! partition and the image's release files (docs/updates.md). The defaults
//! are the image's paths; tests point them at a loop device's.

use std::path::PathBuf;

use gondwana_core::update::rollout::{Policy, Window};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateConfig {
    /// The file naming the running root device (written by the initramfs).
    pub root_device_file: PathBuf,
    /// Where the boot partition (`GW_BOOT`) is mounted.
    pub boot_dir: PathBuf,
    /// The running release: `board=`, `version=`, `min_version=`, `label=`.
    pub release_file: PathBuf,
    /// The release public keys baked into the image, one hex key a line.
    pub release_keys: PathBuf,
    /// The trial record and the last update's outcome (on the state
    /// partition: it must survive the rollback).
    pub state_file: PathBuf,
    /// The kernel command line (`gondwana.slot=`, `gondwana.trial=1`).
    pub cmdline_file: PathBuf,
    /// How long a trial boot may take to become healthy before it reboots
    /// to the good slot.
    pub trial_deadline_secs: u64,
    /// The hardware watchdog a trial boot keeps open (when the device
    /// exists): a trial that hangs is reset by the hardware.
    pub watchdog: PathBuf,
    /// What this box does about a newer release in its directory: `auto`,
    /// `download-only` or `manual` (docs/updates.md, "Policy and waves").
    pub policy: String,
    /// `HH:MM-HH:MM` UTC: `auto` installs and reboots only inside it.
    pub window: Option<String>,
    /// Largest bundle this box stores (publishes or downloads), on the
    /// state partition.
    pub max_bundle_bytes: u64,
    /// Where to fetch bundles from, in order, instead of the hub and the
    /// directory's peers (`http://host:port` API bases; labs and tests).
    pub fetch_from: Vec<String>,
}

/// 512 MiB: a root squashfs and boot files with room to spare, and well
/// inside the state partition (docs/image.md).
pub const DEFAULT_MAX_BUNDLE_BYTES: u64 = 512 << 20;

impl UpdateConfig {
    pub fn check(&self) -> Result<(), String> {
        if Policy::parse(&self.policy).is_none() {
            return Err(format!(
                "update.policy {:?}: one of auto, download-only, manual",
                self.policy
            ));
        }
        if let Some(w) = &self.window {
            Window::parse(w).map_err(|e| format!("update.window: {e}"))?;
        }
        for url in &self.fetch_from {
            if !url.starts_with("http://") {
                return Err(format!("update.fetch_from {url:?}: an http:// URL"));
            }
        }
        Ok(())
    }

    /// The policy (checked at load; an unchecked value means `manual`).
    pub fn policy(&self) -> Policy {
        Policy::parse(&self.policy).unwrap_or(Policy::Manual)
    }

    pub fn window(&self) -> Option<Window> {
        self.window.as_deref().and_then(|w| Window::parse(w).ok())
    }
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            root_device_file: PathBuf::from("/run/gondwana/root-device"),
            boot_dir: PathBuf::from("/boot"),
            release_file: PathBuf::from("/etc/gondwana/release"),
            release_keys: PathBuf::from("/etc/gondwana/release-keys"),
            state_file: PathBuf::from("/var/lib/gondwana/update.json"),
            cmdline_file: PathBuf::from("/proc/cmdline"),
            trial_deadline_secs: 300,
            watchdog: PathBuf::from("/dev/watchdog"),
            policy: "auto".into(),
            window: None,
            max_bundle_bytes: DEFAULT_MAX_BUNDLE_BYTES,
            fetch_from: Vec::new(),
        }
    }
}

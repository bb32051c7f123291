//! `[update]`: where signed updates find the running slot, the boot
//! partition and the image's release files (docs/updates.md). The defaults
//! are the image's paths; tests point them at a loop device's.

use std::path::PathBuf;

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
        }
    }
}

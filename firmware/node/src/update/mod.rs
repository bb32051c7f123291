//! Signed A/B updates on this box (docs/updates.md): which slot runs, what
//! the other one holds, and installing a bundle into the other one. The
//! format and every decision about trust are `gondwana_core::update`'s;
//! this module finds the partitions and moves the bytes.

mod boot_env;
mod boot_set;
mod cancel;
pub mod held;
mod install;
pub mod mesh;
mod slots;
pub mod trial;
mod trust;

pub use cancel::cancel;
pub use install::install;
pub use slots::Slot;
pub use trust::trust;

use std::fs;
use std::path::Path;

use gondwana_core::update::{BundleError, Release, parse_release};
use serde_json::{Value, json};

use crate::config::UpdateConfig;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The bundle may be genuine but this box will not take it (another
    /// board, a downgrade, too large, not on an A/B image).
    #[error("{0}")]
    Refused(String),
    /// The bundle does not verify: signature, release key, hashes, length.
    #[error("{0}")]
    Rejected(String),
    #[error("{0:#}")]
    Io(#[from] anyhow::Error),
}

impl From<BundleError> for UpdateError {
    fn from(e: BundleError) -> Self {
        match e {
            BundleError::WrongBoard { .. }
            | BundleError::Downgrade { .. }
            | BundleError::RunningTooOld { .. } => UpdateError::Refused(format!("refused: {e}")),
            other => UpdateError::Rejected(format!("bundle rejected: {other}")),
        }
    }
}

fn running_release(cfg: &UpdateConfig) -> Result<Release, UpdateError> {
    let path = &cfg.release_file;
    let text = read_text(path, "the running release")?;
    parse_release(&text).map_err(|e| UpdateError::Refused(format!("{}: {e}", path.display())))
}

fn read_text(path: &Path, what: &str) -> Result<String, UpdateError> {
    fs::read_to_string(path).map_err(|e| {
        UpdateError::Refused(format!(
            "{what} ({}) cannot be read: {e}; updates need a Gondwana image",
            path.display()
        ))
    })
}

/// `gondwana update status`: the running slot and what each slot holds
/// (`slots_error` instead when this is not an A/B image), and `mesh`: the
/// releases over the mesh ([`mesh::status_json`], computed by the caller,
/// who has the directory).
pub fn status(cfg: &UpdateConfig, mesh: Value) -> Value {
    let mut v = slots_status(cfg).unwrap_or_else(
        |e| json!({"board": null, "running_slot": null, "slots": [], "slots_error": e.to_string()}),
    );
    v["mesh"] = mesh;
    v
}

fn slots_status(cfg: &UpdateConfig) -> Result<Value, UpdateError> {
    let layout = slots::discover(cfg)?;
    let running = running_release(cfg)?;
    let mut slots = Vec::new();
    for slot in [Slot::A, Slot::B] {
        let device = if slot == layout.running {
            &layout.running_device
        } else {
            &layout.inactive_device
        };
        let mut v = json!({
            "slot": slot.name(),
            "running": slot == layout.running,
            "device": device.display().to_string(),
            "boot_files": boot_set::dir(cfg, slot).display().to_string(),
        });
        if slot == layout.running {
            v["state"] = json!("running");
            v["release"] = json!(&running);
        } else {
            match boot_set::read_status(cfg, slot) {
                Some(r) => {
                    v["state"] = json!("installed");
                    v["release"] = json!(r);
                }
                None => {
                    v["state"] = json!("empty");
                    v["release"] = Value::Null;
                }
            }
        }
        slots.push(v);
    }
    let mut v = trial::status_json(cfg, layout.running);
    v["board"] = json!(running.board);
    v["running_slot"] = json!(layout.running.name());
    v["slots"] = json!(slots);
    Ok(v)
}

/// What policy `auto` calls once the release is installed in the inactive
/// slot (the install armed its trial: `trial::arm`) and the maintenance
/// window is open: reboot, so the bootloader tries that slot once. Refused
/// when no trial is armed (a reboot would only come back to this release).
pub fn request_trial_reboot(cfg: &UpdateConfig) -> Result<(), UpdateError> {
    match trial::load(cfg).trial {
        Some(t) if !t.booted => {
            reboot_now();
            Ok(())
        }
        _ => Err(UpdateError::Refused(
            "no trial is armed: the installed slot would not be booted".into(),
        )),
    }
}

/// Through init (busybox `reboot`: processes stopped, filesystems
/// unmounted); the kernel's reboot if that fails.
pub fn reboot_now() {
    match std::process::Command::new("reboot").status() {
        Ok(s) if s.success() => {}
        other => {
            error!("update: `reboot` failed ({other:?}); rebooting directly");
            nix::unistd::sync();
            let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
        }
    }
}

//! `gondwana update cancel`: an armed trial disarmed before the bootloader
//! took it (docs/updates.md, "Rolling back by hand"). The installed slot
//! keeps its files and status record; only the one-shot try goes.
//!
//! Order, as the arming's in reverse: the boot environment first (the
//! bootloader reads only that), written in place like every other write of
//! it (`BootEnv::write`), with `gw_cancel` naming the arming; then the
//! trial record. A power cut between the two leaves a record of a trial
//! the boot environment cancelled, which the next boot reports as
//! cancelled (`trial::outcome_on_good_boot`); a cut before the first write
//! leaves the trial armed, as if the command had not run.

use serde_json::{Value, json};

use super::boot_env::BootEnv;
use super::{UpdateError, boot_set, slots, trial};
use crate::config::UpdateConfig;

pub fn cancel(cfg: &UpdateConfig, now: u64) -> Result<Value, UpdateError> {
    let layout = slots::discover(cfg)?;
    let mut env = BootEnv::read(cfg);
    let running = layout.running;
    if env.good() != running {
        return Err(UpdateError::Refused(format!(
            "refused: slot {} runs on trial (not marked good yet): there is no armed trial to cancel; it is marked good when healthy, else the box boots slot {} again by itself",
            running.name(),
            env.good().name()
        )));
    }
    let slot = running.other();
    if env.armed() != Some(slot) || env.consumed() {
        return Err(UpdateError::Refused(
            "refused: no trial is armed (nothing to cancel)".into(),
        ));
    }
    {
        let _writable = boot_set::Writable::acquire(&cfg.boot_dir)?;
        env.cancel(cfg)?;
    }
    let mut record = trial::load(cfg);
    let release = match &record.trial {
        Some(t) if t.slot == slot.name() => {
            let r = t.release.clone();
            record.trial = None;
            Some(r)
        }
        // No record (lost, or armed by hand): the slot's own status record.
        _ => boot_set::read_status(cfg, slot),
    };
    let outcome = trial::cancelled(release.as_ref(), slot.name(), now);
    record.last = Some(outcome.clone());
    trial::save(cfg, &record)?;
    info!(
        "update: the trial of slot {} cancelled; the next boot is slot {}",
        slot.name(),
        running.name()
    );
    Ok(json!({
        "cancelled": true,
        "slot": slot.name(),
        "release": release,
        "good_slot": running.name(),
        "text": outcome.text,
    }))
}

//! A trial boot's record on the state partition and what a boot makes of
//! it (docs/updates.md, "Trial boot and rollback"). `update install` arms
//! a trial (this record, then the boot environment); the trial slot's
//! daemon marks itself good or records why not and reboots; a boot of the
//! other slot after the bootloader consumed the trial is a rollback, and
//! says so in `update status`.

use std::fs;
use std::path::Path;

use anyhow::Context;
use gondwana_core::update::Release;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::boot_env::BootEnv;
use super::{Slot, boot_set, slots};
use crate::config::UpdateConfig;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Record {
    /// The armed or running trial.
    pub trial: Option<TrialRecord>,
    /// The last update's outcome, for people.
    pub last: Option<Outcome>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialRecord {
    pub slot: String,
    pub release: Release,
    pub armed_unix: u64,
    /// The trial slot's daemon started (so a rollback without a verdict
    /// happened after it, not in the kernel or initramfs).
    #[serde(default)]
    pub booted: bool,
    /// Why the trial slot gave up, written by it before it rebooted.
    #[serde(default)]
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub ok: bool,
    pub text: String,
    pub at_unix: u64,
}

pub fn load(cfg: &UpdateConfig) -> Record {
    fs::read(&cfg.state_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Atomically (temporary file, fsync, rename, fsync of the directory).
pub fn save(cfg: &UpdateConfig, record: &Record) -> anyhow::Result<()> {
    let path = &cfg.state_file;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(record)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

pub(super) fn describe(r: &Release) -> String {
    if r.label.is_empty() {
        format!("version {}", r.version)
    } else {
        format!("version {} ({})", r.version, r.label)
    }
}

/// What the kernel command line says: the slot the bootloader chose and
/// whether it is a trial (`gondwana.slot=b gondwana.trial=1`).
pub fn cmdline_trial(cfg: &UpdateConfig) -> bool {
    fs::read_to_string(&cfg.cmdline_file)
        .map(|c| c.split_whitespace().any(|w| w == "gondwana.trial=1"))
        .unwrap_or(false)
}

/// Called by `install` with the boot partition writable, after the slot's
/// `installed` record: the record first, then the boot environment (the
/// arming itself).
pub fn arm(cfg: &UpdateConfig, slot: Slot, release: &Release, now: u64) -> anyhow::Result<()> {
    let mut record = load(cfg);
    record.trial = Some(TrialRecord {
        slot: slot.name().into(),
        release: release.clone(),
        armed_unix: now,
        booted: false,
        failure: None,
    });
    save(cfg, &record)?;
    BootEnv::read(cfg).arm(cfg, slot, &arm_id(slot.name(), now))
}

/// The arming's id in the boot environment (`gw_arm`): the record's slot
/// and time, so a boot can tell whether the arming it recorded reached
/// the bootloader.
pub(super) fn arm_id(slot: &str, armed_unix: u64) -> String {
    format!("{armed_unix}-{slot}")
}

/// What this boot is, found at the daemon's start.
pub enum OnStart {
    /// Not an A/B system, or nothing to do.
    Nothing,
    /// Running `slot` on trial: the daemon must judge its health.
    Trial { slot: Slot },
}

/// At the daemon's start: a trial boot is noted as started; on any other
/// boot a consumed trial of the other slot is a rollback, recorded as the
/// last outcome. Errors are the caller's to log: the daemon runs anyway.
pub fn on_start(cfg: &UpdateConfig, now: u64) -> anyhow::Result<OnStart> {
    let Ok(layout) = slots::discover(cfg) else {
        return Ok(OnStart::Nothing);
    };
    let running = layout.running;
    let mut record = load(cfg);
    // A trial boot not marked good yet (a restarted daemon of a trial that
    // was marked good has nothing left to judge).
    if cmdline_trial(cfg) && BootEnv::read(cfg).good() != running {
        if let Some(t) = record.trial.as_mut()
            && t.slot == running.name()
        {
            t.booted = true;
            save(cfg, &record)?;
        }
        return Ok(OnStart::Trial { slot: running });
    }
    let Some(trial) = record.trial.clone() else {
        return Ok(OnStart::Nothing);
    };
    let Some(outcome) = outcome_on_good_boot(&trial, &BootEnv::read(cfg), running, now) else {
        return Ok(OnStart::Nothing); // armed, not booted yet
    };
    record.trial = None;
    record.last = Some(outcome);
    save(cfg, &record)?;
    Ok(OnStart::Nothing)
}

/// What a boot that is not a trial makes of the trial record: `None` while
/// the trial is armed and not taken yet.
fn outcome_on_good_boot(
    trial: &TrialRecord,
    env: &BootEnv,
    running: Slot,
    now: u64,
) -> Option<Outcome> {
    Some(if trial.slot == running.name() {
        // Booted as the good slot: marked good, the record not yet cleared.
        Outcome {
            ok: true,
            text: format!(
                "update to {} succeeded: slot {} marked good",
                describe(&trial.release),
                trial.slot
            ),
            at_unix: now,
        }
    } else if env.arm_id() != Some(arm_id(&trial.slot, trial.armed_unix).as_str()) {
        // A power cut between this record and the boot environment: the
        // bootloader never saw the arming (docs/updates.md "Power cuts").
        Outcome {
            ok: false,
            text: format!(
                "update to {} not tried: the install stopped before it armed the trial",
                describe(&trial.release)
            ),
            at_unix: now,
        }
    } else if env.cancelled_arm().is_some() && env.cancelled_arm() == env.arm_id() {
        // `update cancel` disarmed it and stopped before its record.
        cancelled(Some(&trial.release), &trial.slot, now)
    } else if env.consumed() || env.armed().map(Slot::name) != Some(trial.slot.as_str()) {
        let why = trial
            .failure
            .clone()
            .or_else(|| env.failure())
            .unwrap_or_else(|| {
                if trial.booted {
                    format!(
                        "slot {} started but rebooted before it was healthy",
                        trial.slot
                    )
                } else {
                    format!(
                        "slot {} never started its daemon (kernel, initramfs or root failed)",
                        trial.slot
                    )
                }
            });
        warn!(
            "update to {} failed: rolled back to slot {} ({why})",
            describe(&trial.release),
            running.name()
        );
        Outcome {
            ok: false,
            text: format!(
                "update to {} failed: rolled back ({why})",
                describe(&trial.release)
            ),
            at_unix: now,
        }
    } else {
        return None;
    })
}

/// What `update status` says after `update cancel`.
pub(super) fn cancelled(release: Option<&Release>, slot: &str, now: u64) -> Outcome {
    let what = release.map_or_else(|| "an unknown release".into(), describe);
    Outcome {
        ok: false,
        text: format!("update to {what} cancelled: slot {slot} stays installed, not armed"),
        at_unix: now,
    }
}

/// The trial slot is healthy: the bootloader boots it from now on.
pub fn mark_good(cfg: &UpdateConfig, slot: Slot, now: u64) -> anyhow::Result<String> {
    {
        let _writable = boot_set::Writable::acquire(&cfg.boot_dir)?;
        BootEnv::read(cfg).mark_good(cfg, slot)?;
    }
    let mut record = load(cfg);
    let release = record
        .trial
        .take()
        .map(|t| describe(&t.release))
        .or_else(|| boot_set::read_status(cfg, slot).map(|r| describe(&r)))
        .unwrap_or_else(|| "an unknown release".into());
    let text = format!(
        "update to {release} succeeded: slot {} marked good",
        slot.name()
    );
    record.last = Some(Outcome {
        ok: true,
        text: text.clone(),
        at_unix: now,
    });
    save(cfg, &record)?;
    Ok(text)
}

/// The trial slot gives up: why, for the good slot's status after the
/// reboot: in the record and in the boot environment (`gw_fail`), since a
/// trial whose state partition did not mount writes its record to a tmpfs.
pub fn record_failure(cfg: &UpdateConfig, slot: Slot, why: &str) -> anyhow::Result<()> {
    let mut record = load(cfg);
    if let Some(t) = record.trial.as_mut()
        && t.slot == slot.name()
    {
        t.failure = Some(why.to_string());
    }
    let saved = save(cfg, &record);
    let _writable = boot_set::Writable::acquire(&cfg.boot_dir)?;
    let mut env = BootEnv::read(cfg);
    let why: String = why
        .chars()
        .filter(|c| !c.is_control() && *c != '\\')
        .take(200)
        .collect();
    env.vars.insert("gw_fail".into(), why);
    // Disarmed too: U-Boot's consumption record is a copy of the old
    // bytes, which this write changes.
    env.vars.remove("gw_try");
    env.write(cfg)?;
    saved
}

/// For `update status`: the good slot, the trial and the last outcome.
pub fn status_json(cfg: &UpdateConfig, running: Slot) -> Value {
    let env = BootEnv::read(cfg);
    let record = load(cfg);
    // Booted on trial and not marked good yet.
    let on_trial = cmdline_trial(cfg) && env.good() != running;
    let trial = match (&record.trial, env.armed()) {
        (Some(t), _) if on_trial && t.slot == running.name() => json!({
            "slot": t.slot, "release": t.release, "state": "running on trial",
        }),
        // Only a slot with its `installed` record is ever booted.
        (Some(t), Some(armed))
            if armed.name() == t.slot
                && !env.consumed()
                && boot_set::read_status(cfg, armed).is_some() =>
        {
            json!({
            "slot": t.slot, "release": t.release, "state": "armed: boots once on the next reboot",
            })
        }
        _ if on_trial => {
            json!({"slot": running.name(), "release": null, "state": "running on trial"})
        }
        _ => Value::Null,
    };
    json!({
        "good_slot": env.good().name(),
        "trial": trial,
        "last_update": record.last.as_ref().map(|o| json!({"ok": o.ok, "text": o.text, "at_unix": o.at_unix})),
    })
}

/// `install` refuses while the running slot is not the good one (on trial,
/// not marked good yet): a second install would overwrite the good slot,
/// the only way back.
pub fn refuse_install_on_trial(cfg: &UpdateConfig, running: Slot) -> Option<String> {
    (BootEnv::read(cfg).good() != running).then(|| {
        format!(
            "refused: slot {} runs on trial (not marked good yet); the other slot is the way back and is not overwritten",
            running.name()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial_of(slot: &str, armed_unix: u64) -> TrialRecord {
        TrialRecord {
            slot: slot.into(),
            release: Release {
                board: "mochabin".into(),
                version: 2,
                min_version: 0,
                label: "next".into(),
            },
            armed_unix,
            booted: false,
            failure: None,
        }
    }

    fn boot_dir() -> (tempfile::TempDir, UpdateConfig) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = UpdateConfig {
            boot_dir: dir.path().to_path_buf(),
            ..UpdateConfig::default()
        };
        (dir, cfg)
    }

    #[test]
    fn an_arming_cut_before_the_boot_environment_was_not_tried() {
        let (_dir, cfg) = boot_dir();
        // The record says armed at 100; the boot environment is the one
        // before (slot a good, an older arming at 50, taken and ended).
        let mut env = BootEnv::read(&cfg);
        env.arm(&cfg, Slot::B, &arm_id("b", 50)).expect("arm");
        env.mark_good(&cfg, Slot::A).expect("mark good");
        let o = outcome_on_good_boot(&trial_of("b", 100), &BootEnv::read(&cfg), Slot::A, 7)
            .expect("an outcome");
        assert!(!o.ok);
        assert!(
            o.text
                .ends_with("not tried: the install stopped before it armed the trial"),
            "{}",
            o.text
        );
    }

    #[test]
    fn a_cancel_cut_before_its_record_was_cancelled() {
        let (_dir, cfg) = boot_dir();
        let mut env = BootEnv::read(&cfg);
        env.arm(&cfg, Slot::B, &arm_id("b", 100)).expect("arm");
        env.cancel(&cfg).expect("cancel");
        // The trial record is still the armed one: the cut came before it.
        let o = outcome_on_good_boot(&trial_of("b", 100), &BootEnv::read(&cfg), Slot::A, 7)
            .expect("an outcome");
        assert!(!o.ok);
        assert!(
            o.text
                .ends_with("cancelled: slot b stays installed, not armed"),
            "{}",
            o.text
        );
    }

    #[test]
    fn status_calls_a_trial_armed_only_when_its_slot_is_installed() {
        let (dir, mut cfg) = boot_dir();
        cfg.state_file = dir.path().join("update.json");
        cfg.cmdline_file = dir.path().join("cmdline");
        let trial = trial_of("b", 100);
        arm(&cfg, Slot::B, &trial.release, 100).expect("arm");
        // A power cut took the slot's `installed` record: never booted.
        assert!(status_json(&cfg, Slot::A)["trial"].is_null());
        fs::create_dir_all(boot_set::dir(&cfg, Slot::B)).expect("set");
        boot_set::mark_installed(&cfg, Slot::B, &trial.release).expect("record");
        assert_eq!(
            status_json(&cfg, Slot::A)["trial"]["state"],
            "armed: boots once on the next reboot"
        );
    }

    #[test]
    fn an_armed_trial_not_taken_waits_and_a_taken_one_rolled_back() {
        let (_dir, cfg) = boot_dir();
        BootEnv::read(&cfg)
            .arm(&cfg, Slot::B, &arm_id("b", 100))
            .expect("arm");
        let trial = trial_of("b", 100);
        assert!(outcome_on_good_boot(&trial, &BootEnv::read(&cfg), Slot::A, 7).is_none());
        // U-Boot took it: bootenv.tried is a copy of the bootenv.
        let bytes = fs::read(cfg.boot_dir.join(super::super::boot_env::FILE)).expect("bootenv");
        fs::write(cfg.boot_dir.join(super::super::boot_env::TRIED_FILE), bytes).expect("tried");
        let o = outcome_on_good_boot(&trial, &BootEnv::read(&cfg), Slot::A, 7).expect("an outcome");
        assert!(!o.ok);
        assert!(
            o.text
                .contains("failed: rolled back (slot b never started its daemon"),
            "{}",
            o.text
        );
    }
}

//! The boot environment both bootloaders read (docs/updates.md, "Trial
//! boot and rollback"): `gondwana/bootenv` on the boot partition, a GRUB
//! environment block (`gondwana_core::update::encode_env`) with
//!
//! - `gw_good`: the slot booted when no trial is due (`a` when unset);
//! - `gw_try`: the slot to boot once on trial;
//! - `gw_arm`: this arming's id (a new one per install), so a trial is
//!   tried once per install and not once per identical file;
//! - `gw_tried`: GRUB's record that it consumed the arming `gw_arm` (it
//!   `save_env`s it before booting the trial);
//! - `gw_fail`: why the last trial gave up (written by the trial slot
//!   before it reboots; its state partition may be what failed);
//! - `gw_cancel`: the arming `update cancel` disarmed (no bootloader reads
//!   it: it tells a later boot that the trial was cancelled, not lost).
//!
//! U-Boot cannot rewrite one variable of a file: it records the consumed
//! arming by writing the bytes of the `bootenv` it read, unchanged, to
//! `gondwana/bootenv.tried` (`fatwrite` of a fixed 1024 bytes) before
//! booting the trial, and tries only while the two differ. A trial is
//! consumed when either record says so.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use gondwana_core::update::{ENV_BLOCK_LEN, encode_env, parse_env};

use super::Slot;
use crate::config::UpdateConfig;

pub const FILE: &str = "gondwana/bootenv";
pub const TRIED_FILE: &str = "gondwana/bootenv.tried";

pub struct BootEnv {
    pub vars: BTreeMap<String, String>,
    bytes: Vec<u8>,
    tried_copy: Option<Vec<u8>>,
}

fn path(cfg: &UpdateConfig, name: &str) -> PathBuf {
    cfg.boot_dir.join(name)
}

impl BootEnv {
    /// The environment as on the partition (empty when the file is absent:
    /// the bootloaders then boot slot A).
    pub fn read(cfg: &UpdateConfig) -> BootEnv {
        let bytes = fs::read(path(cfg, FILE)).unwrap_or_default();
        BootEnv {
            vars: parse_env(&bytes),
            tried_copy: fs::read(path(cfg, TRIED_FILE)).ok(),
            bytes,
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The slot booted when no trial is due.
    pub fn good(&self) -> Slot {
        match self.var("gw_good") {
            Some("b") => Slot::B,
            _ => Slot::A,
        }
    }

    /// The slot armed for a trial, consumed or not.
    pub fn armed(&self) -> Option<Slot> {
        match self.var("gw_try") {
            Some("a") => Some(Slot::A),
            Some("b") => Some(Slot::B),
            _ => None,
        }
    }

    /// The last arming's id (`gw_arm`), kept after its trial ended.
    pub fn arm_id(&self) -> Option<&str> {
        self.var("gw_arm")
    }

    /// Why the last trial gave up (`gw_fail`, written by the trial slot).
    pub fn failure(&self) -> Option<String> {
        self.var("gw_fail").map(str::to_string)
    }

    /// The bootloader has taken the armed trial (booted it once).
    pub fn consumed(&self) -> bool {
        let grub = self.var("gw_arm").is_some() && self.var("gw_arm") == self.var("gw_tried");
        let uboot = !self.bytes.is_empty() && self.tried_copy.as_deref() == Some(&self.bytes[..]);
        grub || uboot
    }

    /// Writes `vars` in place (the boot partition must be writable: see
    /// `boot_set::Writable`): the same 1024 bytes, never truncated, so the
    /// file keeps its clusters (GRUB's `save_env` writes the blocks it
    /// found) and a FAT power cut can at worst leave a torn block, which
    /// reads as "no trial" and slot A or the old good slot.
    pub fn write(&mut self, cfg: &UpdateConfig) -> anyhow::Result<()> {
        let block = encode_env(&self.vars)?;
        debug_assert_eq!(block.len(), ENV_BLOCK_LEN);
        let p = path(cfg, FILE);
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .with_context(|| format!("open {}", p.display()))?;
        f.write_all(&block)
            .with_context(|| format!("write {}", p.display()))?;
        f.sync_all()
            .with_context(|| format!("flush {}", p.display()))?;
        self.bytes = block;
        Ok(())
    }

    /// Arms a trial of `slot` (after its `installed` record is written).
    pub fn arm(&mut self, cfg: &UpdateConfig, slot: Slot, arm_id: &str) -> anyhow::Result<()> {
        let good = self.good();
        self.vars.insert("gw_good".into(), good.name().into());
        self.vars.insert("gw_try".into(), slot.name().into());
        self.vars.insert("gw_arm".into(), arm_id.into());
        self.vars.remove("gw_fail");
        self.vars.remove("gw_cancel");
        self.write(cfg)
    }

    /// `update cancel`: the armed trial is not taken; the arming's id stays
    /// (with `gw_cancel` naming it), so a boot that finds the trial record
    /// without the command's own record update knows what happened.
    pub fn cancel(&mut self, cfg: &UpdateConfig) -> anyhow::Result<()> {
        self.vars.remove("gw_try");
        let arm = self.arm_id().unwrap_or_default().to_string();
        self.vars.insert("gw_cancel".into(), arm);
        self.write(cfg)
    }

    /// The arming `update cancel` disarmed.
    pub fn cancelled_arm(&self) -> Option<&str> {
        self.var("gw_cancel")
    }

    /// `slot` is good: booted by default from now on; no trial armed.
    pub fn mark_good(&mut self, cfg: &UpdateConfig, slot: Slot) -> anyhow::Result<()> {
        self.vars.insert("gw_good".into(), slot.name().into());
        self.vars.remove("gw_try");
        self.write(cfg)
    }
}

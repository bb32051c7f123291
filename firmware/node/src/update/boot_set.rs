//! A slot's boot-file set: the directory `slot-a/` or `slot-b/` on the boot
//! partition (`GW_BOOT`) holding that slot's kernel, initrd and dtb, plus
//! its status record `installed`, written last and only after every hash
//! matched. No record: the slot is empty or invalid and no bootloader may
//! offer it (the trial-boot scripts, not yet written, test for it). The
//! image's own slot A boots from the top-level files until an update
//! writes `slot-a/`.
//!
//! The boot partition is mounted read-only (FAT and power cuts); an
//! install remounts it read-write for the writes and back afterwards.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use gondwana_core::update::{Release, STATUS_FILE, parse_release, release_text};
use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};

use super::Slot;
use crate::config::UpdateConfig;

pub fn dir(cfg: &UpdateConfig, slot: Slot) -> PathBuf {
    cfg.boot_dir.join(format!("slot-{}", slot.name()))
}

/// The slot's installed release, when its record says it is complete.
pub fn read_status(cfg: &UpdateConfig, slot: Slot) -> Option<Release> {
    let text = fs::read_to_string(dir(cfg, slot).join(STATUS_FILE)).ok()?;
    parse_release(&text).ok()
}

/// Makes the slot not installable: its record goes first, before any byte
/// of the slot changes.
pub fn invalidate(cfg: &UpdateConfig, slot: Slot) -> anyhow::Result<()> {
    let d = dir(cfg, slot);
    match fs::remove_file(d.join(STATUS_FILE)) {
        Ok(()) => sync_partition(&d),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context("remove the slot's status record"),
    }
}

/// Empties the set's directory (it is replaced whole) and creates it with
/// the subdirectories `files` (paths in the set) need, all on the medium
/// before the first byte of a file: the clusters the old set freed are
/// reused only after no directory entry on the medium points at them, and
/// no new directory's entry reaches the medium before its `.` and `..`
/// (docs/updates.md, "Power cuts": otherwise a cut leaves a directory that
/// `fsck.fat` repairs and Linux still calls corrupted).
pub fn reset<'a>(
    cfg: &UpdateConfig,
    slot: Slot,
    files: impl IntoIterator<Item = &'a str>,
) -> anyhow::Result<PathBuf> {
    let d = dir(cfg, slot);
    if d.exists() {
        fs::remove_dir_all(&d).with_context(|| format!("remove {}", d.display()))?;
    }
    fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    for file in files {
        if let Some(parent) = d.join(file).parent() {
            fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
    }
    sync_partition(&d)?;
    Ok(d)
}

/// The record, written to a temporary name and renamed into place; on the
/// medium, with the whole set, when this returns (the arming relies on it).
pub fn mark_installed(cfg: &UpdateConfig, slot: Slot, release: &Release) -> anyhow::Result<()> {
    let d = dir(cfg, slot);
    let tmp = d.join(format!("{STATUS_FILE}.tmp"));
    fs::write(&tmp, release_text(release)).context("write the slot's status record")?;
    fs::File::open(&tmp)?.sync_all()?;
    let record = d.join(STATUS_FILE);
    fs::rename(&tmp, &record).context("rename the slot's status record")?;
    sync_partition(&record)
}

/// Everything written to the boot partition so far, on the medium. An
/// fsync of the file and of its directory is not enough on vfat
/// (docs/updates.md, "Power cuts"): a rename writes the new directory entry
/// with no cluster and size 0, which only the renamed inode's writeback
/// fills in, and a new directory's entry is written with its parent, not
/// with the files inside. `syncfs` writes every dirty inode, directory
/// block and the FAT; the fsync after it (of `file`, on this partition)
/// has the device flush its cache, which `syncfs` on vfat does not.
fn sync_partition(file: &Path) -> anyhow::Result<()> {
    let f = fs::File::open(file).with_context(|| format!("open {}", file.display()))?;
    nix::unistd::syncfs(&f).context("sync the boot partition")?;
    f.sync_all().context("flush the boot partition")?;
    Ok(())
}

/// Bytes the set may use: the partition's free space plus what the set's
/// current files take (they are replaced).
pub fn room(cfg: &UpdateConfig, slot: Slot) -> anyhow::Result<u64> {
    let vfs =
        statvfs(&cfg.boot_dir).with_context(|| format!("statvfs {}", cfg.boot_dir.display()))?;
    let free = vfs.blocks_available() as u64 * vfs.fragment_size() as u64;
    Ok(free + tree_bytes(&dir(cfg, slot)))
}

fn tree_bytes(p: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(p) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// The boot partition writable while this lives; read-only again after
/// (only when it was read-only before).
pub struct Writable {
    path: PathBuf,
    flags: Option<MsFlags>,
}

impl Writable {
    pub fn acquire(boot_dir: &Path) -> anyhow::Result<Writable> {
        let vfs = statvfs(boot_dir).with_context(|| format!("statvfs {}", boot_dir.display()))?;
        let mut w = Writable {
            path: boot_dir.to_path_buf(),
            flags: None,
        };
        if vfs.flags().contains(FsFlags::ST_RDONLY) {
            // A remount sets every per-mount flag anew: keep the others.
            let mut flags = MsFlags::MS_REMOUNT;
            for (fs_flag, ms_flag) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            ] {
                if vfs.flags().contains(fs_flag) {
                    flags |= ms_flag;
                }
            }
            remount(boot_dir, flags).context("remount the boot partition read-write")?;
            w.flags = Some(flags);
        }
        Ok(w)
    }
}

fn remount(path: &Path, flags: MsFlags) -> nix::Result<()> {
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

impl Drop for Writable {
    fn drop(&mut self) {
        if let Some(flags) = self.flags
            && let Err(e) = remount(&self.path, flags | MsFlags::MS_RDONLY)
        {
            error!("could not remount {} read-only: {e}", self.path.display());
        }
    }
}

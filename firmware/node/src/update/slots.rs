//! Which root slot runs and where the other one is. The initramfs writes
//! the root device it mounted to `/run/gondwana/root-device` (chosen by
//! `gondwana.slot=` on the kernel command line); its partition number says
//! the slot (docs/image.md: 2 is root A, 3 is root B), and the other slot
//! is the partition with the other number on the same disk, found in sysfs
//! the way the initramfs finds it.

use std::fs;
use std::path::{Path, PathBuf};

use super::{UpdateError, read_text};
use crate::config::UpdateConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    fn partition(self) -> u32 {
        match self {
            Slot::A => 2,
            Slot::B => 3,
        }
    }

    fn from_partition(number: u32) -> Option<Slot> {
        [Slot::A, Slot::B]
            .into_iter()
            .find(|s| s.partition() == number)
    }

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

#[derive(Debug)]
pub struct Layout {
    pub running: Slot,
    pub running_device: PathBuf,
    pub inactive_device: PathBuf,
    /// The inactive partition's size: the largest root a bundle may carry.
    pub inactive_bytes: u64,
}

const SYS_BLOCK: &str = "/sys/class/block";

fn refused(why: String) -> UpdateError {
    UpdateError::Refused(why)
}

fn sys_read(name: &str, file: &str) -> Option<String> {
    fs::read_to_string(Path::new(SYS_BLOCK).join(name).join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn discover(cfg: &UpdateConfig) -> Result<Layout, UpdateError> {
    let text = read_text(&cfg.root_device_file, "the running root device")?;
    let running_device = PathBuf::from(text.trim());
    let name = running_device
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            refused(format!(
                "{}: no device named",
                cfg.root_device_file.display()
            ))
        })?
        .to_string();
    let number: u32 = sys_read(&name, "partition")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| refused(format!("{running_device:?} is not a partition")))?;
    let running = Slot::from_partition(number).ok_or_else(|| {
        refused(format!(
            "the running root is partition {number}, not a root slot (2 or 3)"
        ))
    })?;
    // /sys/class/block/<part> links to …/block/<disk>/<part>.
    let disk_dir = fs::canonicalize(Path::new(SYS_BLOCK).join(&name))
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or_else(|| refused(format!("no disk found for {name}")))?;
    let wanted = running.other().partition().to_string();
    let inactive = fs::read_dir(&disk_dir)
        .map_err(|e| refused(format!("{}: {e}", disk_dir.display())))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|n| sys_read(n, "partition").as_deref() == Some(wanted.as_str()))
        .ok_or_else(|| {
            refused(format!(
                "slot {} (partition {wanted}) not found beside {name}",
                running.other().name()
            ))
        })?;
    let sectors: u64 = sys_read(&inactive, "size")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| refused(format!("size of {inactive} unknown")))?;
    Ok(Layout {
        running,
        running_device,
        inactive_device: PathBuf::from("/dev").join(&inactive),
        inactive_bytes: sectors * 512,
    })
}

//! `GW_CONFIG` volumes: a FAT volume (a USB stick, for boards whose boot
//! medium is soldered) whose `gondwana/enroll.toml` is an enrolment source.
//!
//! Found without udev (the image's busybox may have no `/dev/disk/by-label`):
//! every block device in `/sys/class/block` (whole disks and partitions;
//! not RAM disks, not unused loop devices) whose first sector is a FAT12/16/32
//! boot sector carrying `enroll.config_volume_label`. Such a volume is
//! mounted read-only (`ro,noexec,nosuid,nodev`) on `enroll.config_volume_mount`,
//! the file is read (at most [`MAX_ENROLL_BYTES`]) and the volume is unmounted
//! at once, so a stick can be pulled and nothing stays mounted.
//!
//! Anything short of a readable file (no such volume, the mount refused, no
//! file on it) is "not found". A file that is there but is too large or not
//! UTF-8 is malformed, like a TOML error.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read as _};
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::boot::enroll_file::SourceError;
use crate::config::EnrollConfig;

/// The file read from the volume, relative to its root.
pub const ENROLL_FILE: &str = "gondwana/enroll.toml";
/// The largest `enroll.toml` read from a volume.
pub const MAX_ENROLL_BYTES: usize = 64 * 1024;

const SYS_CLASS_BLOCK: &str = "/sys/class/block";
const DEV: &str = "/dev";

/// An `enroll.toml` read from a volume.
pub struct Found {
    /// For status and logs: `GW_CONFIG volume /dev/sda1 (gondwana/enroll.toml)`.
    pub source: String,
    pub text: String,
}

/// The `enroll.toml` of the first volume labelled `config.config_volume_label`
/// (devices in name order) that has one. `Ok(None)` when the label is empty.
pub fn read_enroll(config: &EnrollConfig) -> Result<Option<Found>, SourceError> {
    let label = config.config_volume_label.trim_end_matches(' ');
    if label.is_empty() {
        return Ok(None);
    }
    for device in labelled_devices(Path::new(SYS_CLASS_BLOCK), Path::new(DEV), label) {
        let source = format!("{label} volume {} ({ENROLL_FILE})", device.display());
        match read_volume(&device, &config.config_volume_mount) {
            Ok(Some(bytes)) => {
                let text = String::from_utf8(bytes).map_err(|_| SourceError::Invalid {
                    source_name: source.clone(),
                    detail: "not UTF-8 text".into(),
                })?;
                return Ok(Some(Found { source, text }));
            }
            Ok(None) => note(format!("{source}: no such file")),
            Err(VolumeError::TooLarge) => {
                return Err(SourceError::Invalid {
                    source_name: source,
                    detail: format!("larger than {MAX_ENROLL_BYTES} bytes"),
                });
            }
            Err(VolumeError::Io(what, e)) => note(format!("{source}: {what}: {e}")),
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------
// Boot sectors (pure)

/// The volume label of a FAT12/16/32 boot sector, trailing spaces (and NULs)
/// trimmed; `None` if `sector` is not a FAT boot sector or carries no label
/// (no extended boot signature 0x29).
pub fn fat_label(sector: &[u8]) -> Option<&[u8]> {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xAA] {
        return None;
    }
    let u16_at = |offset: usize| u16::from_le_bytes([sector[offset], sector[offset + 1]]);
    let bytes_per_sector = u16_at(0x0B);
    if !bytes_per_sector.is_power_of_two() || !(512..=4096).contains(&bytes_per_sector) {
        return None;
    }
    // Sectors per cluster (0 is not a power of two), reserved sectors, FATs.
    if !sector[0x0D].is_power_of_two() || u16_at(0x0E) == 0 || sector[0x10] == 0 {
        return None;
    }
    // FAT32 has no 16-bit sectors-per-FAT count, and its extended BPB
    // comes after the 32-bit fields.
    let (signature, label_at) = if u16_at(0x16) == 0 {
        (0x42, 0x47)
    } else {
        (0x26, 0x2B)
    };
    if sector[signature] != 0x29 {
        return None;
    }
    let label = &sector[label_at..label_at + 11];
    let len = label
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |last| last + 1);
    Some(&label[..len])
}

/// A label read from disk against the configured one: trailing spaces
/// ignored, ASCII case-insensitive. An empty label matches nothing.
pub fn label_matches(on_disk: &[u8], wanted: &str) -> bool {
    let wanted = wanted.trim_end_matches(' ');
    !wanted.is_empty() && on_disk.eq_ignore_ascii_case(wanted.as_bytes())
}

// ---------------------------------------------------------------------------
// Block devices

/// The device nodes whose first sector is a FAT boot sector labelled `label`.
fn labelled_devices(sys_class_block: &Path, dev: &Path, label: &str) -> Vec<PathBuf> {
    candidate_names(sys_class_block)
        .into_iter()
        .filter_map(|name| device_node(sys_class_block, dev, &name))
        .filter(|node| {
            first_sector(node)
                .as_ref()
                .and_then(|sector| fat_label(sector))
                .is_some_and(|found| label_matches(found, label))
        })
        .collect()
}

/// The block devices worth a look, in name order: not RAM disks, not loop
/// devices without a backing file, not empty (no medium: size 0).
fn candidate_names(sys_class_block: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(sys_class_block) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| {
            let dir = sys_class_block.join(name);
            !name.starts_with("ram")
                && !name.starts_with("zram")
                && (!name.starts_with("loop") || loop_backed(&dir))
                && read_trimmed(&dir.join("size"))
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_some_and(|sectors| sectors > 0)
        })
        .collect();
    names.sort();
    names
}

/// A loop device (or a partition of one) that has a backing file.
fn loop_backed(dir: &Path) -> bool {
    let backed =
        |d: &Path| read_trimmed(&d.join("loop/backing_file")).is_some_and(|f| !f.is_empty());
    // A partition's sysfs directory sits inside its disk's.
    backed(dir) || (dir.join("partition").exists() && backed(&dir.join("..")))
}

/// `/dev/<name>` (`!` in a sysfs name is `/`), if it is the block device
/// sysfs describes (same major:minor).
fn device_node(sys_class_block: &Path, dev: &Path, name: &str) -> Option<PathBuf> {
    let expected = read_trimmed(&sys_class_block.join(name).join("dev"))?;
    let node = dev.join(name.replace('!', "/"));
    let meta = fs::metadata(&node).ok()?;
    let rdev = meta.rdev();
    let actual = format!(
        "{}:{}",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    );
    (meta.file_type().is_block_device() && actual == expected).then_some(node)
}

fn first_sector(node: &Path) -> Option<[u8; 512]> {
    let mut sector = [0u8; 512];
    File::open(node).ok()?.read_exact(&mut sector).ok()?;
    Some(sector)
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

// ---------------------------------------------------------------------------
// Mounting

enum VolumeError {
    TooLarge,
    Io(&'static str, io::Error),
}

/// Mounts `device` read-only on `mount_point`, reads [`ENROLL_FILE`] and
/// unmounts. `Ok(None)`: mounted, but there is no such file.
fn read_volume(device: &Path, mount_point: &Path) -> Result<Option<Vec<u8>>, VolumeError> {
    prepare_mount_point(mount_point).map_err(|e| VolumeError::Io("mount point", e))?;
    mount(
        Some(device),
        mount_point,
        Some("vfat"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(|e| VolumeError::Io("cannot mount", e.into()))?;
    let _mounted = Mounted(mount_point);
    read_bounded(&mount_point.join(ENROLL_FILE))
    // The file is closed here, then `_mounted` unmounts.
}

/// The mount point: a real directory, mode 0700 (parents created 0700 too).
fn prepare_mount_point(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    if meta.permissions().mode() & 0o7777 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, VolumeError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(VolumeError::Io("open", e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_ENROLL_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| VolumeError::Io("read", e))?;
    if bytes.len() > MAX_ENROLL_BYTES {
        return Err(VolumeError::TooLarge);
    }
    Ok(Some(bytes))
}

/// Unmounts on drop; lazily if a plain unmount is refused, so the volume
/// never stays visible.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let path = self.0;
        if umount2(path, MntFlags::UMOUNT_NOFOLLOW).is_ok() {
            return;
        }
        if let Err(e) = umount2(path, MntFlags::UMOUNT_NOFOLLOW | MntFlags::MNT_DETACH) {
            warn!("cannot unmount {}: {e}", path.display());
        }
    }
}

// ---------------------------------------------------------------------------
// Logging

/// Why a volume was passed over, logged once per distinct message (the
/// enrolment loop looks again every few seconds).
fn note(message: String) {
    static NOTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut noted = NOTED.lock().unwrap_or_else(|e| e.into_inner());
    if noted.len() >= 64 {
        noted.clear();
    }
    if noted.insert(message.clone()) {
        info!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A boot sector as mkfs.vfat writes it: FAT12/16 (`fat32 == false`) or
    /// FAT32, labelled `label` (padded to 11 bytes with spaces).
    fn sector(fat32: bool, label: &[u8]) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        s[3..11].copy_from_slice(b"mkfs.fat");
        s[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        s[0x0D] = 4; // sectors per cluster
        s[0x0E..0x10].copy_from_slice(&(if fat32 { 32u16 } else { 4 }).to_le_bytes());
        s[0x10] = 2; // FATs
        let (signature, label_at, fs_type) = if fat32 {
            s[0x24..0x28].copy_from_slice(&1024u32.to_le_bytes()); // sectors per FAT
            (0x42, 0x47, &b"FAT32   "[..])
        } else {
            s[0x11..0x13].copy_from_slice(&512u16.to_le_bytes()); // root entries
            s[0x16..0x18].copy_from_slice(&12u16.to_le_bytes()); // sectors per FAT
            (0x26, 0x2B, &b"FAT16   "[..])
        };
        s[signature] = 0x29;
        s[signature + 1..signature + 5].copy_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]);
        let mut padded = [b' '; 11];
        padded[..label.len()].copy_from_slice(label);
        s[label_at..label_at + 11].copy_from_slice(&padded);
        s[label_at + 11..label_at + 19].copy_from_slice(fs_type);
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    #[test]
    fn labels_of_fat16_and_fat32_boot_sectors() {
        assert_eq!(
            fat_label(&sector(false, b"GW_CONFIG")),
            Some(&b"GW_CONFIG"[..])
        );
        assert_eq!(
            fat_label(&sector(true, b"GW_CONFIG")),
            Some(&b"GW_CONFIG"[..])
        );
        assert_eq!(fat_label(&sector(true, b"NO NAME")), Some(&b"NO NAME"[..]));
        assert_eq!(fat_label(&sector(false, b"")), Some(&b""[..]));
        assert_eq!(
            fat_label(&sector(false, b"ELEVENCHARS")),
            Some(&b"ELEVENCHARS"[..])
        );
        // NUL padding, as some formatters write.
        let mut s = sector(false, b"GW_CONFIG");
        s[0x2B + 9] = 0;
        s[0x2B + 10] = 0;
        assert_eq!(fat_label(&s), Some(&b"GW_CONFIG"[..]));
        // Larger logical sectors and a longer buffer (a 4Kn first sector).
        let mut big = vec![0u8; 4096];
        big[..512].copy_from_slice(&sector(true, b"GW_CONFIG"));
        big[0x0B..0x0D].copy_from_slice(&4096u16.to_le_bytes());
        assert_eq!(fat_label(&big), Some(&b"GW_CONFIG"[..]));
    }

    #[test]
    fn the_label_is_read_from_the_right_layout() {
        // A FAT32 sector read as FAT16 would find the label 0x1C bytes early:
        // the layouts must not be confused.
        let s = sector(true, b"GW_CONFIG");
        assert_ne!(&s[0x2B..0x2B + 9], b"GW_CONFIG");
        let s = sector(false, b"GW_CONFIG");
        assert_ne!(&s[0x47..0x47 + 9], b"GW_CONFIG");
    }

    #[test]
    fn non_fat_sectors_have_no_label() {
        let good = sector(false, b"GW_CONFIG");
        let broken = |f: &dyn Fn(&mut [u8; 512])| {
            let mut s = good;
            f(&mut s);
            fat_label(&s).map(<[u8]>::to_vec)
        };
        assert!(fat_label(&[0u8; 512]).is_none());
        assert!(fat_label(&good[..511]).is_none(), "short buffer");
        assert!(broken(&|s| s[510] = 0).is_none(), "no 0x55AA");
        assert!(broken(&|s| s[511] = 0x55).is_none(), "no 0x55AA");
        for bps in [0u16, 256, 513, 1000, 8192] {
            assert!(
                broken(&|s| s[0x0B..0x0D].copy_from_slice(&bps.to_le_bytes())).is_none(),
                "{bps} bytes per sector"
            );
        }
        for spc in [0u8, 3, 6, 255] {
            assert!(broken(&|s| s[0x0D] = spc).is_none(), "{spc} per cluster");
        }
        assert!(broken(&|s| s[0x0E..0x10].fill(0)).is_none(), "no reserved");
        assert!(broken(&|s| s[0x10] = 0).is_none(), "no FATs");
        assert!(broken(&|s| s[0x26] = 0x28).is_none(), "old BPB: no label");
        let mut fat32 = sector(true, b"GW_CONFIG");
        fat32[0x42] = 0;
        assert!(fat_label(&fat32).is_none());
        // NTFS: 0x55AA and a plausible sector size, but no reserved sectors
        // or FATs.
        let mut ntfs = [0u8; 512];
        ntfs[3..11].copy_from_slice(b"NTFS    ");
        ntfs[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        ntfs[0x0D] = 8;
        ntfs[510] = 0x55;
        ntfs[511] = 0xAA;
        assert!(fat_label(&ntfs).is_none());
    }

    #[test]
    fn labels_match_case_insensitively_without_trailing_spaces() {
        assert!(label_matches(b"GW_CONFIG", "GW_CONFIG"));
        assert!(label_matches(b"gw_config", "GW_CONFIG"));
        assert!(label_matches(b"GW_CONFIG", "gw_Config  "));
        assert!(!label_matches(b"GW_CONFIG2", "GW_CONFIG"));
        assert!(!label_matches(b"GW_CONF", "GW_CONFIG"));
        assert!(!label_matches(b" GW_CONFIG", "GW_CONFIG"));
        assert!(!label_matches(b"", ""));
        assert!(!label_matches(b"", "   "));
    }

    /// A fake `/sys/class/block` entry: a directory with `size` (and `dev`).
    fn block(root: &Path, name: &str, size: u64) -> PathBuf {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("size"), format!("{size}\n")).unwrap();
        fs::write(dir.join("dev"), "7:0\n").unwrap();
        dir
    }

    #[test]
    fn candidates_skip_ram_unused_loop_and_empty_devices() {
        let tmp = tempfile::tempdir().unwrap();
        let devices = tmp.path().join("devices");
        let class = tmp.path().join("class");
        fs::create_dir_all(&class).unwrap();
        let link = |name: &str, target: &Path| {
            std::os::unix::fs::symlink(target, class.join(name)).unwrap()
        };
        for (name, size) in [
            ("sda", 100),
            ("sda1", 50),
            ("sr0", 0),
            ("ram0", 100),
            ("zram0", 100),
            ("mmcblk0p1", 10),
        ] {
            link(name, &block(&devices, name, size));
        }
        // loop0: backed, with a partition; loop1: attached to nothing.
        let loop0 = block(&devices, "loop0", 8192);
        fs::create_dir_all(loop0.join("loop")).unwrap();
        fs::write(loop0.join("loop/backing_file"), "/tmp/stick.img\n").unwrap();
        link("loop0", &loop0);
        let loop0p1 = block(&loop0, "loop0p1", 4096);
        fs::write(loop0p1.join("partition"), "1\n").unwrap();
        link("loop0p1", &loop0p1);
        link("loop1", &block(&devices, "loop1", 0));
        let loop2 = block(&devices, "loop2", 8192);
        fs::create_dir_all(loop2.join("loop")).unwrap();
        fs::write(loop2.join("loop/backing_file"), "\n").unwrap();
        link("loop2", &loop2);
        assert_eq!(
            candidate_names(&class),
            ["loop0", "loop0p1", "mmcblk0p1", "sda", "sda1"]
        );
        assert!(candidate_names(&tmp.path().join("absent")).is_empty());
    }

    #[test]
    fn device_nodes_must_be_the_block_device_sysfs_names() {
        let tmp = tempfile::tempdir().unwrap();
        let class = tmp.path().join("class");
        block(&class, "sda", 100);
        let dev = tmp.path().join("dev");
        fs::create_dir_all(&dev).unwrap();
        assert_eq!(device_node(&class, &dev, "sda"), None, "no node");
        fs::write(dev.join("sda"), "").unwrap();
        assert_eq!(device_node(&class, &dev, "sda"), None, "not a block device");
        // /dev/null is a character device (1:3).
        block(&class, "null", 1);
        fs::write(class.join("null/dev"), "1:3\n").unwrap();
        assert_eq!(device_node(&class, Path::new("/dev"), "null"), None);
        // A real block device, where there is one: found, unless sysfs
        // names another major:minor.
        let sys = Path::new(SYS_CLASS_BLOCK);
        if let Some(name) = candidate_names(sys).into_iter().next() {
            let node = device_node(sys, Path::new(DEV), &name);
            if node.is_some() {
                block(&class, &name, 1);
                fs::write(class.join(&name).join("dev"), "4095:4095\n").unwrap();
                assert_eq!(device_node(&class, Path::new(DEV), &name), None);
            }
        }
    }

    #[test]
    fn config_keys_and_defaults() {
        let default = EnrollConfig::default();
        assert_eq!(default.config_volume_label, "GW_CONFIG");
        assert_eq!(
            default.config_volume_mount,
            Path::new("/run/gondwana/gw-config")
        );
        let set: EnrollConfig =
            toml::from_str("config_volume_label = \"\"\nconfig_volume_mount = \"/mnt/x\"\n")
                .unwrap();
        assert_eq!(set.config_volume_label, "");
        assert_eq!(set.config_volume_mount, Path::new("/mnt/x"));
    }

    #[test]
    fn an_empty_label_disables_the_search() {
        let config = EnrollConfig {
            config_volume_label: "  ".into(),
            config_volume_mount: PathBuf::from("/nonexistent/gw-config"),
            ..EnrollConfig::default()
        };
        assert!(read_enroll(&config).unwrap().is_none());
        assert!(!Path::new("/nonexistent/gw-config").exists());
    }

    #[test]
    fn the_mount_point_is_a_private_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let mount_point = tmp.path().join("run/gw-config");
        prepare_mount_point(&mount_point).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&mount_point), 0o700);
        assert_eq!(mode(&tmp.path().join("run")), 0o700);
        fs::set_permissions(&mount_point, fs::Permissions::from_mode(0o755)).unwrap();
        prepare_mount_point(&mount_point).unwrap();
        assert_eq!(mode(&mount_point), 0o700);
        let file = tmp.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(prepare_mount_point(&file).is_err());
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&mount_point, &link).unwrap();
        assert!(prepare_mount_point(&link).is_err(), "a symlink is refused");
    }

    #[test]
    fn reads_are_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("enroll.toml");
        assert!(matches!(read_bounded(&path), Ok(None)));
        fs::write(&path, vec![b'#'; MAX_ENROLL_BYTES]).unwrap();
        assert!(matches!(read_bounded(&path), Ok(Some(b)) if b.len() == MAX_ENROLL_BYTES));
        fs::write(&path, vec![b'#'; MAX_ENROLL_BYTES + 1]).unwrap();
        assert!(matches!(read_bounded(&path), Err(VolumeError::TooLarge)));
    }
}

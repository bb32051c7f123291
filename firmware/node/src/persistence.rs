//! Whether the state directory survives a reboot: `persistent` in status.
//!
//! The image's initramfs mounts the `GW_STATE` partition (ext4) at `/state`,
//! or a tmpfs there when the medium is read-only or too small (docs/image.md).
//! The answer is read from the kernel's mount table, not from a marker the
//! boot scripts could forget: the filesystem holding the state directory.

use std::path::Path;

/// Filesystems whose contents are gone after a reboot.
const VOLATILE: &[&str] = &["tmpfs", "ramfs"];

/// `Some(false)` when the state directory is on tmpfs/ramfs, `Some(true)` on
/// any other filesystem, `None` when the mount table cannot be read.
pub fn state_is_persistent(state_dir: &Path) -> Option<bool> {
    let dir = std::fs::canonicalize(state_dir).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    fstype_of(&mountinfo, &dir).map(|fs| !VOLATILE.contains(&fs))
}

/// The filesystem type of the deepest mount point containing `dir`
/// (later lines win on ties: the mount on top).
fn fstype_of<'a>(mountinfo: &'a str, dir: &Path) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for line in mountinfo.lines() {
        // "36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw"
        let mut fields = line.split(' ');
        let Some(mount_point) = fields.nth(4) else {
            continue;
        };
        let Some(fstype) = line.split(" - ").nth(1).and_then(|t| t.split(' ').next()) else {
            continue;
        };
        let mount_point = unescape(mount_point);
        if dir.starts_with(&mount_point) {
            let depth = Path::new(&mount_point).components().count();
            if best.is_none_or(|(d, _)| depth >= d) {
                best = Some((depth, fstype));
            }
        }
    }
    best.map(|(_, fs)| fs)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 0:20 / / ro,relatime - squashfs /dev/vda2 ro
23 22 0:21 / /run rw - tmpfs tmpfs rw
24 22 8:4 / /state rw,relatime - ext4 /dev/vda4 rw
25 22 0:22 / /my\\040dir rw - tmpfs tmpfs rw
26 24 0:23 / /state rw - tmpfs tmpfs rw
";

    #[test]
    fn deepest_and_topmost_mount_wins() {
        assert_eq!(fstype_of(TABLE, Path::new("/var/lib")), Some("squashfs"));
        assert_eq!(fstype_of(TABLE, Path::new("/run/gondwana")), Some("tmpfs"));
        assert_eq!(fstype_of(TABLE, Path::new("/my dir/x")), Some("tmpfs"));
        // /state is mounted twice: the later (tmpfs) mount hides the ext4.
        assert_eq!(
            fstype_of(TABLE, Path::new("/state/gondwana")),
            Some("tmpfs")
        );
        assert_eq!(fstype_of(TABLE, Path::new("/stateful")), Some("squashfs"));
    }

    #[test]
    fn real_mount_table_answers() {
        assert!(state_is_persistent(Path::new("/")).is_some());
        assert_eq!(state_is_persistent(Path::new("/no/such/dir")), None);
    }
}

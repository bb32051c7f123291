//! `gondwana modules load LIST`: load the kernel modules a list names, in
//! its order, in this one process (`finit_module`), instead of one `insmod`
//! process per module. (Measured under QEMU TCG, most of a module's ≈ 40 ms
//! is the kernel's own work, not the process: docs/image.md.) The images'
//! rcS runs it before the daemon starts, so the
//! WireGuard backend probe finds `wireguard` loaded (docs/image.md).
//!
//! The list is what `image/modules.sh` writes at build time: one path a
//! line, relative to the list's directory (`/lib/modules/<version>/`),
//! dependencies before the modules that need them. A module already
//! loaded (by the initramfs) or built in is not an error (`EEXIST`).

use std::fs::File;
use std::path::{Component, Path};
use std::time::Instant;

use anyhow::{Context, bail};
use nix::errno::Errno;
use nix::kmod::{ModuleInitFlags, finit_module};

/// The module paths of a list, in order: blank lines and `#` comments
/// skipped. A path that is absolute or climbs out of the list's directory
/// (`..`) is refused, naming its line.
pub fn parse_list(text: &str) -> anyhow::Result<Vec<&str>> {
    let mut paths = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let inside = Path::new(line)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !inside || !line.ends_with(".ko") {
            bail!(
                "line {}: {line:?} is not a .ko path inside the list's directory",
                n + 1
            );
        }
        paths.push(line);
    }
    Ok(paths)
}

/// How one module's load ended, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
enum Loaded {
    Now,
    Already,
}

fn load_one(path: &Path) -> Result<Loaded, String> {
    let file = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    match finit_module(&file, c"", ModuleInitFlags::empty()) {
        Ok(()) => Ok(Loaded::Now),
        // Loaded by the initramfs, or built into the kernel.
        Err(Errno::EEXIST) => Ok(Loaded::Already),
        Err(e) => Err(format!("finit_module: {}", e.desc())),
    }
}

/// Loads every module of the list at `list`; the ones that fail are named
/// (with the kernel's reason) after the others were tried.
pub fn load(list: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let text =
        std::fs::read_to_string(list).with_context(|| format!("cannot read {}", list.display()))?;
    let paths = parse_list(&text).with_context(|| list.display().to_string())?;
    let dir = list.parent().unwrap_or(Path::new("."));
    let (mut now, mut already, mut failed) = (0, 0, Vec::new());
    for rel in &paths {
        match load_one(&dir.join(rel)) {
            Ok(Loaded::Now) => now += 1,
            Ok(Loaded::Already) => already += 1,
            Err(why) => failed.push(format!("{}: {why}", module_name(rel))),
        }
    }
    eprintln!(
        "gondwana: modules: {now} loaded, {already} already there, {} failed ({} ms)",
        failed.len(),
        started.elapsed().as_millis()
    );
    if !failed.is_empty() {
        bail!("cannot load {}", failed.join("; "));
    }
    Ok(())
}

/// `kernel/net/wireguard/wireguard.ko` -> `wireguard`.
fn module_name(rel: &str) -> &str {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    file.strip_suffix(".ko").unwrap_or(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_and_skips_blanks_and_comments() {
        let list = "# storage\nkernel/lib/libcrc32c.ko\n\n  kernel/fs/ext4/ext4.ko  \nkernel/drivers/net/wireguard/wireguard.ko\n";
        assert_eq!(
            parse_list(list).unwrap(),
            [
                "kernel/lib/libcrc32c.ko",
                "kernel/fs/ext4/ext4.ko",
                "kernel/drivers/net/wireguard/wireguard.ko"
            ]
        );
        assert!(parse_list("").unwrap().is_empty());
    }

    #[test]
    fn refuses_paths_outside_the_directory_naming_the_line() {
        for bad in [
            "/lib/modules/x.ko",
            "kernel/../../x.ko",
            "./x.ko",
            "kernel/x.o",
        ] {
            let e = parse_list(&format!("kernel/a.ko\n{bad}\n")).unwrap_err();
            assert!(e.to_string().starts_with("line 2: "), "{bad}: {e}");
        }
    }

    #[test]
    fn a_missing_module_is_named_after_the_others_were_tried() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("load.list");
        std::fs::write(&list, "kernel/net/absent.ko\nkernel/fs/gone.ko\n").unwrap();
        let e = format!("{:#}", load(&list).unwrap_err());
        assert!(e.contains("absent: cannot open it"), "{e}");
        assert!(e.contains("gone: cannot open it"), "{e}");
        assert_eq!(module_name("kernel/fs/ext4/ext4.ko"), "ext4");
    }
}

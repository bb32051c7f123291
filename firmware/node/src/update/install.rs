//! `gondwana update install BUNDLE`: the bundle into the inactive slot.
//!
//! Order (docs/updates.md, "Install"):
//! 1. everything that can refuse without reading the parts: the manifest's
//!    signature by a trusted release key (after the bundle's rotation
//!    records), board, version floor, the file's exact length, sizes
//!    against the slot and the boot partition;
//! 2. a read-only pass hashing every part: a damaged bundle is refused
//!    before anything is written;
//! 3. the writes: the slot's status record removed first, the root
//!    streamed to the inactive partition and the boot files to the slot's
//!    set, each hashed again as written (the file could change between the
//!    passes), and only if every hash matched, the status record last.
//!
//! The running slot is never opened for writing: the target is the
//! partition with the other slot's number, opened exclusively (the kernel
//! refuses that while it is mounted).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use gondwana_core::hash::{Blake2b256, Hash32, to_hex};
use gondwana_core::update::{
    self, Manifest, PREFIX_LEN, Part, Release, SignedRotation, Target, check_install,
};
use serde_json::{Value, json};

use super::slots::{self, Layout};
use super::{UpdateError, boot_set, running_release, trial};
use crate::config::UpdateConfig;
use crate::store::StateStore;

const CHUNK: usize = 1 << 20;

/// `store`: the rotation records this box stored are trusted, and the
/// bundle's are stored once it is installed (none without a store).
pub fn install(
    cfg: &UpdateConfig,
    store: Option<&StateStore>,
    bundle: &Path,
) -> Result<Value, UpdateError> {
    let started = Instant::now();
    let layout = slots::discover(cfg)?;
    if let Some(why) = trial::refuse_install_on_trial(cfg, layout.running) {
        return Err(UpdateError::Refused(why));
    }
    let running = running_release(cfg)?;
    let stored = match store {
        Some(s) => s
            .release_rotations()
            .context("the stored rotation records")?,
        None => Vec::new(),
    };
    let keys = super::mesh::release_keys(cfg, &stored)?;
    let mut file = File::open(bundle)
        .map_err(|e| UpdateError::Refused(format!("{}: {e}", bundle.display())))?;
    let (manifest, parts_at, rotations) = read_manifest(&mut file, &keys)?;
    check_install(&manifest, &running)?;
    check_sizes(cfg, &layout, &manifest, &file, parts_at)?;

    verify_parts(&mut file, parts_at, &manifest)?;

    let slot = layout.running.other();
    let _writable = boot_set::Writable::acquire(&cfg.boot_dir)?;
    boot_set::invalidate(cfg, slot)?;
    file.seek(SeekFrom::Start(parts_at))
        .context("seek to the parts")?;
    let mut device = OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_EXCL.bits())
        .open(&layout.inactive_device)
        .with_context(|| {
            format!(
                "open {} exclusively (is it mounted?)",
                layout.inactive_device.display()
            )
        })?;
    let root = manifest.root();
    copy_checked(&mut file, &mut device, root, "root")?;
    device.sync_all().context("flush the slot")?;
    drop(device);

    let boot_files = manifest.parts.iter().filter_map(|p| match &p.target {
        Target::BootFile(name) => Some(name.as_str()),
        Target::RootSlot => None,
    });
    let set = boot_set::reset(cfg, slot, boot_files)?;
    for part in &manifest.parts[1..] {
        let Target::BootFile(name) = &part.target else {
            continue; // `Manifest::check`: only the first part is the root
        };
        let path = set.join(name);
        let mut out = File::create(&path).with_context(|| format!("create {}", path.display()))?;
        copy_checked(&mut file, &mut out, part, name)?;
        out.sync_all().context("flush a boot file")?;
    }
    let installed = Release {
        board: manifest.board.clone(),
        version: manifest.version,
        min_version: manifest.min_version,
        label: manifest.label.clone(),
    };
    boot_set::mark_installed(cfg, slot, &installed)?;
    trial::arm(cfg, slot, &installed, crate::clock::now_unix())?;
    // The bundle's rotations outlive it: later bundles signed by the new
    // key verify here without them (docs/updates.md).
    if let Some(store) = store {
        store
            .remember_rotations(&rotations, crate::clock::now_unix())
            .context("store the bundle's rotation records")?;
    }
    info!(
        "update: version {} ({}) installed into slot {} ({})",
        manifest.version,
        manifest.label,
        slot.name(),
        layout.inactive_device.display()
    );
    Ok(json!({
        "installed": true,
        "slot": slot.name(),
        "device": layout.inactive_device.display().to_string(),
        "boot_files": set.display().to_string(),
        "release": installed,
        "release_key": to_hex(&manifest.release_key),
        "bytes": manifest.parts_len(),
        "seconds": started.elapsed().as_secs_f64(),
        "trial_armed": true,
    }))
}

/// The verified manifest and the offset of the first part.
fn read_manifest(
    file: &mut File,
    keys: &[[u8; 32]],
) -> Result<(Manifest, u64, Vec<SignedRotation>), UpdateError> {
    let mut prefix = [0u8; PREFIX_LEN];
    read_exact(file, &mut prefix, "its prefix")?;
    let len = update::head_len(&prefix)?;
    let mut head = vec![0u8; len];
    read_exact(file, &mut head, "its head")?;
    let manifest = update::verify_head(&head, keys)?;
    let rotations = update::head_rotations(&head)?;
    Ok((manifest, (PREFIX_LEN + len) as u64, rotations))
}

fn read_exact(file: &mut File, buf: &mut [u8], what: &str) -> Result<(), UpdateError> {
    file.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => UpdateError::Rejected(format!(
            "bundle rejected: truncated before the end of {what}"
        )),
        _ => UpdateError::Io(anyhow::Error::new(e).context("read the bundle")),
    })
}

fn check_sizes(
    cfg: &UpdateConfig,
    layout: &Layout,
    manifest: &Manifest,
    file: &File,
    parts_at: u64,
) -> Result<(), UpdateError> {
    let expected = parts_at.saturating_add(manifest.parts_len());
    let actual = file.metadata().context("stat the bundle")?.len();
    if actual < expected {
        return Err(UpdateError::Rejected(format!(
            "bundle rejected: truncated: {actual} bytes, the manifest needs {expected}"
        )));
    }
    if actual > expected {
        return Err(UpdateError::Rejected(format!(
            "bundle rejected: {} bytes after the last part",
            actual - expected
        )));
    }
    let root = manifest.root().size;
    if root > layout.inactive_bytes {
        return Err(UpdateError::Refused(format!(
            "refused: the root ({root} bytes) is larger than slot {} ({} bytes)",
            layout.running.other().name(),
            layout.inactive_bytes
        )));
    }
    let boot = manifest.parts_len() - manifest.root().size;
    let room = boot_set::room(cfg, layout.running.other())?;
    if boot > room {
        return Err(UpdateError::Refused(format!(
            "refused: the boot files ({boot} bytes) do not fit the boot partition ({room} bytes free)"
        )));
    }
    Ok(())
}

/// The read-only pass: every part's hash before anything is written.
fn verify_parts(file: &mut File, parts_at: u64, manifest: &Manifest) -> Result<(), UpdateError> {
    file.seek(SeekFrom::Start(parts_at))
        .context("seek to the parts")?;
    for part in &manifest.parts {
        copy_checked(file, &mut std::io::sink(), part, part_name(part))?;
    }
    Ok(())
}

fn part_name(part: &Part) -> &str {
    match &part.target {
        Target::RootSlot => "root",
        Target::BootFile(name) => name,
    }
}

/// Copies exactly `part.size` bytes, hashing them; a short read or another
/// hash is an error (after the bytes were written: the caller's status
/// record stays absent).
fn copy_checked(
    from: &mut File,
    to: &mut impl Write,
    part: &Part,
    name: &str,
) -> Result<(), UpdateError> {
    let mut hasher = Blake2b256::default();
    let mut left = part.size;
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        read_exact(from, &mut buf[..want], name)?;
        hasher.update(&buf[..want]);
        to.write_all(&buf[..want]).context("write")?;
        left -= want as u64;
    }
    let got: Hash32 = hasher.finish();
    if got != part.blake2b {
        return Err(UpdateError::Rejected(format!(
            "bundle rejected: part {name} has BLAKE2b-256 {}, the manifest says {}",
            to_hex(&got),
            to_hex(&part.blake2b)
        )));
    }
    Ok(())
}

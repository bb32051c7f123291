//! Releases over the mesh (docs/updates.md, "Over the mesh"): which
//! release in the directory is this box's, what to do about it now
//! (`gondwana_core::update::rollout` decides), what `update status` says,
//! and checking a whole bundle file against its release record.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use gondwana_core::hash::{Hash32, to_hex};
use gondwana_core::keys::PublicKey;
use gondwana_core::update::rollout::{Situation, Step, decide};
use gondwana_core::update::{
    self, PREFIX_LEN, Release, ReleaseBody, SignedRotation, parse_release_keys, verify_release,
    wave_share, wave_time,
};
use serde_json::{Value, json};

use super::{Slot, UpdateError, boot_set, held, read_text, running_release, slots, trial};
use crate::config::UpdateConfig;
use crate::store::rotations::keys_after;

/// A release record that verified against this box's release keys.
#[derive(Debug, Clone)]
pub struct Verified {
    pub body: ReleaseBody,
    pub signed: Vec<u8>,
}

/// This box's view of the releases in its directory, and the step to take.
#[derive(Debug, Clone)]
pub struct Assessment {
    /// The newest verified release for this box's board.
    pub release: Option<Verified>,
    /// Records that did not verify here, and why.
    pub refused: Vec<String>,
    pub share: Option<u8>,
    pub step: Step,
}

/// The keys this box trusts: the image's, after the rotation records it
/// stored (`store/rotations.rs`).
pub fn release_keys(
    cfg: &UpdateConfig,
    stored: &[SignedRotation],
) -> Result<Vec<PublicKey>, UpdateError> {
    let keys = parse_release_keys(&read_text(&cfg.release_keys, "the release keys")?)
        .map_err(|e| UpdateError::Refused(format!("{}: {e}", cfg.release_keys.display())))?;
    if keys.is_empty() {
        return Err(UpdateError::Refused(format!(
            "{} holds no release key: this image accepts no update",
            cfg.release_keys.display()
        )));
    }
    Ok(keys_after(&keys, stored))
}

/// The newest release for `board` among `records` that verifies against
/// `keys`; every record that does not verify is named in the second list.
pub fn newest_for(
    records: &[Vec<u8>],
    keys: &[PublicKey],
    board: &str,
) -> (Option<Verified>, Vec<String>) {
    let mut best: Option<Verified> = None;
    let mut refused = Vec::new();
    for signed in records {
        match verify_release(signed, keys) {
            Ok(body) if body.board == board => {
                if best.as_ref().is_none_or(|b| body.version >= b.body.version) {
                    best = Some(Verified {
                        body,
                        signed: signed.clone(),
                    });
                }
            }
            Ok(_) => {}
            Err(e) => refused.push(format!("release record refused: {e}")),
        }
    }
    (best, refused)
}

fn idle(why: String) -> Step {
    Step::Idle { why }
}

/// Where this box stands on the releases `records` (the directory's).
pub fn assess(
    cfg: &UpdateConfig,
    state_dir: &Path,
    stored: &[SignedRotation],
    records: &[Vec<u8>],
    node_id: &str,
    now: u64,
) -> Assessment {
    let nothing = |why: String, refused| Assessment {
        release: None,
        refused,
        share: None,
        step: idle(why),
    };
    let running = match running_release(cfg) {
        Ok(r) => r,
        Err(e) => return nothing(e.to_string(), Vec::new()),
    };
    let keys = match release_keys(cfg, stored) {
        Ok(k) => k,
        Err(e) => return nothing(e.to_string(), Vec::new()),
    };
    let (release, refused) = newest_for(records, &keys, &running.board);
    let Some(release) = release else {
        return nothing(
            format!("no release for board {} in the directory", running.board),
            refused,
        );
    };
    let hash = release.body.bundle_blake2b;
    let share = wave_share(node_id, &hash);
    let step = if release.body.bundle_size > cfg.max_bundle_bytes {
        idle(format!(
            "the bundle ({} bytes) is over update.max_bundle_bytes ({})",
            release.body.bundle_size, cfg.max_bundle_bytes
        ))
    } else {
        // Unknown layout (not an image): nothing installed, not on trial.
        let running_slot = slots::discover(cfg).ok().map(|l| l.running);
        decide(&Situation {
            now,
            policy: cfg.policy(),
            window: cfg.window(),
            running: &running,
            release: &release.body,
            share,
            downloaded: held::bundle_path(state_dir, &hash).exists(),
            installed: running_slot.is_some_and(|r| inactive_holds(cfg, r, &release.body)),
            failed: held::failed(state_dir, &hash).is_some(),
            on_trial: running_slot
                .is_some_and(|r| trial::refuse_install_on_trial(cfg, r).is_some()),
        })
    };
    Assessment {
        release: Some(release),
        refused,
        share: Some(share),
        step,
    }
}

/// Does the slot other than `running` hold exactly this release, installed?
fn inactive_holds(cfg: &UpdateConfig, running: Slot, body: &ReleaseBody) -> bool {
    boot_set::read_status(cfg, running.other()).is_some_and(|r: Release| {
        r.board == body.board && r.version == body.version && r.label == body.label
    })
}

pub fn release_json(body: &ReleaseBody) -> Value {
    json!({
        "board": body.board,
        "version": body.version,
        "min_version": body.min_version,
        "label": body.label,
        "start": body.start,
        "bundle_size": body.bundle_size,
        "bundle_blake2b": to_hex(&body.bundle_blake2b),
        "manifest_blake2b": to_hex(&body.manifest_blake2b),
        "release_key": to_hex(&body.release_key),
        "waves": body.waves.iter().map(|w| json!({"percent": w.percent, "after_secs": w.after_secs})).collect::<Vec<_>>(),
    })
}

/// The `mesh` part of `update status`.
pub fn status_json(
    cfg: &UpdateConfig,
    state_dir: &Path,
    stored: &[SignedRotation],
    records: &[Vec<u8>],
    node_id: &str,
    now: u64,
) -> Value {
    let a = assess(cfg, state_dir, stored, records, node_id, now);
    let release = a.release.as_ref().map(|r| {
        let mut v = release_json(&r.body);
        v["download"] = held::download_json(state_dir, &r.body.bundle_blake2b, r.body.bundle_size);
        v["wave_at"] = json!(a.share.map(|s| wave_time(&r.body, s)));
        v["failed"] = json!(held::failed(state_dir, &r.body.bundle_blake2b));
        v
    });
    json!({
        "policy": cfg.policy(),
        "window": cfg.window,
        "share": a.share,
        "release": release,
        "refused": a.refused,
        "step": a.step,
        "last": held::read_last(state_dir),
        "held": held::held(state_dir).iter().map(|h| to_hex(h)).collect::<Vec<_>>(),
    })
}

/// Checks a whole bundle file against `record`: its length and BLAKE2b-256,
/// and that its head verifies under `keys` with the manifest the record
/// names. Reads the file once more for the hash.
pub fn check_bundle(path: &Path, record: &ReleaseBody, keys: &[PublicKey]) -> Result<(), String> {
    let (hash, len) = held::hash_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if len != record.bundle_size {
        return Err(format!(
            "the bundle is {len} bytes, the release record says {}",
            record.bundle_size
        ));
    }
    if hash != record.bundle_blake2b {
        return Err(format!(
            "the bundle's BLAKE2b-256 is {}, the release record says {}",
            to_hex(&hash),
            to_hex(&record.bundle_blake2b)
        ));
    }
    let head = read_head(path)?;
    let manifest = update::verify_head(&head, keys).map_err(|e| format!("bundle rejected: {e}"))?;
    let manifest_bytes = update::head_manifest_bytes(&head).map_err(|e| e.to_string())?;
    record
        .matches(&manifest, &manifest_bytes)
        .map_err(|e| e.to_string())
}

fn read_head(path: &Path) -> Result<Vec<u8>, String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = File::open(path).map_err(fail)?;
    let mut prefix = [0u8; PREFIX_LEN];
    file.read_exact(&mut prefix).map_err(fail)?;
    let len = update::head_len(&prefix).map_err(|e| e.to_string())?;
    let mut head = vec![0u8; len];
    file.read_exact(&mut head).map_err(fail)?;
    Ok(head)
}

/// The hash named by a `<hex>` path segment.
pub fn parse_hash(hex: &str) -> Option<Hash32> {
    if hex.len() != 64 || hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    gondwana_core::keys::decode_hex32(hex).ok()
}

/// `update publish`, the files' part: checks the record against this box's
/// release keys and the bundle against the record, and stores the bundle
/// where this box serves it from (a copy, verified as copied; a bundle
/// already held is checked again and kept). Returns the record.
pub fn store_published(
    cfg: &UpdateConfig,
    state_dir: &Path,
    stored: &[SignedRotation],
    bundle: &Path,
    record: &Path,
) -> Result<Verified, UpdateError> {
    let keys = release_keys(cfg, stored)?;
    let signed = read_bounded(record, update::MAX_SIGNED_RELEASE)?;
    let body = verify_release(&signed, &keys)
        .map_err(|e| UpdateError::Rejected(format!("release record rejected: {e}")))?;
    if body.bundle_size > cfg.max_bundle_bytes {
        return Err(UpdateError::Refused(format!(
            "refused: the bundle ({} bytes) is over update.max_bundle_bytes ({})",
            body.bundle_size, cfg.max_bundle_bytes
        )));
    }
    let target = held::bundle_path(state_dir, &body.bundle_blake2b);
    if !target.exists() {
        let part = held::part_path(state_dir, &body.bundle_blake2b);
        std::fs::create_dir_all(held::dir(state_dir))
            .and_then(|()| std::fs::copy(bundle, &part).map(drop))
            .map_err(|e| {
                UpdateError::Refused(format!(
                    "{} cannot be copied to {}: {e}",
                    bundle.display(),
                    part.display()
                ))
            })?;
        if let Err(why) = check_bundle(&part, &body, &keys) {
            let _ = std::fs::remove_file(&part);
            return Err(UpdateError::Rejected(format!("bundle rejected: {why}")));
        }
        std::fs::rename(&part, &target)
            .map_err(|e| UpdateError::Io(anyhow::anyhow!("rename to {}: {e}", target.display())))?;
    } else if let Err(why) = check_bundle(&target, &body, &keys) {
        return Err(UpdateError::Rejected(format!(
            "the held bundle {} does not match: {why}",
            target.display()
        )));
    }
    Ok(Verified { body, signed })
}

fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>, UpdateError> {
    let cannot = |e: std::io::Error| UpdateError::Refused(format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > max {
        return Err(UpdateError::Rejected(format!(
            "release record rejected: {} is over {max} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gondwana_core::keys::SigningSecret;
    use gondwana_core::update::{FORMAT, seal_release};

    fn record(key: &SigningSecret, board: &str, version: u64) -> Vec<u8> {
        let body = ReleaseBody {
            format: FORMAT,
            board: board.into(),
            version,
            min_version: 0,
            label: format!("v{version}"),
            start: 0,
            bundle_size: 100,
            bundle_blake2b: [version as u8; 32],
            manifest_blake2b: [0; 32],
            release_key: key.public_key(),
            waves: Vec::new(),
        };
        seal_release(&body, key, &[]).unwrap()
    }

    #[test]
    fn the_newest_verified_release_for_the_board_is_chosen() {
        let key = SigningSecret::from_seed([3; 32]);
        let stranger = SigningSecret::from_seed([4; 32]);
        let records = vec![
            record(&key, "mochabin", 5),
            record(&key, "amd64", 9),
            record(&stranger, "mochabin", 8),
            record(&key, "mochabin", 6),
        ];
        let (best, refused) = newest_for(&records, &[key.public_key()], "mochabin");
        assert_eq!(best.map(|b| b.body.version), Some(6));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("does not trust"));
    }

    #[test]
    fn assess_follows_policy_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningSecret::from_seed([3; 32]);
        let release_file = dir.path().join("release");
        let keys_file = dir.path().join("keys");
        std::fs::write(
            &release_file,
            "board=mochabin\nversion=1\nmin_version=0\nlabel=v1\n",
        )
        .unwrap();
        std::fs::write(&keys_file, to_hex(&key.public_key())).unwrap();
        let mut cfg = UpdateConfig {
            release_file,
            release_keys: keys_file,
            root_device_file: dir.path().join("none"),
            policy: "download-only".into(),
            ..UpdateConfig::default()
        };
        let records = vec![record(&key, "mochabin", 2)];
        let a = assess(&cfg, dir.path(), &[], &records, "gw:x", 1_000);
        assert_eq!(a.step, Step::Download);
        std::fs::create_dir_all(held::dir(dir.path())).unwrap();
        std::fs::write(held::bundle_path(dir.path(), &[2; 32]), b"x").unwrap();
        let a = assess(&cfg, dir.path(), &[], &records, "gw:x", 1_000);
        assert!(matches!(a.step, Step::Idle { ref why } if why.contains("download-only")));
        cfg.policy = "auto".into();
        assert_eq!(
            assess(&cfg, dir.path(), &[], &records, "gw:x", 1_000).step,
            Step::Install
        );
        held::mark_failed(dir.path(), &[2; 32], "boom").unwrap();
        let a = assess(&cfg, dir.path(), &[], &records, "gw:x", 1_000);
        assert!(matches!(a.step, Step::Idle { ref why } if why.contains("failed")));
        cfg.max_bundle_bytes = 10;
        let a = assess(&cfg, dir.path(), &[], &records, "gw:x", 1_000);
        assert!(matches!(a.step, Step::Idle { ref why } if why.contains("max_bundle_bytes")));
    }
}

//! Bundles on the state partition (docs/updates.md, "Over the mesh"):
//! `<state>/updates/<hash>.bundle` is a complete, verified bundle this box
//! serves to others (named by the BLAKE2b-256 of the whole file, as the
//! release record names it); `<hash>.part` is a download in progress,
//! continued where it stopped; `<hash>.failed` says installing that release
//! failed here (its text is why); `last.json` is the daemon's last step.

use std::fs;
use std::path::{Path, PathBuf};

use gondwana_core::hash::{Blake2b256, Hash32, to_hex};
use gondwana_core::keys::decode_hex32;
use serde_json::{Value, json};

pub const DIR: &str = "updates";

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join(DIR)
}

pub fn bundle_path(state_dir: &Path, hash: &Hash32) -> PathBuf {
    dir(state_dir).join(format!("{}.bundle", to_hex(hash)))
}

pub fn part_path(state_dir: &Path, hash: &Hash32) -> PathBuf {
    dir(state_dir).join(format!("{}.part", to_hex(hash)))
}

fn failed_path(state_dir: &Path, hash: &Hash32) -> PathBuf {
    dir(state_dir).join(format!("{}.failed", to_hex(hash)))
}

fn last_path(state_dir: &Path) -> PathBuf {
    dir(state_dir).join("last.json")
}

/// The hashes of the complete bundles this box holds.
pub fn held(state_dir: &Path) -> Vec<Hash32> {
    let Ok(entries) = fs::read_dir(dir(state_dir)) else {
        return Vec::new();
    };
    let mut out: Vec<Hash32> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let hex = name.to_str()?.strip_suffix(".bundle")?.to_string();
            decode_hex32(&hex).ok()
        })
        .collect();
    out.sort();
    out
}

/// Bytes of a download in progress (0: none).
pub fn part_len(state_dir: &Path, hash: &Hash32) -> u64 {
    fs::metadata(part_path(state_dir, hash)).map_or(0, |m| m.len())
}

pub fn failed(state_dir: &Path, hash: &Hash32) -> Option<String> {
    fs::read_to_string(failed_path(state_dir, hash)).ok()
}

pub fn mark_failed(state_dir: &Path, hash: &Hash32, why: &str) -> std::io::Result<()> {
    fs::create_dir_all(dir(state_dir))?;
    fs::write(failed_path(state_dir, hash), why)
}

/// The daemon's last step and its outcome, for `update status`.
pub fn write_last(state_dir: &Path, value: &Value) {
    let tmp = dir(state_dir).join("last.json.tmp");
    let written = fs::create_dir_all(dir(state_dir))
        .and_then(|()| fs::write(&tmp, value.to_string()))
        .and_then(|()| fs::rename(&tmp, last_path(state_dir)));
    if let Err(e) = written {
        warn!("update: cannot record the last step: {e}");
    }
}

pub fn read_last(state_dir: &Path) -> Value {
    fs::read(last_path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// Removes every bundle and partial download but `keep`'s: a box keeps the
/// newest release it fetched (and serves it), not every one before.
pub fn prune_except(state_dir: &Path, keep: &Hash32) {
    let keep = to_hex(keep);
    let Ok(entries) = fs::read_dir(dir(state_dir)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale =
            (name.ends_with(".bundle") || name.ends_with(".part")) && !name.starts_with(&keep);
        if stale && let Err(err) = fs::remove_file(e.path()) {
            warn!("update: cannot remove {}: {err}", e.path().display());
        }
    }
}

/// BLAKE2b-256 and length of a whole file, read in 1 MiB chunks.
pub fn hash_file(path: &Path) -> std::io::Result<(Hash32, u64)> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let mut hasher = Blake2b256::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hasher.finish(), len))
}

/// What `update status` says about the files for `hash`.
pub fn download_json(state_dir: &Path, hash: &Hash32, size: u64) -> Value {
    if bundle_path(state_dir, hash).exists() {
        return json!({"state": "complete", "bytes": size, "size": size});
    }
    let bytes = part_len(state_dir, hash);
    let state = if bytes > 0 { "partial" } else { "none" };
    json!({"state": state, "bytes": bytes, "size": size})
}

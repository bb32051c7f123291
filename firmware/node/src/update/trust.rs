//! `gondwana update trust FILE`: a release-key rotation record
//! (`gondwana-release rotate`) stored by hand, checked and kept exactly as
//! one seen in a bundle or a release record (docs/updates.md, "Rotating the
//! release key"): it must be signed by a key this box trusts now (the
//! image's after the stored records), a record the box is already past is
//! skipped, and at most `MAX_STORED` are kept.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use gondwana_core::envelope::decode_canonical;
use gondwana_core::hash::{blake2b256, to_hex};
use gondwana_core::update::{BundleError, RotationBody, SignedRotation, trusted_after};
use serde_json::{Value, json};

use super::UpdateError;
use crate::config::UpdateConfig;
use crate::store::StateStore;
use crate::store::rotations::MAX_STORED;

/// A record is about 140 bytes; `gondwana-release` reads at most this many.
const MAX_FILE: usize = 256;

pub fn trust(
    cfg: &UpdateConfig,
    store: &StateStore,
    file: &Path,
    now: u64,
) -> Result<Value, UpdateError> {
    let record = read_record(file)?;
    let stored = store
        .release_rotations()
        .context("the stored rotation records")?;
    let keys = super::mesh::release_keys(cfg, &stored)?;
    let after = trusted_after(&keys, std::slice::from_ref(&record)).map_err(|e| {
        let why = match e {
            BundleError::BadRotation { why, .. } => why,
            other => other.to_string(),
        };
        UpdateError::Rejected(format!("rotation record rejected: {why}"))
    })?;
    // It verified, so its body decodes.
    let body: RotationBody = decode_canonical(&record.body, MAX_FILE)
        .map_err(|e| UpdateError::Rejected(format!("rotation record rejected: {e}")))?;
    let mut v = json!({
        "stored": false,
        "record": {
            "seq": body.seq,
            "old_key": to_hex(&body.old_key),
            "new_key": to_hex(&body.new_key),
            "record_blake2b": to_hex(&blake2b256(&record.body)),
        },
        "release_keys": keys.iter().map(|k| to_hex(k)).collect::<Vec<_>>(),
        "stored_records": stored.len(),
    });
    if after == keys {
        // `trusted_after` skipped it: its old key is gone, its new one here.
        v["skipped"] = json!(
            "this box is already past this record: its new key is trusted, its old key no longer"
        );
        return Ok(v);
    }
    if stored.len() >= MAX_STORED {
        return Err(full());
    }
    store
        .remember_rotations(std::slice::from_ref(&record), now)
        .context("store the rotation record")?;
    let now_stored = store
        .release_rotations()
        .context("the stored rotation records")?;
    if !now_stored.contains(&record) {
        return Err(full()); // another writer filled the last place meanwhile
    }
    info!(
        "update: release key {} replaces {} (rotation seq {}), stored by hand",
        to_hex(&body.new_key),
        to_hex(&body.old_key),
        body.seq
    );
    v["stored"] = json!(true);
    v["release_keys"] = json!(after.iter().map(|k| to_hex(k)).collect::<Vec<_>>());
    v["stored_records"] = json!(now_stored.len());
    Ok(v)
}

fn full() -> UpdateError {
    UpdateError::Refused(format!(
        "refused: {MAX_STORED} rotation records are stored already, the most a box keeps; update it with a bundle whose image bakes the current key, or re-flash it"
    ))
}

/// The file's bytes as one canonical `SignedRotation`, read no further than
/// a record can be long.
fn read_record(file: &Path) -> Result<SignedRotation, UpdateError> {
    let mut bytes = Vec::new();
    File::open(file)
        .and_then(|f| f.take(MAX_FILE as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| UpdateError::Refused(format!("{}: {e}", file.display())))?;
    decode_canonical(&bytes, MAX_FILE).map_err(|e| {
        UpdateError::Rejected(format!(
            "rotation record rejected: {} is not a rotation record ({e})",
            file.display()
        ))
    })
}

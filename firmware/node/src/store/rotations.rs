//! Release-key rotation records this box has verified (docs/updates.md,
//! "Rotating the release key"), kept on the state partition so that a
//! rotation outlives the bundle or release record that carried it: later
//! bundles signed by the new key verify after a reboot without carrying the
//! record, and the old key signs nothing any more here. One `meta` value,
//! the records in the order they were learnt (postcard `Vec<SignedRotation>`).

use gondwana_core::audit::Field;
use gondwana_core::envelope::{decode_canonical, encode};
use gondwana_core::keys::PublicKey;
use gondwana_core::update::{SignedRotation, trusted_after};

use super::schema::META;
use super::{StateStore, StoreError, append_audit};

const KEY: &str = "release_rotations";
/// As many as a bundle may carry; beyond that nothing more is stored.
pub const MAX_STORED: usize = 16;
const MAX_BYTES: usize = MAX_STORED * 160;

/// `baked` after the `stored` records, each applied on its own: a record
/// that no longer applies (the running image bakes a later key) is history
/// and skipped. Every one verified when it was stored and verifies again
/// here, so a record never grants more than its old key could.
pub fn keys_after(baked: &[PublicKey], stored: &[SignedRotation]) -> Vec<PublicKey> {
    let mut keys = baked.to_vec();
    for record in stored {
        if let Ok(next) = trusted_after(&keys, std::slice::from_ref(record)) {
            keys = next;
        }
    }
    keys
}

impl StateStore {
    /// The stored rotation records, oldest first.
    pub fn release_rotations(&self) -> Result<Vec<SignedRotation>, StoreError> {
        let txn = self.read()?;
        let Some(meta) = txn.open_if_exists(META)? else {
            return Ok(Vec::new());
        };
        match meta.get(KEY)? {
            None => Ok(Vec::new()),
            Some(v) => decode_canonical(v.value(), MAX_BYTES)
                .map_err(|e| self.corrupt(format!("release rotations: {e}"))),
        }
    }

    /// Stores the records of `verified` (a chain that just verified against
    /// this box's keys) it does not hold yet, with an `update.rotation`
    /// audit record each; how many it stored.
    pub fn remember_rotations(
        &self,
        verified: &[SignedRotation],
        now: u64,
    ) -> Result<usize, StoreError> {
        let mut stored = self.release_rotations()?;
        let fresh: Vec<&SignedRotation> = verified.iter().filter(|r| !stored.contains(r)).collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        if stored.len() + fresh.len() > MAX_STORED {
            warn!("update: {MAX_STORED} rotation records stored already: not storing more");
            return Ok(0);
        }
        let txn = self.write()?;
        for record in &fresh {
            stored.push((*record).clone());
            let digest = gondwana_core::hash::blake2b256(&record.body);
            append_audit(
                &txn,
                "update.rotation",
                &[Field::text(
                    "record_blake2b",
                    &gondwana_core::hash::to_hex(&digest),
                )],
                now,
            )?;
        }
        txn.open(META)?.insert(KEY, encode(&stored).as_slice())?;
        self.commit(txn)?;
        Ok(fresh.len())
    }
}

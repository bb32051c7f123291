//! A provider's own offers on the state partition (table `offers`):
//! - `queued/<name>`: a signed offer or withdrawal the hub has not taken
//!   yet (it was unreachable, or answered with a fault). The daemon's
//!   publisher (`daemon/offers_task.rs`) sends it until the hub answers,
//!   then drops it; one per service name, the newest wins (a withdrawal
//!   replaces the queued offer it ends).
//! - `serial/<name>`: the highest serial this box signed for the name. The
//!   directory keeps the highest serial per (provider, name) and refuses
//!   anything not above it, and this box's copy of the directory may lag
//!   its last publication, so the provider keeps its own.

use gondwana_core::audit::Field;

use super::schema::OFFERS;
use super::{StateStore, StoreError, WriteTxn, append_audit};

const QUEUED: &str = "queued/";
const SERIAL: &str = "serial/";

/// Queues `bytes` (a signed publication) for service `name` and records its
/// `serial`, in `txn` (with its audit record).
pub fn queue_in(txn: &WriteTxn<'_>, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    txn.open(OFFERS)?
        .insert(format!("{QUEUED}{name}").as_str(), bytes)?;
    Ok(())
}

/// Drops what is queued for `name`, in `txn`; whether anything was.
pub fn unqueue_in(txn: &WriteTxn<'_>, name: &str) -> Result<bool, StoreError> {
    txn.open(OFFERS)?.remove(format!("{QUEUED}{name}").as_str())
}

/// Records that this box signed `serial` for `name`, in `txn`.
pub fn set_serial_in(txn: &WriteTxn<'_>, name: &str, serial: u64) -> Result<(), StoreError> {
    txn.open(OFFERS)?.insert(
        format!("{SERIAL}{name}").as_str(),
        &serial.to_le_bytes()[..],
    )?;
    Ok(())
}

impl StateStore {
    /// Every queued publication, by service name.
    pub fn offer_outbox(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.read()?;
        let Some(table) = txn.open_if_exists(OFFERS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in table.range(QUEUED..)? {
            let (k, v) = table.entry(item)?;
            let Some(name) = k.value().strip_prefix(QUEUED) else {
                break;
            };
            out.push((name.to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The highest serial this box signed for `name` (0: none).
    pub fn offer_serial(&self, name: &str) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let Some(table) = txn.open_if_exists(OFFERS)? else {
            return Ok(0);
        };
        match table.get(format!("{SERIAL}{name}").as_str())? {
            None => Ok(0),
            Some(v) => v
                .value()
                .try_into()
                .map(u64::from_le_bytes)
                .map_err(|_| self.corrupt(format!("offers: serial of {name} is not 8 bytes"))),
        }
    }

    /// The hub answered for `name`'s queued publication: drops it if it
    /// still is `bytes` (a newer one queued meanwhile stays) and audits
    /// the outcome (`published`, or the hub's refusal); whether it did.
    pub fn settle_queued_offer(
        &self,
        name: &str,
        bytes: &[u8],
        outcome: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        let txn = self.write()?;
        let same = txn
            .open(OFFERS)?
            .get(format!("{QUEUED}{name}").as_str())?
            .is_some_and(|v| v.value() == bytes);
        if same {
            unqueue_in(&txn, name)?;
            append_audit(
                &txn,
                "service.queue",
                &[Field::text("name", name), Field::text("outcome", outcome)],
                now,
            )?;
            self.commit(txn)?;
        }
        Ok(same)
    }
}

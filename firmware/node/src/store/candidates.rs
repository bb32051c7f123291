//! Endpoint candidates on the state partition (docs/paths.md), so both
//! sides outlive a restart: the hub keeps every node's accepted report and
//! its snapshot serial (a restarted hub never goes back to a serial nodes
//! have seen); a node keeps the last verified snapshot, as received, and
//! the seq of its last report. Everything is verified again when read.

use super::schema::CANDIDATES;
use super::{StateStore, StoreError};

const REPORT_PREFIX: &str = "report/";
const KEY_HUB_SERIAL: &str = "hub_serial";
const KEY_SNAPSHOT: &str = "snapshot";
const KEY_REPORT_SEQ: &str = "report_seq";

impl StateStore {
    fn candidate_value(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let Some(t) = txn.open_if_exists(CANDIDATES)? else {
            return Ok(None);
        };
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    fn put_candidate_value(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let txn = self.write()?;
        txn.open(CANDIDATES)?.insert(key, value)?;
        self.commit(txn)
    }

    fn candidate_u64(&self, key: &str) -> Result<u64, StoreError> {
        match self.candidate_value(key)? {
            None => Ok(0),
            Some(v) => v
                .try_into()
                .map(u64::from_le_bytes)
                .map_err(|_| self.corrupt(format!("candidates: {key} is not 8 bytes"))),
        }
    }

    /// Hub: keeps a node's accepted report (bytes as received).
    pub fn save_candidate_report(&self, node_id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_candidate_value(&format!("{REPORT_PREFIX}{node_id}"), bytes)
    }

    /// Hub: forgets the report of a node no longer active.
    pub fn remove_candidate_report(&self, node_id: &str) -> Result<(), StoreError> {
        let txn = self.write()?;
        txn.open(CANDIDATES)?
            .remove(format!("{REPORT_PREFIX}{node_id}").as_str())?;
        self.commit(txn)
    }

    /// Hub: every stored report (verified again by the caller).
    pub fn candidate_reports(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let Some(t) = txn.open_if_exists(CANDIDATES)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t.range(REPORT_PREFIX..)? {
            let (k, v) = t.entry(item)?;
            if !k.value().starts_with(REPORT_PREFIX) {
                break;
            }
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    /// Hub: the serial of the last snapshot it signed (0: none yet).
    pub fn candidate_serial(&self) -> Result<u64, StoreError> {
        self.candidate_u64(KEY_HUB_SERIAL)
    }

    pub fn save_candidate_serial(&self, serial: u64) -> Result<(), StoreError> {
        self.put_candidate_value(KEY_HUB_SERIAL, &serial.to_le_bytes())
    }

    /// Node: the last verified snapshot, as received.
    pub fn candidate_snapshot(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.candidate_value(KEY_SNAPSHOT)
    }

    pub fn save_candidate_snapshot(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_candidate_value(KEY_SNAPSHOT, bytes)
    }

    /// Node: the seq of its last signed report (0: none yet).
    pub fn candidate_report_seq(&self) -> Result<u64, StoreError> {
        self.candidate_u64(KEY_REPORT_SEQ)
    }

    pub fn save_candidate_report_seq(&self, seq: u64) -> Result<(), StoreError> {
        self.put_candidate_value(KEY_REPORT_SEQ, &seq.to_le_bytes())
    }
}

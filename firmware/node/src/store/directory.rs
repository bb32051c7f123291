//! The directory in the store: the hub appends, nodes replicate. Entries are
//! kept as received, with the head (count and tip) in `meta`, updated in the
//! same transaction.

use gondwana_core::directory::{self, Head, Record};
use gondwana_core::keys::SigningSecret;
use redb::{ReadableTable, WriteTransaction};

use super::schema::{DIRECTORY, KEY_DIRECTORY_HEAD, META};
use super::{StateStore, StoreError};

pub fn head_in(store: &StateStore, txn: &WriteTransaction) -> Result<Head, StoreError> {
    let meta = txn.open_table(META).map_err(|e| store.io_error(e))?;
    let value = meta
        .get(KEY_DIRECTORY_HEAD)
        .map_err(|e| store.io_error(e))?;
    match value {
        Some(v) => decode_head(store, v.value()),
        None => Ok(Head::default()),
    }
}

/// Hub: appends a record signed by the hub key, in `txn`.
pub fn append_record(
    store: &StateStore,
    txn: &WriteTransaction,
    hub: &SigningSecret,
    record: Record,
) -> Result<Head, StoreError> {
    let head = head_in(store, txn)?;
    let (raw, next) = directory::append(&head, hub, record).map_err(|e| StoreError::Io {
        path: store.path().to_path_buf(),
        detail: format!("directory append: {e}"),
    })?;
    put_entry(store, txn, head.len, &raw, next)?;
    Ok(next)
}

/// Node: stores an entry that has already been verified as following the head.
pub fn put_entry(
    store: &StateStore,
    txn: &WriteTransaction,
    seq: u64,
    raw: &[u8],
    next: Head,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(DIRECTORY).map_err(|e| store.io_error(e))?;
    table.insert(seq, raw).map_err(|e| store.io_error(e))?;
    let mut meta = txn.open_table(META).map_err(|e| store.io_error(e))?;
    meta.insert(KEY_DIRECTORY_HEAD, encode_head(&next).as_slice())
        .map_err(|e| store.io_error(e))?;
    Ok(())
}

impl StateStore {
    pub fn directory_head(&self) -> Result<Head, StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(META).map_err(|e| self.io_error(e))?;
        let value = meta.get(KEY_DIRECTORY_HEAD).map_err(|e| self.io_error(e))?;
        match value {
            Some(v) => decode_head(self, v.value()),
            None => Ok(Head::default()),
        }
    }

    /// Entries with seq >= `after`, at most `limit`, and the current head.
    pub fn directory_page(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, Head), StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(META).map_err(|e| self.io_error(e))?;
        let head = match meta.get(KEY_DIRECTORY_HEAD).map_err(|e| self.io_error(e))? {
            Some(v) => decode_head(self, v.value())?,
            None => Head::default(),
        };
        let table = txn.open_table(DIRECTORY).map_err(|e| self.io_error(e))?;
        let mut out = Vec::new();
        for item in table
            .range(after..)
            .map_err(|e| self.io_error(e))?
            .take(limit)
        {
            let (_, v) = item.map_err(|e| self.io_error(e))?;
            out.push(v.value().to_vec());
        }
        Ok((out, head))
    }
}

fn encode_head(head: &Head) -> [u8; 40] {
    super::head::encode(head.len, &head.tip)
}

fn decode_head(store: &StateStore, bytes: &[u8]) -> Result<Head, StoreError> {
    let (len, tip) = super::head::decode(bytes).ok_or_else(|| StoreError::Corrupt {
        path: store.path().to_path_buf(),
        detail: "directory head is malformed".into(),
    })?;
    Ok(Head { len, tip })
}

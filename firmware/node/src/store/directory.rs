//! The directory in the store: the hub appends, nodes replicate. Entries are
//! kept as received, with the head (count and tip) in `meta`, updated in the
//! same transaction.

use gondwana_core::directory::{self, Head, Record};
use gondwana_core::keys::SigningSecret;
use redb::ReadableTable;

use super::schema::{DIRECTORY, KEY_DIRECTORY_HEAD, META};
use super::table::Table;
use super::{StateStore, StoreError, WriteTxn, head};

pub fn head_in(txn: &WriteTxn<'_>) -> Result<Head, StoreError> {
    read_head(&txn.open(META)?)
}

fn read_head<T: ReadableTable<&'static str, &'static [u8]>>(
    meta: &Table<'_, &'static str, &'static [u8], T>,
) -> Result<Head, StoreError> {
    let (len, tip) = head::read(meta, KEY_DIRECTORY_HEAD, "directory")?;
    Ok(Head { len, tip })
}

/// Hub: appends a record signed by the hub key, in `txn`.
pub fn append_record(
    txn: &WriteTxn<'_>,
    hub: &SigningSecret,
    record: Record,
) -> Result<Head, StoreError> {
    let head = head_in(txn)?;
    let (raw, next) = directory::append(&head, hub, record).map_err(|e| StoreError::Io {
        path: txn.path().to_path_buf(),
        detail: format!("directory append: {e}"),
    })?;
    put_entry(txn, head.len, &raw, next)?;
    Ok(next)
}

/// Node: stores an entry that has already been verified as following the head.
pub fn put_entry(txn: &WriteTxn<'_>, seq: u64, raw: &[u8], next: Head) -> Result<(), StoreError> {
    txn.open(DIRECTORY)?.insert(seq, raw)?;
    head::write(
        &mut txn.open(META)?,
        KEY_DIRECTORY_HEAD,
        next.len,
        &next.tip,
    )
}

impl StateStore {
    pub fn directory_head(&self) -> Result<Head, StoreError> {
        read_head(&self.read()?.open(META)?)
    }

    /// Entries with seq >= `after`, at most `limit`, and the current head.
    pub fn directory_page(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, Head), StoreError> {
        let txn = self.read()?;
        let head = read_head(&txn.open(META)?)?;
        let table = txn.open(DIRECTORY)?;
        let mut out = Vec::new();
        for item in table.range(after..)?.take(limit) {
            let (_, v) = table.entry(item)?;
            out.push(v.value().to_vec());
        }
        Ok((out, head))
    }
}

//! Lending state on the state partition (docs/services.md): the
//! provider's book (pending and active subscriptions to its offers) and the
//! consumer's (the subscriptions it wants, its counters). Each is one
//! serialised value, written in the same transaction as the grant change
//! and the audit records a decision causes, so a crash loses nothing the
//! box acknowledged and acknowledges nothing it lost.

use super::schema::LENDING;
use super::{StateStore, StoreError, WriteTxn};

/// The provider's book (`ProviderBook`'s serialised state).
pub const KEY_PROVIDER: &str = "provider";
/// The consumer's book (`ConsumerBook`'s serialised state).
pub const KEY_CONSUMER: &str = "consumer";

impl StateStore {
    /// A book as last committed (`None`: this box never lent or borrowed).
    pub fn lending_book(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let Some(t) = txn.open_if_exists(LENDING)? else {
            return Ok(None);
        };
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }
}

/// Writes a book in `txn` (committed by the caller with whatever else the
/// change touched).
pub fn put_book(txn: &WriteTxn<'_>, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
    txn.open(LENDING)?.insert(key, bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenMode;

    #[test]
    fn a_book_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path(), OpenMode::CreateIfMissing).unwrap();
            assert_eq!(store.lending_book(KEY_PROVIDER).unwrap(), None);
            let txn = store.write().unwrap();
            put_book(&txn, KEY_PROVIDER, b"state").unwrap();
            store.commit(txn).unwrap();
        }
        let store = StateStore::open(dir.path(), OpenMode::ExistingOnly).unwrap();
        assert_eq!(
            store.lending_book(KEY_PROVIDER).unwrap().as_deref(),
            Some(&b"state"[..])
        );
        assert_eq!(store.lending_book(KEY_CONSUMER).unwrap(), None);
    }
}

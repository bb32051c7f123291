//! Transactions and tables that know their file: the one place a redb
//! error becomes a [`StoreError`] naming the state file, so the rest of the
//! store writes `?`.
//!
//! [`WriteTxn`] and [`ReadTxn`] wrap redb's transactions; [`Table`] wraps a
//! table opened in one of them and offers the redb calls the store uses,
//! each returning `StoreError`. The typed record tables (tokens, nodes) and
//! the chain heads build on these.

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::ops::RangeBounds;
use std::path::Path;

use redb::{
    AccessGuard, Key, Range, ReadOnlyTable, ReadableTable, TableDefinition, TableError,
    TableHandle, Value,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{StoreError, classify};

/// The one conversion: any redb error, about the file at `path`.
pub(crate) fn fault(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    classify(path, e.into())
}

/// A value in the file that does not decode: the file is damaged.
pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// A write transaction on the state file; committed by
/// [`super::StateStore::commit`], dropped (rolled back) otherwise.
pub struct WriteTxn<'s> {
    inner: redb::WriteTransaction,
    path: &'s Path,
}

/// A read snapshot of the state file.
pub struct ReadTxn<'s> {
    inner: redb::ReadTransaction,
    path: &'s Path,
}

impl<'s> WriteTxn<'s> {
    pub(crate) fn new(inner: redb::WriteTransaction, path: &'s Path) -> Self {
        WriteTxn { inner, path }
    }

    pub fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        table: TableDefinition<K, V>,
    ) -> Result<WriteTable<'_, K, V>, StoreError> {
        let inner = self
            .inner
            .open_table(table)
            .map_err(|e| fault(self.path, e))?;
        Ok(Table::new(inner, self.path))
    }

    pub fn path(&self) -> &Path {
        self.path
    }

    pub(crate) fn commit(self) -> Result<(), StoreError> {
        self.inner.commit().map_err(|e| fault(self.path, e))
    }
}

impl<'s> ReadTxn<'s> {
    pub(crate) fn new(inner: redb::ReadTransaction, path: &'s Path) -> Self {
        ReadTxn { inner, path }
    }

    pub fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        table: TableDefinition<K, V>,
    ) -> Result<ReadTable<'_, K, V>, StoreError> {
        let inner = self
            .inner
            .open_table(table)
            .map_err(|e| fault(self.path, e))?;
        Ok(Table::new(inner, self.path))
    }

    /// Like [`Self::open`], but `None` for a table this file does not have
    /// (a hub's file has no node tables, and the reverse).
    pub fn open_if_exists<K: Key + 'static, V: Value + 'static>(
        &self,
        table: TableDefinition<K, V>,
    ) -> Result<Option<ReadTable<'_, K, V>>, StoreError> {
        match self.inner.open_table(table) {
            Ok(inner) => Ok(Some(Table::new(inner, self.path))),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(fault(self.path, e)),
        }
    }

    /// The names of the tables in the file.
    pub fn table_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .inner
            .list_tables()
            .map_err(|e| fault(self.path, e))?
            .map(|t| t.name().to_string())
            .collect())
    }
}

/// A table opened in a transaction, whose calls fail with `StoreError`.
pub struct Table<'p, K: Key + 'static, V: Value + 'static, T> {
    inner: T,
    path: &'p Path,
    _types: PhantomData<fn() -> (K, V)>,
}

pub type WriteTable<'t, K, V> = Table<'t, K, V, redb::Table<'t, K, V>>;
pub type ReadTable<'t, K, V> = Table<'t, K, V, ReadOnlyTable<K, V>>;

/// The iterator a range or a whole-table walk gives.
pub type Entries<'a, K, V> = Range<'a, K, V>;

impl<'p, K: Key + 'static, V: Value + 'static, T> Table<'p, K, V, T> {
    fn new(inner: T, path: &'p Path) -> Self {
        Table {
            inner,
            path,
            _types: PhantomData,
        }
    }

    pub fn path(&self) -> &Path {
        self.path
    }
}

impl<K: Key + 'static, V: Value + 'static, T: ReadableTable<K, V>> Table<'_, K, V, T> {
    pub fn get<'a>(
        &self,
        key: impl Borrow<K::SelfType<'a>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StoreError> {
        self.inner.get(key).map_err(|e| fault(self.path, e))
    }

    pub fn contains<'a>(&self, key: impl Borrow<K::SelfType<'a>>) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }

    pub fn len(&self) -> Result<u64, StoreError> {
        self.inner.len().map_err(|e| fault(self.path, e))
    }

    #[allow(clippy::type_complexity)]
    pub fn last(&self) -> Result<Option<(AccessGuard<'_, K>, AccessGuard<'_, V>)>, StoreError> {
        self.inner.last().map_err(|e| fault(self.path, e))
    }

    pub fn range<'a, KR>(
        &self,
        range: impl RangeBounds<KR> + 'a,
    ) -> Result<Entries<'_, K, V>, StoreError>
    where
        KR: Borrow<K::SelfType<'a>> + 'a,
    {
        self.inner.range(range).map_err(|e| fault(self.path, e))
    }

    pub fn iter(&self) -> Result<Entries<'_, K, V>, StoreError> {
        self.inner.iter().map_err(|e| fault(self.path, e))
    }

    /// Each entry of a walk, its error converted.
    #[allow(clippy::type_complexity)]
    pub fn entry<'a>(
        &self,
        item: Result<(AccessGuard<'a, K>, AccessGuard<'a, V>), redb::StorageError>,
    ) -> Result<(AccessGuard<'a, K>, AccessGuard<'a, V>), StoreError> {
        item.map_err(|e| fault(self.path, e))
    }
}

impl<'t, K: Key + 'static, V: Value + 'static> WriteTable<'t, K, V> {
    pub fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<(), StoreError> {
        self.inner
            .insert(key, value)
            .map(drop)
            .map_err(|e| fault(self.path, e))
    }

    /// Removes a key; whether it was there.
    pub fn remove<'a>(&mut self, key: impl Borrow<K::SelfType<'a>>) -> Result<bool, StoreError> {
        self.inner
            .remove(key)
            .map(|old| old.is_some())
            .map_err(|e| fault(self.path, e))
    }
}

/// A table of postcard records under a string key (tokens, nodes): the
/// definition knows the record type, and a value that does not decode is
/// reported as corruption naming the record.
pub struct RecordTable<R> {
    table: TableDefinition<'static, &'static str, &'static [u8]>,
    what: &'static str,
    _record: PhantomData<fn() -> R>,
}

impl<R> RecordTable<R> {
    pub const fn new(
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        what: &'static str,
    ) -> Self {
        RecordTable {
            table,
            what,
            _record: PhantomData,
        }
    }
}

impl<R> Clone for RecordTable<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for RecordTable<R> {}

/// A [`RecordTable`] opened in a transaction.
pub struct Records<'t, R, T> {
    table: Table<'t, &'static str, &'static [u8], T>,
    what: &'static str,
    _record: PhantomData<fn() -> R>,
}

pub type WriteRecords<'t, R> = Records<'t, R, redb::Table<'t, &'static str, &'static [u8]>>;

impl WriteTxn<'_> {
    pub fn records<R>(&self, def: RecordTable<R>) -> Result<WriteRecords<'_, R>, StoreError> {
        Ok(Records {
            table: self.open(def.table)?,
            what: def.what,
            _record: PhantomData,
        })
    }
}

impl ReadTxn<'_> {
    pub fn records<R>(
        &self,
        def: RecordTable<R>,
    ) -> Result<Records<'_, R, ReadOnlyTable<&'static str, &'static [u8]>>, StoreError> {
        Ok(Records {
            table: self.open(def.table)?,
            what: def.what,
            _record: PhantomData,
        })
    }
}

impl<R: DeserializeOwned, T: ReadableTable<&'static str, &'static [u8]>> Records<'_, R, T> {
    pub fn get(&self, key: &str) -> Result<Option<R>, StoreError> {
        match self.table.get(key)? {
            Some(v) => self.decode(key, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Every record, in key order.
    pub fn all(&self) -> Result<Vec<R>, StoreError> {
        let mut out = Vec::new();
        for item in self.table.iter()? {
            let (k, v) = self.table.entry(item)?;
            out.push(self.decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// The keys of the records `keep` accepts, in key order. Records are
    /// decoded one at a time and dropped: a full scan on the enrolment path
    /// allocates only for the (rare) matches.
    pub fn keys_where(
        &self,
        mut keep: impl FnMut(&str, &R) -> bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for item in self.table.iter()? {
            let (k, v) = self.table.entry(item)?;
            let record = self.decode(k.value(), v.value())?;
            if keep(k.value(), &record) {
                out.push(k.value().to_string());
            }
        }
        Ok(out)
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<R, StoreError> {
        postcard::from_bytes(bytes)
            .map_err(|e| corrupt(self.table.path, format!("{} {key}: {e}", self.what)))
    }
}

impl<R: Serialize> WriteRecords<'_, R> {
    pub fn put(&mut self, key: &str, record: &R) -> Result<(), StoreError> {
        let bytes = postcard::to_allocvec(record)
            .map_err(|e| corrupt(self.table.path, format!("{} {key}: {e}", self.what)))?;
        self.table.insert(key, bytes.as_slice())
    }
}

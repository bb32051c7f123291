//! The 40-byte form of a chain head (count, tip hash) kept in `meta`, shared
//! by the audit chain and the directory.

use redb::ReadableTable;

use super::StoreError;
use super::table::{Table, WriteTable, corrupt};

pub fn encode(len: u64, tip: &[u8; 32]) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&len.to_le_bytes());
    out[8..].copy_from_slice(tip);
    out
}

pub fn decode(bytes: &[u8]) -> Option<(u64, [u8; 32])> {
    if bytes.len() != 40 {
        return None;
    }
    let len = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    let tip = bytes[8..].try_into().ok()?;
    Some((len, tip))
}

/// The head stored under `key` in `meta` (`(0, zero)` when none yet); a
/// malformed one is corruption of `what`.
pub fn read<T: ReadableTable<&'static str, &'static [u8]>>(
    meta: &Table<'_, &'static str, &'static [u8], T>,
    key: &str,
    what: &str,
) -> Result<(u64, [u8; 32]), StoreError> {
    match meta.get(key)? {
        Some(v) => decode(v.value())
            .ok_or_else(|| corrupt(meta.path(), format!("{what} head is malformed"))),
        None => Ok((0, [0; 32])),
    }
}

pub fn write(
    meta: &mut WriteTable<'_, &'static str, &'static [u8]>,
    key: &str,
    len: u64,
    tip: &[u8; 32],
) -> Result<(), StoreError> {
    meta.insert(key, encode(len, tip).as_slice())
}

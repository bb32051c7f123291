//! Firewall grants in the store, so a restart or reboot re-applies the live
//! ones. Expiry is absolute (Unix seconds by this box's clock); the kernel
//! enforces the timeout itself, this only decides what to re-apply and with
//! how much time left. Every change is audited in the same transaction.

use std::net::Ipv4Addr;

use gondwana_core::grant::Grant;
use redb::{ReadableTable, WriteTransaction};

use super::schema::GRANTS;
use super::{StateStore, StoreError, append_audit};

pub const AUDIT_GRANT: &str = "firewall.grant";
pub const AUDIT_REVOKE: &str = "firewall.revoke";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredGrant {
    pub grant: Grant,
    /// Unix seconds; `None` = until revoked.
    pub expires_unix: Option<u64>,
}

fn key(g: &Grant) -> (u32, u16) {
    (u32::from(g.ip), g.port)
}

/// Records a grant (replacing an earlier one for the same address and
/// port) and its audit record, in `txn`.
pub fn put_grant(
    store: &StateStore,
    txn: &WriteTransaction,
    stored: &StoredGrant,
    by: &str,
) -> Result<(), StoreError> {
    {
        let mut t = txn.open_table(GRANTS).map_err(|e| store.io_error(e))?;
        t.insert(key(&stored.grant), stored.expires_unix.unwrap_or(0))
            .map_err(|e| store.io_error(e))?;
    }
    let until = match stored.expires_unix {
        Some(t) => format!("until unix {t}"),
        None => "no timeout".into(),
    };
    append_audit(
        store,
        txn,
        AUDIT_GRANT,
        &format!("{}:{} {until} by {by}", stored.grant.ip, stored.grant.port),
    )
}

/// Removes a grant and audits it; false if there was none.
pub fn remove_grant(
    store: &StateStore,
    txn: &WriteTransaction,
    grant: &Grant,
    by: &str,
) -> Result<bool, StoreError> {
    let existed = {
        let mut t = txn.open_table(GRANTS).map_err(|e| store.io_error(e))?;
        t.remove(key(grant))
            .map_err(|e| store.io_error(e))?
            .is_some()
    };
    append_audit(
        store,
        txn,
        AUDIT_REVOKE,
        &format!("{}:{} by {by}", grant.ip, grant.port),
    )?;
    Ok(existed)
}

/// Every stored grant, expired ones included.
pub fn stored_grants(store: &StateStore) -> Result<Vec<StoredGrant>, StoreError> {
    let txn = store.read()?;
    let table = match txn.open_table(GRANTS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(store.io_error(e)),
    };
    let mut out = Vec::new();
    for item in table.iter().map_err(|e| store.io_error(e))? {
        let (k, v) = item.map_err(|e| store.io_error(e))?;
        let (ip, port) = k.value();
        out.push(StoredGrant {
            grant: Grant {
                ip: Ipv4Addr::from(ip),
                port,
            },
            expires_unix: Some(v.value()).filter(|t| *t != 0),
        });
    }
    Ok(out)
}

/// Drops grants that expired by `now` (audited as expired) and returns
/// the live ones.
pub fn prune_expired(store: &StateStore, now: u64) -> Result<Vec<StoredGrant>, StoreError> {
    let all = stored_grants(store)?;
    let (live, expired): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|g| g.expires_unix.is_none_or(|t| t > now));
    if !expired.is_empty() {
        let txn = store.write()?;
        for g in &expired {
            remove_grant(store, &txn, &g.grant, "expiry")?;
        }
        store.commit(txn)?;
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OpenMode, audit_records};

    #[test]
    fn grants_persist_expire_and_are_audited() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), OpenMode::CreateIfMissing).unwrap();
        let g = |last: u8, port| Grant {
            ip: Ipv4Addr::new(10, 10, 0, last),
            port,
        };
        let txn = store.write().unwrap();
        for (grant, expires_unix) in [
            (g(2, 22), Some(100)),
            (g(3, 80), None),
            (g(4, 443), Some(50)),
        ] {
            put_grant(
                &store,
                &txn,
                &StoredGrant {
                    grant,
                    expires_unix,
                },
                "test",
            )
            .unwrap();
        }
        store.commit(txn).unwrap();
        assert_eq!(stored_grants(&store).unwrap().len(), 3);

        let live = prune_expired(&store, 60).unwrap();
        assert_eq!(
            live.iter().map(|s| s.grant).collect::<Vec<_>>(),
            vec![g(2, 22), g(3, 80)]
        );
        assert_eq!(stored_grants(&store).unwrap().len(), 2);

        let txn = store.write().unwrap();
        assert!(remove_grant(&store, &txn, &g(3, 80), "test").unwrap());
        assert!(!remove_grant(&store, &txn, &g(3, 80), "test").unwrap());
        store.commit(txn).unwrap();

        let (records, _) = audit_records(&store).unwrap();
        let kinds: Vec<String> = records
            .iter()
            .filter_map(|(_, raw)| {
                postcard::from_bytes::<gondwana_core::audit::AuditRecord>(raw)
                    .ok()
                    .map(|r| r.kind.to_string())
            })
            .collect();
        assert_eq!(kinds.iter().filter(|k| *k == AUDIT_GRANT).count(), 3);
        assert_eq!(kinds.iter().filter(|k| *k == AUDIT_REVOKE).count(), 3);
    }
}

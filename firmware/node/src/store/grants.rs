//! Firewall grants in the store, so a restart or reboot re-applies the live
//! ones. Expiry is absolute (Unix seconds by this box's clock); the kernel
//! enforces the timeout itself, this only decides what to re-apply and with
//! how much time left. Every change is audited in the same transaction.

use gondwana_core::audit::Field;
use std::net::Ipv4Addr;

use super::schema::{GRANT_ORIGINS, GRANTS};
use super::{StateStore, StoreError, WriteTxn, append_audit};
use gondwana_core::grant::Grant;

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

/// Where a grant came from: the operator (`grant add` on the box), the
/// hub (a signed grant command) or a subscription to one of this box's
/// offers (docs/services.md). Listed with the grant (`grant list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Operator,
    Hub,
    Subscription { service: String, consumer: String },
}

impl Origin {
    /// The stored and listed form: `operator`, `hub`,
    /// `subscription <service> <consumer node id>`.
    pub fn to_text(&self) -> String {
        match self {
            Origin::Operator => "operator".into(),
            Origin::Hub => "hub".into(),
            Origin::Subscription { service, consumer } => {
                format!("subscription {service} {consumer}")
            }
        }
    }

    /// A stored origin; anything unrecognised (or none: a grant from before
    /// schema 5) is the operator's.
    pub fn from_text(text: &str) -> Origin {
        let mut words = text.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("hub"), None, None) => Origin::Hub,
            (Some("subscription"), Some(service), Some(consumer)) => Origin::Subscription {
                service: service.into(),
                consumer: consumer.into(),
            },
            _ => Origin::Operator,
        }
    }
}

/// Records a grant (replacing an earlier one for the same address and
/// port) with its origin and its audit record, in `txn`.
pub fn put_grant(
    txn: &WriteTxn<'_>,
    stored: &StoredGrant,
    origin: &Origin,
    by: &str,
    now: u64,
) -> Result<(), StoreError> {
    txn.open(GRANTS)?
        .insert(key(&stored.grant), stored.expires_unix.unwrap_or(0))?;
    let origin_text = origin.to_text();
    txn.open(GRANT_ORIGINS)?
        .insert(key(&stored.grant), origin_text.as_str())?;
    let mut fields = vec![
        Field::text("ip", &stored.grant.ip.to_string()),
        Field::uint("port", stored.grant.port.into()),
    ];
    // No `expires` field: no timeout.
    fields.extend(stored.expires_unix.map(|t| Field::time("expires", t)));
    fields.push(Field::text("by", by));
    fields.push(Field::text("origin", &origin_text));
    append_audit(txn, AUDIT_GRANT, &fields, now)
}

/// Removes a grant and audits it; false if there was none.
pub fn remove_grant(
    txn: &WriteTxn<'_>,
    grant: &Grant,
    by: &str,
    now: u64,
) -> Result<bool, StoreError> {
    let existed = txn.open(GRANTS)?.remove(key(grant))?;
    txn.open(GRANT_ORIGINS)?.remove(key(grant))?;
    append_audit(
        txn,
        AUDIT_REVOKE,
        &[
            Field::text("ip", &grant.ip.to_string()),
            Field::uint("port", grant.port.into()),
            Field::text("by", by),
        ],
        now,
    )?;
    Ok(existed)
}

/// Every stored grant, expired ones included.
pub fn stored_grants(store: &StateStore) -> Result<Vec<StoredGrant>, StoreError> {
    let txn = store.read()?;
    let Some(table) = txn.open_if_exists(GRANTS)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in table.iter()? {
        let (k, v) = table.entry(item)?;
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

/// The origin of each stored grant, by (address, port).
pub fn origins(store: &StateStore) -> Result<Vec<(Grant, Origin)>, StoreError> {
    let txn = store.read()?;
    let Some(table) = txn.open_if_exists(GRANT_ORIGINS)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in table.iter()? {
        let (k, v) = table.entry(item)?;
        let (ip, port) = k.value();
        let grant = Grant {
            ip: Ipv4Addr::from(ip),
            port,
        };
        out.push((grant, Origin::from_text(v.value())));
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
            remove_grant(&txn, &g.grant, "expiry", now)?;
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
                &txn,
                &StoredGrant {
                    grant,
                    expires_unix,
                },
                &Origin::Operator,
                "test",
                1,
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
        assert!(remove_grant(&txn, &g(3, 80), "test", 70).unwrap());
        assert!(!remove_grant(&txn, &g(3, 80), "test", 70).unwrap());
        store.commit(txn).unwrap();

        let (records, _) = audit_records(&store).unwrap();
        let kinds: Vec<String> = records
            .iter()
            .filter_map(|(_, raw)| {
                gondwana_core::audit::decode_record(raw, 0)
                    .ok()
                    .map(|r| r.kind.to_string())
            })
            .collect();
        assert_eq!(kinds.iter().filter(|k| *k == AUDIT_GRANT).count(), 3);
        assert_eq!(kinds.iter().filter(|k| *k == AUDIT_REVOKE).count(), 3);
    }
}

//! The node's side of enrolment in the store: the hub's grant (kept as the
//! signed bytes received), the hub URL and pin, and the replicated directory.

use gondwana_core::directory::{self, Entry, Head};
use gondwana_core::enrol::EnrolGrant;
use gondwana_core::envelope::{Envelope, tag};
use gondwana_core::hash::to_hex;
use gondwana_core::keys::{PublicKey, decode_hex32};

use super::schema::ENROLMENT;
use super::{StateStore, StoreError, append_audit};

const KEY_GRANT: &str = "grant";
const KEY_HUB_URL: &str = "hub_url";
const KEY_HUB_KEY: &str = "hub_key";
const KEY_SINCE: &str = "since";

#[derive(Debug, Clone)]
pub struct Enrolment {
    pub grant: EnrolGrant,
    pub hub_url: String,
    pub hub_key: PublicKey,
    pub since_unix: u64,
}

/// Commits the grant (already verified against the pin) durably: the node
/// reports success only after this returns.
pub fn save_enrolment(
    store: &StateStore,
    grant_raw: &[u8],
    grant: &EnrolGrant,
    hub_url: &str,
    hub_key: &PublicKey,
    now: u64,
) -> Result<(), StoreError> {
    let txn = store.write()?;
    {
        let mut t = txn.open_table(ENROLMENT).map_err(|e| store.io_error(e))?;
        t.insert(KEY_GRANT, grant_raw)
            .map_err(|e| store.io_error(e))?;
        t.insert(KEY_HUB_URL, hub_url.as_bytes())
            .map_err(|e| store.io_error(e))?;
        t.insert(KEY_HUB_KEY, to_hex(hub_key).as_bytes())
            .map_err(|e| store.io_error(e))?;
        t.insert(KEY_SINCE, &now.to_le_bytes()[..])
            .map_err(|e| store.io_error(e))?;
    }
    append_audit(
        store,
        &txn,
        "enrol.enrolled",
        &format!("{} as {} via {hub_url}", grant.mesh_ip, grant.boxname),
    )?;
    store.commit(txn)
}

impl StateStore {
    /// The stored enrolment, re-verified against the stored pin.
    pub fn enrolment(&self) -> Result<Option<Enrolment>, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: self.path().to_path_buf(),
            detail,
        };
        let txn = self.read()?;
        let t = txn.open_table(ENROLMENT).map_err(|e| self.io_error(e))?;
        let read = |k: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(t.get(k)
                .map_err(|e| self.io_error(e))?
                .map(|v| v.value().to_vec()))
        };
        let Some(grant_raw) = read(KEY_GRANT)? else {
            return Ok(None);
        };
        let hub_url = String::from_utf8(read(KEY_HUB_URL)?.unwrap_or_default())
            .map_err(|_| corrupt("enrolment hub URL is not UTF-8".into()))?;
        let hub_key_hex = String::from_utf8(read(KEY_HUB_KEY)?.unwrap_or_default())
            .map_err(|_| corrupt("enrolment hub key is not UTF-8".into()))?;
        let hub_key =
            decode_hex32(&hub_key_hex).map_err(|e| corrupt(format!("enrolment hub key: {e}")))?;
        let since = read(KEY_SINCE)?
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0);
        let (grant, _) = Envelope::open::<EnrolGrant>(tag::ENROL_GRANT, &grant_raw, Some(&hub_key))
            .map_err(|e| corrupt(format!("stored grant: {e}")))?;
        Ok(Some(Enrolment {
            grant,
            hub_url,
            hub_key,
            since_unix: since,
        }))
    }

    /// Appends directory entries that verified as the continuation of the
    /// stored head (see `gondwana_core::directory::verify_bundle`). Re-checks
    /// the head inside the transaction so two pulls cannot interleave.
    pub fn append_directory(
        &self,
        verified: &[(Entry, Vec<u8>, Head)],
        from: Head,
    ) -> Result<Head, StoreError> {
        let txn = self.write()?;
        let head = super::directory::head_in(self, &txn)?;
        if head != from {
            return Ok(head);
        }
        let mut at = head;
        for (_, raw, next) in verified {
            super::directory::put_entry(self, &txn, at.len, raw, *next)?;
            at = *next;
        }
        self.commit(txn)?;
        Ok(at)
    }

    /// The hub's WireGuard key as this node knows it now: the hub's latest
    /// record in the replicated directory (it follows the hub's rotations),
    /// else the grant's. `None` when not enrolled.
    pub fn hub_wireguard_key(&self) -> Result<Option<PublicKey>, StoreError> {
        let Some(enrolment) = self.enrolment()? else {
            return Ok(None);
        };
        let (view, _) = self.directory_view(&enrolment.hub_key)?;
        Ok(Some(
            view.nodes
                .get(&enrolment.grant.hub_node_id)
                .map(|hub| hub.wireguard_key)
                .unwrap_or(enrolment.grant.hub_wireguard_key),
        ))
    }

    /// All stored directory entries, verified again from the start.
    pub fn directory_view(
        &self,
        authority: &PublicKey,
    ) -> Result<(directory::View, Head), StoreError> {
        let (entries, _) = self.directory_page(0, usize::MAX)?;
        let mut head = Head::default();
        let mut view = directory::View::default();
        for raw in &entries {
            let (entry, next) =
                directory::verify_next(&head, authority, raw).map_err(|e| StoreError::Corrupt {
                    path: self.path().to_path_buf(),
                    detail: format!("stored directory: {e}"),
                })?;
            view.apply(&entry.record);
            head = next;
        }
        Ok((view, head))
    }
}

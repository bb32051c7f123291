//! The node's side of enrolment in the store: the hub's grant (kept as the
//! signed bytes received), the hub URL and pin, and the replicated directory.

use gondwana_core::audit::Field;
use gondwana_core::directory::{self, Entry, Head};
use gondwana_core::enrol::EnrolGrant;
use gondwana_core::envelope::{Envelope, tag};
use gondwana_core::hash::to_hex;
use gondwana_core::keys::{PublicKey, decode_hex32};

use super::schema::ENROLMENT;
use super::{StateStore, StoreError, WriteTxn, append_audit};

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

/// Why an enrolment answer was not saved; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("the enrolment's directory page: {0}")]
    Directory(#[from] directory::DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Commits the grant (already verified against the pin) and the directory
/// page that came with it (`first_page`, a bundle verified here against the
/// pin as the continuation of the stored directory) in one write
/// transaction, durably: the node reports success only after this returns,
/// and never holds a grant without its first page. On any error nothing
/// is written.
pub fn save_enrolment(
    store: &StateStore,
    grant_raw: &[u8],
    grant: &EnrolGrant,
    hub_url: &str,
    hub_key: &PublicKey,
    first_page: &[u8],
    now: u64,
) -> Result<(), SaveError> {
    let txn = store.write()?;
    let head = super::directory::head_in(&txn)?;
    let page = directory::verify_bundle(first_page, hub_key, &head)?;
    put_page(&txn, head, &page)?;
    {
        let mut t = txn.open(ENROLMENT)?;
        t.insert(KEY_GRANT, grant_raw)?;
        t.insert(KEY_HUB_URL, hub_url.as_bytes())?;
        t.insert(KEY_HUB_KEY, to_hex(hub_key).as_bytes())?;
        t.insert(KEY_SINCE, &now.to_le_bytes()[..])?;
    }
    append_audit(
        &txn,
        "enrol.enrolled",
        &[
            Field::text("mesh_ip", &grant.mesh_ip.to_string()),
            Field::text("boxname", grant.boxname.as_str()),
            Field::text("hub", hub_url),
        ],
        now,
    )?;
    store.commit(txn)?;
    Ok(())
}

/// Writes verified entries that continue `from`; returns the new head.
fn put_page(
    txn: &WriteTxn<'_>,
    from: Head,
    verified: &[(Entry, Vec<u8>, Head)],
) -> Result<Head, StoreError> {
    let mut at = from;
    for (_, raw, next) in verified {
        super::directory::put_entry(txn, at.len, raw, *next)?;
        at = *next;
    }
    Ok(at)
}

impl StateStore {
    /// The stored enrolment, re-verified against the stored pin.
    pub fn enrolment(&self) -> Result<Option<Enrolment>, StoreError> {
        let corrupt = |detail: String| self.corrupt(detail);
        let txn = self.read()?;
        let t = txn.open(ENROLMENT)?;
        let read = |k: &str| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(t.get(k)?.map(|v| v.value().to_vec()))
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
        let head = super::directory::head_in(&txn)?;
        if head != from {
            return Ok(head);
        }
        let at = put_page(&txn, head, verified)?;
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
            let (entry, next) = directory::verify_next(&head, authority, raw)
                .map_err(|e| self.corrupt(format!("stored directory: {e}")))?;
            view.apply(&entry.record);
            head = next;
        }
        Ok((view, head))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use gondwana_core::directory::Record;
    use gondwana_core::enrol;
    use gondwana_core::keys::SigningSecret;
    use gondwana_core::{Boxname, NodeId};

    use super::*;
    use crate::store::{OpenMode, audit_records};

    fn grant(hub: &SigningSecret) -> EnrolGrant {
        EnrolGrant {
            version: enrol::VERSION,
            hub_nonce: [1; 32],
            node_id: NodeId::from_genesis_key(&[2; 32]),
            node_signing_key: [2; 32],
            node_wireguard_key: [3; 32],
            boxname: Boxname::parse("n1").unwrap(),
            mesh_ip: Ipv4Addr::new(10, 10, 0, 2),
            subnet: "10.10.0.0/24".parse().unwrap(),
            hub_node_id: NodeId::from_genesis_key(&hub.public_key()),
            hub_mesh_ip: Ipv4Addr::new(10, 10, 0, 1),
            hub_wireguard_key: [6; 32],
            hub_endpoint: "hub.test:51822".try_into().unwrap(),
            wireguard_port: 51822,
            api_port: 8798,
            directory_len: 1,
            directory_tip: [0; 32],
        }
    }

    /// A one-entry directory page signed by `signer`, claiming `authority`.
    fn page(authority: &PublicKey, signer: &SigningSecret, grant: &EnrolGrant) -> (Vec<u8>, Head) {
        let record = Record::Node {
            node_id: grant.hub_node_id.clone(),
            boxname: Boxname::parse("hub").unwrap(),
            signing_key: signer.public_key(),
            wireguard_key: grant.hub_wireguard_key,
            mesh_ip: grant.hub_mesh_ip,
            endpoint_hint: None,
        };
        let (raw, head) = directory::append(&Head::default(), signer, record).unwrap();
        (directory::encode_bundle(authority, 0, head, &[raw]), head)
    }

    fn save(store: &StateStore, hub: &SigningSecret, first_page: &[u8]) -> Result<(), SaveError> {
        let grant = grant(hub);
        let sealed = enrol::seal_grant(&grant, hub).unwrap();
        save_enrolment(
            store,
            &sealed,
            &grant,
            "http://hub.test",
            &hub.public_key(),
            first_page,
            7,
        )
    }

    #[test]
    fn the_grant_and_its_directory_page_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), OpenMode::CreateIfMissing).unwrap();
        let hub = SigningSecret::from_seed([9; 32]);
        let (bundle, head) = page(&hub.public_key(), &hub, &grant(&hub));
        save(&store, &hub, &bundle).unwrap();
        drop(store);

        let store = StateStore::open(dir.path(), OpenMode::ReadOnly).unwrap();
        let saved = store.enrolment().unwrap().expect("the grant");
        assert_eq!(saved.since_unix, 7);
        assert_eq!(store.directory_head().unwrap(), head);
        assert_eq!(store.directory_view(&hub.public_key()).unwrap().1, head);
    }

    /// A page that fails (here: signed by a key other than the pin) leaves
    /// neither the grant, nor a directory entry, nor an audit record.
    #[test]
    fn a_directory_page_that_fails_leaves_no_grant() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), OpenMode::CreateIfMissing).unwrap();
        let hub = SigningSecret::from_seed([9; 32]);
        let forger = SigningSecret::from_seed([8; 32]);
        let audit_before = audit_records(&store).unwrap().1;
        let (bundle, _) = page(&hub.public_key(), &forger, &grant(&hub));

        let err = save(&store, &hub, &bundle).unwrap_err();
        assert!(matches!(err, SaveError::Directory(_)), "{err}");
        drop(store);

        let store = StateStore::open(dir.path(), OpenMode::ReadOnly).unwrap();
        assert!(
            store.enrolment().unwrap().is_none(),
            "a grant without its page"
        );
        assert_eq!(store.directory_head().unwrap(), Head::default());
        assert_eq!(audit_records(&store).unwrap().1, audit_before);
    }
}

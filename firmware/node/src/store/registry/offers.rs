//! Hub: a provider-signed offer or withdrawal appended to the directory,
//! with its audit record, in one transaction. The checks (the provider's
//! signature against its node record, the serial) are the caller's
//! (`daemon/offers_hub.rs`, with `lending::Catalog::check`); every node's
//! fold checks them again.

use gondwana_core::audit::Field;
use gondwana_core::directory::{Head, Record};
use gondwana_core::keys::SigningSecret;

use crate::store::{StateStore, StoreError, append_audit, directory};

/// Appends `signed` (a sealed `lending::Publication`) as a `Lending`
/// record; `fields` describe it in the audit record of `kind`
/// (`directory.offer`, `directory.withdraw`). Returns the new head.
pub fn append_publication(
    store: &StateStore,
    hub: &SigningSecret,
    signed: &[u8],
    kind: &str,
    fields: &[Field],
    now: u64,
) -> Result<Head, StoreError> {
    let record = heapless::Vec::from_slice(signed).map_err(|_| StoreError::Io {
        path: store.path().to_path_buf(),
        detail: format!(
            "a lending record of {} bytes is over its bound",
            signed.len()
        ),
    })?;
    let txn = store.write()?;
    let head = directory::append_record(&txn, hub, Record::Lending(record))?;
    append_audit(&txn, kind, fields, now)?;
    store.commit(txn)?;
    Ok(head)
}

//! The hub's own node record: the directory's first entry, republished
//! when the hub's WireGuard key changes (while running or while down).

use gondwana_core::audit::Field;
use gondwana_core::directory::{Entry, Record};
use gondwana_core::envelope::{Envelope, tag};
use gondwana_core::hash::to_hex;
use gondwana_core::keys::WireguardSecret;
use gondwana_core::mesh;

use super::HubContext;
use crate::store::schema::DIRECTORY;
use crate::store::{StateStore, StoreError, WriteTxn, append_audit, directory};

/// Hub: after rotating its own WireGuard key, publish it (directory record;
/// grants and proofs read it from the context).
pub fn publish_hub_key(
    store: &StateStore,
    hub: &HubContext,
    new_secret: WireguardSecret,
    now: u64,
) -> Result<(), StoreError> {
    match hub.wireguard.write() {
        Ok(mut k) => *k = new_secret,
        Err(poisoned) => *poisoned.into_inner() = new_secret,
    }
    let txn = store.write()?;
    directory::append_record(&txn, &hub.signing, hub_record(hub))?;
    append_audit(&txn, "hub.keys", &wireguard_key_field(hub), now)?;
    store.commit(txn)
}

/// `hub.keys`: the WireGuard key the directory now publishes.
fn wireguard_key_field(hub: &HubContext) -> [Field; 1] {
    [Field::text(
        "wireguard_key",
        &gondwana_core::keys::wg_key_to_base64(&hub.wireguard_key()),
    )]
}

fn hub_record(hub: &HubContext) -> Record {
    Record::Node {
        node_id: hub.identity.node_id.clone(),
        boxname: hub.identity.boxname.clone(),
        signing_key: hub.identity.signing_key,
        wireguard_key: hub.wireguard_key(),
        mesh_ip: mesh::hub_address(&hub.subnet),
        endpoint_hint: heapless::String::try_from(hub.endpoint.as_str()).ok(),
    }
}

/// On hub start: the hub's own node record is the directory's first entry;
/// a WireGuard key rotated while the hub was down is published too.
pub fn ensure_hub_record(store: &StateStore, hub: &HubContext, now: u64) -> Result<(), StoreError> {
    let txn = store.write()?;
    if directory::head_in(&txn)?.len > 0 {
        let published = hub_wg_key_in_directory(&txn, hub)?;
        if published != Some(hub.wireguard_key()) {
            directory::append_record(&txn, &hub.signing, hub_record(hub))?;
            append_audit(&txn, "hub.keys", &wireguard_key_field(hub), now)?;
            store.commit(txn)?;
        }
        return Ok(());
    }
    directory::append_record(&txn, &hub.signing, hub_record(hub))?;
    append_audit(
        &txn,
        "hub.start",
        &[
            Field::text("node_id", hub.identity.node_id.as_str()),
            Field::text("subnet", &hub.subnet.to_string()),
            Field::text("signing_key", &to_hex(&hub.identity.signing_key)),
        ],
        now,
    )?;
    store.commit(txn)
}

/// The hub's WireGuard key as its latest own directory record states it.
fn hub_wg_key_in_directory(
    txn: &WriteTxn<'_>,
    hub: &HubContext,
) -> Result<Option<[u8; 32]>, StoreError> {
    let table = txn.open(DIRECTORY)?;
    let key = hub.signing.public_key();
    let mut found = None;
    for item in table.iter()? {
        let (_, v) = table.entry(item)?;
        if let Ok((entry, _)) = Envelope::open::<Entry>(tag::DIRECTORY_ENTRY, v.value(), Some(&key))
            && let Record::Node {
                node_id,
                wireguard_key,
                ..
            } = entry.record
            && node_id == hub.identity.node_id
        {
            found = Some(wireguard_key);
        }
    }
    Ok(found)
}

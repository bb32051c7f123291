//! Enrolled nodes: their records, their directory `Node` records, and
//! revocation (a signed directory record, the address and boxname freed).

use gondwana_core::audit::Field;
use gondwana_core::directory::{MAX_NODE_TAGS, Record, Tag};
use gondwana_core::hub_enrol::NodeEntry;
use gondwana_core::identity_log::IdentityState;
use gondwana_core::keys::SigningSecret;
use gondwana_core::{Boxname, NodeId};

use super::HubContext;
use crate::store::schema::{ADDRESSES, BOXNAMES, NODE_RECORDS, NODES};
use crate::store::{StateStore, StoreError, WriteTxn, append_audit, directory};

impl StateStore {
    pub fn nodes(&self) -> Result<Vec<NodeEntry>, StoreError> {
        self.read()?.records(NODE_RECORDS)?.all()
    }

    /// (live, all) enrolled nodes, without reading the records: the address
    /// table holds exactly the live ones.
    pub fn node_counts(&self) -> Result<(u64, u64), StoreError> {
        let txn = self.read()?;
        Ok((txn.open(ADDRESSES)?.len()?, txn.open(NODES)?.len()?))
    }
}

/// Revokes a node by id or boxname: a signed directory record, its address
/// and boxname freed. Returns the revoked entry.
pub fn revoke_node(
    store: &StateStore,
    hub: &SigningSecret,
    who: &str,
    reason: &str,
    now: u64,
) -> Result<Option<NodeEntry>, StoreError> {
    let txn = store.write()?;
    let Some(mut entry) = find_node(&txn, who)? else {
        return Ok(None);
    };
    if entry.revoked {
        return Ok(Some(entry));
    }
    revoke_in(&txn, hub, &mut entry, reason, now)?;
    store.commit(txn)?;
    Ok(Some(entry))
}

/// A node by id, or by the boxname a live node holds.
pub(super) fn find_node(txn: &WriteTxn<'_>, who: &str) -> Result<Option<NodeEntry>, StoreError> {
    let id = if who.starts_with(gondwana_core::node_id::PREFIX) {
        who.to_string()
    } else {
        match boxname_holder(txn, who)? {
            Some(id) => id,
            None => return Ok(None),
        }
    };
    txn.records(NODE_RECORDS)?.get(&id)
}

/// The id of the live node holding `boxname`.
pub(super) fn boxname_holder(
    txn: &WriteTxn<'_>,
    boxname: &str,
) -> Result<Option<String>, StoreError> {
    Ok(txn
        .open(BOXNAMES)?
        .get(boxname)?
        .map(|v| v.value().to_string()))
}

pub(super) fn revoke_in(
    txn: &WriteTxn<'_>,
    hub: &SigningSecret,
    entry: &mut NodeEntry,
    reason: &str,
    now: u64,
) -> Result<(), StoreError> {
    entry.revoked = true;
    write_node(txn, entry)?;
    txn.open(ADDRESSES)?.remove(u32::from(entry.mesh_ip))?;
    if boxname_holder(txn, &entry.boxname)?.as_deref() == Some(entry.node_id.as_str()) {
        txn.open(BOXNAMES)?.remove(entry.boxname.as_str())?;
    }
    let node_id = NodeId::parse(&entry.node_id).map_err(|e| {
        crate::store::table::corrupt(txn.path(), format!("node id {}: {e}", entry.node_id))
    })?;
    let mut text = heapless::String::new();
    for c in reason.chars() {
        if text.push(c).is_err() {
            break;
        }
    }
    directory::append_record(
        txn,
        hub,
        Record::Revoke {
            node_id,
            reason: text,
        },
    )?;
    append_audit(
        txn,
        "node.revoke",
        &[
            Field::text("node_id", &entry.node_id),
            Field::text("boxname", entry.boxname.as_str()),
            Field::text("mesh_ip", &entry.mesh_ip.to_string()),
            Field::text("reason", reason),
        ],
        now,
    )
}

pub(super) fn write_node(txn: &WriteTxn<'_>, entry: &NodeEntry) -> Result<(), StoreError> {
    txn.records(NODE_RECORDS)?.put(&entry.node_id, entry)
}

/// The node's keys and address as a directory `Node` record.
pub(super) fn publish_node(
    txn: &WriteTxn<'_>,
    hub: &HubContext,
    entry: &NodeEntry,
    identity: &IdentityState,
) -> Result<(), StoreError> {
    let boxname = Boxname::parse(&entry.boxname).map_err(|e| {
        crate::store::table::corrupt(txn.path(), format!("boxname {}: {e}", entry.boxname))
    })?;
    let record = Record::Node {
        node_id: identity.node_id.clone(),
        boxname,
        signing_key: entry.signing_key,
        wireguard_key: entry.wireguard_key,
        mesh_ip: entry.mesh_ip,
        endpoint_hint: None,
    };
    directory::append_record(txn, &hub.signing, record)?;
    // The Node record cleared the node's tags in every view: publish its
    // token's again (docs/protocol.md, "Directory").
    if !entry.tags.is_empty() {
        let tags = entry
            .tags
            .iter()
            .filter_map(|t| Tag::try_from(t.as_str()).ok())
            .take(MAX_NODE_TAGS)
            .collect::<Vec<_>>();
        let tags = heapless::Vec::from_slice(&tags).unwrap_or_default();
        let record = Record::Tags {
            node_id: identity.node_id.clone(),
            tags,
        };
        directory::append_record(txn, &hub.signing, record)?;
    }
    Ok(())
}

/// Ids of the live nodes other than `node_id` that hold WireGuard `key`.
/// Reads every node record: enrolments are rare, and the answer must be
/// the same transaction's view as the write it guards.
pub(super) fn live_holders_of_key(
    txn: &WriteTxn<'_>,
    node_id: &str,
    key: &[u8; 32],
) -> Result<Vec<String>, StoreError> {
    txn.records::<NodeEntry>(NODE_RECORDS)?
        .keys_where(|id, other| id != node_id && !other.revoked && other.wireguard_key == *key)
}

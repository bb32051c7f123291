//! The hub's mirrors of node identity logs, and the key rotations they
//! carry. A rotation reaches the hub two ways, a mirror push and a
//! re-enrolment; both apply it through [`apply_key_rotation`], so both
//! update the mirror, the node record (keys, length, tip), the directory
//! and the audit chain alike.

use gondwana_core::audit::Field;
use gondwana_core::hash::Hash32;
use gondwana_core::hub_enrol::{self, NodeEntry, Refusal};
use gondwana_core::identity_log::IdentityState;
use gondwana_core::wg_proof::{self, WireguardProof};

use super::HubContext;
use super::nodes::{find_node, live_holders_of_key, publish_node, write_node};
use crate::store::schema::IDENTITY_MIRROR;
use crate::store::{StateStore, StoreError, WriteTxn, append_audit};

/// The header of a mirror push that carries the proof of a new WireGuard key.
pub const WIREGUARD_PROOF_HEADER: &str = "gondwana-wireguard-proof";

impl StateStore {
    /// Mirrored identity-log length of a node, as the hub holds it.
    pub fn mirror_len(&self, node_id: &str) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let table = txn.open(IDENTITY_MIRROR)?;
        Ok(table.range((node_id, 0)..=(node_id, u64::MAX))?.count() as u64)
    }
}

/// The hub's mirror of a node's log, entry by entry, in `txn`.
pub(super) fn mirror_in(txn: &WriteTxn<'_>, node_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let table = txn.open(IDENTITY_MIRROR)?;
    let mut out = Vec::new();
    for item in table.range((node_id, 0)..=(node_id, u64::MAX))? {
        let (_, v) = table.entry(item)?;
        out.push(v.value().to_vec());
    }
    Ok(out)
}

/// Keeps the longest verified identity log the hub has seen for a node.
pub(super) fn mirror_log(
    txn: &WriteTxn<'_>,
    node_id: &str,
    log: &[Vec<u8>],
) -> Result<(), StoreError> {
    let mut mirror = txn.open(IDENTITY_MIRROR)?;
    let have = mirror.range((node_id, 0)..=(node_id, u64::MAX))?.count();
    for (seq, raw) in log.iter().enumerate().skip(have) {
        mirror.insert((node_id, seq as u64), raw.as_slice())?;
    }
    Ok(())
}

/// Hub: takes a node's (verified) identity log if it extends the mirror of
/// a live node with the same genesis; publishes changed keys to the
/// directory. A log that changes the node's WireGuard key must come with
/// `wireguard_proof` (the MAC over the log's tip by the new key's holder)
/// and name a key no other live node holds. Returns the mirror's length
/// and tip afterwards.
pub fn mirror_update(
    store: &StateStore,
    hub: &HubContext,
    state: &IdentityState,
    log: &[Vec<u8>],
    wireguard_proof: Option<&WireguardProof>,
    now: u64,
) -> Result<(u64, Hash32), Refusal> {
    let node_id = state.node_id.to_string();
    let txn = store.write()?;
    let Some(mut entry) = find_node(&txn, &node_id)? else {
        return Err(Refusal::UnknownNode(node_id));
    };
    if entry.revoked {
        return Err(Refusal::NodeRevoked(node_id));
    }
    hub_enrol::check_extends_mirror(&mirror_in(&txn, &node_id)?, log)?;
    if entry.wireguard_key != state.wireguard_key {
        check_rotation_proof(hub, state, wireguard_proof)?;
        let holders = live_holders_of_key(&txn, &node_id, &state.wireguard_key)?;
        hub_enrol::check_wireguard_key_free(
            &state.wireguard_key,
            &hub.wireguard_key(),
            holders.iter(),
        )?;
    }
    apply_key_rotation(&txn, hub, &mut entry, state, log, now)?;
    store.commit(txn)?;
    Ok((state.len, state.tip))
}

/// Applies a live node's verified identity log, which extends the mirror
/// (`hub_enrol::check_extends_mirror`) and whose new WireGuard key, if any,
/// was checked by the caller, inside the caller's write transaction. The
/// one path for a mirror push and a re-enrolment: the mirror takes the new
/// entries, the node record its length and tip, and changed keys also go
/// to the record, a directory `Node` record and a `node.keys` audit record.
pub(super) fn apply_key_rotation(
    txn: &WriteTxn<'_>,
    hub: &HubContext,
    entry: &mut NodeEntry,
    state: &IdentityState,
    log: &[Vec<u8>],
    now: u64,
) -> Result<(), StoreError> {
    mirror_log(txn, &entry.node_id, log)?;
    let rotated =
        entry.signing_key != state.signing_key || entry.wireguard_key != state.wireguard_key;
    if !rotated && entry.identity_len == state.len && entry.identity_tip == state.tip {
        return Ok(());
    }
    entry.signing_key = state.signing_key;
    entry.wireguard_key = state.wireguard_key;
    entry.identity_len = state.len;
    entry.identity_tip = state.tip;
    write_node(txn, entry)?;
    if rotated {
        publish_node(txn, hub, entry, state)?;
        append_audit(
            txn,
            "node.keys",
            &[
                Field::text("node_id", &entry.node_id),
                Field::uint("log_entry", state.len.saturating_sub(1)),
            ],
            now,
        )?;
    }
    Ok(())
}

/// A WireGuard rotation pushed to the mirror: the proof over the log's tip
/// under X25519(new node key, hub key) shows the pusher holds the new key.
fn check_rotation_proof(
    hub: &HubContext,
    state: &IdentityState,
    proof: Option<&WireguardProof>,
) -> Result<(), Refusal> {
    let Some(proof) = proof else {
        return Err(Refusal::BadWireguardProof(format!(
            "the log changes the WireGuard key: the push needs the {} header",
            WIREGUARD_PROOF_HEADER
        )));
    };
    wg_proof::verify(
        &hub.wireguard_secret(),
        &state.wireguard_key,
        &state.tip,
        proof,
    )
    .map_err(|e| Refusal::BadWireguardProof(format!("{WIREGUARD_PROOF_HEADER}: {e}")))
}

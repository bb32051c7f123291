//! Answering an enrolment: read the registry snapshot the decision needs,
//! decide (`gondwana_core::hub_enrol::decide`), apply, seal the grant — all
//! in one write transaction, so nothing changes between the look and the
//! write, and a refusal commits nothing.

use gondwana_core::audit::Field;
use gondwana_core::directory::Head;
use gondwana_core::enrol::{self, EnrolGrant, VerifiedRequest};
use gondwana_core::hub_enrol::{
    self, Admission, BoxnameHolder, Decision, NodeEntry, Refusal, Snapshot, UsedAddresses,
};
use gondwana_core::{Boxname, mesh, token};

use super::HubContext;
use super::mirror::{apply_key_rotation, mirror_in, mirror_log};
use super::nodes::{boxname_holder, live_holders_of_key, publish_node, revoke_in, write_node};
use crate::store::schema::{ADDRESSES, BOXNAMES, NODE_RECORDS, TOKEN_RECORDS};
use crate::store::{StateStore, StoreError, WriteTxn, append_audit, directory};

/// Answers a verified enrolment request, or refuses it with nothing changed.
pub fn enrol(
    store: &StateStore,
    hub: &HubContext,
    verified: &VerifiedRequest,
    now: u64,
) -> Result<Vec<u8>, Refusal> {
    let txn = store.write()?;
    let snapshot = snapshot(&txn, hub, verified, now)?;
    let entry = match hub_enrol::decide(verified, &snapshot)? {
        Decision::Reenrol { mut node } => {
            apply_key_rotation(
                &txn,
                hub,
                &mut node,
                &verified.identity,
                &verified.identity_log,
                now,
            )?;
            *node
        }
        Decision::Admit(plan) => admit(&txn, hub, verified, *plan, now)?,
    };
    let grant = grant_for(hub, verified, &entry, directory::head_in(&txn)?)?;
    let sealed =
        enrol::seal_grant(&grant, &hub.signing).map_err(|e| Refusal::Store(e.to_string()))?;
    store.commit(txn)?;
    Ok(sealed)
}

/// What `decide` needs, read in the enrolment's own transaction.
fn snapshot(
    txn: &WriteTxn<'_>,
    hub: &HubContext,
    verified: &VerifiedRequest,
    now: u64,
) -> Result<Snapshot, StoreError> {
    let identity = &verified.identity;
    let node_id = identity.node_id.as_str();
    let token_id = token::token_id(&token::verifier(&verified.request.token_key));
    let token = txn.records(TOKEN_RECORDS)?.get(&token_id)?;
    let node = txn.records(NODE_RECORDS)?.get(node_id)?;
    let mirror = match &node {
        Some(_) => mirror_in(txn, node_id)?,
        None => Vec::new(),
    };
    let holder = match (&token, &node) {
        (Some(token), None) => {
            let wanted = hub_enrol::wanted_boxname(token, verified.request.boxname.as_str());
            match boxname_holder(txn, &wanted)? {
                Some(id) => Some(BoxnameHolder {
                    entry: txn.records(NODE_RECORDS)?.get(&id)?,
                    node_id: id,
                }),
                None => None,
            }
        }
        _ => None,
    };
    // Every node record is read only when the key is checked: a new node,
    // or a known one whose WireGuard key changed.
    let key_checked = node
        .as_ref()
        .is_none_or(|n| n.wireguard_key != identity.wireguard_key);
    let wireguard_key_holders = if key_checked {
        live_holders_of_key(txn, node_id, &identity.wireguard_key)?
    } else {
        Vec::new()
    };
    Ok(Snapshot {
        now,
        subnet: hub.subnet,
        hub_boxname: hub.identity.boxname.to_string(),
        hub_wireguard_key: hub.wireguard_key(),
        token,
        node,
        mirror,
        boxname_holder: holder,
        wireguard_key_holders,
        used_addresses: used_addresses(txn, hub)?,
    })
}

/// The address table in the cheapest form that answers: its length and
/// last key when they show a gap-free run, else every key.
fn used_addresses(txn: &WriteTxn<'_>, hub: &HubContext) -> Result<UsedAddresses, StoreError> {
    let addresses = txn.open(ADDRESSES)?;
    let last = addresses.last()?.map(|(k, _)| k.value());
    if let Some(run) = UsedAddresses::run_from(&hub.subnet, addresses.len()?, last) {
        return Ok(run);
    }
    let mut used = Vec::new();
    for item in addresses.iter()? {
        let (k, _) = addresses.entry(item)?;
        used.push(k.value());
    }
    Ok(UsedAddresses::Listed(used))
}

/// Writes a new node's plan: the replaced node revoked, the token's use,
/// address, boxname, record, mirror, directory record and audit record.
fn admit(
    txn: &WriteTxn<'_>,
    hub: &HubContext,
    verified: &VerifiedRequest,
    plan: Admission,
    now: u64,
) -> Result<NodeEntry, StoreError> {
    if let Some(mut old) = plan.replaces.as_ref().and_then(|h| h.entry.clone()) {
        revoke_in(txn, &hub.signing, &mut old, &plan.replace_reason(), now)?;
    }
    let entry = plan.entry;
    let node_id = entry.node_id.as_str();
    txn.records(TOKEN_RECORDS)?
        .put(&plan.token.id, &plan.token)?;
    txn.open(ADDRESSES)?
        .insert(u32::from(entry.mesh_ip), node_id)?;
    txn.open(BOXNAMES)?
        .insert(entry.boxname.as_str(), node_id)?;
    write_node(txn, &entry)?;
    mirror_log(txn, node_id, &verified.identity_log)?;
    publish_node(txn, hub, &entry, &verified.identity)?;
    append_audit(
        txn,
        "enrol.grant",
        &[
            Field::text("node_id", node_id),
            Field::text("boxname", entry.boxname.as_str()),
            Field::text("mesh_ip", &entry.mesh_ip.to_string()),
            Field::text("token", &plan.token.id),
        ],
        now,
    )?;
    Ok(entry)
}

fn grant_for(
    hub: &HubContext,
    verified: &VerifiedRequest,
    entry: &NodeEntry,
    head: Head,
) -> Result<EnrolGrant, Refusal> {
    let boxname = Boxname::parse(&entry.boxname).map_err(|e| Refusal::Store(e.to_string()))?;
    let endpoint = heapless::String::try_from(hub.endpoint.as_str())
        .map_err(|_| Refusal::Store("hub endpoint too long".into()))?;
    Ok(EnrolGrant {
        version: enrol::VERSION,
        hub_nonce: verified.request.hub_nonce,
        node_id: verified.identity.node_id.clone(),
        node_signing_key: entry.signing_key,
        node_wireguard_key: entry.wireguard_key,
        boxname,
        mesh_ip: entry.mesh_ip,
        subnet: hub.subnet,
        hub_node_id: hub.identity.node_id.clone(),
        hub_mesh_ip: mesh::hub_address(&hub.subnet),
        hub_wireguard_key: hub.wireguard_key(),
        hub_endpoint: endpoint,
        wireguard_port: hub.wireguard_port,
        api_port: hub.api_port,
        directory_len: head.len,
        directory_tip: head.tip,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::RwLock;

    use gondwana_core::enrol::EnrolRequest;
    use gondwana_core::identity_log::build;
    use gondwana_core::keys::{SigningSecret, WireguardSecret};
    use gondwana_core::token::TokenSecret;

    use super::*;
    use crate::store::registry::{NewToken, create_token};
    use crate::store::{OpenMode, audit_records};

    const NOW: u64 = 1_000;

    fn hub() -> HubContext {
        let signing = SigningSecret::from_seed([1; 32]);
        let wireguard = WireguardSecret::from_bytes([2; 32]);
        let (_, identity) = build::genesis(
            &signing,
            wireguard.public_key(),
            Boxname::parse("hub").unwrap(),
        )
        .unwrap();
        HubContext {
            signing,
            identity,
            wireguard: RwLock::new(wireguard),
            subnet: "10.10.0.0/24".parse().unwrap(),
            endpoint: "hub.test:51822".into(),
            wireguard_port: 51822,
            api_port: 8798,
        }
    }

    /// A request from node `seed` signed with `token`; the route has
    /// verified it already.
    fn request(seed: u8, token: &TokenSecret) -> VerifiedRequest {
        let signing = SigningSecret::from_seed([seed; 32]);
        let wireguard = WireguardSecret::from_bytes([seed ^ 0x55; 32]);
        let boxname = Boxname::parse(&format!("box-{seed}")).unwrap();
        let (genesis, identity) =
            build::genesis(&signing, wireguard.public_key(), boxname.clone()).unwrap();
        VerifiedRequest {
            request: EnrolRequest {
                version: enrol::VERSION,
                hub_nonce: [seed; 32],
                wireguard_key: identity.wireguard_key,
                boxname,
                token_key: token.public_key(),
            },
            identity,
            identity_log: vec![genesis],
        }
    }

    #[test]
    fn the_decision_is_applied_in_one_transaction_and_a_refusal_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), OpenMode::CreateIfMissing).unwrap();
        let hub = hub();
        let spec = NewToken {
            max_uses: 1,
            ttl_secs: None,
            boxname: None,
            tags: Vec::new(),
            replace: false,
        };
        let (token, _) = create_token(&store, [3; 32], spec, NOW).unwrap();

        enrol(&store, &hub, &request(10, &token), NOW).unwrap();
        let node = &store.nodes().unwrap()[0];
        assert_eq!(node.mesh_ip, Ipv4Addr::new(10, 10, 0, 2));
        assert_eq!(store.tokens().unwrap()[0].uses, 1);
        assert_eq!(store.mirror_len(&node.node_id).unwrap(), 1);

        // The same node again: same address, no second use of the token.
        enrol(&store, &hub, &request(10, &token), NOW).unwrap();
        assert_eq!(store.nodes().unwrap()[0].mesh_ip, node.mesh_ip);
        assert_eq!(store.tokens().unwrap()[0].uses, 1);

        let audit = audit_records(&store).unwrap().1;
        let directory = store.directory_head().unwrap();
        assert_eq!(
            enrol(&store, &hub, &request(11, &token), NOW),
            Err(Refusal::TokenExhausted)
        );
        assert_eq!(store.nodes().unwrap().len(), 1);
        assert_eq!(audit_records(&store).unwrap().1, audit);
        assert_eq!(store.directory_head().unwrap(), directory);
    }
}

//! The hub's registry: tokens, enrolled nodes, the address table and the
//! directory, all changed together. One enrolment is one write transaction:
//! token use, address, node record, mirrored identity log, directory entry
//! and audit record commit together or not at all.

use std::net::Ipv4Addr;

use gondwana_core::directory::Record;
use gondwana_core::enrol::{self, EnrolGrant, VerifiedRequest};
use gondwana_core::hash::{Hash32, to_hex};
use gondwana_core::identity_log::IdentityState;
use gondwana_core::keys::{PublicKey, SigningSecret, WireguardSecret, wg_key_to_base64};
use gondwana_core::mesh::{self, Ipv4Net};
use gondwana_core::token::{self, TokenSecret};
use gondwana_core::wg_proof::{self, WireguardProof};
use gondwana_core::{Boxname, NodeId};
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::schema::{ADDRESSES, BOXNAMES, IDENTITY_MIRROR, NODES, TOKENS};
use super::{StateStore, StoreError, append_audit, directory};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    /// BLAKE2b-256 of the token's public key: never the secret.
    pub verifier: Hash32,
    pub max_uses: u32,
    pub uses: u32,
    pub created_unix: u64,
    pub expires_unix: Option<u64>,
    /// The boxname every node enrolling with this token gets.
    pub boxname: Option<String>,
    pub tags: Vec<String>,
    pub revoked: bool,
    /// A new key under an existing boxname replaces (and revokes) the old
    /// node. Needed to re-enrol a re-flashed box under its old name.
    pub replace: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub node_id: String,
    pub boxname: String,
    pub signing_key: [u8; 32],
    pub wireguard_key: [u8; 32],
    pub mesh_ip: Ipv4Addr,
    pub token_id: String,
    pub tags: Vec<String>,
    pub enrolled_unix: u64,
    pub revoked: bool,
    pub identity_len: u64,
    pub identity_tip: Hash32,
}

/// Everything the hub needs to answer an enrolment.
pub struct HubContext {
    pub signing: SigningSecret,
    pub identity: IdentityState,
    /// Current: a WireGuard rotation on the hub changes it while running.
    /// The secret checks nodes' proofs of possession ([`wg_proof`]).
    pub wireguard: std::sync::RwLock<WireguardSecret>,
    pub subnet: Ipv4Net,
    pub endpoint: String,
    pub wireguard_port: u16,
    pub api_port: u16,
}

/// Why an enrolment was refused: a stable code (metrics label, JSON
/// `error`) and a human detail. A refusal commits nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown or already used nonce (fetch a fresh one)")]
    UnknownNonce,
    #[error("unknown token")]
    UnknownToken,
    #[error("token expired")]
    TokenExpired,
    #[error("token revoked")]
    TokenRevoked,
    #[error("token has no uses left")]
    TokenExhausted,
    #[error("node {0} is revoked")]
    NodeRevoked(String),
    #[error("boxname {0} belongs to another node and the token does not allow replacing it")]
    BoxnameTaken(String),
    #[error("{0}")]
    SubnetExhausted(String),
    #[error("{0}")]
    StaleIdentity(String),
    #[error("{0}")]
    WireguardKeyTaken(String),
    #[error("{0}")]
    BadWireguardProof(String),
    #[error("node {0} is not enrolled here")]
    UnknownNode(String),
    #[error("store: {0}")]
    Store(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownNonce => "unknown_nonce",
            Refusal::UnknownToken => "unknown_token",
            Refusal::TokenExpired => "token_expired",
            Refusal::TokenRevoked => "token_revoked",
            Refusal::TokenExhausted => "token_exhausted",
            Refusal::NodeRevoked(_) => "node_revoked",
            Refusal::BoxnameTaken(_) => "boxname_taken",
            Refusal::SubnetExhausted(_) => "subnet_exhausted",
            Refusal::StaleIdentity(_) => "stale_identity",
            Refusal::WireguardKeyTaken(_) => "wireguard_key_taken",
            Refusal::BadWireguardProof(_) => "bad_wireguard_proof",
            Refusal::UnknownNode(_) => "unknown_node",
            Refusal::Store(_) => "internal",
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e.to_string())
    }
}

pub struct NewToken {
    pub max_uses: u32,
    pub ttl_secs: Option<u64>,
    pub boxname: Option<Boxname>,
    pub tags: Vec<String>,
    pub replace: bool,
}

fn get<T: for<'de> Deserialize<'de>>(
    store: &StateStore,
    bytes: &[u8],
    what: &str,
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        path: store.path().to_path_buf(),
        detail: format!("{what}: {e}"),
    })
}

fn put<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Creates a token; the secret is returned once and stored nowhere.
pub fn create_token(
    store: &StateStore,
    seed: [u8; 32],
    spec: NewToken,
    now: u64,
) -> Result<(TokenSecret, TokenRecord), StoreError> {
    let secret = TokenSecret::from_seed(seed);
    let verifier = token::verifier(&secret.public_key());
    let record = TokenRecord {
        id: token::token_id(&verifier),
        verifier,
        max_uses: spec.max_uses,
        uses: 0,
        created_unix: now,
        expires_unix: spec.ttl_secs.map(|t| now.saturating_add(t)),
        boxname: spec.boxname.map(|b| b.to_string()),
        tags: spec.tags,
        revoked: false,
        replace: spec.replace,
    };
    let txn = store.write()?;
    {
        let mut tokens = txn.open_table(TOKENS).map_err(|e| store.io_error(e))?;
        tokens
            .insert(record.id.as_str(), put(&record).as_slice())
            .map_err(|e| store.io_error(e))?;
    }
    let detail = format!(
        "token {} uses {} expires {:?}",
        record.id, record.max_uses, record.expires_unix
    );
    append_audit(store, &txn, "token.create", &detail)?;
    store.commit(txn)?;
    Ok((secret, record))
}

impl StateStore {
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.decode_all(TOKENS, "token")
    }

    pub fn nodes(&self) -> Result<Vec<NodeEntry>, StoreError> {
        self.decode_all(NODES, "node")
    }

    /// Every value of a `&str`-keyed table of postcard records, in key order.
    fn decode_all<T: for<'de> Deserialize<'de>>(
        &self,
        table: redb::TableDefinition<&str, &[u8]>,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(table).map_err(|e| self.io_error(e))?;
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.io_error(e))? {
            let (_, v) = item.map_err(|e| self.io_error(e))?;
            out.push(get(self, v.value(), what)?);
        }
        Ok(out)
    }

    /// (live, all) enrolled nodes, without reading the records: the address
    /// table holds exactly the live ones.
    pub fn node_counts(&self) -> Result<(u64, u64), StoreError> {
        let txn = self.read()?;
        let nodes = txn.open_table(NODES).map_err(|e| self.io_error(e))?;
        let addresses = txn.open_table(ADDRESSES).map_err(|e| self.io_error(e))?;
        Ok((
            addresses.len().map_err(|e| self.io_error(e))?,
            nodes.len().map_err(|e| self.io_error(e))?,
        ))
    }

    /// Mirrored identity-log length of a node, as the hub holds it.
    pub fn mirror_len(&self, node_id: &str) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let table = txn
            .open_table(IDENTITY_MIRROR)
            .map_err(|e| self.io_error(e))?;
        let n = table
            .range((node_id, 0)..=(node_id, u64::MAX))
            .map_err(|e| self.io_error(e))?
            .count();
        Ok(n as u64)
    }
}

pub fn revoke_token(store: &StateStore, id: &str) -> Result<bool, StoreError> {
    let txn = store.write()?;
    let found = {
        let mut tokens = txn.open_table(TOKENS).map_err(|e| store.io_error(e))?;
        let current = match tokens.get(id).map_err(|e| store.io_error(e))? {
            Some(v) => Some(get::<TokenRecord>(store, v.value(), "token")?),
            None => None,
        };
        match current {
            Some(mut record) => {
                record.revoked = true;
                tokens
                    .insert(id, put(&record).as_slice())
                    .map_err(|e| store.io_error(e))?;
                true
            }
            None => false,
        }
    };
    if found {
        append_audit(store, &txn, "token.revoke", id)?;
        store.commit(txn)?;
    }
    Ok(found)
}

/// Revokes a node by id or boxname: a signed directory record, its address
/// and boxname freed. Returns the revoked entry.
pub fn revoke_node(
    store: &StateStore,
    hub: &SigningSecret,
    who: &str,
    reason: &str,
) -> Result<Option<NodeEntry>, StoreError> {
    let txn = store.write()?;
    let Some(mut entry) = find_node(store, &txn, who)? else {
        return Ok(None);
    };
    if entry.revoked {
        return Ok(Some(entry));
    }
    revoke_in(store, &txn, hub, &mut entry, reason)?;
    store.commit(txn)?;
    Ok(Some(entry))
}

fn find_node(
    store: &StateStore,
    txn: &WriteTransaction,
    who: &str,
) -> Result<Option<NodeEntry>, StoreError> {
    let id = if who.starts_with(gondwana_core::node_id::PREFIX) {
        who.to_string()
    } else {
        let names = txn.open_table(BOXNAMES).map_err(|e| store.io_error(e))?;
        match names.get(who).map_err(|e| store.io_error(e))? {
            Some(v) => v.value().to_string(),
            None => return Ok(None),
        }
    };
    let nodes = txn.open_table(NODES).map_err(|e| store.io_error(e))?;
    let value = nodes.get(id.as_str()).map_err(|e| store.io_error(e))?;
    value.map(|v| get(store, v.value(), "node")).transpose()
}

fn revoke_in(
    store: &StateStore,
    txn: &WriteTransaction,
    hub: &SigningSecret,
    entry: &mut NodeEntry,
    reason: &str,
) -> Result<(), StoreError> {
    entry.revoked = true;
    {
        let mut nodes = txn.open_table(NODES).map_err(|e| store.io_error(e))?;
        nodes
            .insert(entry.node_id.as_str(), put(&*entry).as_slice())
            .map_err(|e| store.io_error(e))?;
        let mut addresses = txn.open_table(ADDRESSES).map_err(|e| store.io_error(e))?;
        addresses
            .remove(u32::from(entry.mesh_ip))
            .map_err(|e| store.io_error(e))?;
        let mut names = txn.open_table(BOXNAMES).map_err(|e| store.io_error(e))?;
        let holder = names
            .get(entry.boxname.as_str())
            .map_err(|e| store.io_error(e))?
            .map(|v| v.value().to_string());
        if holder.as_deref() == Some(entry.node_id.as_str()) {
            names
                .remove(entry.boxname.as_str())
                .map_err(|e| store.io_error(e))?;
        }
    }
    let node_id = NodeId::parse(&entry.node_id).map_err(|e| StoreError::Corrupt {
        path: store.path().to_path_buf(),
        detail: format!("node id {}: {e}", entry.node_id),
    })?;
    let mut text = heapless::String::new();
    for c in reason.chars() {
        if text.push(c).is_err() {
            break;
        }
    }
    directory::append_record(
        store,
        txn,
        hub,
        Record::Revoke {
            node_id,
            reason: text,
        },
    )?;
    append_audit(
        store,
        txn,
        "node.revoke",
        &format!(
            "{} ({}) {}: {reason}",
            entry.node_id, entry.boxname, entry.mesh_ip
        ),
    )
}

/// Answers a verified enrolment request, or refuses it with nothing changed.
pub fn enrol(
    store: &StateStore,
    hub: &HubContext,
    verified: &VerifiedRequest,
    now: u64,
) -> Result<Vec<u8>, Refusal> {
    let txn = store.write()?;
    let identity = &verified.identity;
    let node_id = identity.node_id.to_string();
    let token_id = token::token_id(&token::verifier(&verified.request.token_key));

    let mut token = {
        let tokens = txn.open_table(TOKENS).map_err(|e| store.io_error(e))?;
        let value = tokens
            .get(token_id.as_str())
            .map_err(|e| store.io_error(e))?
            .ok_or(Refusal::UnknownToken)?;
        get::<TokenRecord>(store, value.value(), "token")?
    };

    let existing = find_node(store, &txn, &node_id)?;
    let entry = match existing {
        Some(e) if e.revoked => return Err(Refusal::NodeRevoked(node_id)),
        // The same node retrying (e.g. the answer was lost) or re-enrolling:
        // its existing address, no second use of any token. Key rotations
        // since are taken from its (verified) identity log.
        Some(mut e) => {
            // Only a log that extends the mirror counts: an old (shorter) or
            // diverging log must not roll the node's keys back.
            check_extends_mirror(store, &txn, &node_id, &verified.identity_log)?;
            if e.wireguard_key != identity.wireguard_key {
                check_wireguard_key_free(store, &txn, hub, &node_id, &identity.wireguard_key)?;
            }
            apply_key_rotation(store, &txn, hub, &mut e, identity, &verified.identity_log)?;
            e
        }
        _ => {
            check_token(&token, now)?;
            new_node(store, &txn, hub, verified, &mut token, &token_id, now)?
        }
    };

    let grant = grant_for(hub, verified, &entry, directory::head_in(store, &txn)?)?;
    let sealed =
        enrol::seal_grant(&grant, &hub.signing).map_err(|e| Refusal::Store(e.to_string()))?;
    store.commit(txn)?;
    Ok(sealed)
}

fn check_token(token: &TokenRecord, now: u64) -> Result<(), Refusal> {
    if token.revoked {
        return Err(Refusal::TokenRevoked);
    }
    if token.expires_unix.is_some_and(|t| now >= t) {
        return Err(Refusal::TokenExpired);
    }
    if token.uses >= token.max_uses {
        return Err(Refusal::TokenExhausted);
    }
    Ok(())
}

fn new_node(
    store: &StateStore,
    txn: &WriteTransaction,
    hub: &HubContext,
    verified: &VerifiedRequest,
    token: &mut TokenRecord,
    token_id: &str,
    now: u64,
) -> Result<NodeEntry, Refusal> {
    let identity = &verified.identity;
    let node_id = identity.node_id.to_string();
    let boxname = token
        .boxname
        .clone()
        .unwrap_or_else(|| verified.request.boxname.to_string());

    // A live holder of the boxname: replaced only if the token says so.
    let holder = {
        let names = txn.open_table(BOXNAMES).map_err(|e| store.io_error(e))?;
        let value = names.get(boxname.as_str()).map_err(|e| store.io_error(e))?;
        value.map(|v| v.value().to_string())
    };
    // The hub's own name is never handed out, not even to a --replace token.
    if boxname == hub.identity.boxname.as_str() {
        return Err(Refusal::BoxnameTaken(boxname));
    }
    let mut reuse_ip = None;
    if let Some(holder) = holder.filter(|h| *h != node_id) {
        if !token.replace {
            return Err(Refusal::BoxnameTaken(boxname));
        }
        if let Some(mut old) = find_node(store, txn, &holder)? {
            reuse_ip = Some(old.mesh_ip);
            revoke_in(
                store,
                txn,
                &hub.signing,
                &mut old,
                &format!("replaced by {node_id}"),
            )?;
        }
    }

    // After the replacement above: a key held by the node this token
    // replaces is free again; one held by any other live node is not.
    check_wireguard_key_free(store, txn, hub, &node_id, &identity.wireguard_key)?;

    let mesh_ip = match reuse_ip {
        Some(ip) => ip,
        None => lowest_free_address(store, txn, &hub.subnet)?,
    };

    token.uses += 1;
    let entry = NodeEntry {
        node_id: node_id.clone(),
        boxname: boxname.clone(),
        signing_key: identity.signing_key,
        wireguard_key: identity.wireguard_key,
        mesh_ip,
        token_id: token_id.to_string(),
        tags: token.tags.clone(),
        enrolled_unix: now,
        revoked: false,
        identity_len: identity.len,
        identity_tip: identity.tip,
    };
    {
        let mut tokens = txn.open_table(TOKENS).map_err(|e| store.io_error(e))?;
        tokens
            .insert(token_id, put(&*token).as_slice())
            .map_err(|e| store.io_error(e))?;
        let mut addresses = txn.open_table(ADDRESSES).map_err(|e| store.io_error(e))?;
        addresses
            .insert(u32::from(mesh_ip), node_id.as_str())
            .map_err(|e| store.io_error(e))?;
        let mut names = txn.open_table(BOXNAMES).map_err(|e| store.io_error(e))?;
        names
            .insert(boxname.as_str(), node_id.as_str())
            .map_err(|e| store.io_error(e))?;
    }
    write_node(store, txn, &entry)?;
    mirror_log(store, txn, &node_id, &verified.identity_log)?;
    publish_node(store, txn, hub, &entry, identity)?;
    append_audit(
        store,
        txn,
        "enrol.grant",
        &format!("{node_id} ({boxname}) {mesh_ip} token {token_id}"),
    )?;
    Ok(entry)
}

/// One live node per WireGuard key: the hub's peer for a key carries one
/// node's address, so a key the hub or another live (not revoked) node
/// holds is refused. Reads every node record: enrolments are rare and the
/// check must see the same transaction's view as the write it guards.
fn check_wireguard_key_free(
    store: &StateStore,
    txn: &WriteTransaction,
    hub: &HubContext,
    node_id: &str,
    key: &PublicKey,
) -> Result<(), Refusal> {
    let taken = |by: &str| {
        Refusal::WireguardKeyTaken(format!(
            "WireGuard key {} is held by {by}; a node must have its own key",
            wg_key_to_base64(key)
        ))
    };
    if *key == hub.wireguard_key() {
        return Err(taken("the hub"));
    }
    let nodes = txn.open_table(NODES).map_err(|e| store.io_error(e))?;
    for item in nodes.iter().map_err(|e| store.io_error(e))? {
        let (id, value) = item.map_err(|e| store.io_error(e))?;
        if id.value() == node_id {
            continue;
        }
        let other: NodeEntry = get(store, value.value(), "node")?;
        if !other.revoked && other.wireguard_key == *key {
            return Err(taken("another live node"));
        }
    }
    Ok(())
}

/// The lowest free node address. When the taken ones are a gap-free run
/// from the first node address (no revocations yet), the answer is the one
/// after the last, found from the table's length and last key alone; only a
/// table with gaps is scanned.
fn lowest_free_address(
    store: &StateStore,
    txn: &WriteTransaction,
    subnet: &Ipv4Net,
) -> Result<Ipv4Addr, Refusal> {
    let addresses = txn.open_table(ADDRESSES).map_err(|e| store.io_error(e))?;
    let first = u32::from(mesh::hub_address(subnet)) + 1;
    let count = addresses.len().map_err(|e| store.io_error(e))?;
    let last = addresses
        .last()
        .map_err(|e| store.io_error(e))?
        .map(|(k, _)| k.value());
    let exhausted = |e: mesh::PlanError| Refusal::SubnetExhausted(e.to_string());
    match last {
        None => mesh::lowest_free(subnet, |_| false).map_err(exhausted),
        Some(last) if u64::from(last) + 1 == u64::from(first) + count => {
            mesh::lowest_free(subnet, |a| u32::from(a) <= last).map_err(exhausted)
        }
        Some(_) => {
            let mut used = Vec::new();
            for item in addresses.iter().map_err(|e| store.io_error(e))? {
                let (k, _) = item.map_err(|e| store.io_error(e))?;
                used.push(k.value());
            }
            mesh::lowest_free(subnet, |a| used.binary_search(&u32::from(a)).is_ok())
                .map_err(exhausted)
        }
    }
}

fn write_node(
    store: &StateStore,
    txn: &WriteTransaction,
    entry: &NodeEntry,
) -> Result<(), StoreError> {
    let mut nodes = txn.open_table(NODES).map_err(|e| store.io_error(e))?;
    nodes
        .insert(entry.node_id.as_str(), put(entry).as_slice())
        .map_err(|e| store.io_error(e))?;
    Ok(())
}

fn publish_node(
    store: &StateStore,
    txn: &WriteTransaction,
    hub: &HubContext,
    entry: &NodeEntry,
    identity: &IdentityState,
) -> Result<(), StoreError> {
    let boxname = Boxname::parse(&entry.boxname).map_err(|e| StoreError::Corrupt {
        path: store.path().to_path_buf(),
        detail: format!("boxname {}: {e}", entry.boxname),
    })?;
    let record = Record::Node {
        node_id: identity.node_id.clone(),
        boxname,
        signing_key: entry.signing_key,
        wireguard_key: entry.wireguard_key,
        mesh_ip: entry.mesh_ip,
        endpoint_hint: None,
    };
    directory::append_record(store, txn, &hub.signing, record)?;
    Ok(())
}

/// Refuses a log that is shorter than, or diverges from, the mirror.
fn check_extends_mirror(
    store: &StateStore,
    txn: &WriteTransaction,
    node_id: &str,
    log: &[Vec<u8>],
) -> Result<(), Refusal> {
    let mirror = txn
        .open_table(IDENTITY_MIRROR)
        .map_err(|e| store.io_error(e))?;
    for item in mirror
        .range((node_id, 0)..=(node_id, u64::MAX))
        .map_err(|e| store.io_error(e))?
    {
        let (k, v) = item.map_err(|e| store.io_error(e))?;
        let seq = k.value().1;
        let presented = usize::try_from(seq).ok().and_then(|i| log.get(i));
        if presented.map(Vec::as_slice) != Some(v.value()) {
            return Err(Refusal::StaleIdentity(format!(
                "the presented identity log is older than, or diverges from, the hub's mirror at entry {seq}"
            )));
        }
    }
    Ok(())
}

/// Keeps the longest verified identity log the hub has seen for a node.
pub fn mirror_log(
    store: &StateStore,
    txn: &WriteTransaction,
    node_id: &str,
    log: &[Vec<u8>],
) -> Result<(), StoreError> {
    let mut mirror = txn
        .open_table(IDENTITY_MIRROR)
        .map_err(|e| store.io_error(e))?;
    let have = mirror
        .range((node_id, 0)..=(node_id, u64::MAX))
        .map_err(|e| store.io_error(e))?
        .count();
    for (seq, raw) in log.iter().enumerate().skip(have) {
        mirror
            .insert((node_id, seq as u64), raw.as_slice())
            .map_err(|e| store.io_error(e))?;
    }
    Ok(())
}

fn grant_for(
    hub: &HubContext,
    verified: &VerifiedRequest,
    entry: &NodeEntry,
    head: gondwana_core::directory::Head,
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

impl HubContext {
    /// The hub's WireGuard secret as it is now (a rotation replaces it).
    pub fn wireguard_secret(&self) -> std::sync::RwLockReadGuard<'_, WireguardSecret> {
        match self.wireguard.read() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn wireguard_key(&self) -> [u8; 32] {
        self.wireguard_secret().public_key()
    }
}

/// Hub: after rotating its own WireGuard key, publish it (directory record;
/// grants and proofs read it from the context).
pub fn publish_hub_key(
    store: &StateStore,
    hub: &HubContext,
    new_secret: WireguardSecret,
) -> Result<(), StoreError> {
    match hub.wireguard.write() {
        Ok(mut k) => *k = new_secret,
        Err(poisoned) => *poisoned.into_inner() = new_secret,
    }
    let txn = store.write()?;
    directory::append_record(store, &txn, &hub.signing, hub_record(hub))?;
    append_audit(store, &txn, "hub.keys", "hub WireGuard key published")?;
    store.commit(txn)
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
pub fn ensure_hub_record(store: &StateStore, hub: &HubContext) -> Result<(), StoreError> {
    let txn = store.write()?;
    if directory::head_in(store, &txn)?.len > 0 {
        let published = hub_wg_key_in_directory(store, &txn, hub)?;
        if published != Some(hub.wireguard_key()) {
            directory::append_record(store, &txn, &hub.signing, hub_record(hub))?;
            append_audit(store, &txn, "hub.keys", "hub WireGuard key published")?;
            store.commit(txn)?;
        }
        return Ok(());
    }
    let record = Record::Node {
        node_id: hub.identity.node_id.clone(),
        boxname: hub.identity.boxname.clone(),
        signing_key: hub.identity.signing_key,
        wireguard_key: hub.wireguard_key(),
        mesh_ip: mesh::hub_address(&hub.subnet),
        endpoint_hint: heapless::String::try_from(hub.endpoint.as_str()).ok(),
    };
    directory::append_record(store, &txn, &hub.signing, record)?;
    append_audit(
        store,
        &txn,
        "hub.start",
        &format!(
            "hub {} subnet {} key {}",
            hub.identity.node_id,
            hub.subnet,
            to_hex(&hub.identity.signing_key)
        ),
    )?;
    store.commit(txn)
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
) -> Result<(u64, Hash32), Refusal> {
    let node_id = state.node_id.to_string();
    let txn = store.write()?;
    let Some(mut entry) = find_node(store, &txn, &node_id)? else {
        return Err(Refusal::UnknownNode(node_id));
    };
    if entry.revoked {
        return Err(Refusal::NodeRevoked(node_id));
    }
    check_extends_mirror(store, &txn, &node_id, log)?;
    if entry.wireguard_key != state.wireguard_key {
        check_rotation_proof(hub, state, wireguard_proof)?;
        check_wireguard_key_free(store, &txn, hub, &node_id, &state.wireguard_key)?;
    }
    apply_key_rotation(store, &txn, hub, &mut entry, state, log)?;
    store.commit(txn)?;
    Ok((state.len, state.tip))
}

/// Applies a live node's verified identity log, which extends the mirror
/// (`check_extends_mirror`) and whose new WireGuard key, if any, was checked
/// by the caller, inside the caller's write transaction. The one path for a
/// mirror push and a re-enrolment: the mirror takes the new entries, the
/// node record its length and tip, and changed keys also go to the record,
/// a directory `Node` record and a `node.keys` audit record.
fn apply_key_rotation(
    store: &StateStore,
    txn: &WriteTransaction,
    hub: &HubContext,
    entry: &mut NodeEntry,
    state: &IdentityState,
    log: &[Vec<u8>],
) -> Result<(), StoreError> {
    mirror_log(store, txn, &entry.node_id, log)?;
    let rotated =
        entry.signing_key != state.signing_key || entry.wireguard_key != state.wireguard_key;
    if !rotated && entry.identity_len == state.len && entry.identity_tip == state.tip {
        return Ok(());
    }
    entry.signing_key = state.signing_key;
    entry.wireguard_key = state.wireguard_key;
    entry.identity_len = state.len;
    entry.identity_tip = state.tip;
    write_node(store, txn, entry)?;
    if rotated {
        publish_node(store, txn, hub, entry, state)?;
        append_audit(
            store,
            txn,
            "node.keys",
            &format!(
                "{} rotated keys (log entry {})",
                entry.node_id,
                state.len.saturating_sub(1)
            ),
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

/// The header of a mirror push that carries the proof of a new WireGuard key.
pub const WIREGUARD_PROOF_HEADER: &str = "gondwana-wireguard-proof";

/// The hub's WireGuard key as its latest own directory record states it.
fn hub_wg_key_in_directory(
    store: &StateStore,
    txn: &WriteTransaction,
    hub: &HubContext,
) -> Result<Option<[u8; 32]>, StoreError> {
    let table = txn
        .open_table(super::schema::DIRECTORY)
        .map_err(|e| store.io_error(e))?;
    let key = hub.signing.public_key();
    let mut found = None;
    for item in table.iter().map_err(|e| store.io_error(e))? {
        let (_, v) = item.map_err(|e| store.io_error(e))?;
        if let Ok((entry, _)) =
            gondwana_core::envelope::Envelope::open::<gondwana_core::directory::Entry>(
                gondwana_core::envelope::tag::DIRECTORY_ENTRY,
                v.value(),
                Some(&key),
            )
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

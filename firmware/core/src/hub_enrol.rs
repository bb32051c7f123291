//! The hub's enrolment decision, as a pure function over a snapshot of its
//! registry.
//!
//! The store reads a [`Snapshot`] and applies the [`Decision`] in the same
//! write transaction, so nothing changes between the look and the write;
//! this module only decides: token validity, same node ⇒ same address,
//! boxname ownership and `replace`, the reserved (hub's) name, one live node
//! per WireGuard key and the lowest free address. A refusal changes nothing.
//!
//! Call order: [`wanted_boxname`] (which boxname holder to read, once the
//! token is known), then [`decide`] with the snapshot.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::enrol::VerifiedRequest;
use crate::hash::Hash32;
use crate::keys::{PublicKey, wg_key_to_base64};
use crate::mesh::{self, Ipv4Net};

/// A token as the hub keeps it (postcard in the `tokens` table).
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

/// An enrolled node as the hub keeps it (postcard in the `nodes` table).
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

/// Why an enrolment (or a mirror push) was refused: a stable code (metrics
/// label, JSON `error`) and a human detail. A refusal commits nothing.
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
    /// The hub failed, not the request (answered as a 5xx).
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

/// The addresses the live nodes hold, in whichever form the store could
/// read most cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsedAddresses {
    /// `n` addresses, a gap-free run from the first node address (no
    /// revocation yet): known from the table's length and last key alone.
    Run(u64),
    /// Every taken address, ascending.
    Listed(Vec<u32>),
}

impl UsedAddresses {
    /// `Some(Run)` when a table of `len` addresses whose highest is `last`
    /// is a gap-free run from the first node address; `None` when the store
    /// must list them.
    pub fn run_from(subnet: &Ipv4Net, len: u64, last: Option<u32>) -> Option<UsedAddresses> {
        let first = u64::from(u32::from(mesh::hub_address(subnet))) + 1;
        match last {
            None => Some(UsedAddresses::Run(0)),
            Some(last) if u64::from(last) + 1 == first + len => Some(UsedAddresses::Run(len)),
            Some(_) => None,
        }
    }

    /// The lowest node address of `subnet` not taken.
    pub fn lowest_free(&self, subnet: &Ipv4Net) -> Result<Ipv4Addr, mesh::PlanError> {
        match self {
            UsedAddresses::Run(n) => {
                let first = u64::from(u32::from(mesh::hub_address(subnet))) + 1;
                mesh::lowest_free(subnet, |a| u64::from(u32::from(a)) < first + n)
            }
            UsedAddresses::Listed(used) => {
                mesh::lowest_free(subnet, |a| used.binary_search(&u32::from(a)).is_ok())
            }
        }
    }
}

/// A live node that holds a boxname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxnameHolder {
    pub node_id: String,
    /// Its record; `None` only if the boxname table names a node the node
    /// table lacks (the name is then simply taken over).
    pub entry: Option<NodeEntry>,
}

/// What the decision reads from the hub's registry, all from one
/// transaction.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub now: u64,
    pub subnet: Ipv4Net,
    /// The hub's own boxname: never handed out.
    pub hub_boxname: String,
    pub hub_wireguard_key: PublicKey,
    /// The token the request is signed with; `None` if the hub never issued it.
    pub token: Option<TokenRecord>,
    /// This node's record, if it enrolled before.
    pub node: Option<NodeEntry>,
    /// The hub's mirror of this node's identity log, entry by entry (empty
    /// for a new node).
    pub mirror: Vec<Vec<u8>>,
    /// The live holder of [`wanted_boxname`], if any (only read for a new
    /// node).
    pub boxname_holder: Option<BoxnameHolder>,
    /// Ids of the live nodes, other than this one, that hold the requested
    /// WireGuard key. Only read when the key is checked (a new node, or a
    /// known one whose key changed); empty otherwise.
    pub wireguard_key_holders: Vec<String>,
    pub used_addresses: UsedAddresses,
}

/// What the hub does with an enrolment that is not refused (the records
/// are boxed: a decision is made once per enrolment, and they are large).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The node is enrolled and live (a retry whose answer was lost, or a
    /// re-enrolment): it keeps its record and address and spends no token
    /// use; its identity log (which extends the mirror, with a WireGuard
    /// key no one else holds) is applied as a key rotation.
    Reenrol { node: Box<NodeEntry> },
    /// A new node.
    Admit(Box<Admission>),
}

/// A new node's plan: everything the store writes for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The record to write, with its boxname and address.
    pub entry: NodeEntry,
    /// The token with this use counted.
    pub token: TokenRecord,
    /// The node this one replaces (revoked first; its address is reused).
    pub replaces: Option<BoxnameHolder>,
}

impl Admission {
    /// The reason recorded when the replaced node is revoked.
    pub fn replace_reason(&self) -> String {
        format!("replaced by {}", self.entry.node_id)
    }
}

/// The boxname a node enrolling with `token` gets: the token's, else the
/// one it asked for.
pub fn wanted_boxname(token: &TokenRecord, requested: &str) -> String {
    token
        .boxname
        .clone()
        .unwrap_or_else(|| requested.to_string())
}

/// Decides an enrolment. Checks run in a fixed order, and the first that
/// fails names the refusal: unknown token; a known node (revoked; a stale
/// log; a taken key); then, for a new node, the token's validity, the
/// boxname, the WireGuard key and the address.
pub fn decide(request: &VerifiedRequest, snapshot: &Snapshot) -> Result<Decision, Refusal> {
    let identity = &request.identity;
    let node_id = identity.node_id.as_str();
    let Some(token) = &snapshot.token else {
        return Err(Refusal::UnknownToken);
    };
    if let Some(node) = &snapshot.node {
        if node.revoked {
            return Err(Refusal::NodeRevoked(node_id.to_string()));
        }
        // Only a log that extends the mirror counts: an old (shorter) or
        // diverging log must not roll the node's keys back.
        check_extends_mirror(&snapshot.mirror, &request.identity_log)?;
        if node.wireguard_key != identity.wireguard_key {
            check_wireguard_key_free(
                &identity.wireguard_key,
                &snapshot.hub_wireguard_key,
                snapshot.wireguard_key_holders.iter(),
            )?;
        }
        return Ok(Decision::Reenrol {
            node: Box::new(node.clone()),
        });
    }

    check_token(token, snapshot.now)?;
    let boxname = wanted_boxname(token, request.request.boxname.as_str());
    // The hub's own name is never handed out, not even to a --replace token.
    if boxname == snapshot.hub_boxname {
        return Err(Refusal::BoxnameTaken(boxname));
    }
    let replaces = snapshot
        .boxname_holder
        .clone()
        .filter(|h| h.node_id != node_id);
    if replaces.is_some() && !token.replace {
        return Err(Refusal::BoxnameTaken(boxname));
    }
    // A key held by the node this token replaces is free once it is revoked;
    // one held by any other live node is not.
    let replaced_id = replaces.as_ref().map(|h| h.node_id.as_str());
    check_wireguard_key_free(
        &identity.wireguard_key,
        &snapshot.hub_wireguard_key,
        snapshot
            .wireguard_key_holders
            .iter()
            .filter(|id| Some(id.as_str()) != replaced_id),
    )?;
    let reused = replaces
        .as_ref()
        .and_then(|h| h.entry.as_ref())
        .map(|e| e.mesh_ip);
    let mesh_ip = match reused {
        Some(ip) => ip,
        None => snapshot
            .used_addresses
            .lowest_free(&snapshot.subnet)
            .map_err(|e| Refusal::SubnetExhausted(e.to_string()))?,
    };

    let mut token = token.clone();
    token.uses += 1;
    let entry = NodeEntry {
        node_id: node_id.to_string(),
        boxname,
        signing_key: identity.signing_key,
        wireguard_key: identity.wireguard_key,
        mesh_ip,
        token_id: token.id.clone(),
        tags: token.tags.clone(),
        enrolled_unix: snapshot.now,
        revoked: false,
        identity_len: identity.len,
        identity_tip: identity.tip,
    };
    Ok(Decision::Admit(Box::new(Admission {
        entry,
        token,
        replaces,
    })))
}

/// A token admits a new node while it is not revoked, not expired at
/// `now` and has a use left.
pub fn check_token(token: &TokenRecord, now: u64) -> Result<(), Refusal> {
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

/// Refuses a presented log that is shorter than, or diverges from, the
/// hub's mirror of it.
pub fn check_extends_mirror(mirror: &[Vec<u8>], presented: &[Vec<u8>]) -> Result<(), Refusal> {
    for (seq, held) in mirror.iter().enumerate() {
        if presented.get(seq) != Some(held) {
            return Err(Refusal::StaleIdentity(format!(
                "the presented identity log is older than, or diverges from, the hub's mirror at entry {seq}"
            )));
        }
    }
    Ok(())
}

/// One live node per WireGuard key: the hub's peer for a key carries one
/// node's address, so a key the hub holds, or any node in `live_holders`
/// (live nodes other than the one asking), is refused.
pub fn check_wireguard_key_free<'a>(
    key: &PublicKey,
    hub_key: &PublicKey,
    mut live_holders: impl Iterator<Item = &'a String>,
) -> Result<(), Refusal> {
    let taken = |by: &str| {
        Refusal::WireguardKeyTaken(format!(
            "WireGuard key {} is held by {by}; a node must have its own key",
            wg_key_to_base64(key)
        ))
    };
    if key == hub_key {
        return Err(taken("the hub"));
    }
    if live_holders.next().is_some() {
        return Err(taken("another live node"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

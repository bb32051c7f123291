//! The hub's registry: tokens, enrolled nodes, the address table, the
//! boxname table and the identity mirrors, changed together with the
//! directory and the audit chain.
//!
//! The decisions are `gondwana_core::hub_enrol`'s; each module here reads
//! what a decision needs and applies it in one write transaction, so an
//! enrolment (token use, address, node record, mirrored identity log,
//! directory entry and audit record) commits together or not at all.
//!
//! - [`tokens`]: creating and revoking tokens;
//! - [`nodes`]: node records, revocation, the node's directory record;
//! - [`enrol`]: answering an enrolment;
//! - [`mirror`]: identity mirrors and key rotations (re-enrolment and
//!   mirror push share [`mirror::apply_key_rotation`]);
//! - [`hub`]: the hub's own directory record;
//! - [`offers`]: providers' signed offers and withdrawals.

mod enrol;
mod hub;
mod mirror;
mod nodes;
mod offers;
mod tokens;

use gondwana_core::identity_log::IdentityState;
use gondwana_core::keys::{SigningSecret, WireguardSecret};
use gondwana_core::mesh::Ipv4Net;

pub use enrol::enrol;
pub use gondwana_core::hub_enrol::{NodeEntry, Refusal, TokenRecord};
pub use hub::{ensure_hub_record, publish_hub_key};
pub use mirror::{WIREGUARD_PROOF_HEADER, mirror_update};
pub use nodes::revoke_node;
pub use offers::append_publication;
pub use tokens::{NewToken, create_token, revoke_token};

use super::StoreError;

/// Everything the hub needs to answer an enrolment.
pub struct HubContext {
    pub signing: SigningSecret,
    pub identity: IdentityState,
    /// Current: a WireGuard rotation on the hub changes it while running.
    /// The secret checks nodes' proofs of possession
    /// (`gondwana_core::wg_proof`).
    pub wireguard: std::sync::RwLock<WireguardSecret>,
    pub subnet: Ipv4Net,
    pub endpoint: String,
    pub wireguard_port: u16,
    pub api_port: u16,
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

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e.to_string())
    }
}

//! The enrolment exchange (hub-and-spoke), as pure messages and checks.
//!
//! Call order, node side:
//! 1. fetch a fresh hub nonce (`GET /v1/enroll/nonce`);
//! 2. [`build_submission`] — request signed by the node key, plus the token
//!    proof, the proof of the WireGuard private key ([`crate::wg_proof`],
//!    under the hub's WireGuard key from the nonce answer) and the node's
//!    identity log;
//! 3. `POST /v1/enroll` the submission bytes;
//! 4. [`open_grant`] — verify the hub-signed grant against the pinned hub
//!    key and the request it answers. No clock is read anywhere.
//!
//! Hub side: [`verify_submission`] does every stateless check (signatures,
//! canonical encodings, keys matching the identity log, the WireGuard
//! proof under the hub's own WireGuard secret); the stateful ones
//! (nonce unused, token valid, address) happen in the hub's store.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::boxname::Boxname;
use crate::envelope::{
    DecodeError, Envelope, EnvelopeError, MAX_ENVELOPE_BYTES, decode_canonical, encode, tag,
};
use crate::hash::Hash32;
use crate::identity_log::{IdentityState, LogError, MAX_ENTRY_BYTES, verify_log};
use crate::keys::{PublicKey, SignatureBytes, SigningSecret, WireguardSecret};
use crate::node_id::NodeId;
use crate::token::{TokenSecret, check_proof};
use crate::wg_proof::{self, ProofError, WireguardProof};

pub const VERSION: u8 = 1;
pub const NONCE_LEN: usize = 32;
/// Identity-log entries a node may send with its request (key rotations
/// before enrolment are rare; the mirror takes the rest later).
pub const MAX_SUBMITTED_LOG: usize = 64;
pub const MAX_SUBMISSION_BYTES: usize =
    MAX_ENVELOPE_BYTES + 70 + 33 + MAX_SUBMITTED_LOG * (MAX_ENTRY_BYTES + 3);
pub const MAX_ENDPOINT_LEN: usize = 255;

pub type Nonce = [u8; NONCE_LEN];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolRequest {
    pub version: u8,
    pub hub_nonce: Nonce,
    /// The node's current keys, as its identity log states them.
    pub wireguard_key: PublicKey,
    /// The name the node asks for (a token may fix another).
    pub boxname: Boxname,
    /// The token's public key (its secret stays on the node).
    pub token_key: PublicKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolSubmission {
    /// An [`Envelope`] of an [`EnrolRequest`] under `tag::ENROL_REQUEST`.
    pub request: heapless::Vec<u8, MAX_ENVELOPE_BYTES>,
    /// Token key's signature over `tag::ENROL_TOKEN_PROOF || request body`.
    #[serde(with = "serde_bytes")]
    pub token_proof: SignatureBytes,
    /// Proof of the WireGuard private key ([`crate::wg_proof`]): the MAC
    /// under X25519(node WireGuard secret, hub WireGuard public) over
    /// `tag::WIREGUARD_PROOF || request body` (the body as signed, which
    /// holds the hub's nonce, so a proof is good for one request only).
    #[serde(with = "serde_bytes")]
    pub wireguard_proof: WireguardProof,
    /// The node's identity log, genesis first.
    pub identity_log: heapless::Vec<heapless::Vec<u8, MAX_ENTRY_BYTES>, MAX_SUBMITTED_LOG>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolGrant {
    pub version: u8,
    /// The nonce of the request this answers.
    pub hub_nonce: Nonce,
    pub node_id: NodeId,
    pub node_signing_key: PublicKey,
    pub node_wireguard_key: PublicKey,
    pub boxname: Boxname,
    pub mesh_ip: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub hub_node_id: NodeId,
    pub hub_mesh_ip: Ipv4Addr,
    pub hub_wireguard_key: PublicKey,
    /// `host:port` of the hub's WireGuard endpoint (a DNS name allowed).
    pub hub_endpoint: heapless::String<MAX_ENDPOINT_LEN>,
    pub wireguard_port: u16,
    pub api_port: u16,
    pub directory_len: u64,
    pub directory_tip: Hash32,
}

/// What `POST /v1/enroll` answers: the signed grant and the first page of
/// the directory, so a node knows its mesh before any tunnel exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolResponse {
    pub grant: heapless::Vec<u8, MAX_ENVELOPE_BYTES>,
    /// A `directory::Bundle` from sequence 0 (at most one page).
    pub directory: Vec<u8>,
}

pub const MAX_RESPONSE_BYTES: usize =
    MAX_ENVELOPE_BYTES + 8 + crate::directory::MAX_PAGE * (MAX_ENVELOPE_BYTES + 3) + 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrolError {
    #[error("malformed submission: {0}")]
    Malformed(DecodeError),
    #[error("identity log: {0}")]
    IdentityLog(LogError),
    #[error("request: {0}")]
    Request(EnvelopeError),
    #[error("unsupported protocol version {0}")]
    Version(u8),
    #[error("request's WireGuard key differs from the identity log's")]
    KeyMismatch,
    #[error("token proof does not verify")]
    BadTokenProof,
    /// The hub's answer is `403 bad_wireguard_proof`.
    #[error("proof of the WireGuard private key: {0}")]
    WireguardProof(ProofError),
    #[error("identity is retired")]
    Retired,
    #[error("grant: {0}")]
    Grant(EnvelopeError),
    #[error("grant answers another request (nonce, node or keys differ)")]
    GrantMismatch,
    #[error("grant's mesh address {0} is not a node address of {1}")]
    GrantAddress(Ipv4Addr, Ipv4Net),
    #[error("malformed response: {0}")]
    Response(DecodeError),
}

pub fn encode_response(grant: &[u8], directory: Vec<u8>) -> Result<Vec<u8>, EnrolError> {
    let grant = heapless::Vec::from_slice(grant)
        .map_err(|_| EnrolError::Grant(EnvelopeError::BodyTooLarge(grant.len())))?;
    Ok(encode(&EnrolResponse { grant, directory }))
}

pub fn decode_response(bytes: &[u8]) -> Result<EnrolResponse, EnrolError> {
    decode_canonical(bytes, MAX_RESPONSE_BYTES).map_err(EnrolError::Response)
}

/// A submission whose every signature and encoding holds.
#[derive(Debug, Clone)]
pub struct VerifiedRequest {
    pub request: EnrolRequest,
    pub identity: IdentityState,
    pub identity_log: Vec<Vec<u8>>,
}

/// Node side: the bytes to POST. `hub_wireguard_key` is the one the nonce
/// answer names (a substituted key only makes the proof fail at the hub).
pub fn build_submission(
    node_signing: &SigningSecret,
    node_wireguard: &WireguardSecret,
    hub_wireguard_key: &PublicKey,
    identity_log: &[Vec<u8>],
    request: &EnrolRequest,
    token: &TokenSecret,
) -> Result<Vec<u8>, EnrolError> {
    let sealed =
        Envelope::seal(tag::ENROL_REQUEST, request, node_signing).map_err(EnrolError::Request)?;
    let envelope: Envelope = decode_canonical(&sealed, MAX_ENVELOPE_BYTES)
        .map_err(|e| EnrolError::Request(EnvelopeError::Envelope(e)))?;
    let mut log = heapless::Vec::new();
    for raw in identity_log {
        let entry = heapless::Vec::from_slice(raw).map_err(|_| {
            EnrolError::Malformed(DecodeError::TooLarge {
                len: raw.len(),
                max: MAX_ENTRY_BYTES,
            })
        })?;
        log.push(entry).map_err(|_| {
            EnrolError::Malformed(DecodeError::TooLarge {
                len: identity_log.len(),
                max: MAX_SUBMITTED_LOG,
            })
        })?;
    }
    let submission = EnrolSubmission {
        request: heapless::Vec::from_slice(&sealed)
            .map_err(|_| EnrolError::Request(EnvelopeError::BodyTooLarge(sealed.len())))?,
        token_proof: token.prove(&envelope.body),
        wireguard_proof: wg_proof::prove(node_wireguard, hub_wireguard_key, &envelope.body)
            .map_err(EnrolError::WireguardProof)?,
        identity_log: log,
    };
    Ok(encode(&submission))
}

/// Hub side: every stateless check, in order (decode bounds, identity log,
/// request signature by the log's current key, body, token proof, proof of
/// the WireGuard key under the hub's WireGuard secret `hub_wireguard`).
pub fn verify_submission(
    bytes: &[u8],
    hub_wireguard: &WireguardSecret,
) -> Result<VerifiedRequest, EnrolError> {
    let submission: EnrolSubmission =
        decode_canonical(bytes, MAX_SUBMISSION_BYTES).map_err(EnrolError::Malformed)?;
    let identity = verify_log(&submission.identity_log).map_err(EnrolError::IdentityLog)?;
    if identity.retired {
        return Err(EnrolError::Retired);
    }
    let (request, envelope) = Envelope::open::<EnrolRequest>(
        tag::ENROL_REQUEST,
        &submission.request,
        Some(&identity.signing_key),
    )
    .map_err(EnrolError::Request)?;
    if request.version != VERSION {
        return Err(EnrolError::Version(request.version));
    }
    if request.wireguard_key != identity.wireguard_key {
        return Err(EnrolError::KeyMismatch);
    }
    if !check_proof(&request.token_key, &envelope.body, &submission.token_proof) {
        return Err(EnrolError::BadTokenProof);
    }
    wg_proof::verify(
        hub_wireguard,
        &request.wireguard_key,
        &envelope.body,
        &submission.wireguard_proof,
    )
    .map_err(EnrolError::WireguardProof)?;
    Ok(VerifiedRequest {
        request,
        identity,
        identity_log: submission.identity_log.iter().map(|e| e.to_vec()).collect(),
    })
}

/// Node side: verifies the hub's answer against the pinned hub key and the
/// request it must answer.
pub fn open_grant(
    bytes: &[u8],
    pinned_hub_key: &PublicKey,
    request: &EnrolRequest,
    identity: &IdentityState,
) -> Result<EnrolGrant, EnrolError> {
    let (grant, _) = Envelope::open::<EnrolGrant>(tag::ENROL_GRANT, bytes, Some(pinned_hub_key))
        .map_err(EnrolError::Grant)?;
    if grant.version != VERSION {
        return Err(EnrolError::Version(grant.version));
    }
    if grant.hub_nonce != request.hub_nonce
        || grant.node_id != identity.node_id
        || grant.node_signing_key != identity.signing_key
        || grant.node_wireguard_key != identity.wireguard_key
    {
        return Err(EnrolError::GrantMismatch);
    }
    if !crate::mesh::is_node_address(&grant.subnet, grant.mesh_ip) {
        return Err(EnrolError::GrantAddress(grant.mesh_ip, grant.subnet));
    }
    Ok(grant)
}

/// Hub side: seal a grant.
pub fn seal_grant(grant: &EnrolGrant, hub: &SigningSecret) -> Result<Vec<u8>, EnrolError> {
    Envelope::seal(tag::ENROL_GRANT, grant, hub).map_err(EnrolError::Grant)
}

#[cfg(test)]
mod tests;

//! Sealing and opening lending records: the signer must be the directory
//! signing key of the node the record names.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Decision, LendingError, Publication, Request};
use crate::envelope::{Envelope, MAX_ENVELOPE_BODY, MAX_ENVELOPE_BYTES, decode_canonical, tag};
use crate::hash::{Hash32, blake2b256};
use crate::keys::{PublicKey, SigningSecret};
use crate::node_id::NodeId;

/// Largest signed publication: it travels inside one directory entry,
/// whose own envelope body holds at most 1024 bytes (version, seq, prev,
/// the variant and this length take 46 of them).
pub const MAX_PUBLICATION_BYTES: usize = 960;
/// Largest signed request or decision: one generic envelope.
pub const MAX_REQUEST_BYTES: usize = MAX_ENVELOPE_BYTES;

/// Signs a publication with the provider's node key.
pub fn seal_publication(
    publication: &Publication,
    provider: &SigningSecret,
) -> Result<Vec<u8>, LendingError> {
    publication.check()?;
    let bytes = Envelope::seal(tag::LENDING_PUBLICATION, publication, provider)
        .map_err(LendingError::Envelope)?;
    if bytes.len() > MAX_PUBLICATION_BYTES {
        return Err(LendingError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Verifies a publication against its provider's directory signing key
/// (`signing_key_of` answers a node id's key, `None` for a node that is not
/// in the directory or is revoked).
pub fn open_publication(
    bytes: &[u8],
    signing_key_of: impl Fn(&NodeId) -> Option<PublicKey>,
) -> Result<(Publication, PublicKey), LendingError> {
    if bytes.len() > MAX_PUBLICATION_BYTES {
        return Err(LendingError::TooLarge(bytes.len()));
    }
    let (publication, signer) = open_signed::<Publication>(tag::LENDING_PUBLICATION, bytes)?;
    publication.check()?;
    check_signer(publication.provider(), &signer, signing_key_of)?;
    Ok((publication, signer))
}

/// Signs a subscription or unsubscribe with the consumer's node key.
pub fn seal_request(request: &Request, consumer: &SigningSecret) -> Result<Vec<u8>, LendingError> {
    request.check()?;
    Envelope::seal(tag::LENDING_REQUEST, request, consumer).map_err(LendingError::Envelope)
}

/// Verifies a request against its consumer's directory signing key; also
/// returns the hash that names it in the decision.
pub fn open_request(
    bytes: &[u8],
    signing_key_of: impl Fn(&NodeId) -> Option<PublicKey>,
) -> Result<(Request, Hash32), LendingError> {
    let (request, signer) = open_signed::<Request>(tag::LENDING_REQUEST, bytes)?;
    request.check()?;
    check_signer(request.consumer(), &signer, signing_key_of)?;
    Ok((request, blake2b256(bytes)))
}

/// Signs a decision with the provider's node key.
pub fn seal_decision(
    decision: &Decision,
    provider: &SigningSecret,
) -> Result<Vec<u8>, LendingError> {
    decision.check()?;
    Envelope::seal(tag::LENDING_DECISION, decision, provider).map_err(LendingError::Envelope)
}

/// Verifies a decision against the provider's directory signing key.
pub fn open_decision(bytes: &[u8], provider_key: &PublicKey) -> Result<Decision, LendingError> {
    let (decision, signer) = open_signed::<Decision>(tag::LENDING_DECISION, bytes)?;
    decision.check()?;
    if signer != *provider_key {
        return Err(LendingError::WrongSigner(decision.provider.to_string()));
    }
    Ok(decision)
}

/// The envelope's signature over the body as received, then the body's
/// canonical decoding.
fn open_signed<T: Serialize + DeserializeOwned>(
    domain: &[u8],
    bytes: &[u8],
) -> Result<(T, PublicKey), LendingError> {
    let envelope = Envelope::verify(domain, bytes).map_err(LendingError::Envelope)?;
    let body = decode_canonical(&envelope.body, MAX_ENVELOPE_BODY)
        .map_err(|e| LendingError::Envelope(crate::envelope::EnvelopeError::Body(e)))?;
    Ok((body, envelope.signer))
}

/// The record names `who`; the signature must be by `who`'s directory key.
fn check_signer(
    who: &NodeId,
    signer: &PublicKey,
    signing_key_of: impl Fn(&NodeId) -> Option<PublicKey>,
) -> Result<(), LendingError> {
    match signing_key_of(who) {
        None => Err(LendingError::UnknownSigner(who.to_string())),
        Some(key) if key != *signer => Err(LendingError::WrongSigner(who.to_string())),
        Some(_) => Ok(()),
    }
}

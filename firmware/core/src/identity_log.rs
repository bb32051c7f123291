//! The identity log: an append-only, hash-chained list of signed key events.
//!
//! Each entry is stored and exchanged as the exact bytes of a
//! [`SignedEntry`]; its hash (BLAKE2b-256 of those bytes) is what the next
//! entry's `prev` names. The node's own copy is the authority for its current
//! keys; anybody holding the log can recompute the node id and every key.
//!
//! Verification of one entry, in order: size bound and canonical decoding of
//! the envelope; the signature over `tag || body` by the envelope's signer;
//! only then the canonical decoding of the body; then the rules (version,
//! sequence, hash link, who may sign what).

use serde::{Deserialize, Serialize};

use crate::boxname::Boxname;
use crate::envelope::{self, DecodeError, decode_canonical, signed_message, tag};
use crate::hash::{Hash32, blake2b256};
use crate::keys::{PublicKey, SignatureBytes, SigningSecret, verify_signature};
use crate::node_id::NodeId;

/// The only body version this code understands.
pub const ENTRY_VERSION: u8 = 1;
/// Upper bound of an encoded body (the largest, genesis, is ~140 bytes).
pub const MAX_BODY_BYTES: usize = 256;
/// Upper bound of one encoded signed entry.
pub const MAX_ENTRY_BYTES: usize = MAX_BODY_BYTES + 2 * 64 + 32 + 8;
/// A node rotates keys a handful of times in its life; this bounds what a
/// peer can make us hold.
pub const MAX_ENTRIES: usize = 4096;
/// Format number of an exported log bundle.
pub const BUNDLE_FORMAT: u8 = 1;
pub const MAX_BUNDLE_BYTES: usize = 8 + MAX_ENTRIES * (MAX_ENTRY_BYTES + 3);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityEvent {
    Genesis {
        signing_key: PublicKey,
        wireguard_key: PublicKey,
        boxname: Boxname,
    },
    /// Signed by the old key; the envelope also carries the new key's signature.
    RotateSigning {
        new_signing_key: PublicKey,
    },
    RotateWireguard {
        new_wireguard_key: PublicKey,
    },
    Rename {
        boxname: Boxname,
    },
    /// The node is gone for good; nothing may follow.
    Retire,
}

impl IdentityEvent {
    pub fn name(&self) -> &'static str {
        match self {
            IdentityEvent::Genesis { .. } => "genesis",
            IdentityEvent::RotateSigning { .. } => "rotate-signing",
            IdentityEvent::RotateWireguard { .. } => "rotate-wireguard",
            IdentityEvent::Rename { .. } => "rename",
            IdentityEvent::Retire => "retire",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryBody {
    pub version: u8,
    pub seq: u64,
    /// Hash of the previous signed entry; all zeros for genesis.
    pub prev: Hash32,
    pub event: IdentityEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEntry {
    pub body: heapless::Vec<u8, MAX_BODY_BYTES>,
    pub signer: PublicKey,
    #[serde(with = "serde_bytes")]
    pub sig: SignatureBytes,
    /// Present exactly on `RotateSigning`: the new key's signature.
    pub new_key_sig: Option<NewKeySig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKeySig(#[serde(with = "serde_bytes")] pub SignatureBytes);

/// An exported log: every signed entry, in order. Self-verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBundle {
    pub format: u8,
    pub entries: Vec<heapless::Vec<u8, MAX_ENTRY_BYTES>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("entry {index}: {source}")]
    Decode { index: usize, source: DecodeError },
    #[error("entry {index}: signature does not verify")]
    BadSignature { index: usize },
    #[error("entry {index}: signature by a key that is not the current signing key")]
    WrongSigner { index: usize },
    #[error("entry {index}: signing-key rotation lacks the new key's signature")]
    MissingNewKeySignature { index: usize },
    #[error("entry {index}: new-key signature on an event that is not a signing-key rotation")]
    UnexpectedNewKeySignature { index: usize },
    #[error("entry {index}: unknown version {version}")]
    UnknownVersion { index: usize, version: u8 },
    #[error("entry {index}: sequence number {found}, expected {index}")]
    BadSequence { index: usize, found: u64 },
    #[error("entry {index}: hash link does not match the previous entry")]
    BrokenLink { index: usize },
    #[error("entry {index}: the log must start with exactly one genesis")]
    MisplacedGenesis { index: usize },
    #[error("entry {index}: the identity was retired; nothing may follow")]
    AfterRetire { index: usize },
    #[error("entry {index}: rotation to the key already in use")]
    NoOpRotation { index: usize },
    #[error("the log is empty")]
    Empty,
    #[error("the log has more than {MAX_ENTRIES} entries")]
    TooLong,
    #[error("bundle: {0}")]
    Bundle(DecodeError),
    #[error("bundle: unknown format {0}")]
    UnknownBundleFormat(u8),
}

/// What a verified log says about a node now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityState {
    pub node_id: NodeId,
    pub genesis_signing_key: PublicKey,
    pub signing_key: PublicKey,
    pub wireguard_key: PublicKey,
    pub boxname: Boxname,
    pub retired: bool,
    /// Number of entries.
    pub len: u64,
    /// Hash of the last entry.
    pub tip: Hash32,
}

impl IdentityState {
    /// Verifies one more entry against this state and returns the next state.
    /// `self` is unchanged when the entry is rejected.
    pub fn apply(&self, raw: &[u8]) -> Result<IdentityState, LogError> {
        let index = usize::try_from(self.len).unwrap_or(usize::MAX);
        let (signed, body) = open_entry(raw, index)?;
        if self.retired {
            return Err(LogError::AfterRetire { index });
        }
        if signed.signer != self.signing_key {
            return Err(LogError::WrongSigner { index });
        }
        check_position(&body, index, self.tip)?;
        let mut next = self.clone();
        match &body.event {
            IdentityEvent::Genesis { .. } => return Err(LogError::MisplacedGenesis { index }),
            IdentityEvent::RotateSigning { new_signing_key } => {
                if *new_signing_key == self.signing_key {
                    return Err(LogError::NoOpRotation { index });
                }
                let Some(NewKeySig(new_sig)) = &signed.new_key_sig else {
                    return Err(LogError::MissingNewKeySignature { index });
                };
                let msg = signed_message(tag::IDENTITY_ROTATE_NEW_KEY, &signed.body);
                if !verify_signature(new_signing_key, &msg, new_sig) {
                    return Err(LogError::BadSignature { index });
                }
                next.signing_key = *new_signing_key;
            }
            IdentityEvent::RotateWireguard { new_wireguard_key } => {
                if *new_wireguard_key == self.wireguard_key {
                    return Err(LogError::NoOpRotation { index });
                }
                next.wireguard_key = *new_wireguard_key;
            }
            IdentityEvent::Rename { boxname } => next.boxname = boxname.clone(),
            IdentityEvent::Retire => next.retired = true,
        }
        if !matches!(body.event, IdentityEvent::RotateSigning { .. })
            && signed.new_key_sig.is_some()
        {
            return Err(LogError::UnexpectedNewKeySignature { index });
        }
        next.len += 1;
        next.tip = blake2b256(raw);
        Ok(next)
    }
}

/// Verifies a genesis entry and returns the state it creates.
pub fn verify_genesis(raw: &[u8]) -> Result<IdentityState, LogError> {
    let index = 0;
    let (signed, body) = open_entry(raw, index)?;
    check_position(&body, index, [0; 32])?;
    let IdentityEvent::Genesis {
        signing_key,
        wireguard_key,
        boxname,
    } = body.event
    else {
        return Err(LogError::MisplacedGenesis { index });
    };
    if signed.signer != signing_key {
        return Err(LogError::WrongSigner { index });
    }
    if signed.new_key_sig.is_some() {
        return Err(LogError::UnexpectedNewKeySignature { index });
    }
    Ok(IdentityState {
        node_id: NodeId::from_genesis_key(&signing_key),
        genesis_signing_key: signing_key,
        signing_key,
        wireguard_key,
        boxname,
        retired: false,
        len: 1,
        tip: blake2b256(raw),
    })
}

/// Verifies a whole log from genesis.
pub fn verify_log<E: AsRef<[u8]>>(entries: &[E]) -> Result<IdentityState, LogError> {
    if entries.len() > MAX_ENTRIES {
        return Err(LogError::TooLong);
    }
    let (first, rest) = entries.split_first().ok_or(LogError::Empty)?;
    let mut state = verify_genesis(first.as_ref())?;
    for raw in rest {
        state = state.apply(raw.as_ref())?;
    }
    Ok(state)
}

/// Envelope checks and signature, then the body: never the other way round.
fn open_entry(raw: &[u8], index: usize) -> Result<(SignedEntry, EntryBody), LogError> {
    let signed: SignedEntry = decode_canonical(raw, MAX_ENTRY_BYTES)
        .map_err(|source| LogError::Decode { index, source })?;
    let msg = signed_message(tag::IDENTITY_ENTRY, &signed.body);
    if !verify_signature(&signed.signer, &msg, &signed.sig) {
        return Err(LogError::BadSignature { index });
    }
    let body: EntryBody = decode_canonical(&signed.body, MAX_BODY_BYTES)
        .map_err(|source| LogError::Decode { index, source })?;
    Ok((signed, body))
}

fn check_position(body: &EntryBody, index: usize, prev: Hash32) -> Result<(), LogError> {
    if body.version != ENTRY_VERSION {
        return Err(LogError::UnknownVersion {
            index,
            version: body.version,
        });
    }
    if body.seq != index as u64 {
        return Err(LogError::BadSequence {
            index,
            found: body.seq,
        });
    }
    if body.prev != prev {
        return Err(LogError::BrokenLink { index });
    }
    Ok(())
}

/// Builds entries. Callers pass the secrets; the result is verified with the
/// same code that verifies a peer's log before it is returned.
pub mod build {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum BuildError {
        #[error("rotating the signing key needs the new signing key")]
        MissingNewSigner,
        #[error("the secret given does not belong to the key the log names")]
        WrongSecret,
        #[error(transparent)]
        Rejected(#[from] LogError),
    }

    pub fn genesis(
        signer: &SigningSecret,
        wireguard_key: PublicKey,
        boxname: Boxname,
    ) -> Result<(Vec<u8>, IdentityState), BuildError> {
        let body = EntryBody {
            version: ENTRY_VERSION,
            seq: 0,
            prev: [0; 32],
            event: IdentityEvent::Genesis {
                signing_key: signer.public_key(),
                wireguard_key,
                boxname,
            },
        };
        let raw = seal(&body, signer, None)?;
        let state = verify_genesis(&raw)?;
        Ok((raw, state))
    }

    /// Appends `event` after `state`. `new_signer` is required for (and only
    /// used by) `RotateSigning`.
    pub fn next(
        state: &IdentityState,
        signer: &SigningSecret,
        event: IdentityEvent,
        new_signer: Option<&SigningSecret>,
    ) -> Result<(Vec<u8>, IdentityState), BuildError> {
        if signer.public_key() != state.signing_key {
            return Err(BuildError::WrongSecret);
        }
        let cosigner = match &event {
            IdentityEvent::RotateSigning { new_signing_key } => {
                let new = new_signer.ok_or(BuildError::MissingNewSigner)?;
                if new.public_key() != *new_signing_key {
                    return Err(BuildError::WrongSecret);
                }
                Some(new)
            }
            _ => None,
        };
        let body = EntryBody {
            version: ENTRY_VERSION,
            seq: state.len,
            prev: state.tip,
            event,
        };
        let raw = seal(&body, signer, cosigner)?;
        let next = state.apply(&raw)?;
        Ok((raw, next))
    }

    fn seal(
        body: &EntryBody,
        signer: &SigningSecret,
        cosigner: Option<&SigningSecret>,
    ) -> Result<Vec<u8>, BuildError> {
        let body_bytes = envelope::encode(body);
        let index = usize::try_from(body.seq).unwrap_or(usize::MAX);
        let body = heapless::Vec::from_slice(&body_bytes).map_err(|_| LogError::Decode {
            index,
            source: DecodeError::TooLarge {
                len: body_bytes.len(),
                max: MAX_BODY_BYTES,
            },
        })?;
        let signed = SignedEntry {
            sig: signer.sign(&signed_message(tag::IDENTITY_ENTRY, &body)),
            new_key_sig: cosigner
                .map(|c| NewKeySig(c.sign(&signed_message(tag::IDENTITY_ROTATE_NEW_KEY, &body)))),
            signer: signer.public_key(),
            body,
        };
        Ok(envelope::encode(&signed))
    }
}

/// Encodes a whole log as one self-verifying bundle.
pub fn export_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::with_capacity(entries.len());
    for (index, raw) in entries.iter().enumerate() {
        let raw = raw.as_ref();
        out.push(
            heapless::Vec::from_slice(raw).map_err(|_| LogError::Decode {
                index,
                source: DecodeError::TooLarge {
                    len: raw.len(),
                    max: MAX_ENTRY_BYTES,
                },
            })?,
        );
    }
    Ok(envelope::encode(&LogBundle {
        format: BUNDLE_FORMAT,
        entries: out,
    }))
}

/// Decodes and verifies a bundle; returns its entries and final state.
pub fn import_bundle(bytes: &[u8]) -> Result<(Vec<Vec<u8>>, IdentityState), LogError> {
    let bundle: LogBundle = decode_canonical(bytes, MAX_BUNDLE_BYTES).map_err(LogError::Bundle)?;
    if bundle.format != BUNDLE_FORMAT {
        return Err(LogError::UnknownBundleFormat(bundle.format));
    }
    let state = verify_log(&bundle.entries)?;
    let entries = bundle.entries.iter().map(|e| e.to_vec()).collect();
    Ok((entries, state))
}

/// Decodes an entry this code (or a verified log) produced, for display.
pub fn describe(raw: &[u8]) -> Option<EntryBody> {
    let signed: SignedEntry = decode_canonical(raw, MAX_ENTRY_BYTES).ok()?;
    decode_canonical(&signed.body, MAX_BODY_BYTES).ok()
}

#[cfg(test)]
mod tests;

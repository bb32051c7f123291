//! The offers the directory holds now: the fold of its `Lending` records.
//!
//! Rules (docs/protocol.md, "Lending"):
//! - a publication counts only if it verifies against its provider's
//!   current directory signing key; one that does not (unknown or revoked
//!   provider, another key, a malformed or oversized record) is ignored
//!   and counted in [`Catalog::ignored`], since the hub should never have
//!   appended it and an operator wants to know that it did;
//! - per (provider, name) the highest serial wins: a publication whose
//!   serial is not above the one held is stale, ignored and counted too
//!   (a replayed older offer cannot come back after a withdrawal);
//! - a withdrawal removes the offer; a revoked provider's offers are gone;
//!   a provider whose signing key changes loses its offers (they were
//!   signed by a key the directory no longer vouches for, and could no
//!   longer be checked against its node record alone): it publishes them
//!   again under the new key.

use std::collections::BTreeMap;

use super::{LendingError, Offer, Publication, ServiceName};
use crate::keys::PublicKey;
use crate::node_id::NodeId;

/// One current offer and the provider-signed bytes it came in, so anyone
/// can serve them and anyone can check them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedOffer {
    pub offer: Offer,
    pub signed: Vec<u8>,
    pub signer: PublicKey,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub offers: BTreeMap<(NodeId, ServiceName), PublishedOffer>,
    /// The highest serial of each (provider, name), offers and withdrawals.
    pub serials: BTreeMap<(NodeId, ServiceName), u64>,
    /// Publications the fold ignored (did not verify, or stale).
    pub ignored: u64,
}

impl Catalog {
    /// The hub's check before it appends a publication, and the fold's:
    /// verified against the provider's key, serial above the held one, a
    /// withdrawal only of a current offer.
    pub fn check(
        &self,
        bytes: &[u8],
        signing_key_of: impl Fn(&NodeId) -> Option<PublicKey>,
    ) -> Result<(Publication, PublicKey), LendingError> {
        let (publication, signer) = super::open_publication(bytes, signing_key_of)?;
        let key = (publication.provider().clone(), publication.name().clone());
        if let Some(&held) = self.serials.get(&key)
            && publication.serial() <= held
        {
            return Err(LendingError::StaleSerial {
                held,
                found: publication.serial(),
            });
        }
        if matches!(publication, Publication::Withdrawal(_)) && !self.offers.contains_key(&key) {
            return Err(LendingError::NotOffered);
        }
        Ok((publication, signer))
    }

    /// Folds one directory `Lending` record in; what does not hold is
    /// counted and changes nothing else.
    pub fn apply(&mut self, bytes: &[u8], signing_key_of: impl Fn(&NodeId) -> Option<PublicKey>) {
        let Ok((publication, signer)) = self.check(bytes, signing_key_of) else {
            self.ignored += 1;
            return;
        };
        let key = (publication.provider().clone(), publication.name().clone());
        self.serials.insert(key.clone(), publication.serial());
        match publication {
            Publication::Offer(offer) => {
                self.offers.insert(
                    key,
                    PublishedOffer {
                        offer,
                        signed: bytes.to_vec(),
                        signer,
                    },
                );
            }
            Publication::Withdrawal(_) => {
                self.offers.remove(&key);
            }
        }
    }

    /// The provider is revoked: its offers are gone.
    pub fn remove_provider(&mut self, provider: &NodeId) {
        self.offers.retain(|(id, _), _| id != provider);
    }

    /// The provider's directory signing key is now `key`: offers signed by
    /// another key are gone.
    pub fn key_changed(&mut self, provider: &NodeId, key: &PublicKey) {
        self.offers
            .retain(|(id, _), o| id != provider || o.signer == *key);
    }

    pub fn offer(&self, provider: &NodeId, name: &ServiceName) -> Option<&PublishedOffer> {
        self.offers.get(&(provider.clone(), name.clone()))
    }

    /// The serial a provider's next publication of `name` should carry, as
    /// far as this directory copy knows (a provider also keeps its own
    /// highest, since its copy may lag its last publication).
    pub fn next_serial(&self, provider: &NodeId, name: &ServiceName) -> u64 {
        self.serials
            .get(&(provider.clone(), name.clone()))
            .map_or(1, |s| s.saturating_add(1))
    }

    /// A provider's current offers.
    pub fn by_provider<'a>(
        &'a self,
        provider: &'a NodeId,
    ) -> impl Iterator<Item = &'a PublishedOffer> + 'a {
        self.offers
            .iter()
            .filter(move |((id, _), _)| id == provider)
            .map(|(_, o)| o)
    }
}

//! Why the provider refused a request or an operator's command.

use std::net::Ipv4Addr;

use crate::directory::View;
use crate::envelope::EnvelopeError;
use crate::lending_records::LendingError;

/// Why a request or an operator's command was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many requests from {0}")]
    RateLimited(Ipv4Addr),
    #[error("malformed request: {0}")]
    Malformed(LendingError),
    #[error("the signature does not verify against the consumer's directory key")]
    BadSignature,
    #[error("{0} is not in the directory")]
    UnknownConsumer(String),
    #[error("{0} is revoked")]
    ConsumerRevoked(String),
    #[error("the request is for another provider ({0})")]
    WrongProvider(String),
    #[error("the request names {claimed}, the consumer's mesh address is {own}")]
    WrongAddress { claimed: Ipv4Addr, own: Ipv4Addr },
    #[error("the request came from {from}, not from the consumer's mesh address {own}")]
    NotFromConsumer { from: Ipv4Addr, own: Ipv4Addr },
    #[error("no current offer of this service by this provider")]
    NoSuchOffer,
    #[error("the offer changed: its current serial is {current}")]
    OfferChanged { current: u64 },
    #[error("counter {found} is not above {last}, the last one taken")]
    StaleCounter { last: u64, found: u64 },
    #[error("no subscription of this consumer to this service")]
    NoSuchSubscription,
    #[error("the subscription is not waiting for a decision")]
    NotPending,
    #[error("too many subscriptions held ({0})")]
    Full(usize),
    #[error("too many requests waiting for the operator ({0})")]
    TooManyPending(usize),
}

impl Refusal {
    /// The error code of the node's API (docs/api.md).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::RateLimited(_) => "rate_limited",
            Refusal::Malformed(_) => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::UnknownConsumer(_) => "unknown_node",
            Refusal::ConsumerRevoked(_) => "node_revoked",
            Refusal::WrongProvider(_) => "wrong_provider",
            Refusal::WrongAddress { .. } | Refusal::NotFromConsumer { .. } => "wrong_address",
            Refusal::NoSuchOffer => "no_such_offer",
            Refusal::OfferChanged { .. } => "offer_changed",
            Refusal::StaleCounter { .. } => "stale_counter",
            Refusal::NoSuchSubscription => "no_such_subscription",
            Refusal::NotPending => "not_pending",
            Refusal::Full(_) | Refusal::TooManyPending(_) => "full",
        }
    }
}

impl Refusal {
    /// A request that did not open, as the refusal the consumer is told.
    pub(super) fn opening(error: LendingError, view: &View) -> Refusal {
        match error {
            LendingError::UnknownSigner(id) => {
                let revoked =
                    crate::NodeId::parse(&id).is_ok_and(|n| view.revoked.contains_key(&n));
                if revoked {
                    Refusal::ConsumerRevoked(id)
                } else {
                    Refusal::UnknownConsumer(id)
                }
            }
            LendingError::WrongSigner(_) | LendingError::Envelope(EnvelopeError::BadSignature) => {
                Refusal::BadSignature
            }
            other => Refusal::Malformed(other),
        }
    }
}

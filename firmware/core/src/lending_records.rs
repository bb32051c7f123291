//! The lending records (byte layouts: docs/protocol.md, "Lending"): what a
//! provider publishes (an [`Offer`] or a [`Withdrawal`], one
//! [`Publication`] signed by its node key and carried verbatim by the
//! directory), what a consumer sends the provider over the mesh (a
//! [`Subscription`] or an [`Unsubscribe`], signed by the consumer's node
//! key) and the provider's signed answer (a [`Decision`]).
//!
//! Every field with a rule has it checked in [`Publication::check`] and
//! friends, on sealing and again on opening: a record that breaks a rule is
//! never signed by us and never accepted from anyone.

mod catalog;
mod seal;

pub use catalog::{Catalog, PublishedOffer};
pub use seal::{
    MAX_PUBLICATION_BYTES, MAX_REQUEST_BYTES, open_decision, open_publication, open_request,
    seal_decision, seal_publication, seal_request,
};

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::boxname::Boxname;
use crate::grant::MAX_TIMEOUT_SECS;
use crate::hash::Hash32;
use crate::node_id::NodeId;

pub const VERSION: u8 = 1;
/// A service name is a DNS label, like a boxname.
pub const MAX_NAME_LEN: usize = 63;
/// Boxnames and tags an `allow:` list names at most: the largest offer
/// must fit one directory entry.
pub const MAX_ALLOW: usize = 8;
pub const MAX_TAG_LEN: usize = 63;
pub const MAX_DESCRIPTION_LEN: usize = 128;
pub const MAX_REASON_LEN: usize = 128;
/// Longest subscription, offer limit or grant: the grant's own bound.
pub const MAX_DURATION_SECS: u64 = MAX_TIMEOUT_SECS;

/// A service's name: a DNS label (`[a-z0-9-]{1,63}`, no edge `-`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "heapless::String<MAX_NAME_LEN>",
    into = "heapless::String<MAX_NAME_LEN>"
)]
pub struct ServiceName(heapless::String<MAX_NAME_LEN>);

impl ServiceName {
    pub fn parse(text: &str) -> Result<Self, LendingError> {
        // The same rules as a boxname: one label of DNS.
        let label = Boxname::parse(text).map_err(|_| LendingError::BadName)?;
        let mut s = heapless::String::new();
        s.push_str(label.as_str())
            .map_err(|_| LendingError::BadName)?;
        Ok(ServiceName(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<heapless::String<MAX_NAME_LEN>> for ServiceName {
    type Error = LendingError;
    fn try_from(s: heapless::String<MAX_NAME_LEN>) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ServiceName> for heapless::String<MAX_NAME_LEN> {
    fn from(n: ServiceName) -> Self {
        n.0
    }
}

impl core::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ServiceName({})", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Who an `allow:` list names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Principal {
    Boxname(Boxname),
    /// A token tag (1–63 printable ASCII characters, as the hub takes them),
    /// checked against the consumer's `Tags` record in the directory.
    Tag(heapless::String<MAX_TAG_LEN>),
}

/// How the provider decides on a subscription.
// Bounded inline lists keep decoding allocation-free and bounded; an offer
// is decoded one at a time, so boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Approval {
    /// Every enrolled, unrevoked node is accepted at once.
    Auto,
    /// Every request waits for the provider's operator.
    Manual,
    /// The nodes listed are accepted at once; the others wait for the
    /// operator, as in `Manual`.
    Allow(heapless::Vec<Principal, MAX_ALLOW>),
}

impl Approval {
    /// Whether a node of this boxname and these tags is accepted without
    /// the operator.
    pub fn admits(&self, boxname: &Boxname, tags: &[&str]) -> bool {
        match self {
            Approval::Auto => true,
            Approval::Manual => false,
            Approval::Allow(list) => list.iter().any(|p| match p {
                Principal::Boxname(b) => b == boxname,
                Principal::Tag(t) => tags.contains(&t.as_str()),
            }),
        }
    }
}

/// A provider's offer of one service on its mesh address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub version: u8,
    pub provider: NodeId,
    pub name: ServiceName,
    /// Higher than every earlier offer or withdrawal of this name by this
    /// provider; the directory keeps the highest.
    pub serial: u64,
    pub protocol: Protocol,
    /// 1–65535.
    pub port: u16,
    pub approval: Approval,
    /// No control characters, 1–128 bytes.
    pub description: Option<heapless::String<MAX_DESCRIPTION_LEN>>,
    /// Longest subscription granted (1 s – a year); `None`: the grant bound.
    pub max_duration_secs: Option<u64>,
}

/// The provider ends an offer (and every subscription to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    pub version: u8,
    pub provider: NodeId,
    pub name: ServiceName,
    pub serial: u64,
}

/// What a provider publishes, signed under the `lending-publication` tag.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Publication {
    Offer(Offer),
    Withdrawal(Withdrawal),
}

impl Publication {
    pub fn provider(&self) -> &NodeId {
        match self {
            Publication::Offer(o) => &o.provider,
            Publication::Withdrawal(w) => &w.provider,
        }
    }

    pub fn name(&self) -> &ServiceName {
        match self {
            Publication::Offer(o) => &o.name,
            Publication::Withdrawal(w) => &w.name,
        }
    }

    pub fn serial(&self) -> u64 {
        match self {
            Publication::Offer(o) => o.serial,
            Publication::Withdrawal(w) => w.serial,
        }
    }

    pub fn check(&self) -> Result<(), LendingError> {
        match self {
            Publication::Offer(o) => {
                check_version(o.version)?;
                if o.port == 0 {
                    return Err(LendingError::BadPort);
                }
                if let Approval::Allow(list) = &o.approval {
                    if list.is_empty() {
                        return Err(LendingError::EmptyAllowList);
                    }
                    for p in list {
                        if let Principal::Tag(t) = p
                            && (t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()))
                        {
                            return Err(LendingError::BadTag);
                        }
                    }
                }
                if let Some(d) = &o.description {
                    check_text(d, LendingError::BadDescription)?;
                }
                if let Some(secs) = o.max_duration_secs {
                    check_duration(secs)?;
                }
                Ok(())
            }
            Publication::Withdrawal(w) => check_version(w.version),
        }
    }
}

/// Which offer a subscription is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferRef {
    pub provider: NodeId,
    pub name: ServiceName,
    /// The serial of the offer the consumer saw in its directory.
    pub serial: u64,
}

/// A consumer asks a provider for a service, or renews what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub version: u8,
    pub offer: OfferRef,
    pub consumer: NodeId,
    /// The consumer's mesh address (from its enrolment grant): the only
    /// address a grant may open to, and it must be the directory's.
    pub consumer_ip: Ipv4Addr,
    /// 1 s – a year; the provider grants at most its offer's maximum.
    pub duration_secs: u64,
    /// Freshness without a clock: the consumer's counter for this
    /// (provider, service), strictly increasing over its subscriptions and
    /// unsubscribes. The provider takes only a counter above the last one
    /// it took, and answers the very same bytes again with its decision.
    pub counter: u64,
}

/// A consumer ends its subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    pub version: u8,
    pub provider: NodeId,
    pub name: ServiceName,
    pub consumer: NodeId,
    /// The same counter as [`Subscription::counter`].
    pub counter: u64,
}

/// What a consumer sends a provider, signed under the `lending-request` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Subscribe(Subscription),
    Unsubscribe(Unsubscribe),
}

impl Request {
    pub fn consumer(&self) -> &NodeId {
        match self {
            Request::Subscribe(s) => &s.consumer,
            Request::Unsubscribe(u) => &u.consumer,
        }
    }

    pub fn provider(&self) -> &NodeId {
        match self {
            Request::Subscribe(s) => &s.offer.provider,
            Request::Unsubscribe(u) => &u.provider,
        }
    }

    pub fn name(&self) -> &ServiceName {
        match self {
            Request::Subscribe(s) => &s.offer.name,
            Request::Unsubscribe(u) => &u.name,
        }
    }

    pub fn counter(&self) -> u64 {
        match self {
            Request::Subscribe(s) => s.counter,
            Request::Unsubscribe(u) => u.counter,
        }
    }

    pub fn check(&self) -> Result<(), LendingError> {
        match self {
            Request::Subscribe(s) => {
                check_version(s.version)?;
                check_duration(s.duration_secs)
            }
            Request::Unsubscribe(u) => check_version(u.version),
        }
    }
}

/// The provider's verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Waiting for the provider's operator.
    Pending,
    /// Open for this long from the provider's decision (its own clock; the
    /// consumer counts from when the answer arrives, so it never believes
    /// in a grant that the provider has already closed by more than the
    /// answer's flight time).
    Accepted { duration_secs: u64 },
    /// Refused, by the operator or by the offer's rules.
    Denied {
        reason: heapless::String<MAX_REASON_LEN>,
    },
    /// The subscription is over (the answer to an unsubscribe).
    Ended,
}

/// The provider's signed answer, under the `lending-decision` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub version: u8,
    pub provider: NodeId,
    pub consumer: NodeId,
    pub name: ServiceName,
    /// BLAKE2b-256 of the request envelope's bytes exactly as received.
    pub request: Hash32,
    pub counter: u64,
    /// The serial of the provider's current offer of this name (0 for an
    /// answer about an offer that is gone).
    pub offer_serial: u64,
    pub verdict: Verdict,
}

impl Decision {
    pub fn check(&self) -> Result<(), LendingError> {
        check_version(self.version)?;
        match &self.verdict {
            Verdict::Accepted { duration_secs } => check_duration(*duration_secs),
            Verdict::Denied { reason } => check_text(reason, LendingError::BadReason),
            Verdict::Pending | Verdict::Ended => Ok(()),
        }
    }
}

/// A denial's reason from text: cut to its bound at a character boundary,
/// control characters replaced, never empty.
pub fn reason(text: &str) -> heapless::String<MAX_REASON_LEN> {
    let mut out = heapless::String::new();
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.push(c).is_err() {
            break;
        }
    }
    if out.is_empty() {
        let _ = out.push_str("denied");
    }
    out
}

fn check_version(version: u8) -> Result<(), LendingError> {
    if version != VERSION {
        return Err(LendingError::UnknownVersion(version));
    }
    Ok(())
}

fn check_duration(secs: u64) -> Result<(), LendingError> {
    if secs == 0 || secs > MAX_DURATION_SECS {
        return Err(LendingError::BadDuration(secs));
    }
    Ok(())
}

fn check_text(text: &str, error: LendingError) -> Result<(), LendingError> {
    if text.is_empty() || text.chars().any(char::is_control) {
        return Err(error);
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LendingError {
    #[error("{0}")]
    Envelope(crate::envelope::EnvelopeError),
    #[error("unknown lending record version {0}")]
    UnknownVersion(u8),
    #[error("service name must be a DNS label: a-z, 0-9 and '-', 1-63 characters")]
    BadName,
    #[error("port must be 1-65535")]
    BadPort,
    #[error("an allow list names at least one boxname or tag, at most {MAX_ALLOW}")]
    EmptyAllowList,
    #[error("a tag is 1-63 printable ASCII characters")]
    BadTag,
    #[error("description must be 1-{MAX_DESCRIPTION_LEN} bytes without control characters")]
    BadDescription,
    #[error("reason must be 1-{MAX_REASON_LEN} bytes without control characters")]
    BadReason,
    #[error("duration must be between 1 second and {MAX_DURATION_SECS} seconds (got {0} s)")]
    BadDuration(u64),
    #[error("signed record of {0} bytes, more than the limit")]
    TooLarge(usize),
    #[error("serial {found} is not above {held}, the last one published for this name")]
    StaleSerial { held: u64, found: u64 },
    #[error("no current offer of this name by this provider")]
    NotOffered,
    #[error("signer {0} is not in the directory")]
    UnknownSigner(String),
    #[error("signed by a key that is not {0}'s directory signing key")]
    WrongSigner(String),
}

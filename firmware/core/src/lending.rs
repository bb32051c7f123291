//! Lending a service (docs/services.md; byte layouts in docs/protocol.md,
//! "Lending"): a provider publishes a signed offer through the directory,
//! a consumer sends the provider a signed subscription over the mesh, the
//! provider answers with a signed decision and opens its firewall to the
//! consumer's mesh address only.
//!
//! Trust: an offer or withdrawal is verified against the provider's own
//! node record (its directory signing key) alone, so the hub that carries
//! it cannot forge or alter one — it can only withhold it. A request is
//! verified against the consumer's node record the same way. Nothing is
//! decoded before its signature holds (as for every
//! [`Envelope`](crate::envelope::Envelope)), and
//! every field rule is checked on both sealing and opening.
//!
//! This module holds the machines ([`ProviderBook`], [`ConsumerBook`]) and
//! re-exports the formats of `lending_records`.

pub mod consumer;
mod effects;
pub mod provider;
mod rate;

#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

pub use consumer::{ConsumerBook, ConsumerSettings};
pub use effects::{AuditEvent, GrantChange, LendingGrant, audit_kind};
pub use provider::{Outcome, ProviderBook, ProviderSettings, Refusal};
pub use rate::RateLimit;
// The formats live in `lending_records`, which the directory's view uses
// to fold offers; the machines here use the view. One direction only.
pub use crate::lending_records::*;

//! One error type for every use case, and its one mapping to HTTP status
//! codes (admin socket) and to the CLI's exit codes: 4xx for what the
//! caller can fix, 5xx for faults of this box.

use http::StatusCode;

use crate::config::ConfigError;
use crate::exit::{BadArgument, VerifyFailed};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request itself is wrong (a bad value, a missing field).
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist (a token, a node).
    #[error("{0}")]
    NotFound(String),
    /// The request is fine but this box cannot do it in its role or state
    /// (a token on a node, a rotation of a retired identity).
    #[error("{0}")]
    Conflict(String),
    /// A verification failed (identity log, audit chain, imported bundle).
    #[error("{0}")]
    VerifyFailed(String),
    /// The box's config lacks a setting the request needs (the text names
    /// the key to set): exit 7, as for a config that does not load.
    #[error("{0}")]
    Config(String),
    /// The state store refused (in use, corrupt, no identity, not writable).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The far side (hub, node) could not be reached or refused.
    #[error("{0}")]
    Upstream(String),
    /// Anything else: a fault of this box.
    #[error("{0:#}")]
    Fault(anyhow::Error),
}

impl ServiceError {
    /// The stable code on the wire (`{"error": code, "detail": …}`).
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Invalid(_) => "bad_request",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::VerifyFailed(_) => "verify_failed",
            ServiceError::Config(_) => "config",
            ServiceError::Store(StoreError::NoState(_)) => "no_identity",
            ServiceError::Store(StoreError::Corrupt { .. } | StoreError::NewerSchema { .. }) => {
                "state_unusable"
            }
            ServiceError::Store(_) => "internal",
            ServiceError::Upstream(_) => "upstream",
            ServiceError::Fault(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ServiceError::Invalid(_) => StatusCode::BAD_REQUEST,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::Conflict(_) | ServiceError::Config(_) => StatusCode::CONFLICT,
            ServiceError::VerifyFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::Store(StoreError::NoState(_)) => StatusCode::CONFLICT,
            ServiceError::Store(_) | ServiceError::Fault(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceError::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The error a daemon answered, rebuilt on the CLI's side so that the
    /// exit code is the same with and without a daemon.
    pub fn from_wire(code: &str, detail: String) -> ServiceError {
        match code {
            "bad_request" | "method_not_allowed" => ServiceError::Invalid(detail),
            "not_found" => ServiceError::NotFound(detail),
            "conflict" | "no_identity" => ServiceError::Conflict(detail),
            "verify_failed" => ServiceError::VerifyFailed(detail),
            "config" => ServiceError::Config(detail),
            "upstream" => ServiceError::Upstream(detail),
            _ => ServiceError::Fault(anyhow::anyhow!("{detail}")),
        }
    }

    /// For the CLI: an `anyhow::Error` whose chain `exit::code_for` reads.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            ServiceError::VerifyFailed(d) => VerifyFailed(d).into(),
            ServiceError::Config(d) => ConfigError::Setting(d).into(),
            ServiceError::Invalid(d) => BadArgument(d).into(),
            ServiceError::Store(e) => e.into(),
            ServiceError::Fault(e) => e,
            other => anyhow::anyhow!("{other}"),
        }
    }
}

impl From<anyhow::Error> for ServiceError {
    fn from(e: anyhow::Error) -> Self {
        // Keep the typed causes that have their own exit code.
        if e.downcast_ref::<StoreError>().is_some() {
            return match e.downcast::<StoreError>() {
                Ok(s) => ServiceError::Store(s),
                Err(e) => ServiceError::Fault(e),
            };
        }
        if let Some(v) = e.downcast_ref::<VerifyFailed>() {
            return ServiceError::VerifyFailed(v.0.clone());
        }
        if e.downcast_ref::<ConfigError>().is_some() {
            return ServiceError::Invalid(format!("{e:#}"));
        }
        ServiceError::Fault(e)
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

/// `bail!`-like shorthands.
pub fn invalid<T>(detail: impl Into<String>) -> Result<T> {
    Err(ServiceError::Invalid(detail.into()))
}

pub fn conflict<T>(detail: impl Into<String>) -> Result<T> {
    Err(ServiceError::Conflict(detail.into()))
}

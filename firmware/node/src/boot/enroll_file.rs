//! `enroll.toml`: what it holds and how it becomes a checked enrolment plan.
//! Shared by every source (`enroll_source`, `gw_config`) and by
//! `gondwana enroll`, so none of them depends on another.

use gondwana_core::Boxname;
use gondwana_core::keys::{PublicKey, decode_hex32};
use gondwana_core::token::TokenSecret;
use serde::{Deserialize, Serialize};

/// `enroll.toml`. Written by `gondwana token create --out`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollFile {
    /// The hub's enrolment URL, e.g. `http://hub.example.net:8799`.
    pub hub_url: String,
    /// The hub's signing public key, hex: the pin the grant must verify under.
    pub hub_key: String,
    /// The token secret (`gwt1-…`).
    pub token: String,
    /// The boxname to ask for (a token may fix its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boxname: Option<String>,
}

/// A parsed, checked enrolment instruction.
pub struct EnrollPlan {
    pub hub_url: String,
    pub hub_key: PublicKey,
    pub token: TokenSecret,
    pub boxname: Option<Boxname>,
    /// Where it came from, for status and logs.
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{source_name}: {detail}")]
    Invalid { source_name: String, detail: String },
}

impl EnrollFile {
    pub fn into_plan(self, source: String) -> Result<EnrollPlan, SourceError> {
        let invalid = |detail: String| SourceError::Invalid {
            source_name: source.clone(),
            detail,
        };
        if !self.hub_url.starts_with("http://") {
            return Err(invalid(format!(
                "hub_url {:?} must start with http://",
                self.hub_url
            )));
        }
        let hub_key = decode_hex32(&self.hub_key).map_err(|e| invalid(format!("hub_key: {e}")))?;
        let token = TokenSecret::parse(&self.token).map_err(|e| invalid(format!("token: {e}")))?;
        let boxname = self
            .boxname
            .as_deref()
            .map(Boxname::parse)
            .transpose()
            .map_err(|e| invalid(format!("boxname: {e}")))?;
        Ok(EnrollPlan {
            hub_url: self.hub_url.trim_end_matches('/').to_string(),
            hub_key,
            token,
            boxname,
            source,
        })
    }
}

pub fn parse_toml(text: &str, source: String) -> Result<EnrollPlan, SourceError> {
    let file: EnrollFile = toml::from_str(text).map_err(|e| SourceError::Invalid {
        source_name: source.clone(),
        detail: e.to_string(),
    })?;
    file.into_plan(source)
}

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

/// The keys of enroll.toml, for error reports (`toml_errors`).
const KEYS: &[&str] = &["hub_url", "hub_key", "token", "boxname"];

/// A key of enroll.toml and what is wrong with its value. Never the value:
/// it may be the token (or the token pasted into the wrong key), and these
/// errors reach `status` and the unauthenticated `GET /v1/status`.
#[derive(Debug)]
pub struct BadKey {
    pub key: &'static str,
    pub problem: String,
}

impl EnrollFile {
    /// Checks every value; the error names the key and the rule.
    pub fn check(self) -> Result<EnrollPlan, BadKey> {
        let bad = |key, problem: String| BadKey { key, problem };
        crate::hub_url::check(&self.hub_url).map_err(|p| bad("hub_url", p.to_string()))?;
        let hub_key = decode_hex32(&self.hub_key)
            .map_err(|e| bad("hub_key", format!("not a hex public key ({e})")))?;
        let token = TokenSecret::parse(&self.token).map_err(|e| bad("token", e.to_string()))?;
        let boxname = self
            .boxname
            .as_deref()
            .map(Boxname::parse)
            .transpose()
            .map_err(|_| {
                bad(
                    "boxname",
                    "not a DNS label (a-z, 0-9 and '-', 1-63 characters)".into(),
                )
            })?;
        Ok(EnrollPlan {
            hub_url: self.hub_url.trim_end_matches('/').to_string(),
            hub_key,
            token,
            boxname,
            source: String::new(),
        })
    }

    /// [`check`](Self::check) for values that came without a file (flags,
    /// the admin socket): the error names the key.
    pub fn into_plan(self, source: String) -> Result<EnrollPlan, SourceError> {
        match self.check() {
            Ok(plan) => Ok(EnrollPlan { source, ..plan }),
            Err(BadKey { key, problem }) => Err(SourceError::Invalid {
                source_name: source,
                detail: format!("{key}: {problem}"),
            }),
        }
    }
}

/// Parses and checks an enroll.toml. Errors name the line and the key,
/// never a value (`toml_errors`).
pub fn parse_toml(text: &str, source: String) -> Result<EnrollPlan, SourceError> {
    parse_file(text, &source)?.into_plan(source)
}

/// [`parse_toml`], keeping the file (what `gondwana enroll FILE` sends to
/// the daemon).
pub fn parse_file(text: &str, source: &str) -> Result<EnrollFile, SourceError> {
    let invalid = |detail: String| SourceError::Invalid {
        source_name: source.to_string(),
        detail,
    };
    let file: EnrollFile = toml::from_str(text).map_err(|e| {
        invalid(crate::toml_errors::describe(
            text,
            &e,
            KEYS,
            crate::toml_errors::Values::Never,
        ))
    })?;
    match file.clone().check() {
        Ok(_) => Ok(file),
        Err(BadKey { key, problem }) => Err(invalid(
            match crate::toml_errors::line_of_key(text, "", key) {
                Some(line) => format!("line {line}, key `{key}`: {problem}"),
                None => format!("key `{key}`: {problem}"),
            },
        )),
    }
}

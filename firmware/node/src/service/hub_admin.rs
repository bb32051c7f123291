//! The hub's use cases: tokens and nodes. Run by the daemon for the admin
//! socket and in-process by the CLI when no daemon runs, so the two paths
//! cannot drift apart.

use anyhow::Context;
use gondwana_core::Boxname;
use gondwana_core::hash::to_hex;
use serde_json::{Value, json};

use super::error::{Result, ServiceError, conflict, invalid};
use super::request::{DEFAULT_TOKEN_TTL_SECS, MAX_TOKEN_TTL_SECS, NodeRevoke, TokenCreate};
use super::views;
use crate::boot::enroll_file::EnrollFile;
use crate::clock::now_unix;
use crate::config::{Config, Role};
use crate::random;
use crate::store::StateStore;
use crate::store::registry::{self, NewToken};

fn require_hub(config: &Config) -> Result<()> {
    if config.role != Role::Hub {
        return conflict(
            "this is not a hub (config role = \"node\"); tokens and nodes live on the hub",
        );
    }
    Ok(())
}

/// Creates a token and returns it with a ready `enroll.toml` (the only
/// time the secret exists outside the node that will use it).
pub fn token_create(store: &StateStore, config: &Config, spec: TokenCreate) -> Result<Value> {
    require_hub(config)?;
    if spec.uses == 0 {
        return invalid("--uses must be at least 1");
    }
    let boxname = spec
        .boxname
        .as_deref()
        .map(Boxname::parse)
        .transpose()
        .map_err(|e| ServiceError::Invalid(format!("--boxname: {e}")))?;
    if spec.tags.len() > gondwana_core::directory::MAX_NODE_TAGS {
        return invalid(format!(
            "--tag: at most {} tags",
            gondwana_core::directory::MAX_NODE_TAGS
        ));
    }
    for tag in &spec.tags {
        if tag.is_empty() || tag.len() > 63 || !tag.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid(format!("--tag {tag:?}: 1-63 printable characters"));
        }
    }
    let ttl_secs = token_ttl(&spec)?;
    // Before the token exists: a refusal changes nothing.
    let hub_url = enroll_hub_url(config)?;
    let identity = store.require_identity()?;
    let (secret, record) = registry::create_token(
        store,
        *random::seed().map_err(ServiceError::Fault)?,
        NewToken {
            max_uses: spec.uses,
            ttl_secs,
            boxname,
            tags: spec.tags,
            replace: spec.replace,
        },
        now_unix(),
    )?;
    let file = EnrollFile {
        hub_url,
        hub_key: to_hex(&identity.state.signing_key),
        token: secret.to_text().to_string(),
        boxname: None,
    };
    let enroll_toml = toml::to_string(&file).context("writing enroll.toml")?;
    Ok(json!({
        "token": file.token,
        "token_id": record.id,
        "enroll_toml": enroll_toml,
        "record": views::token(&record),
    }))
}

/// The lifetime to give: the asked one, 7 days by default, or none for
/// `never_expires`. Zero (a secret dead on arrival) and absurd ones are
/// refused.
fn token_ttl(spec: &TokenCreate) -> Result<Option<u64>> {
    match (spec.ttl_secs, spec.never_expires) {
        (Some(_), true) => invalid("--ttl: a lifetime and never are exclusive"),
        (None, true) => Ok(None),
        (None, false) => Ok(Some(DEFAULT_TOKEN_TTL_SECS)),
        (Some(0), false) => invalid("--ttl: a token must live at least 1 second"),
        (Some(t), false) if t > MAX_TOKEN_TTL_SECS => invalid(format!(
            "--ttl: at most {} days; `--ttl never` for a token that does not expire",
            MAX_TOKEN_TTL_SECS / 86_400
        )),
        (Some(t), false) => Ok(Some(t)),
    }
}

/// The URL a node is told to enrol at (`hub_url` of enroll.toml):
/// `[hub] public_url`, else `http://<hub.enroll_listen>` when that is an
/// address a node can reach. Never a wildcard or a placeholder: a node
/// given one would try to enrol forever.
pub fn enroll_hub_url(config: &Config) -> Result<String> {
    let set_public_url = "set [hub] public_url to the URL nodes reach the enrolment \
                          listener at, e.g. public_url = \"http://hub.example.net:8799\"";
    if let Some(url) = &config.hub.public_url {
        return match crate::hub_url::check(url) {
            Ok(()) => Ok(url.clone()),
            Err(problem) => Err(ServiceError::Config(format!(
                "[hub] public_url {problem}; {set_public_url}"
            ))),
        };
    }
    match config.hub.enroll_listen {
        Some(addr) if addr.ip().is_unspecified() => Err(ServiceError::Config(format!(
            "no hub URL for enroll.toml: [hub] enroll_listen = \"{addr}\" is a wildcard \
             address, which nodes cannot reach; {set_public_url}"
        ))),
        Some(addr) => Ok(format!("http://{addr}")),
        None => Err(ServiceError::Config(format!(
            "no hub URL for enroll.toml: neither [hub] public_url nor [hub] enroll_listen is \
             set; {set_public_url} (and enroll_listen to the address the hub listens on)"
        ))),
    }
}

pub fn token_list(store: &StateStore, config: &Config) -> Result<Value> {
    require_hub(config)?;
    Ok(Value::Array(
        store.tokens()?.iter().map(views::token).collect(),
    ))
}

pub fn token_revoke(store: &StateStore, config: &Config, id: &str) -> Result<Value> {
    require_hub(config)?;
    if !registry::revoke_token(store, id, now_unix())? {
        return Err(ServiceError::NotFound(format!("no token with id {id}")));
    }
    Ok(json!({"revoked": id}))
}

pub fn node_list(store: &StateStore, config: &Config) -> Result<Value> {
    require_hub(config)?;
    Ok(Value::Array(
        store
            .nodes()?
            .iter()
            .map(|n| views::node(n, None))
            .collect(),
    ))
}

pub fn node_show(store: &StateStore, config: &Config, who: &str) -> Result<Value> {
    require_hub(config)?;
    let node = store
        .nodes()?
        .into_iter()
        .find(|n| n.node_id == who || (n.boxname == who && !n.revoked))
        .ok_or_else(|| ServiceError::NotFound(format!("no node {who}")))?;
    let mirror = store.mirror_len(&node.node_id)?;
    Ok(views::node(&node, Some(mirror)))
}

/// Revokes a node (by node id or live boxname); returns its record.
pub fn node_revoke(store: &StateStore, config: &Config, request: &NodeRevoke) -> Result<Value> {
    require_hub(config)?;
    let identity = store.require_identity()?;
    let entry = registry::revoke_node(
        store,
        &identity.signing,
        &request.who,
        &request.reason,
        now_unix(),
    )?
    .ok_or_else(|| ServiceError::NotFound(format!("no node {}", request.who)))?;
    Ok(views::node(&entry, None))
}

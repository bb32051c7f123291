//! The hub's use cases: tokens and nodes. Run by the daemon for the admin
//! socket and in-process by the CLI when no daemon runs, so the two paths
//! cannot drift apart.

use anyhow::Context;
use gondwana_core::Boxname;
use gondwana_core::hash::to_hex;
use serde_json::{Value, json};

use super::error::{Result, ServiceError, conflict, invalid};
use super::request::{NodeRevoke, TokenCreate};
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
    for tag in &spec.tags {
        if tag.is_empty() || tag.len() > 63 || !tag.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid(format!("--tag {tag:?}: 1-63 printable characters"));
        }
    }
    let identity = store.require_identity()?;
    let (secret, record) = registry::create_token(
        store,
        *random::seed().map_err(ServiceError::Fault)?,
        NewToken {
            max_uses: spec.uses,
            ttl_secs: spec.ttl_secs,
            boxname,
            tags: spec.tags,
            replace: spec.replace,
        },
        now_unix(),
    )?;
    let hub_url = config.hub.public_url.clone().unwrap_or_else(|| {
        let addr = config
            .hub
            .enroll_listen
            .map(|a| a.to_string())
            .unwrap_or_else(|| "HUB-ADDRESS:PORT".into());
        format!("http://{addr}")
    });
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

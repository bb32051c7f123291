//! Admin actions, one function each, used both by the CLI directly (no
//! daemon running) and by the daemon's root-only admin socket — so the two
//! paths cannot drift apart. Inputs and outputs are JSON.

use anyhow::{Context, anyhow, bail};
use gondwana_core::Boxname;
use gondwana_core::hash::to_hex;
use gondwana_core::keys::wg_key_to_base64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::boot::enroll_source::EnrollFile;
use crate::clock::now_unix;
use crate::config::{Config, Role};
use crate::random;
use crate::store::registry::{self, NewToken, NodeEntry, TokenRecord};
use crate::store::{StateStore, StoredIdentity};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    pub uses: u32,
    pub ttl_secs: Option<u64>,
    pub boxname: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub replace: bool,
}

fn require_hub(config: &Config) -> anyhow::Result<()> {
    if config.role != Role::Hub {
        bail!("this is not a hub (config role = \"node\"); tokens and nodes live on the hub");
    }
    Ok(())
}

/// Creates a token and returns it with a ready `enroll.toml` (the only
/// time the secret exists outside the node that will use it).
pub fn token_create(
    store: &StateStore,
    config: &Config,
    spec: TokenCreate,
) -> anyhow::Result<Value> {
    require_hub(config)?;
    if spec.uses == 0 {
        bail!("--uses must be at least 1");
    }
    let boxname = spec
        .boxname
        .as_deref()
        .map(Boxname::parse)
        .transpose()
        .map_err(|e| anyhow!("--boxname: {e}"))?;
    for tag in &spec.tags {
        if tag.is_empty() || tag.len() > 63 || !tag.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("--tag {tag:?}: 1-63 printable characters");
        }
    }
    let identity = store.require_identity()?;
    let (secret, record) = registry::create_token(
        store,
        *random::seed()?,
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
        "record": token_json(&record),
    }))
}

pub fn token_json(t: &TokenRecord) -> Value {
    json!({
        "id": t.id, "uses": t.uses, "max_uses": t.max_uses, "created_unix": t.created_unix,
        "expires_unix": t.expires_unix, "boxname": t.boxname, "tags": t.tags,
        "revoked": t.revoked, "replace": t.replace,
    })
}

pub fn token_list(store: &StateStore, config: &Config) -> anyhow::Result<Value> {
    require_hub(config)?;
    Ok(Value::Array(
        store.tokens()?.iter().map(token_json).collect(),
    ))
}

pub fn token_revoke(store: &StateStore, config: &Config, id: &str) -> anyhow::Result<Value> {
    require_hub(config)?;
    if !registry::revoke_token(store, id, now_unix())? {
        bail!("no token with id {id}");
    }
    Ok(json!({"revoked": id}))
}

pub fn node_json(n: &NodeEntry, mirror_len: Option<u64>) -> Value {
    json!({
        "node_id": n.node_id, "boxname": n.boxname, "mesh_ip": n.mesh_ip.to_string(),
        "signing_public_key": to_hex(&n.signing_key),
        "wireguard_public_key": wg_key_to_base64(&n.wireguard_key),
        "token_id": n.token_id, "tags": n.tags, "enrolled_unix": n.enrolled_unix,
        "revoked": n.revoked, "identity_log_entries": mirror_len,
        // The log the hub last applied to this record (enrolment, mirror
        // push or re-enrolment): equal to the mirror's length and tip.
        "identity_log_len": n.identity_len, "identity_log_tip": to_hex(&n.identity_tip),
    })
}

pub fn node_list(store: &StateStore, config: &Config) -> anyhow::Result<Value> {
    require_hub(config)?;
    Ok(Value::Array(
        store.nodes()?.iter().map(|n| node_json(n, None)).collect(),
    ))
}

pub fn node_show(store: &StateStore, config: &Config, who: &str) -> anyhow::Result<Value> {
    require_hub(config)?;
    let node = store
        .nodes()?
        .into_iter()
        .find(|n| n.node_id == who || (n.boxname == who && !n.revoked))
        .ok_or_else(|| anyhow!("no node {who}"))?;
    let mirror = store.mirror_len(&node.node_id)?;
    Ok(node_json(&node, Some(mirror)))
}

pub fn node_revoke(
    store: &StateStore,
    config: &Config,
    identity: &StoredIdentity,
    who: &str,
    reason: &str,
) -> anyhow::Result<Value> {
    require_hub(config)?;
    let entry = registry::revoke_node(store, &identity.signing, who, reason, now_unix())?
        .ok_or_else(|| anyhow!("no node {who}"))?;
    Ok(node_json(&entry, None))
}

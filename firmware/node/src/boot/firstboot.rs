//! `gondwana firstboot`: provision the identity once, in one transaction.
//!
//! Idempotent: with an identity present it changes nothing and reports it.
//! A power cut at any instant leaves either no identity or one complete one,
//! because secrets, genesis entry and audit record commit together.

use anyhow::Context;
use gondwana_core::audit::{Field, kind};
use gondwana_core::identity_log::build;
use gondwana_core::keys::{SigningSecret, WireguardSecret};
use gondwana_core::{Boxname, NodeId};

use crate::boot::adopt;
use crate::config::Config;
use crate::random;
use crate::store::{self, OpenMode, StateStore, StoredIdentity};

pub enum KeyOrigin {
    Generated,
    Adopted(String),
    /// The identity already existed; nothing was generated.
    Existing,
}

pub struct Outcome {
    pub identity: StoredIdentity,
    pub origin: KeyOrigin,
    /// Set when the config names a key that differs from the identity's.
    pub warning: Option<String>,
}

pub fn run(state_dir: &std::path::Path, config: &Config) -> anyhow::Result<Outcome> {
    let store = StateStore::open(state_dir, OpenMode::CreateIfMissing)?;
    let adopt_source = config.adopt_source();

    if let Some(identity) = store.identity()? {
        // The identity's key wins; the configured file only earns a warning
        // (a key file deleted after first boot must not stop later boots).
        let warning = match &adopt_source {
            Some(source) => match adopt::read_existing_key(source) {
                Ok(configured) => {
                    (configured.public_key() != identity.state.wireguard_key).then(|| {
                        format!(
                            "{} holds a different WireGuard key than this node's identity; \
                         keeping the identity's key (a key that exists is only replaced \
                         by `gondwana identity rotate --wireguard`)",
                            adopt::describe(source)
                        )
                    })
                }
                Err(e) => Some(format!("{e:#}; keeping the identity's WireGuard key")),
            },
            None => None,
        };
        return Ok(Outcome {
            identity,
            origin: KeyOrigin::Existing,
            warning,
        });
    }

    // Read an adopted key before generating anything: if it is unreadable we
    // stop here rather than invent a new one.
    let (wireguard, origin) = match &adopt_source {
        Some(source) => (
            adopt::read_existing_key(source)?,
            KeyOrigin::Adopted(adopt::describe(source)),
        ),
        None => (
            WireguardSecret::from_bytes(*random::seed()?),
            KeyOrigin::Generated,
        ),
    };
    let signing = SigningSecret::from_seed(*random::seed()?);
    let node_id = NodeId::from_genesis_key(&signing.public_key());
    let boxname = config
        .boxname()
        .unwrap_or_else(|| Boxname::derived_from(&node_id));
    let (genesis, state) = build::genesis(&signing, wireguard.public_key(), boxname)
        .context("building the genesis entry")?;

    let now = crate::clock::now_unix();
    let txn = store.write()?;
    store::provision_identity(&txn, &signing, &wireguard, &genesis)?;
    store::append_audit(
        &txn,
        kind::IDENTITY_GENESIS,
        &[
            Field::text("node_id", state.node_id.as_str()),
            Field::text("boxname", state.boxname.as_str()),
        ],
        now,
    )?;
    if let KeyOrigin::Adopted(from) = &origin {
        store::append_audit(
            &txn,
            kind::IDENTITY_ADOPT_WIREGUARD,
            &[Field::text("source", from)],
            now,
        )?;
    }
    store.commit(txn)?;

    Ok(Outcome {
        identity: StoredIdentity {
            state,
            log: vec![genesis],
            signing,
            wireguard,
        },
        origin,
        warning: None,
    })
}

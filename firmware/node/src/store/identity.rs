//! The identity in the store: secrets plus the signed log that names their
//! public halves. Loading verifies the whole log and that the secrets match
//! it, so a damaged store is reported, never silently used.

use gondwana_core::identity_log::{IdentityState, LogError, verify_log};
use gondwana_core::keys::{SigningSecret, WireguardSecret};
use redb::{ReadableTable, WriteTransaction};

use zeroize::Zeroizing;

use super::schema::{IDENTITY_LOG, KEY_SIGNING_SEED, KEY_WIREGUARD_PRIVATE, SECRETS};
use super::{StateStore, StoreError};

pub struct StoredIdentity {
    pub state: IdentityState,
    pub log: Vec<Vec<u8>>,
    pub signing: SigningSecret,
    // Read by the data plane when it configures the interface.
    #[allow(dead_code)]
    pub wireguard: WireguardSecret,
}

/// `Ok(None)` when no identity has been provisioned.
pub fn load_identity(
    store: &StateStore,
    log_table: &impl ReadableTable<u64, &'static [u8]>,
    secrets: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<StoredIdentity>, StoreError> {
    let integrity = |detail: String| StoreError::Corrupt {
        path: store.path().to_path_buf(),
        detail,
    };
    let signing_seed = read_secret(store, secrets, KEY_SIGNING_SEED)?;
    let wireguard_private = read_secret(store, secrets, KEY_WIREGUARD_PRIVATE)?;
    let entry_count = log_table.len().map_err(|e| store.io_error(e))?;
    let (Some(signing_seed), Some(wireguard_private)) = (signing_seed, wireguard_private) else {
        if entry_count == 0 {
            return Ok(None);
        }
        return Err(integrity(
            "identity log present but its secrets are missing".into(),
        ));
    };
    let mut log = Vec::new();
    for (index, item) in log_table.iter().map_err(|e| store.io_error(e))?.enumerate() {
        let (key, value) = item.map_err(|e| store.io_error(e))?;
        if key.value() != index as u64 {
            return Err(integrity(format!(
                "identity log has a gap at entry {index}"
            )));
        }
        log.push(value.value().to_vec());
    }
    let state = verify_log(&log)
        .map_err(|e: LogError| integrity(format!("identity log does not verify: {e}")))?;
    let signing = SigningSecret::from_seed(*signing_seed);
    let wireguard = WireguardSecret::from_bytes(*wireguard_private);
    if signing.public_key() != state.signing_key || wireguard.public_key() != state.wireguard_key {
        return Err(integrity(
            "stored secrets do not match the identity log".into(),
        ));
    }
    Ok(Some(StoredIdentity {
        state,
        log,
        signing,
        wireguard,
    }))
}

fn read_secret(
    store: &StateStore,
    secrets: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<Zeroizing<[u8; 32]>>, StoreError> {
    let Some(value) = secrets.get(name).map_err(|e| store.io_error(e))? else {
        return Ok(None);
    };
    let mut out = Zeroizing::new([0u8; 32]);
    if value.value().len() != 32 {
        return Err(StoreError::Corrupt {
            path: store.path().to_path_buf(),
            detail: format!("secret {name} has the wrong length"),
        });
    }
    out.copy_from_slice(value.value());
    Ok(Some(out))
}

/// Writes secrets and the genesis entry into `txn` (the caller commits).
pub fn provision_identity(
    store: &StateStore,
    txn: &WriteTransaction,
    signing: &SigningSecret,
    wireguard: &WireguardSecret,
    genesis: &[u8],
) -> Result<(), StoreError> {
    write_secrets(store, txn, Some(signing), Some(wireguard))?;
    record_identity_entry(store, txn, 0, genesis, None, None)
}

/// Appends a log entry and replaces whichever secrets it rotated, in `txn`.
pub fn record_identity_entry(
    store: &StateStore,
    txn: &WriteTransaction,
    seq: u64,
    raw: &[u8],
    new_signing: Option<&SigningSecret>,
    new_wireguard: Option<&WireguardSecret>,
) -> Result<(), StoreError> {
    let mut log = txn
        .open_table(IDENTITY_LOG)
        .map_err(|e| store.io_error(e))?;
    log.insert(seq, raw).map_err(|e| store.io_error(e))?;
    drop(log);
    write_secrets(store, txn, new_signing, new_wireguard)
}

fn write_secrets(
    store: &StateStore,
    txn: &WriteTransaction,
    signing: Option<&SigningSecret>,
    wireguard: Option<&WireguardSecret>,
) -> Result<(), StoreError> {
    let mut secrets = txn.open_table(SECRETS).map_err(|e| store.io_error(e))?;
    if let Some(s) = signing {
        secrets
            .insert(KEY_SIGNING_SEED, &s.seed()[..])
            .map_err(|e| store.io_error(e))?;
    }
    if let Some(w) = wireguard {
        secrets
            .insert(KEY_WIREGUARD_PRIVATE, &w.to_bytes()[..])
            .map_err(|e| store.io_error(e))?;
    }
    Ok(())
}

/// The identity as seen inside a write transaction (before changing it).
pub fn identity_in(
    store: &StateStore,
    txn: &WriteTransaction,
) -> Result<StoredIdentity, StoreError> {
    let log = txn
        .open_table(IDENTITY_LOG)
        .map_err(|e| store.io_error(e))?;
    let secrets = txn.open_table(SECRETS).map_err(|e| store.io_error(e))?;
    load_identity(store, &log, &secrets)?.ok_or_else(|| store.no_identity())
}

impl StateStore {
    /// The identity as of a fresh read snapshot.
    pub fn identity(&self) -> Result<Option<StoredIdentity>, StoreError> {
        let txn = self.read()?;
        let log = txn.open_table(IDENTITY_LOG).map_err(|e| self.io_error(e))?;
        let secrets = txn.open_table(SECRETS).map_err(|e| self.io_error(e))?;
        load_identity(self, &log, &secrets)
    }

    /// Like [`Self::identity`], but an absent identity is an error.
    pub fn require_identity(&self) -> Result<StoredIdentity, StoreError> {
        self.identity()?.ok_or_else(|| self.no_identity())
    }

    fn no_identity(&self) -> StoreError {
        StoreError::NoState(self.path().parent().unwrap_or(self.path()).to_path_buf())
    }
}

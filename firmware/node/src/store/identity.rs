//! The identity in the store: secrets plus the signed log that names their
//! public halves. Loading verifies the whole log and that the secrets match
//! it, so a damaged store is reported, never silently used.

use std::path::Path;

use gondwana_core::identity_log::{IdentityState, LogError, verify_log};
use gondwana_core::keys::{SigningSecret, WireguardSecret};
use redb::ReadableTable;
use zeroize::Zeroizing;

use super::schema::{IDENTITY_LOG, KEY_SIGNING_SEED, KEY_WIREGUARD_PRIVATE, SECRETS};
use super::table::{Table, corrupt};
use super::{StateStore, StoreError, WriteTxn};

pub struct StoredIdentity {
    pub state: IdentityState,
    pub log: Vec<Vec<u8>>,
    pub signing: SigningSecret,
    // Read by the data plane when it configures the interface.
    #[allow(dead_code)]
    pub wireguard: WireguardSecret,
}

/// `Ok(None)` when no identity has been provisioned.
pub fn load_identity<L, S>(
    log_table: &Table<'_, u64, &'static [u8], L>,
    secrets: &Table<'_, &'static str, &'static [u8], S>,
) -> Result<Option<StoredIdentity>, StoreError>
where
    L: ReadableTable<u64, &'static [u8]>,
    S: ReadableTable<&'static str, &'static [u8]>,
{
    let integrity = |detail: String| corrupt(secrets.path(), detail);
    let signing_seed = read_secret(secrets, KEY_SIGNING_SEED)?;
    let wireguard_private = read_secret(secrets, KEY_WIREGUARD_PRIVATE)?;
    let entry_count = log_table.len()?;
    let (Some(signing_seed), Some(wireguard_private)) = (signing_seed, wireguard_private) else {
        if entry_count == 0 {
            return Ok(None);
        }
        return Err(integrity(
            "identity log present but its secrets are missing".into(),
        ));
    };
    let mut log = Vec::new();
    for (index, item) in log_table.iter()?.enumerate() {
        let (key, value) = log_table.entry(item)?;
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

fn read_secret<S: ReadableTable<&'static str, &'static [u8]>>(
    secrets: &Table<'_, &'static str, &'static [u8], S>,
    name: &str,
) -> Result<Option<Zeroizing<[u8; 32]>>, StoreError> {
    let Some(value) = secrets.get(name)? else {
        return Ok(None);
    };
    let mut out = Zeroizing::new([0u8; 32]);
    if value.value().len() != 32 {
        return Err(corrupt(
            secrets.path(),
            format!("secret {name} has the wrong length"),
        ));
    }
    out.copy_from_slice(value.value());
    Ok(Some(out))
}

/// Writes secrets and the genesis entry into `txn` (the caller commits).
pub fn provision_identity(
    txn: &WriteTxn<'_>,
    signing: &SigningSecret,
    wireguard: &WireguardSecret,
    genesis: &[u8],
) -> Result<(), StoreError> {
    write_secrets(txn, Some(signing), Some(wireguard))?;
    record_identity_entry(txn, 0, genesis, None, None)
}

/// Appends a log entry and replaces whichever secrets it rotated, in `txn`.
pub fn record_identity_entry(
    txn: &WriteTxn<'_>,
    seq: u64,
    raw: &[u8],
    new_signing: Option<&SigningSecret>,
    new_wireguard: Option<&WireguardSecret>,
) -> Result<(), StoreError> {
    txn.open(IDENTITY_LOG)?.insert(seq, raw)?;
    write_secrets(txn, new_signing, new_wireguard)
}

fn write_secrets(
    txn: &WriteTxn<'_>,
    signing: Option<&SigningSecret>,
    wireguard: Option<&WireguardSecret>,
) -> Result<(), StoreError> {
    let mut secrets = txn.open(SECRETS)?;
    if let Some(s) = signing {
        secrets.insert(KEY_SIGNING_SEED, &s.seed()[..])?;
    }
    if let Some(w) = wireguard {
        secrets.insert(KEY_WIREGUARD_PRIVATE, &w.to_bytes()[..])?;
    }
    Ok(())
}

/// The identity as seen inside a write transaction (before changing it).
pub fn identity_in(txn: &WriteTxn<'_>) -> Result<StoredIdentity, StoreError> {
    load_identity(&txn.open(IDENTITY_LOG)?, &txn.open(SECRETS)?)?
        .ok_or_else(|| no_identity(txn.path()))
}

impl StateStore {
    /// The identity as of a fresh read snapshot.
    pub fn identity(&self) -> Result<Option<StoredIdentity>, StoreError> {
        let txn = self.read()?;
        load_identity(&txn.open(IDENTITY_LOG)?, &txn.open(SECRETS)?)
    }

    /// Like [`Self::identity`], but an absent identity is an error.
    pub fn require_identity(&self) -> Result<StoredIdentity, StoreError> {
        self.identity()?.ok_or_else(|| no_identity(self.path()))
    }
}

fn no_identity(db_file: &Path) -> StoreError {
    StoreError::NoState(db_file.parent().unwrap_or(db_file).to_path_buf())
}

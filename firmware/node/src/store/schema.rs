//! Tables and schema versions. The version lives in the `meta` table; a
//! file is migrated forward one step at a time, each step its own
//! transaction, and a file from a newer gondwana is refused untouched.

use std::path::Path;

use gondwana_core::hub_enrol::{NodeEntry, TokenRecord};
use redb::{Database, ReadableDatabase, TableDefinition, TableHandle};

use super::StoreError;
use super::table::{ReadTxn, RecordTable, WriteTxn, corrupt, fault};

/// Small named values: schema version, audit head.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Private keys: never leave this table except into memory.
pub const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// Signed identity-log entries by sequence number.
pub const IDENTITY_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("identity_log");
/// Audit records by sequence number.
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// Hub: enrolment tokens by id (postcard `TokenRecord`; only a verifier hash
/// of each secret).
pub const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
/// Hub: enrolled nodes by node id (postcard `NodeEntry`).
pub const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
/// The same two tables, typed by their records.
pub const TOKEN_RECORDS: RecordTable<TokenRecord> = RecordTable::new(TOKENS, "token");
pub const NODE_RECORDS: RecordTable<NodeEntry> = RecordTable::new(NODES, "node");
/// Hub: mesh address (u32) → node id, the allocation table.
pub const ADDRESSES: TableDefinition<u32, &str> = TableDefinition::new("addresses");
/// Hub: boxname → node id of its live holder.
pub const BOXNAMES: TableDefinition<&str, &str> = TableDefinition::new("boxnames");
/// Hub: mirrored identity logs, (node id, seq) → signed entry.
pub const IDENTITY_MIRROR: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("identity_mirror");
/// Both: the signed directory, seq → entry (the hub writes, nodes replicate).
pub const DIRECTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("directory");
/// Node: its enrolment (grant, hub URL and pin).
pub const ENROLMENT: TableDefinition<&str, &[u8]> = TableDefinition::new("enrolment");
/// Both: firewall grants, (IPv4 address as u32, TCP port) → absolute expiry
/// in Unix seconds (0 = none). Re-applied to the kernel at every start.
pub const GRANTS: TableDefinition<(u32, u16), u64> = TableDefinition::new("grants");
/// Both: endpoint candidates (docs/paths.md), by key: the hub's accepted
/// reports (`report/<node id>`) and snapshot serial, a node's last verified
/// snapshot and its last report seq (store/candidates.rs).
pub const CANDIDATES: TableDefinition<&str, &[u8]> = TableDefinition::new("candidates");
/// Both: where each firewall grant came from, keyed as `grants`: `operator`,
/// `hub` or `subscription <service> <consumer node id>` (store/grants.rs).
/// A grant without a row here predates schema 5 (an operator's).
pub const GRANT_ORIGINS: TableDefinition<(u32, u16), &str> = TableDefinition::new("grant_origins");
/// Both: lending state (docs/services.md), by key: the provider's book
/// (pending and active subscriptions) and the consumer's (wanted
/// subscriptions and counters), each one serialised record
/// (store/lending.rs).
pub const LENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("lending");
/// Node: its own service offers — signed publications the hub has not
/// taken yet, and the last serial signed per name (store/offers.rs).
pub const OFFERS: TableDefinition<&str, &[u8]> = TableDefinition::new("offers");

pub const KEY_SCHEMA_VERSION: &str = "schema_version";
pub const KEY_DIRECTORY_HEAD: &str = "directory_head";
pub const KEY_AUDIT_HEAD: &str = "audit_head";
pub const KEY_SIGNING_SEED: &str = "signing_seed";
pub const KEY_WIREGUARD_PRIVATE: &str = "wireguard_private";

/// Version 0 is a file with no tables (a file redb has just initialised).
/// Version 1: meta, secrets, identity_log, audit.
/// Version 2: + tokens, nodes, addresses, boxnames, identity_mirror,
/// directory, enrolment (enrolment and the hub).
/// Version 3: + grants (the firewall).
/// Version 4: + candidates (direct paths).
/// Version 5: + offers (a provider's own lent services), grant_origins,
/// lending (subscriptions).
pub const SCHEMA_VERSION: u32 = 5;

pub fn migrate(db: &Database, path: &Path) -> Result<(), StoreError> {
    loop {
        let found = read_version(db, path)?;
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        migrate_step(db, path, found)?;
    }
}

/// Refuses a newer or foreign file (through any handle, read-only too) and
/// returns the version found.
pub fn check_supported(db: &impl ReadableDatabase, path: &Path) -> Result<u32, StoreError> {
    let found = read_version(db, path)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

fn read_version(db: &impl ReadableDatabase, path: &Path) -> Result<u32, StoreError> {
    let txn = ReadTxn::new(db.begin_read().map_err(|e| fault(path, e))?, path);
    let tables = txn.table_names()?;
    if tables.is_empty() {
        return Ok(0);
    }
    if !tables.iter().any(|t| t == META.name()) {
        return Err(corrupt(
            path,
            format!("no meta table (tables: {})", tables.join(", ")),
        ));
    }
    let meta = txn.open(META)?;
    let value = meta
        .get(KEY_SCHEMA_VERSION)?
        .ok_or_else(|| corrupt(path, "meta table has no schema version"))?;
    let bytes: [u8; 4] = value
        .value()
        .try_into()
        .map_err(|_| corrupt(path, "schema version is not 4 bytes"))?;
    Ok(u32::from_le_bytes(bytes))
}

fn migrate_step(db: &Database, path: &Path, from: u32) -> Result<(), StoreError> {
    let txn = WriteTxn::new(db.begin_write().map_err(|e| fault(path, e))?, path);
    {
        let mut meta = txn.open(META)?;
        match from {
            0 => {
                txn.open(SECRETS)?;
                txn.open(IDENTITY_LOG)?;
                txn.open(AUDIT)?;
            }
            1 => {
                txn.open(TOKENS)?;
                txn.open(NODES)?;
                txn.open(ADDRESSES)?;
                txn.open(BOXNAMES)?;
                txn.open(IDENTITY_MIRROR)?;
                txn.open(DIRECTORY)?;
                txn.open(ENROLMENT)?;
            }
            2 => {
                txn.open(GRANTS)?;
            }
            3 => {
                txn.open(CANDIDATES)?;
            }
            4 => {
                txn.open(GRANT_ORIGINS)?;
                txn.open(LENDING)?;
                txn.open(OFFERS)?;
            }
            // Each future version adds one arm here that upgrades `from` to
            // `from + 1`; nothing else in the code reads old layouts.
            _ => {
                return Err(corrupt(
                    path,
                    format!("no migration path from schema {from}"),
                ));
            }
        }
        meta.insert(KEY_SCHEMA_VERSION, &(from + 1).to_le_bytes()[..])?;
    }
    txn.commit()
}

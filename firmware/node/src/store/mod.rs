//! The node's state on the state partition: one redb file, one lock file.
//!
//! `<state-dir>/gondwana.redb` holds identity secrets, the identity log and
//! the audit chain; `<state-dir>/gondwana.lock` is flock-ed by whichever
//! gondwana process has the state open, so a second process is refused with a
//! clear error before it touches the database.

mod audit;
mod candidates;
pub mod directory;
pub mod enrolment;
pub mod grants;
mod head;
mod identity;
pub mod lending;
mod lock;
pub mod offers;
mod path_endpoints;
pub mod registry;
pub mod revocation;
pub mod rotations;
mod schema;
mod table;
mod token_lookup;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, ReadOnlyDatabase, ReadableDatabase};

pub use audit::{append_audit, audit_records, verify_audit};
pub use identity::{StoredIdentity, identity_in, provision_identity, record_identity_entry};
pub use lock::StateLock;
pub use table::{ReadTxn, WriteTxn};

pub const DB_FILE: &str = "gondwana.redb";
pub const LOCK_FILE: &str = "gondwana.lock";

/// redb's default page cache is 1 GiB; our state is kilobytes.
const CACHE_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {dir} is not writable: {source}")]
    NotWritable { dir: PathBuf, source: io::Error },
    #[error("state directory {dir} is in use by another gondwana process{holder}")]
    InUse { dir: PathBuf, holder: String },
    #[error("no state in {0} yet: run `gondwana firstboot` first")]
    NoState(PathBuf),
    #[error("state file {path} is unreadable (corrupt or not a gondwana state file): {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "state file {path} has schema version {found}, newer than this gondwana supports \
         ({supported}); refusing to touch it (run a newer gondwana)"
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("state file {path}: {detail}")]
    Io { path: PathBuf, detail: String },
}

/// Whether opening may create the state directory and file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    CreateIfMissing,
    ExistingOnly,
    /// For commands that only look: never writes to the file (flash wear,
    /// read-only media), unless it must be repaired after a crash or
    /// migrated from an older schema first.
    ReadOnly,
}

enum Db {
    Rw(Database),
    Ro(ReadOnlyDatabase),
}

pub struct StateStore {
    db: Db,
    path: PathBuf,
    // Held for as long as the store is open; released on drop.
    _lock: Option<StateLock>,
}

impl StateStore {
    pub fn open(dir: &Path, mode: OpenMode) -> Result<StateStore, StoreError> {
        let path = dir.join(DB_FILE);
        let exists = fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        if mode != OpenMode::CreateIfMissing && !exists {
            return Err(StoreError::NoState(dir.to_path_buf()));
        }
        let lock = if mode == OpenMode::ReadOnly {
            // Permissions are tightened even when only looking (a metadata
            // change, not a write to the state); best effort on read-only media.
            for (p, m) in [(dir, 0o700), (path.as_path(), 0o600)] {
                if fs::metadata(p).is_ok_and(|md| md.permissions().mode() & 0o077 != 0) {
                    let _ = fs::set_permissions(p, fs::Permissions::from_mode(m));
                }
            }
            StateLock::acquire_for_reading(dir)?
        } else {
            prepare_dir(dir)?;
            Some(StateLock::acquire(dir)?)
        };
        // Looked at again under the lock: a concurrent first boot may have
        // created and provisioned the file since the look above, and
        // initialising it again would replace that identity with another.
        if !fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
            initialise_new(&path)?;
        }
        // Look before writing: a newer or foreign file is refused through a
        // read-only handle, so refusing it never changes a byte.
        match Database::builder()
            .set_cache_size(CACHE_BYTES)
            .open_read_only(&path)
        {
            Ok(ro) => {
                let version = schema::check_supported(&ro, &path)?;
                if mode == OpenMode::ReadOnly && version == schema::SCHEMA_VERSION {
                    return Ok(StateStore {
                        db: Db::Ro(ro),
                        path,
                        _lock: lock,
                    });
                }
            }
            // Not shut down cleanly: only a writable open repairs it.
            Err(DatabaseError::RepairAborted) => {}
            Err(e) => return Err(classify_open(&path, e)),
        }
        let db = open_db(&path)?;
        schema::migrate(&db, &path)?;
        Ok(StateStore {
            db: Db::Rw(db),
            path,
            _lock: lock,
        })
    }

    pub fn read(&self) -> Result<ReadTxn<'_>, StoreError> {
        let txn = match &self.db {
            Db::Rw(db) => db.begin_read(),
            Db::Ro(db) => db.begin_read(),
        }
        .map_err(|e| table::fault(&self.path, e))?;
        Ok(ReadTxn::new(txn, &self.path))
    }

    pub fn write(&self) -> Result<WriteTxn<'_>, StoreError> {
        match &self.db {
            Db::Rw(db) => {
                let txn = db.begin_write().map_err(|e| table::fault(&self.path, e))?;
                Ok(WriteTxn::new(txn, &self.path))
            }
            Db::Ro(_) => Err(StoreError::Io {
                path: self.path.clone(),
                detail: "opened read-only".into(),
            }),
        }
    }

    /// Commits durably (fsync): acknowledged state survives a power cut.
    pub fn commit(&self, txn: WriteTxn<'_>) -> Result<(), StoreError> {
        txn.commit()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A value in the file that does not decode: the file is damaged.
    pub fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        table::corrupt(&self.path, detail)
    }
}

/// Creates the directory 0700 (and tightens an existing one), and proves it
/// writable before anything else happens.
fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    let not_writable = |source| StoreError::NotWritable {
        dir: dir.to_path_buf(),
        source,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(not_writable)?;
    let mode = fs::metadata(dir)
        .map_err(not_writable)?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(not_writable)?;
    }
    Ok(())
}

/// A new state file is initialised under a temporary name and renamed into
/// place: redb sizes a new file before it writes its magic number, and a
/// crash in between must not leave a `gondwana.redb` that no later boot
/// accepts.
fn initialise_new(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(path);
    let not_writable = |source| StoreError::NotWritable {
        dir: dir.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("redb.new");
    // A leftover from an interrupted attempt is simply redone.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(not_writable(e)),
    }
    // 0600 from its first instant.
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(not_writable)?;
    drop(
        Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&tmp)
            .map_err(|e| classify_open(&tmp, e))?,
    );
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_failure(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_failure(path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_failure(path, e))
}

fn open_db(path: &Path) -> Result<Database, StoreError> {
    let mode = fs::metadata(path)
        .map_err(|e| io_failure(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| io_failure(path, e))?;
    }
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .open(path)
        .map_err(|e| classify_open(path, e))
}

fn io_failure(path: &Path, e: io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn classify_open(path: &Path, e: DatabaseError) -> StoreError {
    match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
            dir: path.parent().unwrap_or(path).to_path_buf(),
            holder: String::new(),
        },
        other => classify(path, other.into()),
    }
}

pub(crate) fn classify(path: &Path, e: redb::Error) -> StoreError {
    let path = path.to_path_buf();
    match e {
        redb::Error::Corrupted(detail) => StoreError::Corrupt { path, detail },
        redb::Error::UpgradeRequired(v) => StoreError::Corrupt {
            path,
            detail: format!("redb file format {v} is not supported by this build"),
        },
        redb::Error::Io(io) if io.kind() == io::ErrorKind::InvalidData => StoreError::Corrupt {
            path,
            detail: io.to_string(),
        },
        other => StoreError::Io {
            path,
            detail: other.to_string(),
        },
    }
}

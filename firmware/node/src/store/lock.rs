//! The state lock: an exclusive, non-blocking flock on `gondwana.lock`.
//! The kernel drops it when the process dies, so a crash never leaves a
//! stale lock behind.

use std::path::Path;

use nix::errno::Errno;

use super::{LOCK_FILE, StoreError};
use crate::pid_lock::{LockError, PidLock};

pub struct StateLock(#[allow(dead_code)] PidLock);

impl StateLock {
    /// For read-only commands: the same lock, but a state directory on a
    /// read-only medium (where no writer can exist) is read without one.
    pub fn acquire_for_reading(dir: &Path) -> Result<Option<StateLock>, StoreError> {
        match Self::acquire(dir) {
            Ok(lock) => Ok(Some(lock)),
            Err(StoreError::NotWritable { source, .. })
                if source.raw_os_error() == Some(Errno::EROFS as i32) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn acquire(dir: &Path) -> Result<StateLock, StoreError> {
        match PidLock::acquire(&dir.join(LOCK_FILE)) {
            Ok(lock) => Ok(StateLock(lock)),
            Err(LockError::Held(holder)) => Err(StoreError::InUse {
                dir: dir.to_path_buf(),
                holder,
            }),
            Err(LockError::Io(source)) => Err(StoreError::NotWritable {
                dir: dir.to_path_buf(),
                source,
            }),
        }
    }
}

//! The state lock: an exclusive, non-blocking flock on `gondwana.lock`.
//! The kernel drops it when the process dies, so a crash never leaves a
//! stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{LOCK_FILE, StoreError};

pub struct StateLock(Flock<File>);

impl Drop for StateLock {
    /// Clears the pid so a later "in use" message never names a dead process.
    fn drop(&mut self) {
        let _ = self.0.set_len(0);
    }
}

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
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::NotWritable {
                dir: dir.to_path_buf(),
                source,
            })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                // The pid is a hint for the operator's error message only.
                let _ = locked.set_len(0);
                let _ = locked.rewind();
                let _ = writeln!(locked, "{}", std::process::id());
                Ok(StateLock(locked))
            }
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let holder = if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                };
                Err(StoreError::InUse {
                    dir: dir.to_path_buf(),
                    holder,
                })
            }
            Err((_, errno)) => Err(StoreError::NotWritable {
                dir: dir.to_path_buf(),
                source: io::Error::from(errno),
            }),
        }
    }
}

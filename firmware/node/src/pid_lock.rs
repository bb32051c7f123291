//! An exclusive, non-blocking flock on a file that holds the holder's pid
//! (a hint for the operator's "in use by pid N" message only). The kernel
//! drops the lock when the process dies, so a crash never leaves a stale
//! one. Used for the state (`store::StateLock`) and the admin socket
//! (`daemon::admin::claim_socket`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

pub struct PidLock(Flock<File>);

impl Drop for PidLock {
    /// Clears the pid so a later message never names a dead process.
    fn drop(&mut self) {
        let _ = self.0.set_len(0);
    }
}

pub enum LockError {
    /// Another process holds it: `" (pid N)"`, or empty when unknown.
    Held(String),
    /// The file cannot be opened or locked.
    Io(io::Error),
}

impl PidLock {
    pub fn acquire(path: &Path) -> Result<PidLock, LockError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(LockError::Io)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                let _ = locked.set_len(0);
                let _ = locked.rewind();
                let _ = writeln!(locked, "{}", std::process::id());
                Ok(PidLock(locked))
            }
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                Err(LockError::Held(
                    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                ))
            }
            Err((_, errno)) => Err(LockError::Io(io::Error::from(errno))),
        }
    }
}

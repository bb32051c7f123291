//! Exit codes (documented in docs/cli.md) and the mapping from errors.

use std::process::ExitCode;

use crate::config::ConfigError;
use crate::store::StoreError;

pub const OK: u8 = 0;
/// Anything not listed below.
pub const FAILURE: u8 = 1;
/// A bad command line: clap's own usage errors, and a value that parses
/// but that the command refuses (a port of 0, an unknown tag character).
pub const USAGE: u8 = 2;
/// Another gondwana process holds the state.
pub const STATE_IN_USE: u8 = 3;
/// The state file is corrupt, foreign, or from a newer gondwana. Untouched.
pub const STATE_UNUSABLE: u8 = 4;
/// No identity provisioned yet (run `gondwana firstboot`).
pub const NO_IDENTITY: u8 = 5;
/// A verification (identity log, audit chain, imported file) failed.
pub const VERIFY_FAILED: u8 = 6;
/// The config file or a file it names is missing or invalid.
pub const CONFIG: u8 = 7;
/// The state directory cannot be written.
pub const STATE_NOT_WRITABLE: u8 = 8;
/// `run`: the admin socket is held by the running daemon of another state
/// directory.
pub const ADMIN_SOCKET_TAKEN: u8 = 9;

/// A failed verification, distinguished so it gets its own exit code.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VerifyFailed(pub String);

/// The admin socket a daemon wants is another daemon's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SocketTaken(pub String);
/// A bad argument value found after parsing, distinguished so it exits 2
/// like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadArgument(pub String);

pub fn code_for(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return match e {
                StoreError::InUse { .. } => STATE_IN_USE,
                StoreError::Corrupt { .. } | StoreError::NewerSchema { .. } => STATE_UNUSABLE,
                StoreError::NoState(_) => NO_IDENTITY,
                StoreError::NotWritable { .. } => STATE_NOT_WRITABLE,
                StoreError::Io { .. } => FAILURE,
            };
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return CONFIG;
        }
        if cause.downcast_ref::<VerifyFailed>().is_some() {
            return VERIFY_FAILED;
        }
        if cause.downcast_ref::<SocketTaken>().is_some() {
            return ADMIN_SOCKET_TAKEN;
        }
        if cause.downcast_ref::<BadArgument>().is_some() {
            return USAGE;
        }
    }
    FAILURE
}

pub fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("gondwana: error: {error:#}");
    ExitCode::from(code_for(error))
}

//! The one wall clock. Everything below the command and daemon layers takes
//! `now` as an argument, so it can be tested on any time; this is where
//! `now` comes from.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch by this box's clock (0 if it is set before
/// 1970).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

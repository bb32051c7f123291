//! The daemon's log: one line per event on stderr, with a wall-clock stamp,
//! a level and the module that wrote it (format in docs/logging.md):
//!
//! ```text
//! 2026-11-30T00:10:24.123456Z  INFO gondwana_node::daemon: hub 2f3c… running
//! ```
//!
//! Why not `tracing` (the contract's choice): `tracing` + `tracing-subscriber`
//! made the aarch64 binary 75,568 bytes larger for the same output, more
//! than x86_64 has left under its 4 MiB budget (docs/architecture.md,
//! "Logging"). The layout is the one `tracing-subscriber`'s default
//! formatter prints, so switching later changes nothing for readers.
//!
//! Use the macros [`error!`], [`warn!`], [`info!`], [`debug!`] (in scope in
//! every module: `lib.rs` declares this module first, with `#[macro_use]`).
//! The CLI's own messages to its user (`exit::report`, command output) are
//! not log lines and stay plain.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

/// The environment variable that sets the most verbose level written.
pub const LEVEL_ENV: &str = "GONDWANA_LOG";

/// How important a line is; a line is written when its level is at most the
/// configured one (`GONDWANA_LOG`, default `info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

/// Nothing is written at this maximum (`GONDWANA_LOG=off`).
const OFF: u8 = 0;
/// The maximum has not been read from the environment yet.
const UNREAD: u8 = u8::MAX;
static MAX_LEVEL: AtomicU8 = AtomicU8::new(UNREAD);

/// Parses a `GONDWANA_LOG` value; `None` if it names no level.
fn parse_max(value: &str) -> Option<u8> {
    Some(match value.trim().to_ascii_lowercase().as_str() {
        "off" | "none" => OFF,
        "error" => Level::Error as u8,
        "warn" | "warning" => Level::Warn as u8,
        "info" => Level::Info as u8,
        "debug" | "trace" => Level::Debug as u8,
        _ => return None,
    })
}

fn max_level() -> u8 {
    match MAX_LEVEL.load(Ordering::Relaxed) {
        UNREAD => {
            let value = std::env::var(LEVEL_ENV).ok();
            let max = value
                .as_deref()
                .and_then(parse_max)
                .unwrap_or(Level::Info as u8);
            MAX_LEVEL.store(max, Ordering::Relaxed);
            if let Some(v) = value.filter(|v| parse_max(v).is_none()) {
                write(
                    Level::Warn,
                    module_path!(),
                    format_args!(
                        "{LEVEL_ENV}={v:?} names no level (off, error, warn, info, debug): using info"
                    ),
                );
            }
            max
        }
        max => max,
    }
}

/// Writes one line if `level` is enabled. Called by the macros.
#[doc(hidden)]
pub fn log(level: Level, target: &str, message: fmt::Arguments<'_>) {
    if level as u8 <= max_level() {
        write(level, target, message);
    }
}

fn write(level: Level, target: &str, message: fmt::Arguments<'_>) {
    let line = format_line(SystemTime::now(), level, target, message);
    // One write per line, so lines from several threads do not interleave;
    // a full or closed stderr must not stop the daemon.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn format_line(now: SystemTime, level: Level, target: &str, message: fmt::Arguments<'_>) -> String {
    format!(
        "{} {:>5} {target}: {message}\n",
        humantime::format_rfc3339_micros(now),
        level.label()
    )
}

/// Logs at [`Level::Error`]: something failed and was not retried or recovered.
macro_rules! error {
    ($($arg:tt)+) => {
        $crate::log::log($crate::log::Level::Error, module_path!(), format_args!($($arg)+))
    };
}

/// Logs at [`Level::Warn`]: something failed and will be retried, or a
/// setting was ignored.
macro_rules! warn {
    ($($arg:tt)+) => {
        $crate::log::log($crate::log::Level::Warn, module_path!(), format_args!($($arg)+))
    };
}

/// Logs at [`Level::Info`]: a change of state an operator wants to see.
macro_rules! info {
    ($($arg:tt)+) => {
        $crate::log::log($crate::log::Level::Info, module_path!(), format_args!($($arg)+))
    };
}

/// Logs at [`Level::Debug`]: detail for finding a fault.
#[allow(unused_macros)] // kept beside the others for the next debug line
macro_rules! debug {
    ($($arg:tt)+) => {
        $crate::log::log($crate::log::Level::Debug, module_path!(), format_args!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_line_has_stamp_level_target_and_message() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_461_424_123_456);
        let line = format_line(
            at,
            Level::Warn,
            "gondwana_node::daemon",
            format_args!("x {}", 1),
        );
        assert_eq!(
            line,
            "2025-11-30T00:10:24.123456Z  WARN gondwana_node::daemon: x 1\n"
        );
        let line = format_line(at, Level::Error, "t", format_args!("m"));
        assert!(line.contains(" ERROR t: m"), "{line}");
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(parse_max("off"), Some(OFF));
        assert_eq!(parse_max(" WARN "), Some(Level::Warn as u8));
        assert_eq!(parse_max("debug"), Some(Level::Debug as u8));
        assert_eq!(parse_max("loud"), None);
        assert!(Level::Error < Level::Warn && Level::Info < Level::Debug);
    }
}

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
//!
//! With `GONDWANA_LOG_RING=PATH` every line is also appended to a bounded
//! ring of two files, `PATH` and `PATH.1` (the images put it in RAM at
//! `/run/gondwana/log`; `gondwana logs` reads it: docs/logging.md).

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

/// The environment variable that sets the most verbose level written.
pub const LEVEL_ENV: &str = "GONDWANA_LOG";
/// The environment variable naming the ring's current file (unset: no ring).
pub const RING_ENV: &str = "GONDWANA_LOG_RING";
/// Where `gondwana logs` looks when `GONDWANA_LOG_RING` is not set: where
/// the images keep the ring.
pub const DEFAULT_RING: &str = "/run/gondwana/log";
/// A half of the ring: when the current file reaches this size it becomes
/// the older half (`PATH.1`, replacing the previous one), so the ring never
/// holds more than twice this (256 KiB ≈ 2,000 lines).
pub const RING_HALF_BYTES: u64 = 128 * 1024;

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
    if let Some(path) = ring() {
        append_to_ring(path, line.as_bytes());
    }
}

fn ring() -> Option<&'static Path> {
    static RING: OnceLock<Option<PathBuf>> = OnceLock::new();
    RING.get_or_init(|| {
        std::env::var_os(RING_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .as_deref()
}

/// The ring's older half: `PATH.1`.
pub fn ring_older(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Appends one line to the ring's current file, then rotates it when full.
/// Opened per line (O_APPEND): the daemon and its WireGuard device process
/// may share the ring, and a rotation by one must not leave the other
/// writing into the older half. Failures are ignored: the ring is a
/// convenience, stderr (the console) has the line.
fn append_to_ring(path: &Path, line: &[u8]) {
    let Ok(mut file) = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
    else {
        return;
    };
    if file.write_all(line).is_err() {
        return;
    }
    let Ok(written) = file.metadata() else { return };
    if written.len() < RING_HALF_BYTES {
        return;
    }
    // Only if PATH still names the file just written: another writer may
    // have rotated it a moment ago (rotating again would drop that half).
    let same = std::fs::metadata(path)
        .map(|m| m.ino() == written.ino() && m.dev() == written.dev())
        .unwrap_or(false);
    if same {
        let _ = std::fs::rename(path, ring_older(path));
    }
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
    fn the_ring_keeps_two_halves_at_most() {
        let dir = std::env::temp_dir().join(format!("gondwana-ring-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let line = [b'x'; 999];
        let mut line = line.to_vec();
        line.push(b'\n');
        for _ in 0..(3 * RING_HALF_BYTES / 1000) {
            append_to_ring(&path, &line);
        }
        let current = std::fs::metadata(&path).unwrap().len();
        let older = std::fs::metadata(ring_older(&path)).unwrap().len();
        assert!(current < RING_HALF_BYTES, "{current}");
        assert!(
            (RING_HALF_BYTES..RING_HALF_BYTES + 1000).contains(&older),
            "{older}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
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

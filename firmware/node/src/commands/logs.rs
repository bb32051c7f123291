//! `gondwana logs`: the daemon's recent log lines from its ring (two files,
//! `PATH.1` then `PATH`, written by `log.rs`), like OpenWrt's `logread`.
//! Needs no config and no running daemon: the lines of a daemon that keeps
//! crashing are exactly the ones to read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use crate::cli::LogsArgs;
use crate::log::{DEFAULT_RING, RING_ENV, ring_older};

/// How often `--follow` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(300);

pub fn run(args: &LogsArgs) -> anyhow::Result<()> {
    let path = args
        .file
        .clone()
        .or_else(|| {
            std::env::var_os(RING_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RING));
    let older = ring_older(&path);
    if !path.exists() && !older.exists() {
        bail!(
            "no log ring at {} (the daemon keeps one when {RING_ENV} is set, as the images do; \
             elsewhere its log is on stderr, e.g. `journalctl -u gondwana`)",
            path.display()
        );
    }
    let mut text = read_if_present(&older)?;
    let mut current = open_if_present(&path)?;
    let mut offset = 0;
    if let Some(file) = current.as_mut() {
        offset = file
            .read_to_end(&mut text)
            .context("reading the log ring")? as u64;
    }
    let (complete, partial) = split_complete(&text);
    let lines: Vec<&str> = complete.lines().collect();
    let skip = args.lines.map_or(0, |n| lines.len().saturating_sub(n));
    let mut out = std::io::stdout().lock();
    for line in &lines[skip..] {
        print_line(&mut out, line, args.json)?;
    }
    out.flush()?;
    if args.follow {
        // A partial last line is printed once it is complete.
        offset -= partial.len() as u64;
        follow(&path, current, offset, args.json)
    } else {
        Ok(())
    }
}

/// Prints lines as they are appended, across rotations, until killed.
fn follow(
    path: &Path,
    mut current: Option<File>,
    mut offset: u64,
    json: bool,
) -> anyhow::Result<()> {
    let mut pending = Vec::new();
    loop {
        std::thread::sleep(FOLLOW_POLL);
        let now = std::fs::metadata(path).ok();
        let rotated = match (&current, &now) {
            (Some(f), Some(m)) => f.metadata().map(|o| o.ino() != m.ino()).unwrap_or(true),
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if let Some(file) = current.as_mut() {
            // The rest of the file being followed (after a rotation: the
            // older half now), then its successor from the start.
            let len = file.metadata()?.len();
            if len < offset {
                offset = 0; // truncated by hand
            }
            file.seek(SeekFrom::Start(offset))?;
            offset += file.read_to_end(&mut pending)? as u64;
        }
        if rotated {
            current = open_if_present(path)?;
            offset = 0;
            continue;
        }
        let (complete, partial) = split_complete(&pending);
        if !complete.is_empty() {
            let mut out = std::io::stdout().lock();
            for line in complete.lines() {
                print_line(&mut out, line, json)?;
            }
            out.flush()?;
        }
        pending = partial.as_bytes().to_vec();
    }
}

fn open_if_present(path: &Path) -> anyhow::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

fn read_if_present(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut text = Vec::new();
    if let Some(mut f) = open_if_present(path)? {
        f.read_to_end(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(text)
}

/// The complete lines (up to the last newline) and the partial rest, as
/// text (a byte that is not UTF-8 becomes U+FFFD).
fn split_complete(bytes: &[u8]) -> (String, String) {
    let cut = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    (
        String::from_utf8_lossy(&bytes[..cut]).into_owned(),
        String::from_utf8_lossy(&bytes[cut..]).into_owned(),
    )
}

fn print_line(out: &mut impl Write, line: &str, json: bool) -> std::io::Result<()> {
    if json {
        writeln!(out, "{}", line_json(line))
    } else {
        writeln!(out, "{line}")
    }
}

/// One ring line (`STAMP LEVEL TARGET: MESSAGE`, docs/logging.md) as a
/// JSON object; a line in another shape (written by the image's scripts)
/// keeps what it has and `null` for the rest.
fn line_json(line: &str) -> serde_json::Value {
    parse_line(line).map_or_else(
        || json!({"time": null, "level": null, "target": null, "message": line}),
        |(time, level, target, message)| {
            json!({"time": time, "level": level, "target": target, "message": message})
        },
    )
}

fn parse_line(line: &str) -> Option<(&str, &str, &str, &str)> {
    let (time, rest) = line.split_once(' ')?;
    humantime::parse_rfc3339(time).ok()?;
    let (level, rest) = rest.trim_start().split_once(' ')?;
    if !matches!(level, "ERROR" | "WARN" | "INFO" | "DEBUG") {
        return None;
    }
    let (target, message) = rest.split_once(": ")?;
    Some((time, level, target, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_line_parses_into_its_fields() {
        let v = line_json(
            "2026-11-30T00:10:24.123456Z  WARN gondwana_node::daemon::enrol_task: attempt 2: refused: a: b",
        );
        assert_eq!(v["time"], "2026-11-30T00:10:24.123456Z");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "gondwana_node::daemon::enrol_task");
        assert_eq!(v["message"], "attempt 2: refused: a: b");
        let v = line_json("gondwana: daemon exited (1); restarting");
        assert_eq!(v["time"], serde_json::Value::Null);
        assert_eq!(v["message"], "gondwana: daemon exited (1); restarting");
    }

    #[test]
    fn a_partial_last_line_waits() {
        let (complete, partial) = split_complete(b"a\nb\nc");
        assert_eq!((complete.as_str(), partial.as_str()), ("a\nb\n", "c"));
        assert_eq!(split_complete(b"x").0, "");
    }
}

//! The two text files an image carries for updates: the running release
//! (`/etc/gondwana/release`, `key=value` lines) and the baked-in release
//! public keys (`/etc/gondwana/release-keys`, one hex key a line, `#`
//! comments). Written by image/compose, read by the installer.

use super::Release;
use crate::keys::{PublicKey, decode_hex32};

/// `board=`, `version=`, `min_version=` (default 0), `label=` (default "").
pub fn parse_release(text: &str) -> Result<Release, String> {
    let (mut board, mut version, mut min_version, mut label) = (None, None, 0, String::new());
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: not key=value", n + 1));
        };
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("line {}: {key} is not a number", n + 1))
        };
        match key {
            "board" => board = Some(value.to_string()),
            "version" => version = Some(number()?),
            "min_version" => min_version = number()?,
            "label" => label = value.to_string(),
            _ => {} // later fields are for later readers
        }
    }
    Ok(Release {
        board: board.ok_or("no board=")?,
        version: version.ok_or("no version=")?,
        min_version,
        label,
    })
}

pub fn release_text(release: &Release) -> String {
    format!(
        "board={}\nversion={}\nmin_version={}\nlabel={}\n",
        release.board, release.version, release.min_version, release.label
    )
}

pub fn parse_release_keys(text: &str) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let key = decode_hex32(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

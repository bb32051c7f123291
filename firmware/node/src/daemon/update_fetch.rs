//! Fetching a release's bundle from the boxes that may hold it
//! (docs/updates.md, "Where a box fetches from"), resumable: the bytes so
//! far are kept in `<state>/updates/<hash>.part` and the next request asks
//! for the range after them, whichever box answers it and however long
//! after (a restart, another source). Only a file whose length and
//! BLAKE2b-256 match the signed release record, and whose head verifies
//! with the manifest the record names, becomes `<hash>.bundle`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use gondwana_core::hash::to_hex;
use gondwana_core::keys::PublicKey;
use gondwana_core::update::ReleaseBody;
use http::header::CONTENT_RANGE;
use http::{Method, StatusCode};

use crate::api::client;
use crate::daemon::drive::{blocking, joined};
use crate::daemon::update_serve::MAX_RANGE;
use crate::update::{held, mesh};

/// One range request, connection to last byte.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a source was left.
enum SourceError {
    /// It does not hold the bundle (404) or cannot be reached: next one.
    Unavailable(String),
    /// It served something that is not the bundle: next one, and the bytes
    /// it gave are not kept.
    Bad(String),
}

/// `Content-Range: bytes FIRST-LAST/SIZE`.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, size) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, size.parse().ok()?))
}

/// Tries `sources` in order until one completes the download; returns the
/// source that finished it. The errors of every source otherwise.
pub async fn download(
    state_dir: &Path,
    release: &ReleaseBody,
    keys: &[PublicKey],
    sources: &[String],
) -> Result<String, String> {
    let hash = release.bundle_blake2b;
    let hex = to_hex(&hash);
    let part = held::part_path(state_dir, &hash);
    std::fs::create_dir_all(held::dir(state_dir)).map_err(|e| e.to_string())?;
    if held::part_len(state_dir, &hash) > release.bundle_size {
        let _ = std::fs::remove_file(&part);
    }
    let mut errors = Vec::new();
    for source in sources {
        let start = held::part_len(state_dir, &hash);
        if start > 0 {
            info!("update: resuming bundle {hex} at byte {start} from {source}");
        } else {
            info!("update: fetching bundle {hex} from {source}");
        }
        match fetch_from(source, &part, start, release).await {
            Ok(()) => {}
            Err(SourceError::Unavailable(e)) => {
                errors.push(format!("{source}: {e}"));
                continue;
            }
            Err(SourceError::Bad(e)) => {
                warn!("update: {source} served a bad bundle: {e}");
                errors.push(format!("{source}: {e}"));
                continue;
            }
        }
        let (state, release2, keys2, part2) = (
            state_dir.to_path_buf(),
            release.clone(),
            keys.to_vec(),
            part.clone(),
        );
        let checked = blocking(move || {
            mesh::check_bundle(&part2, &release2, &keys2)?;
            std::fs::rename(&part2, held::bundle_path(&state, &release2.bundle_blake2b))
                .map_err(|e| e.to_string())
        })
        .await;
        match checked {
            Ok(Ok(())) => {
                held::prune_except(state_dir, &hash);
                info!(
                    "update: bundle {hex} ({} bytes) complete and verified, from {source}",
                    release.bundle_size
                );
                return Ok(source.clone());
            }
            Ok(Err(e)) => {
                // Which source gave the bad bytes is not known (a resumed
                // file has several): start over.
                let _ = std::fs::remove_file(&part);
                warn!("update: downloaded bundle {hex} refused, discarded: {e}");
                errors.push(format!("{source}: {e}"));
            }
            Err(e) => errors.push(format!("{source}: {e}")),
        }
    }
    if errors.is_empty() {
        errors.push("no box to fetch from".into());
    }
    Err(errors.join("; "))
}

/// Appends the ranges after `start` from `source` until the file has the
/// record's size.
async fn fetch_from(
    source: &str,
    part: &Path,
    mut at: u64,
    release: &ReleaseBody,
) -> Result<(), SourceError> {
    let url = format!(
        "{}/v1/update/bundle/{}",
        source.trim_end_matches('/'),
        to_hex(&release.bundle_blake2b)
    );
    let size = release.bundle_size;
    while at < size {
        let last = (at + MAX_RANGE - 1).min(size - 1);
        let headers = [("range", format!("bytes={at}-{last}"))];
        let (status, head, body) = client::request_full(
            Method::GET,
            &url,
            None,
            &headers,
            Bytes::new(),
            CHUNK_TIMEOUT,
            MAX_RANGE as usize + 1024,
        )
        .await
        .map_err(|e| SourceError::Unavailable(e.to_string()))?;
        if status != StatusCode::PARTIAL_CONTENT {
            return Err(SourceError::Unavailable(format!("answered {status}")));
        }
        let range = head
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range);
        let Some((first, end, total)) = range else {
            return Err(SourceError::Bad("no valid Content-Range".into()));
        };
        if total != size {
            return Err(SourceError::Bad(format!(
                "it holds {total} bytes, the release record says {size}"
            )));
        }
        if first != at || end > last || end + 1 - first != body.len() as u64 {
            return Err(SourceError::Bad(format!(
                "asked bytes {at}-{last}, got {first}-{end} ({} bytes)",
                body.len()
            )));
        }
        append(part, body).await.map_err(SourceError::Unavailable)?;
        at = end + 1;
    }
    Ok(())
}

async fn append(part: &Path, body: Bytes) -> Result<(), String> {
    let part = part.to_path_buf();
    joined(
        blocking(move || -> std::io::Result<()> {
            let mut file = OpenOptions::new().create(true).append(true).open(&part)?;
            file.write_all(&body)?;
            // Durable before the next range is asked for: a power cut
            // leaves a prefix of the bundle, which the next attempt resumes.
            file.sync_data()
        })
        .await,
    )
    .map_err(|e| format!("writing the download: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-99/400"), Some((0, 99, 400)));
        assert_eq!(parse_content_range("bytes */400"), None);
        assert_eq!(parse_content_range("0-99/400"), None);
    }
}

//! `GET /v1/update/bundle/<hash>` (docs/api.md): the bundles this box holds,
//! to mesh addresses only, by byte ranges (`Range: bytes=FIRST-LAST` or
//! `bytes=FIRST-`, answered `206` with `Content-Range`, at most
//! [`MAX_RANGE`] bytes an answer), so a download continues where it stopped
//! and from whichever box holds the bundle. The fetching box checks the
//! whole file against the signed release record; this side only hands out
//! bytes. And `POST /v1/update/release`: the hub takes a release record
//! another box publishes.

use std::io::{Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use gondwana_core::mesh::Ipv4Net;
use http::StatusCode;
use http::header::{CONTENT_RANGE, HeaderValue, RANGE};

use gondwana_core::update::verify_release;
use serde_json::json;

use crate::api::{ApiError, ApiRequest, ApiResponse, CONTENT_TYPE_OCTETS};
use crate::config::Role;
use crate::daemon::app::App;
use crate::daemon::drive::blocking;
use crate::update::{held, mesh};

/// Largest answer: 1 MiB (the listener builds each answer in memory).
pub const MAX_RANGE: u64 = 1 << 20;

/// Loopback (this box) or the mesh subnet: a LAN client of `api.listen`
/// gets nothing.
pub fn may_fetch(peer: IpAddr, subnet: &Ipv4Net) -> bool {
    match peer {
        IpAddr::V4(v4) => v4.is_loopback() || subnet.contains(&v4),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// `bytes=FIRST-LAST` or `bytes=FIRST-`: one range, no suffix form.
pub fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last = match last.trim() {
        "" => None,
        l => Some(l.parse::<u64>().ok()?),
    };
    match last {
        Some(l) if l < first => None,
        _ => Some((first, last)),
    }
}

pub async fn bundle(app: &App, req: &ApiRequest, hex: &str) -> Result<ApiResponse, ApiError> {
    if !may_fetch(req.peer.ip(), &app.config().mesh.subnet) {
        return Err(ApiError::forbidden(
            "bundles are served to mesh addresses only",
        ));
    }
    let hash = mesh::parse_hash(hex)
        .ok_or_else(|| ApiError::bad_request("the bundle is named by 64 lowercase hex digits"))?;
    let range = req
        .headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("a Range header is required: bytes=FIRST-LAST"))?;
    let (first, last) = parse_range(range).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Range {range:?}: one range, bytes=FIRST-LAST or bytes=FIRST-"
        ))
    })?;
    let path = held::bundle_path(&app.state_dir, &hash);
    let read = blocking(move || -> Result<(u64, Option<Vec<u8>>), std::io::Error> {
        let mut file = std::fs::File::open(&path)?;
        let size = file.metadata()?.len();
        if first >= size {
            return Ok((size, None));
        }
        let end = last
            .unwrap_or(u64::MAX)
            .min(size - 1)
            .min(first + MAX_RANGE - 1);
        file.seek(SeekFrom::Start(first))?;
        let mut buf = vec![0u8; (end - first + 1) as usize];
        file.read_exact(&mut buf)?;
        Ok((size, Some(buf)))
    })
    .await;
    let (size, bytes) = match read {
        Ok(Ok(v)) => v,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!(
                "this box holds no bundle {hex}"
            )));
        }
        Ok(Err(e)) => return Err(ApiError::internal(format!("reading bundle {hex}: {e}"))),
        Err(e) => return Err(ApiError::internal(format!("reading bundle {hex}: {e}"))),
    };
    let Some(bytes) = bytes else {
        let response = ApiResponse::from(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!("the bundle has {size} bytes"),
        ));
        return Ok(with_range(response, &format!("bytes */{size}")));
    };
    let end = first + bytes.len() as u64 - 1;
    let response = ApiResponse::bytes(
        StatusCode::PARTIAL_CONTENT,
        CONTENT_TYPE_OCTETS,
        Bytes::from(bytes),
    );
    Ok(with_range(response, &format!("bytes {first}-{end}/{size}")))
}

/// `POST /v1/update/release` on the hub: a release record published by
/// another box (`update publish` on a node, which serves the bundle
/// itself). Appended once it verifies against the hub's release keys; the
/// signature is the authority, not the sender.
pub async fn receive_release(app: &Arc<App>, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let config = app.config();
    if config.role != Role::Hub {
        return Err(ApiError::not_found(
            "release records are published to the hub",
        ));
    }
    if !may_fetch(req.peer.ip(), &config.mesh.subnet) {
        return Err(ApiError::forbidden(
            "release records are taken from mesh addresses only",
        ));
    }
    let stored = app
        .store
        .release_rotations()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let keys = mesh::release_keys(&config.update, &stored)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()))?;
    let signed = req.body.to_vec();
    let body = verify_release(&signed, &keys).map_err(|e| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_release",
            format!("release record rejected: {e}"),
        )
    })?;
    let verified = mesh::Verified { body, signed };
    let store = app.store.clone();
    let appended = blocking(move || {
        crate::service::update::append_release(&store, &verified).map(|r| (r, verified))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let ((fresh, entries), verified) = appended;
    if fresh {
        app.changed();
    }
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"published": fresh, "release": mesh::release_json(&verified.body), "directory_entries": entries}),
    ))
}

fn with_range(response: ApiResponse, value: &str) -> ApiResponse {
    match HeaderValue::from_str(value) {
        Ok(v) => response.with_header(CONTENT_RANGE, v),
        Err(_) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_peers() {
        assert_eq!(parse_range("bytes=0-99"), Some((0, Some(99))));
        assert_eq!(parse_range("bytes=100-"), Some((100, None)));
        for bad in [
            "bytes=-5",
            "bytes=9-3",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=a-b",
            "",
        ] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        let subnet: Ipv4Net = "10.99.0.0/16".parse().unwrap();
        assert!(may_fetch("10.99.3.4".parse().unwrap(), &subnet));
        assert!(may_fetch("127.0.0.1".parse().unwrap(), &subnet));
        assert!(may_fetch("::1".parse().unwrap(), &subnet));
        assert!(!may_fetch("192.168.1.20".parse().unwrap(), &subnet));
        assert!(!may_fetch("fe80::1".parse().unwrap(), &subnet));
    }
}

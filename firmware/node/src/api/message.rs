//! What a handler sees and returns: a fully read request, a complete response,
//! and the one API error type. No sockets here, so routes are tested by
//! building an [`ApiRequest`] and calling the handler directly.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;

pub const CONTENT_TYPE_JSON: &str = "application/json";
pub const CONTENT_TYPE_TEXT: &str = "text/plain; charset=utf-8";
/// Postcard envelopes between nodes.
pub const CONTENT_TYPE_OCTETS: &str = "application/octet-stream";

/// The `peer` of a request that came over the Unix socket, which has no
/// socket address; its `peer_uid` says who it was.
pub const UNIX_PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// The routes. Implemented by the daemon; `serve` calls it once per request,
/// after the head and the whole body (within [`super::Limits`]) are in.
///
/// An impl may write `async fn handle(&self, req: ApiRequest) -> ApiResponse`
/// as long as the future is `Send`.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: ApiRequest) -> impl Future<Output = ApiResponse> + Send;
}

/// A request whose body has been read completely.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// The path as sent (still percent-encoded), always starting with `/`.
    pub path: String,
    /// The raw query string, without the `?`.
    pub query: Option<String>,
    /// The TCP peer; [`UNIX_PEER`] for the Unix socket.
    pub peer: SocketAddr,
    /// The peer's uid on the Unix socket (from `SO_PEERCRED`); `None` over TCP.
    pub peer_uid: Option<u32>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiRequest {
    /// A request for `target` (`/path?query`) from 127.0.0.1:0 with no headers
    /// and an empty body: for calling a handler without a socket.
    pub fn new(method: Method, target: &str) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (target, None),
        };
        ApiRequest {
            method,
            path: path.to_string(),
            query,
            peer: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            peer_uid: None,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }

    pub fn with_peer_uid(mut self, uid: u32) -> Self {
        self.peer = UNIX_PEER;
        self.peer_uid = Some(uid);
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The path split into segments; see [`super::segments`].
    pub fn segments(&self) -> Vec<&str> {
        super::route::segments(&self.path)
    }

    /// One query parameter, percent-decoded; see [`super::query_param`].
    pub fn query_param(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        super::route::query_param(self.query.as_deref(), key)
    }

    /// The request's `Content-Type` without parameters, lowercased
    /// (`application/json; charset=utf-8` gives `application/json`).
    pub fn content_type(&self) -> Option<String> {
        let value = self
            .headers
            .get(http::header::CONTENT_TYPE)?
            .to_str()
            .ok()?;
        let essence = value.split(';').next().unwrap_or("").trim();
        Some(essence.to_ascii_lowercase())
    }
}

/// A complete response. `Content-Length` is set by the server.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub content_type: &'static str,
    /// Extra headers (`Allow`, `Retry-After`, `Cache-Control`, ...).
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiResponse {
    /// `value` as JSON. A value that does not serialize (a map with non-string
    /// keys) is a bug in the route; it answers 500 rather than panicking.
    pub fn json(status: StatusCode, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::bytes(status, CONTENT_TYPE_JSON, Bytes::from(body)),
            Err(e) => ApiError::internal(format!("response does not serialize: {e}")).into(),
        }
    }

    pub fn bytes(status: StatusCode, content_type: &'static str, body: Bytes) -> Self {
        ApiResponse {
            status,
            content_type,
            headers: HeaderMap::new(),
            body,
        }
    }

    pub fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Self::bytes(status, CONTENT_TYPE_TEXT, Bytes::from(body.into()))
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The body parsed as JSON: for tests of routes.
    pub fn json_body(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
    }
}

/// The one API error: an HTTP status, a machine-readable code and a
/// human-readable detail. Becomes `{"error": code, "detail": detail}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {detail}")]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable: `bad_request`, `not_found`, ...
    pub error: &'static str,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// Pair with an `Allow` header: `ApiResponse::from(err).with_header(ALLOW, ..)`.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn request_timeout(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", detail)
    }

    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            detail,
        )
    }

    pub fn rate_limited(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: &'a str,
}

impl From<ApiError> for ApiResponse {
    fn from(e: ApiError) -> Self {
        let body = ErrorBody {
            error: e.error,
            detail: &e.detail,
        };
        // Two strings always serialize.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        ApiResponse::bytes(e.status, CONTENT_TYPE_JSON, Bytes::from(body))
    }
}

impl From<Result<ApiResponse, ApiError>> for ApiResponse {
    fn from(r: Result<ApiResponse, ApiError>) -> Self {
        r.unwrap_or_else(ApiResponse::from)
    }
}

/// `key` parsed as a `T` (`after=42` as a `u64`): `Ok(None)` when absent, a
/// `bad_request` error naming the parameter when it does not parse.
pub fn parse_query_param<T: FromStr>(
    query: Option<&str>,
    key: &str,
) -> Result<Option<T>, ApiError> {
    let Some(raw) = super::route::query_param(query, key) else {
        return Ok(None);
    };
    raw.parse().map(Some).map_err(|_| {
        ApiError::bad_request(format!(
            "query parameter `{key}` has an invalid value {raw:?}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn error_becomes_json_with_code_and_detail() {
        let r = ApiResponse::from(ApiError::not_found("no route for /x \"quoted\""));
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.content_type, CONTENT_TYPE_JSON);
        let v = r.json_body().unwrap();
        assert_eq!(v["error"], "not_found");
        assert_eq!(v["detail"], "no route for /x \"quoted\"");
        assert_eq!(v.as_object().unwrap().len(), 2);
    }

    #[test]
    fn error_codes_and_statuses() {
        let cases = [
            (ApiError::bad_request(""), 400, "bad_request"),
            (ApiError::forbidden(""), 403, "forbidden"),
            (ApiError::not_found(""), 404, "not_found"),
            (ApiError::method_not_allowed(""), 405, "method_not_allowed"),
            (ApiError::request_timeout(""), 408, "request_timeout"),
            (ApiError::payload_too_large(""), 413, "payload_too_large"),
            (
                ApiError::unsupported_media_type(""),
                415,
                "unsupported_media_type",
            ),
            (ApiError::rate_limited(""), 429, "rate_limited"),
            (ApiError::internal(""), 500, "internal"),
            (ApiError::unavailable(""), 503, "unavailable"),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status.as_u16(), status);
            assert_eq!(e.error, code);
        }
        assert_eq!(ApiError::bad_request("x y").to_string(), "bad_request: x y");
    }

    #[test]
    fn json_response_and_unserializable_value() {
        let r = ApiResponse::json(StatusCode::OK, &serde_json::json!({"a": 1}));
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&r.body[..], br#"{"a":1}"#);

        let mut bad = BTreeMap::new();
        bad.insert((1, 2), 3);
        let r = ApiResponse::json(StatusCode::OK, &bad);
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.json_body().unwrap()["error"], "internal");
    }

    #[test]
    fn text_and_bytes() {
        let r = ApiResponse::text(StatusCode::ACCEPTED, "hi");
        assert_eq!(
            (r.status, r.content_type, &r.body[..]),
            (StatusCode::ACCEPTED, CONTENT_TYPE_TEXT, &b"hi"[..])
        );
        let r = ApiResponse::bytes(
            StatusCode::OK,
            CONTENT_TYPE_OCTETS,
            Bytes::from_static(&[0, 1]),
        );
        assert_eq!(&r.body[..], &[0, 1]);
        let r: ApiResponse = Err::<ApiResponse, _>(ApiError::unavailable("db")).into();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn request_builder_splits_target() {
        let r = ApiRequest::new(Method::GET, "/v1/directory?after=3&x=%20y")
            .with_header(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("Application/JSON; charset=utf-8"),
            )
            .with_body("{}");
        assert_eq!(r.path, "/v1/directory");
        assert_eq!(r.query.as_deref(), Some("after=3&x=%20y"));
        assert_eq!(r.segments(), ["v1", "directory"]);
        assert_eq!(r.query_param("after").as_deref(), Some("3"));
        assert_eq!(r.query_param("x").as_deref(), Some(" y"));
        assert_eq!(r.content_type().as_deref(), Some("application/json"));
        assert_eq!(&r.body[..], b"{}");
        assert_eq!(r.peer_uid, None);

        let r = ApiRequest::new(Method::POST, "/admin").with_peer_uid(0);
        assert_eq!((r.peer, r.peer_uid, r.query), (UNIX_PEER, Some(0), None));
    }

    #[test]
    fn parse_query_param_typed() {
        assert_eq!(
            parse_query_param::<u64>(Some("after=42"), "after"),
            Ok(Some(42))
        );
        assert_eq!(parse_query_param::<u64>(Some("x=1"), "after"), Ok(None));
        assert_eq!(parse_query_param::<u64>(None, "after"), Ok(None));
        let e = parse_query_param::<u64>(Some("after=-1"), "after").unwrap_err();
        assert_eq!(e.error, "bad_request");
        assert!(e.detail.contains("`after`"), "{}", e.detail);
        assert!(parse_query_param::<u64>(Some("after="), "after").is_err());
    }

    #[test]
    fn parse_query_param_refuses_bad_utf8() {
        assert!(parse_query_param::<u64>(Some("a=%FF"), "a").is_err());
    }
}

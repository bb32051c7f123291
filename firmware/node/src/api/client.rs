//! A minimal HTTP/1.1 client for node-to-hub and node-to-node calls: one
//! request per connection, one deadline for all of it, a cap on the response.
//!
//! Plain `http://` only, on purpose: what travels is a signed envelope
//! (verified on receipt, see ARCHITECTURE "Signed bytes") and, once enrolled,
//! inside the WireGuard tunnel. TLS would add a certificate story and most of
//! the binary budget while protecting nothing the signature does not.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const AGENT: &str = concat!("gondwana/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL {url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("invalid content type {0:?}")]
    BadContentType(String),
    #[error("invalid header {0:?}")]
    BadHeader(String),
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("HTTP exchange failed: {0}")]
    Http(#[source] Box<dyn StdError + Send + Sync>),
    #[error("response body larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// Sends one request to `url` (`http://host:port/path?query`; host a DNS
/// name, an IPv4 address or a bracketed IPv6 address; port 80 if absent) and
/// returns the status and the whole body, whatever the status. Resolution,
/// connecting (each resolved address in turn), sending and reading the body
/// all fall under `timeout`. A body over `max_response_bytes` is refused,
/// before reading when its length is declared.
pub async fn request(
    method: Method,
    url: &str,
    content_type: Option<&str>,
    body: Bytes,
    timeout: Duration,
    max_response_bytes: usize,
) -> Result<(StatusCode, Bytes), ClientError> {
    request_with_headers(
        method,
        url,
        content_type,
        &[],
        body,
        timeout,
        max_response_bytes,
    )
    .await
}

/// [`request`] with extra headers (`name`, value), e.g. a proof header.
pub async fn request_with_headers(
    method: Method,
    url: &str,
    content_type: Option<&str>,
    headers: &[(&'static str, String)],
    body: Bytes,
    timeout: Duration,
    max_response_bytes: usize,
) -> Result<(StatusCode, Bytes), ClientError> {
    let (status, _, body) = request_full(
        method,
        url,
        content_type,
        headers,
        body,
        timeout,
        max_response_bytes,
    )
    .await?;
    Ok((status, body))
}

/// [`request_with_headers`] that also returns the response's headers
/// (a range request reads `Content-Range`).
pub async fn request_full(
    method: Method,
    url: &str,
    content_type: Option<&str>,
    headers: &[(&'static str, String)],
    body: Bytes,
    timeout: Duration,
    max_response_bytes: usize,
) -> Result<(StatusCode, HeaderMap, Bytes), ClientError> {
    let target = Target::parse(url)?;
    let content_type = content_type
        .map(|ct| HeaderValue::from_str(ct).map_err(|_| ClientError::BadContentType(ct.into())))
        .transpose()?;
    let mut extra = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let value =
            HeaderValue::from_str(value).map_err(|_| ClientError::BadHeader(name.to_string()))?;
        extra.push((*name, value));
    }
    let exchange = exchange(
        method,
        &target,
        content_type,
        &extra,
        body,
        max_response_bytes,
    );
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ClientError::Timeout(timeout))?
}

#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// Without IPv6 brackets, for resolving.
    host: String,
    port: u16,
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, ClientError> {
        let bad = |reason| ClientError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(bad("only http:// is supported")),
            None => return Err(bad("no scheme (expected http://)")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user info is not supported"));
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad("no host"));
        }
        // What follows the host (`host()` keeps IPv6 brackets; user info
        // was refused above) is empty or `:port`.
        let port = match &authority.as_str()[authority.host().len()..] {
            "" => 80,
            rest => match rest.strip_prefix(':') {
                Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                    match digits.parse::<u16>() {
                        Ok(port) if port != 0 => port,
                        _ => return Err(bad("invalid port")),
                    }
                }
                _ => return Err(bad("invalid port")),
            },
        };
        let path_and_query = match uri.path_and_query().map(|pq| pq.as_str()) {
            None | Some("") => "/".to_string(),
            Some(pq) => pq.to_string(),
        };
        Ok(Target {
            host: host.to_string(),
            port,
            authority: authority.as_str().to_string(),
            path_and_query,
        })
    }
}

async fn exchange(
    method: Method,
    target: &Target,
    content_type: Option<HeaderValue>,
    headers: &[(&'static str, HeaderValue)],
    body: Bytes,
    max: usize,
) -> Result<(StatusCode, HeaderMap, Bytes), ClientError> {
    let stream = connect(target).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_error)?;

    let mut req = http::Request::builder()
        .method(method)
        .uri(target.path_and_query.as_str())
        .header(HOST, target.authority.as_str())
        .header(USER_AGENT, AGENT)
        .header(CONNECTION, "close");
    if let Some(content_type) = content_type {
        req = req.header(CONTENT_TYPE, content_type);
    }
    for (name, value) in headers {
        req = req.header(*name, value.clone());
    }
    let req = req.body(Full::new(body)).map_err(|_| ClientError::BadUrl {
        url: target.path_and_query.clone(),
        reason: "not a valid request target",
    })?;

    let response = async {
        let response = sender.send_request(req).await.map_err(http_error)?;
        let (parts, body) = response.into_parts();
        if body.size_hint().lower() > max as u64 {
            return Err(ClientError::TooLarge { limit: max });
        }
        let body = Limited::new(body, max).collect().await.map_err(|e| {
            if e.is::<LengthLimitError>() {
                ClientError::TooLarge { limit: max }
            } else {
                ClientError::Http(e)
            }
        })?;
        Ok((parts.status, parts.headers, body.to_bytes()))
    };
    // The connection future does the I/O; drive it alongside the exchange
    // (no task: dropping this future on timeout drops the connection).
    let mut conn = std::pin::pin!(conn);
    let mut response = std::pin::pin!(response);
    let mut conn_done = false;
    loop {
        tokio::select! {
            biased;
            result = &mut response => return result,
            // Its errors also fail the exchange, which reports them.
            _ = &mut conn, if !conn_done => conn_done = true,
        }
    }
}

/// A TCP connect that takes longer has nobody answering: a box that is off
/// behind its WireGuard peer swallows the SYNs, and a whole request timeout
/// (30 s for a bundle's range) per dead source adds up. WireGuard retries a
/// lost handshake after 5 s, so 10 s leaves room for one retry.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect(target: &Target) -> Result<TcpStream, ClientError> {
    let failed = |source| ClientError::Connect {
        target: target.authority.clone(),
        source,
    };
    let addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(failed)?;
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                ))
            }
        }
    }
    Err(failed(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address")
    })))
}

fn http_error(e: hyper::Error) -> ClientError {
    ClientError::Http(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn target(url: &str) -> Result<Target, ClientError> {
        Target::parse(url)
    }

    #[test]
    fn parses_hosts_ports_and_targets() {
        let t = target("http://hub.example:8080/v1/enroll?x=1").unwrap();
        assert_eq!(
            t,
            Target {
                host: "hub.example".into(),
                port: 8080,
                authority: "hub.example:8080".into(),
                path_and_query: "/v1/enroll?x=1".into(),
            }
        );
        let t = target("http://10.10.0.1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path_and_query.as_str()),
            ("10.10.0.1", 80, "/")
        );
        let t = target("http://[fd00::1]:7000/v1/health").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fd00::1", 7000));
        assert_eq!(t.authority, "[fd00::1]:7000");
        let t = target("http://[::1]").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "",
            "hub:80/x",
            "/v1/health",
            "https://hub/v1",
            "ftp://hub/",
            "http://user:pw@hub/",
            "http:///path",
            "http://hub:0/",
            "http://hub:99999/",
            "http://hub:/",
            "http://hub:+80/",
            "http://[::1]:x/",
            "http://hu b/",
        ] {
            assert!(
                matches!(target(url), Err(ClientError::BadUrl { .. })),
                "{url:?} gave {:?}",
                target(url)
            );
        }
    }

    #[tokio::test]
    async fn bad_content_type_is_refused_before_connecting() {
        let r = request(
            Method::POST,
            "http://127.0.0.1:1/",
            Some("text/plain\r\nX: y"),
            Bytes::new(),
            Duration::from_secs(1),
            10,
        )
        .await;
        assert!(matches!(r, Err(ClientError::BadContentType(_))), "{r:?}");
    }

    #[tokio::test]
    async fn connection_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let r = request(
            Method::GET,
            &format!("http://{addr}/v1/health"),
            None,
            Bytes::new(),
            Duration::from_secs(5),
            1024,
        )
        .await;
        match r {
            Err(ClientError::Connect { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused)
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn resolves_a_name() {
        // `localhost` comes from /etc/hosts; it may resolve to ::1 first,
        // where nothing listens: the next address is tried.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            head
        });
        let (status, body) = request(
            Method::DELETE,
            &format!("http://localhost:{port}/x?y=1"),
            None,
            Bytes::new(),
            Duration::from_secs(5),
            1024,
        )
        .await
        .unwrap();
        assert_eq!((status, body.len()), (StatusCode::NO_CONTENT, 0));
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("delete /x?y=1 http/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("host: localhost:{port}\r\n")),
            "{head}"
        );
        assert!(head.contains("connection: close\r\n"), "{head}");
        assert!(head.contains("user-agent: gondwana/"), "{head}");
    }

    #[tokio::test]
    async fn times_out_on_a_listener_that_never_answers() {
        // Bound and listening, never accepting: the kernel completes the
        // handshake and takes the request, and no answer ever comes.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let started = Instant::now();
        let r = request(
            Method::GET,
            &url,
            None,
            Bytes::new(),
            Duration::from_millis(400),
            1024,
        )
        .await;
        assert!(matches!(r, Err(ClientError::Timeout(_))), "{r:?}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "{took:?}"
        );
        drop(listener);
    }

    /// Serves one raw response to one connection.
    async fn one_shot(response: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(response).await;
            let _ = s.shutdown().await;
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn caps_the_response_body() {
        let declared = one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world").await;
        let r = request(
            Method::GET,
            &declared,
            None,
            Bytes::new(),
            Duration::from_secs(5),
            10,
        )
        .await;
        assert!(
            matches!(r, Err(ClientError::TooLarge { limit: 10 })),
            "{r:?}"
        );

        let chunked = one_shot(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
        )
        .await;
        let r = request(
            Method::GET,
            &chunked,
            None,
            Bytes::new(),
            Duration::from_secs(5),
            10,
        )
        .await;
        assert!(
            matches!(r, Err(ClientError::TooLarge { limit: 10 })),
            "{r:?}"
        );

        let exact = one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhelloworld").await;
        let (status, body) = request(
            Method::GET,
            &exact,
            None,
            Bytes::new(),
            Duration::from_secs(5),
            10,
        )
        .await
        .unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"helloworld"[..]));
    }

    #[tokio::test]
    async fn garbage_answer_is_an_http_error() {
        let url = one_shot(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        let r = request(
            Method::GET,
            &url,
            None,
            Bytes::new(),
            Duration::from_secs(5),
            1024,
        )
        .await;
        assert!(matches!(r, Err(ClientError::Http(_))), "{r:?}");

        let url = one_shot(b"").await;
        let r = request(
            Method::GET,
            &url,
            None,
            Bytes::new(),
            Duration::from_secs(5),
            1024,
        )
        .await;
        assert!(matches!(r, Err(ClientError::Http(_))), "{r:?}");
    }
}

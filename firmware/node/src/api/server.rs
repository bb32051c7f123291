//! The listeners: HTTP/1.1 connections (hyper) over TCP or a Unix socket.
//! Each request's head and body are read whole, within [`Limits`], and then
//! handed to a [`Handler`]; so a handler never sees a partial or oversized
//! request, and a request refused here never reaches it.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_io_timeout::TimeoutStream;

use super::message::{ApiError, ApiRequest, ApiResponse, CONTENT_TYPE_OCTETS, Handler, UNIX_PEER};

/// hyper refuses (panics on) a read buffer smaller than this.
const HYPER_MIN_BUF: usize = 8 * 1024;
/// Pause after an accept error that is not about one connection (out of file
/// descriptors): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(500);

/// Every size and time bound of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Larger request bodies get 413 without the handler being called.
    pub max_body_bytes: usize,
    /// Request line plus headers; larger gets 431 (hyper's).
    pub max_header_bytes: usize,
    /// From the moment the server waits for a request head until the head is
    /// complete; on expiry the connection is closed. hyper starts this clock
    /// also when a kept-alive connection waits for its next request, so it is
    /// the keep-alive idle timeout as well.
    pub header_read_timeout: Duration,
    /// From the end of the head to the end of the body; on expiry the server
    /// answers 408 and closes the connection.
    pub body_read_timeout: Duration,
    /// A write to the client that makes no progress for this long (a client
    /// that stopped reading its response) closes the connection.
    pub write_timeout: Duration,
    /// Connections served at once; further clients wait in the accept backlog.
    pub max_connections: usize,
    /// After the shutdown signal: how long requests in flight may take to
    /// finish before their connections are dropped.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 8 * 1024,
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections: 256,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves HTTP/1.1 on `listener` until `shutdown` turns `true` (or its sender
/// is dropped), then stops accepting, lets requests in flight finish within
/// [`Limits::shutdown_grace`], drops what is left and returns. Errors on one
/// connection close that connection only; accept errors are retried.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    serve_on(listener, handler, limits, shutdown).await
}

/// [`serve`] on a Unix socket (the admin API): each request's `peer` is
/// [`UNIX_PEER`] and `peer_uid` the connecting process's effective uid.
/// The socket file's mode and owner are the caller's to set.
pub async fn serve_unix<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    serve_on(listener, handler, limits, shutdown).await
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    addr: SocketAddr,
    uid: Option<u32>,
}

/// The one difference between the TCP and the Unix listener.
trait Acceptor: Send {
    type Io: AsyncRead + AsyncWrite + Send + 'static;
    fn next_conn(&self) -> impl Future<Output = io::Result<(Self::Io, Peer)>> + Send;
}

impl Acceptor for TcpListener {
    type Io = TcpStream;
    async fn next_conn(&self) -> io::Result<(TcpStream, Peer)> {
        let (stream, addr) = self.accept().await?;
        // Responses are written whole; do not hold back their last segment.
        let _ = stream.set_nodelay(true);
        Ok((stream, Peer { addr, uid: None }))
    }
}

impl Acceptor for UnixListener {
    type Io = UnixStream;
    async fn next_conn(&self) -> io::Result<(UnixStream, Peer)> {
        let (stream, _) = self.accept().await?;
        let uid = stream.peer_cred().ok().map(|cred| cred.uid());
        Ok((
            stream,
            Peer {
                addr: UNIX_PEER,
                uid,
            },
        ))
    }
}

async fn serve_on<A: Acceptor, H: Handler>(
    acceptor: A,
    handler: Arc<H>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let builder = http1_builder(&limits);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        // The permit is taken before accepting, so clients over the cap wait
        // in the kernel's backlog instead of costing a task each.
        let next = async {
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            acceptor.next_conn().await.map(|conn| (conn, permit))
        };
        let accepted = tokio::select! {
            () = shutdown_requested(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = next => accepted,
        };
        let ((stream, peer), permit) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => continue,
            Err(_) => {
                tokio::select! {
                    () = shutdown_requested(&mut shutdown) => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_timeout));
        let io = TokioIo::new(Box::pin(stream));
        let handler = Arc::clone(&handler);
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let handler = Arc::clone(&handler);
            async move { Ok::<_, Infallible>(respond(&*handler, &limits, peer, req).await) }
        });
        let conn = graceful.watch(builder.serve_connection(io, service));
        connections.spawn(async move {
            // Errors (timeouts, malformed requests, resets) end this
            // connection only; hyper has already answered what it could.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(acceptor);
    let _ = tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await;
    connections.shutdown().await;
    Ok(())
}

/// Resolves when the value is `true` or the sender is gone.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Accept errors that concern one would-be connection, not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        // Also bounds the read buffer (and so memory) per connection; the
        // body streams through it into the capped collector.
        .max_buf_size(limits.max_header_bytes.max(HYPER_MIN_BUF))
        .keep_alive(true)
        .half_close(false);
    builder
}

/// One request: read the body within the limits, call the handler, build the
/// HTTP response.
async fn respond<H: Handler, B>(
    handler: &H,
    limits: &Limits,
    peer: Peer,
    req: http::Request<B>,
) -> http::Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let body = match read_body(body, limits).await {
        Ok(body) => body,
        // The rest of the body is not read, so the connection cannot carry
        // another request; say so.
        Err(e) => return into_http(e.into(), true),
    };
    let req = ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        peer: peer.addr,
        peer_uid: peer.uid,
        headers: parts.headers,
        body,
    };
    into_http(handler.handle(req).await, false)
}

async fn read_body<B>(body: B, limits: &Limits) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let max = limits.max_body_bytes;
    let too_large = || ApiError::payload_too_large(format!("the request body exceeds {max} bytes"));
    // A declared Content-Length over the limit is refused before reading.
    if body.size_hint().lower() > max as u64 {
        return Err(too_large());
    }
    let collected =
        tokio::time::timeout(limits.body_read_timeout, Limited::new(body, max).collect());
    match collected.await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
        Err(_) => Err(ApiError::request_timeout(format!(
            "the request body did not arrive within {:?}",
            limits.body_read_timeout
        ))),
    }
}

fn into_http(resp: ApiResponse, close: bool) -> http::Response<Full<Bytes>> {
    let content_type = HeaderValue::from_str(resp.content_type)
        .unwrap_or(HeaderValue::from_static(CONTENT_TYPE_OCTETS));
    let mut headers: HeaderMap = resp.headers;
    headers.insert(CONTENT_TYPE, content_type);
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let mut out = http::Response::new(Full::new(resp.body));
    *out.status_mut() = resp.status;
    *out.headers_mut() = headers;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::client::{self, ClientError};
    use http::{Method, StatusCode};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::task::JoinHandle;

    /// Echoes what it was given; `/slow?ms=N` answers after N ms and
    /// `/big?bytes=N` with N bytes.
    #[derive(Default)]
    struct Echo {
        calls: AtomicUsize,
    }

    impl Handler for Echo {
        async fn handle(&self, req: ApiRequest) -> ApiResponse {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let number = |key| req.query_param(key).and_then(|v| v.parse::<u64>().ok());
            match (&req.method, req.segments().as_slice()) {
                (_, ["slow"]) => {
                    let ms = number("ms").unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    ApiResponse::text(StatusCode::OK, "slept")
                }
                (&Method::GET, ["big"]) => {
                    let n = number("bytes").unwrap_or(0) as usize;
                    ApiResponse::bytes(StatusCode::OK, CONTENT_TYPE_OCTETS, vec![b'x'; n].into())
                }
                (_, ["echo"]) => ApiResponse::json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "method": req.method.as_str(),
                        "path": req.path,
                        "query": req.query,
                        "peer_ip": req.peer.ip().to_string(),
                        "peer_uid": req.peer_uid,
                        "body": String::from_utf8_lossy(&req.body),
                        "content_type": req.content_type(),
                    }),
                ),
                _ => ApiError::not_found(format!("no route for {}", req.path)).into(),
            }
        }
    }

    struct Running {
        addr: SocketAddr,
        echo: Arc<Echo>,
        stop: watch::Sender<bool>,
        task: JoinHandle<io::Result<()>>,
    }

    impl Running {
        fn url(&self, target: &str) -> String {
            format!("http://{}{target}", self.addr)
        }

        fn calls(&self) -> usize {
            self.echo.calls.load(Ordering::SeqCst)
        }

        async fn stop(self) -> Duration {
            let started = Instant::now();
            self.stop.send(true).unwrap();
            tokio::time::timeout(Duration::from_secs(10), self.task)
                .await
                .expect("serve returns after shutdown")
                .unwrap()
                .unwrap();
            started.elapsed()
        }
    }

    async fn start(limits: Limits) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = Arc::new(Echo::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, Arc::clone(&echo), limits, stop_rx));
        Running {
            addr,
            echo,
            stop,
            task,
        }
    }

    fn small_limits() -> Limits {
        Limits {
            max_body_bytes: 1024,
            ..Limits::default()
        }
    }

    /// Sends `raw` and reads until the server closes (or 10 s pass).
    async fn exchange_raw(addr: SocketAddr, raw: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(raw).await.unwrap();
        read_to_close(&mut stream).await
    }

    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out));
        match read.await {
            Ok(Ok(_)) => {}
            // A reset after the response still leaves what was read.
            Ok(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
            Err(_) => panic!("server did not close: {}", String::from_utf8_lossy(&out)),
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn json_of(response: &str) -> serde_json::Value {
        let body = response.split_once("\r\n\r\n").expect("head and body").1;
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
    }

    #[tokio::test]
    async fn get_and_post_through_the_client() {
        let server = start(small_limits()).await;
        let timeout = Duration::from_secs(5);
        let (status, body) = client::request(
            Method::GET,
            &server.url("/echo?a=1&b=x%20y"),
            None,
            Bytes::new(),
            timeout,
            4096,
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/echo");
        assert_eq!(v["query"], "a=1&b=x%20y");
        assert_eq!(v["peer_ip"], "127.0.0.1");
        assert_eq!(v["peer_uid"], serde_json::Value::Null);

        let (status, body) = client::request(
            Method::POST,
            &server.url("/echo"),
            Some("application/json"),
            Bytes::from_static(br#"{"hello":1}"#),
            timeout,
            4096,
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["body"], r#"{"hello":1}"#);
        assert_eq!(v["content_type"], "application/json");

        let (status, body) = client::request(
            Method::GET,
            &server.url("/nope"),
            None,
            Bytes::new(),
            timeout,
            4096,
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "not_found");
        assert_eq!(server.calls(), 3);
        server.stop().await;
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests_on_one_connection() {
        let server = start(small_limits()).await;
        let raw = b"GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n\
                    POST /echo?n=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi\
                    GET /echo?n=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        let response = exchange_raw(server.addr, raw).await;
        assert_eq!(response.matches("HTTP/1.1 200 OK").count(), 3, "{response}");
        assert!(response.contains(r#""body":"hi""#), "{response}");
        assert!(
            response.contains("content-type: application/json"),
            "{response}"
        );
        assert_eq!(server.calls(), 3);
        server.stop().await;
    }

    #[tokio::test]
    async fn body_at_the_limit_is_accepted() {
        let server = start(small_limits()).await;
        let body = "a".repeat(1024);
        let (status, _) = client::request(
            Method::POST,
            &server.url("/echo"),
            Some("text/plain"),
            Bytes::from(body),
            Duration::from_secs(5),
            8192,
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::OK);
        server.stop().await;
    }

    #[tokio::test]
    async fn declared_body_over_limit_is_413_without_the_handler() {
        let server = start(small_limits()).await;
        // Only the head is sent: the answer must not wait for the body.
        let response = exchange_raw(
            server.addr,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n",
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
        assert!(response.contains("connection: close"), "{response}");
        let v = json_of(&response);
        assert_eq!(v["error"], "payload_too_large");
        assert!(v["detail"].as_str().unwrap().contains("1024"), "{v}");
        assert_eq!(server.calls(), 0);

        // Through the client too, body and all.
        let (status, body) = client::request(
            Method::POST,
            &server.url("/echo"),
            None,
            Bytes::from(vec![0u8; 2000]),
            Duration::from_secs(5),
            4096,
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(String::from_utf8_lossy(&body).contains("payload_too_large"));
        assert_eq!(server.calls(), 0);
        server.stop().await;
    }

    #[tokio::test]
    async fn chunked_body_over_limit_is_413_without_the_handler() {
        let server = start(small_limits()).await;
        let mut raw =
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            raw.extend_from_slice(b"200\r\n");
            raw.extend_from_slice(&[b'z'; 0x200]);
            raw.extend_from_slice(b"\r\n");
        }
        // No final chunk: the server must answer on the count alone.
        let response = exchange_raw(server.addr, &raw).await;
        assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
        assert_eq!(json_of(&response)["error"], "payload_too_large");
        assert_eq!(server.calls(), 0);
        server.stop().await;
    }

    #[tokio::test]
    async fn slow_body_gets_408_without_the_handler() {
        let server = start(Limits {
            body_read_timeout: Duration::from_millis(300),
            ..small_limits()
        })
        .await;
        let started = Instant::now();
        let response = exchange_raw(
            server.addr,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten..",
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
        assert_eq!(json_of(&response)["error"], "request_timeout");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(server.calls(), 0);
        server.stop().await;
    }

    #[tokio::test]
    async fn oversized_head_is_431() {
        let server = start(small_limits()).await;
        let raw = format!(
            "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "b".repeat(9 * 1024)
        );
        let response = exchange_raw(server.addr, raw.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
        assert_eq!(server.calls(), 0);
        server.stop().await;
    }

    #[tokio::test]
    async fn malformed_request_line_is_400_and_the_server_goes_on() {
        let server = start(small_limits()).await;
        for raw in [
            &b"THIS IS NOT HTTP\r\n\r\n"[..],
            b"GET /a b c HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            let response = exchange_raw(server.addr, raw).await;
            assert!(response.starts_with("HTTP/1.1 400 "), "{raw:?}: {response}");
        }
        assert_eq!(server.calls(), 0);
        let (status, _) = client::request(
            Method::GET,
            &server.url("/echo"),
            None,
            Bytes::new(),
            Duration::from_secs(5),
            4096,
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::OK);
        server.stop().await;
    }

    /// A client that sends its head one byte per second is cut off around
    /// the header timeout, and another client is served meanwhile.
    #[tokio::test]
    async fn slowloris_is_cut_off_and_does_not_block_others() {
        let header_timeout = Duration::from_secs(2);
        let server = start(Limits {
            header_read_timeout: header_timeout,
            ..small_limits()
        })
        .await;
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let started = Instant::now();
        let slow_writer = tokio::spawn(async move {
            // Bounded: 8 bytes at most, well past the timeout.
            for byte in b"GET /echo HTTP/1.1\r\n".iter().take(8) {
                if writer.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let closed_after = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink).await;
            started.elapsed()
        });

        tokio::time::sleep(Duration::from_millis(500)).await;
        let other = Instant::now();
        let (status, _) = client::request(
            Method::GET,
            &server.url("/echo"),
            None,
            Bytes::new(),
            Duration::from_secs(5),
            4096,
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(
            other.elapsed() < Duration::from_millis(500),
            "{:?}",
            other.elapsed()
        );

        let closed_after = tokio::time::timeout(Duration::from_secs(8), closed_after)
            .await
            .expect("the slow client is disconnected")
            .unwrap();
        assert!(
            closed_after >= header_timeout - Duration::from_millis(100)
                && closed_after < header_timeout + Duration::from_millis(1500),
            "closed after {closed_after:?}"
        );
        slow_writer.abort();
        assert_eq!(server.calls(), 1);
        server.stop().await;
    }

    /// With one connection allowed, a second client waits for the first to
    /// go (here: the idle first one hits the header timeout).
    #[tokio::test]
    async fn connection_cap_makes_others_wait() {
        let server = start(Limits {
            max_connections: 1,
            header_read_timeout: Duration::from_millis(800),
            ..small_limits()
        })
        .await;
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let (status, _) = client::request(
            Method::GET,
            &server.url("/echo"),
            None,
            Bytes::new(),
            Duration::from_secs(5),
            4096,
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::OK);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(500),
            "served after {waited:?}"
        );
        assert_eq!(read_to_close(&mut idle).await, "");
        server.stop().await;
    }

    /// A client that never reads a large response is dropped after the
    /// write timeout instead of holding its connection forever.
    #[tokio::test]
    async fn stalled_reader_is_dropped_after_write_timeout() {
        let server = start(Limits {
            write_timeout: Duration::from_millis(300),
            ..small_limits()
        })
        .await;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(server.addr).await.unwrap();
        let size = 32 * 1024 * 1024;
        let raw = format!("GET /big?bytes={size} HTTP/1.1\r\nHost: t\r\n\r\n");
        stream.write_all(raw.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got += n,
                Err(_) => panic!("the server kept the stalled connection"),
            }
        }
        assert!(got < size, "the whole response arrived ({got} bytes)");
        server.stop().await;
    }

    #[tokio::test]
    async fn graceful_shutdown_finishes_the_request_in_flight() {
        let server = start(small_limits()).await;
        let url = server.url("/slow?ms=600");
        let in_flight = tokio::spawn(async move {
            client::request(
                Method::GET,
                &url,
                None,
                Bytes::new(),
                Duration::from_secs(5),
                4096,
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let addr = server.addr;
        let took = server.stop().await;
        let (status, body) = in_flight.await.unwrap().unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"slept"[..]));
        assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
        // No longer listening.
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn shutdown_grace_bounds_a_request_that_does_not_finish() {
        let server = start(Limits {
            shutdown_grace: Duration::from_millis(300),
            ..small_limits()
        })
        .await;
        let url = server.url("/slow?ms=60000");
        let in_flight = tokio::spawn(async move {
            client::request(
                Method::GET,
                &url,
                None,
                Bytes::new(),
                Duration::from_secs(10),
                4096,
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let took = server.stop().await;
        assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
        let result = in_flight.await.unwrap();
        assert!(matches!(result, Err(ClientError::Http(_))), "{result:?}");
    }

    #[tokio::test]
    async fn unix_socket_reports_the_peer_uid() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let listener = UnixListener::bind(&path).unwrap();
        // bind() made the file as this process's effective uid.
        let uid = std::fs::metadata(&path).unwrap().uid();
        let echo = Arc::new(Echo::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve_unix(
            listener,
            Arc::clone(&echo),
            small_limits(),
            stop_rx,
        ));

        let mut stream = UnixStream::connect(&path).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: admin\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
            .await
            .unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        let response = String::from_utf8(out).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
        let v = json_of(&response);
        assert_eq!(v["peer_uid"], uid);
        assert_eq!(v["peer_ip"], "0.0.0.0");
        assert_eq!(v["body"], "abc");

        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn dropping_the_shutdown_sender_stops_the_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stop_rx) = watch::channel(false);
        drop(stop);
        let served = serve(
            listener,
            Arc::new(Echo::default()),
            Limits::default(),
            stop_rx,
        );
        tokio::time::timeout(Duration::from_secs(2), served)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn serve_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let rt = crate::runtime::current_thread().unwrap();
        rt.block_on(async {
            let (_stop, rx) = watch::channel(false);
            let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
            assert_send(&serve(
                tcp,
                Arc::new(Echo::default()),
                Limits::default(),
                rx.clone(),
            ));
            let dir = tempfile::tempdir().unwrap();
            let unix = UnixListener::bind(dir.path().join("s")).unwrap();
            assert_send(&serve_unix(
                unix,
                Arc::new(Echo::default()),
                Limits::default(),
                rx,
            ));
        });
    }

    #[tokio::test]
    async fn read_body_limits_without_sockets() {
        let limits = small_limits();
        let ok = read_body(Full::new(Bytes::from(vec![1u8; 1024])), &limits).await;
        assert_eq!(ok.unwrap().len(), 1024);
        let err = read_body(Full::new(Bytes::from(vec![1u8; 1025])), &limits)
            .await
            .unwrap_err();
        assert_eq!(
            (err.status, err.error),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        );
    }

    #[test]
    fn into_http_sets_type_extra_headers_and_close() {
        let resp = ApiResponse::text(StatusCode::CREATED, "x")
            .with_header(http::header::ALLOW, HeaderValue::from_static("GET"));
        let out = into_http(resp, false);
        assert_eq!(out.status(), StatusCode::CREATED);
        assert_eq!(out.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(out.headers()[http::header::ALLOW], "GET");
        assert!(out.headers().get(CONNECTION).is_none());
        let out = into_http(ApiError::request_timeout("slow").into(), true);
        assert_eq!(out.headers()[CONNECTION], "close");
        assert_eq!(out.status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[test]
    fn default_limits() {
        let l = Limits::default();
        assert_eq!(l.max_body_bytes, 65536);
        assert_eq!(l.max_header_bytes, 8192);
        assert_eq!(l.header_read_timeout, Duration::from_secs(5));
        assert_eq!(l.body_read_timeout, Duration::from_secs(10));
        assert_eq!(l.write_timeout, Duration::from_secs(30));
        assert_eq!(l.max_connections, 256);
    }
}

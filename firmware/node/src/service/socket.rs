//! The CLI's side of the admin socket: one [`Request`] to the running
//! daemon. `Ok(None)` means no daemon answers (no socket, or nobody
//! listening), and the CLI then runs the request itself.

use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::{Request, ServiceError};
use crate::config::Config;

const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_RESPONSE: usize = 16 << 20;

pub fn send(config: &Config, request: &Request) -> Result<Option<Value>, ServiceError> {
    let (method, path) = request.route();
    let body = request
        .body()
        .map_err(|e| ServiceError::Fault(anyhow!("encoding the request: {e}")))?;
    let socket = config.api.admin_socket.clone();
    if !socket.exists() {
        return Ok(None);
    }
    let runtime = crate::runtime::current_thread()?;
    let answer = runtime.block_on(async move {
        let stream = match tokio::net::UnixStream::connect(&socket).await {
            Ok(s) => s,
            // A socket file left by a daemon that is gone.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
            Err(e) => return Err(anyhow!("admin socket {}: {e}", socket.display())),
        };
        let exchange = async {
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let bytes = match &body {
                Some(v) => Bytes::from(serde_json::to_vec(v)?),
                None => Bytes::new(),
            };
            let request = http::Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::HOST, "gondwana-admin")
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(bytes))?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| anyhow!("reading the daemon's answer: {e}"))?
                .to_bytes();
            let value: Value =
                serde_json::from_slice(&body).context("the daemon's answer is not JSON")?;
            if !status.is_success() {
                let detail = value["detail"].as_str().unwrap_or("").to_string();
                let code = value["error"].as_str().unwrap_or("internal");
                return Ok(Err(ServiceError::from_wire(code, detail)));
            }
            Ok::<_, anyhow::Error>(Ok(value))
        };
        match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(r) => r.map(Some),
            Err(_) => Err(anyhow!(
                "the daemon did not answer on {} within {TIMEOUT:?}",
                socket.display()
            )),
        }
    });
    match answer.map_err(ServiceError::Fault)? {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(refused)) => Err(refused),
    }
}

//! The CLI's side of the admin socket: one JSON request to the running
//! daemon. `Ok(None)` means no daemon answers (no socket, or nobody
//! listening), and the CLI then works on the store itself.

use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::config::Config;

const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_RESPONSE: usize = 16 << 20;

pub fn call(
    config: &Config,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Option<Value>> {
    let socket = config.api.admin_socket.clone();
    if !socket.exists() {
        return Ok(None);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
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
                return Err(anyhow!(
                    "the daemon refused: {}",
                    value["detail"]
                        .as_str()
                        .unwrap_or_else(|| value["error"].as_str().unwrap_or("error"))
                ));
            }
            Ok::<Value, anyhow::Error>(value)
        };
        match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(r) => r.map(Some),
            Err(_) => Err(anyhow!(
                "the daemon did not answer on {} within {TIMEOUT:?}",
                socket.display()
            )),
        }
    })
}

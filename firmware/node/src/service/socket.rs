//! The CLI's side of the admin socket: one [`Request`] to the running
//! daemon. `Ok(None)` means no daemon answers (no socket, or nobody
//! listening), and the CLI then runs the request itself.
//!
//! Every answer names the daemon that gave it (headers [`NODE_ID`],
//! [`BOXNAME`], [`STATE_DIR`]): two daemons on one host with one socket
//! path would otherwise let the CLI of one box act on the other. The CLI
//! puts that name into `--json` objects (`"daemon"`) and into every error
//! the daemon answers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::{Request, ServiceError};
use crate::config::Config;
use crate::exit::SocketTaken;

/// Response headers naming the daemon that answered.
pub const NODE_ID: &str = "gondwana-node-id";
pub const BOXNAME: &str = "gondwana-boxname";
pub const STATE_DIR: &str = "gondwana-state-dir";

const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_RESPONSE: usize = 16 << 20;

/// The daemon behind a socket, as its answers name it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonName {
    pub node_id: String,
    pub boxname: String,
    pub state_dir: String,
}

impl DaemonName {
    fn from_headers(headers: &HeaderMap) -> Option<DaemonName> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Some(DaemonName {
            node_id: get(NODE_ID)?,
            boxname: get(BOXNAME).unwrap_or_default(),
            state_dir: get(STATE_DIR).unwrap_or_default(),
        })
    }

    /// `node 3f2a9c01b2d4… (gw-x, state /var/lib/gondwana)`: how errors
    /// name it.
    pub fn describe(&self) -> String {
        let short: String = self.node_id.chars().take(12).collect();
        let ellipsis = if short.len() < self.node_id.len() {
            "…"
        } else {
            ""
        };
        format!(
            "node {short}{ellipsis} ({}, state {})",
            self.boxname, self.state_dir
        )
    }
}

/// One answer from the socket.
struct Answer {
    status: StatusCode,
    body: Value,
    daemon: Option<DaemonName>,
}

/// Sends `request` to the daemon on `api.admin_socket`, for the box whose
/// state is `state_dir`. The daemon is asked who it is first: one that
/// serves another state directory gets nothing (exit 9, naming it), so
/// the CLI of one box never acts on another that shares the socket path.
pub fn send(
    config: &Config,
    state_dir: &Path,
    request: &Request,
) -> Result<Option<Value>, ServiceError> {
    let (method, path) = request.route();
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|e| ServiceError::Fault(anyhow!("request method: {e}")))?;
    let body = request
        .body()
        .map_err(|e| ServiceError::Fault(anyhow!("encoding the request: {e}")))?;
    let socket = config.api.admin_socket.clone();
    if !socket.exists() {
        return Ok(None);
    }
    let runtime = crate::runtime::current_thread()?;
    let answer = runtime
        .block_on(async {
            if let Some(who) = who_answers(&socket).await
                && !who.state_dir.is_empty()
                && !same_dir(Path::new(&who.state_dir), state_dir)
            {
                return Err(SocketTaken(format!(
                    "the admin socket {} is answered by the daemon of {}, not by one of the \
                     state {}: nothing was sent (the daemon's box: --state-dir {}; another \
                     box: give it its own api.admin_socket)",
                    socket.display(),
                    who.describe(),
                    state_dir.display(),
                    who.state_dir
                ))
                .into());
            }
            exchange(&socket, method, path, body, TIMEOUT).await
        })
        .map_err(ServiceError::Fault)?;
    let Some(Answer {
        status,
        body,
        daemon,
    }) = answer
    else {
        return Ok(None);
    };
    let daemon = daemon.unwrap_or_default();
    if !status.is_success() {
        let detail = body["detail"].as_str().unwrap_or("");
        let code = body["error"].as_str().unwrap_or("internal");
        return Err(ServiceError::from_wire(
            code,
            format!("{}: {detail}", daemon.describe()),
        ));
    }
    Ok(Some(with_daemon(body, &daemon, &socket)))
}

/// Who answers on `socket` (`None`: nobody, or not a gondwana daemon of
/// this version), asked with a short deadline: for a daemon deciding
/// whether the socket it wants is taken.
pub async fn who_answers(socket: &Path) -> Option<DaemonName> {
    let asked = exchange(
        socket,
        Method::GET,
        "/admin/identity",
        None,
        Duration::from_secs(3),
    )
    .await;
    asked.ok().flatten().and_then(|a| a.daemon)
}

/// The same directory, however it is spelled.
pub fn same_dir(a: &Path, b: &Path) -> bool {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    real(a) == real(b)
}

/// A JSON object answer gets `"daemon"`: which node answered, from which
/// state directory, through which socket (merged into the `daemon` that
/// `status` already has). Arrays are left as they are.
fn with_daemon(mut body: Value, daemon: &DaemonName, socket: &Path) -> Value {
    if let Some(object) = body.as_object_mut() {
        let entry = object.entry("daemon").or_insert_with(|| json!({}));
        if let Some(d) = entry.as_object_mut() {
            d.insert("running".into(), json!(true));
            d.insert("node_id".into(), json!(daemon.node_id));
            d.insert("boxname".into(), json!(daemon.boxname));
            d.insert("state_dir".into(), json!(daemon.state_dir));
            d.insert("admin_socket".into(), json!(socket.display().to_string()));
        }
    }
    body
}

/// `Ok(None)`: no daemon listens (a socket file left by one that is gone).
async fn exchange(
    socket: &Path,
    method: Method,
    path: &str,
    body: Option<Value>,
    timeout: Duration,
) -> anyhow::Result<Option<Answer>> {
    let socket: PathBuf = socket.to_path_buf();
    let stream = match tokio::net::UnixStream::connect(&socket).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(anyhow!("admin socket {}: {e}", socket.display())),
    };
    let exchange = async {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        crate::runtime::spawn(conn);
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
        let daemon = DaemonName::from_headers(response.headers());
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| anyhow!("reading the daemon's answer: {e}"))?
            .to_bytes();
        let body: Value =
            serde_json::from_slice(&body).context("the daemon's answer is not JSON")?;
        Ok::<_, anyhow::Error>(Answer {
            status,
            body,
            daemon,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r.map(Some),
        Err(_) => Err(anyhow!(
            "the daemon did not answer on {} within {timeout:?}",
            socket.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_name_the_daemon_and_arrays_stay() {
        let d = DaemonName {
            node_id: "3f2a9c01b2d4e5f60718".into(),
            boxname: "gw-a".into(),
            state_dir: "/var/lib/gondwana".into(),
        };
        assert_eq!(
            d.describe(),
            "node 3f2a9c01b2d4… (gw-a, state /var/lib/gondwana)"
        );
        let socket = Path::new("/run/gondwana/admin.sock");
        let status = with_daemon(
            json!({"daemon": {"running": true, "uptime_secs": 3}}),
            &d,
            socket,
        );
        assert_eq!(status["daemon"]["uptime_secs"], 3);
        assert_eq!(status["daemon"]["node_id"], "3f2a9c01b2d4e5f60718");
        assert_eq!(status["daemon"]["admin_socket"], "/run/gondwana/admin.sock");
        assert_eq!(with_daemon(json!([1]), &d, socket), json!([1]));
    }
}

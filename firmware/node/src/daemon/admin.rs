//! The root-only admin socket: typed requests ([`Request`]) in, the
//! service layer's answers out. One error type maps to the status code:
//! 4xx for what the caller can fix, 5xx for faults, 405 with `Allow` for a
//! known path asked with the wrong method.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use http::StatusCode;
use http::header::{ALLOW, HeaderName, HeaderValue};
use serde_json::Value;

use crate::api::{ApiError, ApiRequest, ApiResponse, Handler};
use crate::config::Role;
use crate::daemon::app::{App, EnrolStatus};
use crate::daemon::peers::PeerReport;
use crate::daemon::{enrol_task, grants, lending, offers_task, revocation};
use crate::exit::SocketTaken;
use crate::pid_lock::{LockError, PidLock};
use crate::service::request::RouteError;
use crate::service::{self, Request, ServiceError, socket, views};
use crate::store::StoreError;

pub struct AdminApi(pub Arc<App>);

impl Handler for AdminApi {
    async fn handle(&self, req: ApiRequest) -> ApiResponse {
        let response = self.answer(req).await;
        name_this_daemon(&self.0, response)
    }
}

/// Every answer names the node, its boxname and state directory, so a CLI
/// can tell which daemon it reached (service/socket.rs).
fn name_this_daemon(app: &App, mut response: ApiResponse) -> ApiResponse {
    let identity = app.identity();
    // Absolute: the CLI compares it with its own from another directory.
    let state_dir = std::fs::canonicalize(&app.state_dir)
        .unwrap_or_else(|_| app.state_dir.clone())
        .display()
        .to_string();
    for (name, value) in [
        (socket::NODE_ID, identity.node_id.as_str()),
        (socket::BOXNAME, identity.boxname.as_str()),
        (socket::STATE_DIR, state_dir.as_str()),
    ] {
        // A state directory whose path is not header-safe goes unnamed.
        if let Ok(v) = HeaderValue::from_str(value) {
            response = response.with_header(HeaderName::from_static(name), v);
        }
    }
    response
}

impl AdminApi {
    async fn answer(&self, req: ApiRequest) -> ApiResponse {
        // Root only: the socket is 0600, and this holds even if it is not.
        if req.peer_uid != Some(0) && req.peer_uid != Some(nix::unistd::geteuid().as_raw()) {
            return ApiError::forbidden("the admin socket is for root").into();
        }
        let request = match Request::from_http(&req.method, &req.path, &req.body) {
            Ok(r) => r,
            Err(RouteError::NotFound) => {
                return ApiError::not_found(format!("no admin route {} {}", req.method, req.path))
                    .into();
            }
            Err(RouteError::MethodNotAllowed(allow)) => {
                let detail = format!("{} takes {allow}", req.path);
                let response = ApiResponse::from(ApiError::method_not_allowed(detail));
                return match HeaderValue::from_str(&allow) {
                    Ok(v) => response.with_header(ALLOW, v),
                    Err(_) => response,
                };
            }
            Err(RouteError::BadBody(detail)) => return ApiError::bad_request(detail).into(),
        };
        let app = self.0.clone();
        let result = execute(&app, request).await;
        // Any admin action may change what status shows.
        app.changed();
        match result {
            Ok(v) => ApiResponse::json(StatusCode::OK, &v),
            Err(e) => {
                if e.status().is_server_error() {
                    error!("admin request failed: {e}");
                }
                ApiError::new(e.status(), e.code(), e.to_string()).into()
            }
        }
    }
}

async fn execute(app: &Arc<App>, request: Request) -> service::Result<Value> {
    match request {
        Request::UpdatePublish(r) if app.role() == Role::Node => {
            crate::daemon::update_task::publish_via_hub(app, r).await
        }
        Request::Enroll(file) => enroll(app, file).await,
        Request::GrantAdd(ref r) | Request::GrantDel(ref r) if r.node.is_some() => {
            let delete = matches!(request, Request::GrantDel(_));
            grants::remote(app, r.clone(), delete)
                .await
                .map_err(|e| ServiceError::Upstream(format!("{e:#}")))
        }
        Request::Status => {
            app.refresh_offers().await;
            let peers = app.live.read().await;
            Ok(app.status_json(peers.as_deref()))
        }
        Request::NodeList => {
            let mut list = blocking(app, request).await?;
            let peers = app.live.read().await;
            let own = app.identity().node_id.to_string();
            mark_online(&mut list, &own, peers.as_deref());
            Ok(list)
        }
        Request::ServiceRequests => lending::operator::requests(app).await,
        Request::ServiceApprove(v) => lending::operator::decide(app, v, false).await,
        Request::ServiceDeny(v) => lending::operator::decide(app, v, true).await,
        Request::ServiceSubscribe(s) => lending::consumer::subscribe(app, s).await,
        Request::ServiceUnsubscribe(s) => lending::consumer::unsubscribe(app, s).await,
        Request::ServiceOffer(_) | Request::ServiceWithdraw(_) => {
            offers_task::publish_request(app, request).await
        }
        Request::NodeRevoke(_) => {
            let revoked = blocking(app, request).await?;
            // Before `changed()` lets the data plane remove the node's peer.
            revocation::push_to_node(app, &revoked).await;
            Ok(revoked)
        }
        other => blocking(app, other).await,
    }
}

async fn blocking(app: &Arc<App>, request: Request) -> service::Result<Value> {
    let app = app.clone();
    crate::daemon::drive::blocking(move || on_daemon(&app, &request))
        .await
        .map_err(|e| ServiceError::Fault(anyhow::anyhow!("admin task: {e}")))?
}

/// The requests that need the daemon's memory or its firewall; the rest
/// run exactly as the CLI runs them without a daemon.
fn on_daemon(app: &App, request: &Request) -> service::Result<Value> {
    let config = app.config();
    if let Some(result) = service::update::on_system(&config, Some(&app.store), request) {
        return result;
    }
    let store = &app.store;
    if let Some(result) = service::on_store(store, &config, request) {
        return result;
    }
    let firewall = || app.grants.require();
    match request {
        Request::Status => Ok(app.status_json(None)),
        Request::Identity => Ok(views::identity(&app.identity())),
        Request::IdentityRotate(r) => {
            let next = service::identity::rotate(store, &config, app.hub.as_ref(), r.signing)?;
            app.set_identity(next.clone());
            Ok(views::identity(&next))
        }
        Request::GrantAdd(r) => service::grants::add(firewall()?, store, r, "admin socket"),
        Request::GrantDel(r) => service::grants::del(firewall()?, store, r, "admin socket"),
        Request::GrantList => service::grants::list(firewall()?, store),
        other => Err(ServiceError::Fault(anyhow::anyhow!(
            "{} {} is not run here",
            other.route().0,
            other.route().1
        ))),
    }
}

/// Hub: each node record gets `online` (a handshake within
/// [`ONLINE_WITHIN`](crate::daemon::peers::ONLINE_WITHIN)) and its last
/// handshake, matched by WireGuard key; `null` when the device cannot be
/// read (no data plane), and for the hub's own record (`this_box`).
fn mark_online(list: &mut Value, own_node_id: &str, peers: Option<&[PeerReport]>) {
    for node in list.as_array_mut().into_iter().flatten() {
        let this_box = node["node_id"] == own_node_id;
        node["this_box"] = this_box.into();
        let key = node["wireguard_public_key"].as_str().unwrap_or_default();
        let peer = peers
            .filter(|_| !this_box)
            .map(|ps| ps.iter().find(|p| p.public_key == key));
        let (online, last) = match peer {
            None => (Value::Null, Value::Null),
            Some(None) => (false.into(), Value::Null),
            Some(Some(p)) => (
                p.online().into(),
                p.to_json()["last_handshake_unix"].clone(),
            ),
        };
        node["last_handshake"] = last.as_u64().map(crate::daemon::peers::rfc3339).into();
        node["last_handshake_unix"] = last;
        node["online"] = online;
    }
}

async fn enroll(
    app: &Arc<App>,
    file: crate::boot::enroll_file::EnrollFile,
) -> service::Result<Value> {
    let plan = file
        .into_plan("gondwana enroll".into())
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    if let Ok(Some(e)) = app.store.enrolment() {
        let mut v = service::status::enrolment_json(&app.store, &e);
        v["already_enrolled"] = serde_json::json!(true);
        return Ok(v);
    }
    match enrol_task::enrol_once(&app.store, &app.config(), &plan).await {
        Ok(e) => {
            app.set_hub_mirror_len(app.identity().len);
            app.set_status(EnrolStatus::Enrolled);
            Ok(views::enrolment(&e))
        }
        Err(e) => Err(ServiceError::Upstream(format!("{e:#}"))),
    }
}

/// One daemon per admin socket: an exclusive lock on `<socket>.lock`,
/// held for the daemon's life (the kernel drops it if the process dies).
/// Without it a second daemon with another state directory but the same
/// `api.admin_socket` silently took the socket over, and the CLI meant for
/// one box then acted on the other.
pub struct SocketClaim(#[allow(dead_code)] PidLock);

/// Claims `socket` for the daemon of `state_dir`, before anything else
/// starts. Refused (exit 9, naming the holder's node and state directory)
/// while a live daemon of another state directory holds it; the same
/// state directory is the state lock's refusal (exit 3). A socket file
/// nobody answers on is stale and is taken over when it is bound.
pub async fn claim_socket(socket: &Path, state_dir: &Path) -> anyhow::Result<SocketClaim> {
    if let Some(dir) = socket.parent() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let lock_path = lock_path(socket);
    match PidLock::acquire(&lock_path) {
        Ok(lock) => {
            // A daemon from before this lock existed may still listen.
            if tokio::net::UnixStream::connect(socket).await.is_ok() {
                return Err(SocketTaken(format!(
                    "the admin socket {} is answered by another daemon: stop it, or give this \
                     one its own api.admin_socket",
                    socket.display()
                ))
                .into());
            }
            Ok(SocketClaim(lock))
        }
        Err(LockError::Held(pid)) => Err(held_by(
            socket,
            state_dir,
            &pid,
            socket::who_answers(socket).await,
        )),
        Err(LockError::Io(e)) => Err(anyhow::anyhow!("locking {}: {e}", lock_path.display())),
    }
}

/// Why a held socket is refused: its daemon serves our own state (the
/// state lock's exit 3) or another one (exit 9). `pid` is `" (pid N)"` or
/// empty.
fn held_by(
    socket: &Path,
    state_dir: &Path,
    pid: &str,
    who: Option<socket::DaemonName>,
) -> anyhow::Error {
    let Some(who) = who else {
        return SocketTaken(format!(
            "the admin socket {} is held by another gondwana daemon{pid}, which does not answer \
             (yet): stop it, or give this one its own api.admin_socket",
            socket.display()
        ))
        .into();
    };
    if socket::same_dir(Path::new(&who.state_dir), state_dir) {
        return StoreError::InUse {
            dir: state_dir.to_path_buf(),
            holder: format!("{pid}: its daemon runs, on {}", socket.display()),
        }
        .into();
    }
    SocketTaken(format!(
        "the admin socket {} is held by the running daemon{pid} of {}, another state \
         directory: stop it, or give this daemon its own api.admin_socket",
        socket.display(),
        who.describe()
    ))
    .into()
}

fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

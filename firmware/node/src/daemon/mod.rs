//! `gondwana run`: the daemon. It holds the state (redb has one writer), so
//! while it runs CLI admin commands reach it over the root-only admin socket.
//!
//! Start-up: provision the identity if needed (same code as `firstboot`),
//! open the store, bind the listeners, then serve until SIGTERM/SIGINT;
//! SIGHUP reloads the config file (enrolment sources, retry timing, pull
//! interval; listeners and role need a restart).

pub mod admin;
pub mod app;
pub mod candidates_hub;
pub mod candidates_state;
pub mod candidates_task;
pub mod dataplane;
pub mod dataplane_status;
pub mod drive;
pub mod enrol_task;
pub mod firewall;
pub mod grants;
pub mod lending;
pub mod lending_state;
pub mod metrics;
pub mod nonces;
pub mod offers_hub;
pub mod offers_state;
pub mod offers_task;
pub mod paths;
pub mod peers;
pub mod revocation;
pub mod routes;
pub mod sync_task;
pub mod update_fetch;
pub mod update_serve;
pub mod update_task;
pub mod update_trial;
pub mod view_cache;
pub mod watchdog;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::api::rate_limit::RateLimiter;
use crate::api::{self, Limits};
use crate::boot::firstboot;
use crate::config::{Config, ConfigError, Role};
use crate::daemon::admin::AdminApi;
use crate::daemon::app::{App, AppParts};
use crate::daemon::drive::blocking;
use crate::daemon::routes::{EnrolApi, PublicApi};
use crate::net::host_addrs::host_subnets;
use crate::store::registry;
use crate::store::{OpenMode, StateStore};

pub fn run(
    config: Config,
    config_path: PathBuf,
    named: bool,
    state_dir: PathBuf,
) -> anyhow::Result<()> {
    crate::runtime::current_thread()?.block_on(serve(config, config_path, named, state_dir))
}

async fn serve(
    config: Config,
    config_path: PathBuf,
    named: bool,
    state_dir: PathBuf,
) -> anyhow::Result<()> {
    // First: a daemon refused here has changed nothing.
    let _socket_claim = admin::claim_socket(&config.api.admin_socket, &state_dir).await?;
    if config.role == Role::Hub {
        guard_subnet(&config, &config_path)?;
    }
    if config.adopt_source().is_some() {
        // Adopting an existing interface's key may need `wireguard` first.
        wait_for_boot_modules().await;
    }
    let store = Arc::new(open_state(&state_dir, &config).await?);
    let identity = store.require_identity()?;

    let hub = match crate::service::hub_context(&store, &config)? {
        Some(hub) => {
            let s = store.clone();
            let hub = blocking(move || {
                registry::ensure_hub_record(&s, &hub, crate::clock::now_unix()).map(|()| hub)
            })
            .await??;
            Some(hub)
        }
        None => None,
    };

    // The firewall and the WireGuard probe need the boot's modules; all
    // before this ran beside their loading (boot/modules_wait.rs).
    wait_for_boot_modules().await;

    let burst = config.hub.enroll_rate_burst.max(1);
    let per_minute = config.hub.enroll_rate_per_minute.max(1);
    let metrics = metrics::registry(config.role, routes::PUBLIC_ROUTES);
    let grants = firewall::Grants::start(&config, &store)?;
    let app = Arc::new(App::new(AppParts {
        grants,
        store,
        config,
        config_path: (config_path, named),
        state_dir,
        identity: identity.state,
        hub,
        metrics,
        enrol_rate: RateLimiter::new(burst, f64::from(per_minute) / 60.0),
    }));

    let config = app.config();
    let limits = Limits {
        max_body_bytes: config.api.max_body_bytes,
        ..Limits::default()
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();

    let loopback = config.api.loopback.unwrap_or(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        config.mesh.api_port,
    )));
    let mut public = vec![loopback];
    public.extend(config.api.listen);
    for addr in public {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the API on {addr}"))?;
        info!("API on http://{}", listener.local_addr()?);
        servers.push(crate::runtime::spawn(api::serve(
            listener,
            Arc::new(PublicApi(app.clone())),
            limits,
            stop_rx.clone(),
        )));
    }
    if app.hub.is_some()
        && let Some(addr) = config.hub.enroll_listen
    {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the enrolment listener on {addr}"))?;
        info!("enrolment listener on http://{}", listener.local_addr()?);
        servers.push(crate::runtime::spawn(api::serve(
            listener,
            Arc::new(EnrolApi(app.clone())),
            limits,
            stop_rx.clone(),
        )));
    }
    let socket_path = config.api.admin_socket.clone();
    let admin = bind_admin_socket(&socket_path)?;
    servers.push(crate::runtime::spawn(api::serve_unix(
        admin,
        Arc::new(AdminApi(app.clone())),
        limits,
        stop_rx.clone(),
    )));

    let mut background = match app.role() {
        Role::Node => vec![
            crate::runtime::spawn(enrol_task::run(app.clone())),
            crate::runtime::spawn(candidates_task::run(app.clone())),
        ],
        Role::Hub => vec![crate::runtime::spawn(candidates_hub::run(app.clone()))],
    };
    background.push(crate::runtime::spawn(lending::provider::run(app.clone())));
    background.push(crate::runtime::spawn(lending::consumer::run(app.clone())));
    background.push(crate::runtime::spawn(offers_task::run(app.clone())));
    background.push(crate::runtime::spawn(update_task::run(app.clone())));
    background.push(crate::runtime::spawn(watchdog::run(config.update.clone())));
    let serve_mesh_api: dataplane::ServeMeshApi = {
        let (app, stop) = (app.clone(), stop_rx.clone());
        let limits = api::Limits {
            max_body_bytes: config.api.max_body_bytes,
            ..api::Limits::default()
        };
        Box::new(move |listener| {
            let handler = Arc::new(PublicApi(app.clone()));
            crate::runtime::spawn(api::serve(listener, handler, limits, stop.clone()));
        })
    };
    // A trial boot judges its own health; any boot notes a rollback.
    let update = config.update.clone();
    match blocking(move || crate::update::trial::on_start(&update, crate::clock::now_unix())).await
    {
        Ok(Ok(crate::update::trial::OnStart::Trial { slot })) => {
            background.push(crate::runtime::spawn(update_trial::run(app.clone(), slot)))
        }
        Ok(Ok(crate::update::trial::OnStart::Nothing)) => {}
        Ok(Err(e)) => warn!("update: the trial record: {e:#}"),
        Err(e) => warn!("update: the trial record: {e}"),
    }
    background.push(crate::runtime::spawn(dataplane::run(
        app.clone(),
        serve_mesh_api,
    )));
    if config.relay.runs_on(config.role) {
        info!(
            "relay: on {}, ports {}, {} kbit/s per pair",
            config.relay.listen, config.relay.port_range, config.relay.max_kbit_per_pair
        );
        background.push(crate::runtime::spawn(crate::relay::run(
            app.identity().node_id,
            crate::relay::Settings::from(&config.relay),
            app.candidates.subscribe(),
            app.relay.clone(),
        )));
    }
    info!(
        "{} {} ({}) running",
        match app.role() {
            Role::Hub => "hub",
            Role::Node => "node",
        },
        app.identity().boxname,
        app.identity().node_id
    );

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&app),
        }
    }
    info!("shutting down");
    let _ = stop_tx.send(true);
    // The interface, its peers and the firewall stay as they are: traffic
    // keeps flowing while the daemon restarts, and the next start adopts them.
    for task in background {
        task.abort();
    }
    for server in servers {
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    }
    let _ = std::fs::remove_file(&socket_path);
    Ok(())
}

/// Waits while the boot's kernel modules load (boot/modules_wait.rs); at
/// once when they are in, or when no loading is under way.
async fn wait_for_boot_modules() {
    use crate::boot::modules_wait::{LOADING_MARKER, Waited, until_loaded};
    match until_loaded(
        std::path::Path::new(LOADING_MARKER),
        Duration::from_secs(30),
    )
    .await
    {
        Waited::NotLoading => {}
        Waited::Done(d) => info!("waited {} ms for the boot's kernel modules", d.as_millis()),
        Waited::GaveUp(d) => warn!(
            "the boot's kernel modules still load after {} s: going on without them",
            d.as_secs()
        ),
    }
}

/// Provisions the identity if needed (same code as `firstboot`) and opens
/// the store. A command run while no daemon was up (`gondwana status` from
/// a monitoring loop, say) holds the state lock for a moment: a daemon
/// starting then waits a few seconds for it rather than exiting, so an
/// operator's command never makes a restart fail.
async fn open_state(state_dir: &std::path::Path, config: &Config) -> anyhow::Result<StateStore> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = firstboot::run(state_dir, config)
            .and_then(|_| Ok(StateStore::open(state_dir, OpenMode::ExistingOnly)?));
        match attempt {
            Ok(store) => return Ok(store),
            Err(e)
                if std::time::Instant::now() < deadline
                    && matches!(
                        e.downcast_ref::<crate::store::StoreError>(),
                        Some(crate::store::StoreError::InUse { .. })
                    ) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The admin socket: its directory 0700 and the socket 0600, root's.
/// (`admin::claim_socket` made the directory.)
fn bind_admin_socket(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    // We hold its claim (admin::claim_socket): a socket file here is a dead
    // daemon's.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("removing the stale admin socket {}: {e}", path.display()),
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding the admin socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The hub refuses to start on a subnet that overlaps a reserved one or one
/// already on this host, naming the overlap (exit 7, nothing configured).
fn guard_subnet(config: &Config, path: &std::path::Path) -> anyhow::Result<()> {
    let host = host_subnets(&config.mesh.interface).context("listing this host's addresses")?;
    gondwana_core::mesh::check_subnet(&config.mesh.subnet, &config.mesh.reserved_subnets, &host)
        .map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            detail: format!("mesh.subnet: {e}"),
        })?;
    Ok(())
}

fn reload(app: &App) {
    let (path, named) = &app.config_path;
    match Config::load(path, *named) {
        Ok(mut new) => {
            let old = app.config();
            // What is bound or built at start stays as it was until then.
            let fixed = new.role != old.role
                || new.api.loopback != old.api.loopback
                || new.api.listen != old.api.listen
                || new.api.admin_socket != old.api.admin_socket
                || new.api.max_body_bytes != old.api.max_body_bytes
                || new.hub.enroll_listen != old.hub.enroll_listen
                || new.hub.public_endpoint != old.hub.public_endpoint
                || new.hub.enroll_rate_burst != old.hub.enroll_rate_burst
                || new.hub.enroll_rate_per_minute != old.hub.enroll_rate_per_minute
                || new.mesh.subnet != old.mesh.subnet
                || new.mesh.wireguard_port != old.mesh.wireguard_port
                || new.mesh.api_port != old.mesh.api_port
                || new.relay != old.relay;
            if fixed {
                warn!(
                    "SIGHUP: role, subnet, ports, listeners, body limit, enrolment rate \
                     and relay changes take effect at the next start"
                );
            }
            new.role = old.role;
            new.api = old.api.clone();
            new.hub = old.hub.clone();
            new.mesh = old.mesh.clone();
            new.relay = old.relay.clone();
            if let Ok(mut c) = app.config.write() {
                *c = Arc::new(new);
            }
            info!("SIGHUP: reloaded {}", path.display());
        }
        Err(e) => warn!("SIGHUP: keeping the running config: {e}"),
    }
}

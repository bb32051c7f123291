//! The userspace WireGuard device process (`gondwana wireguard-userspace
//! <iface>`), long-lived and separate from the daemon, like wireguard-go:
//! the tunnel keeps passing traffic while the daemon restarts, and a new
//! daemon adopts it through its UAPI socket.
//!
//! Two stages in one command. The first (what the daemon runs) starts the
//! second detached — same program and arguments, marked by an environment
//! variable — and returns once the second's socket answers, or fails with
//! the second's own error message. The second:
//! - leaves the daemon's session (`setsid`), so signals to the daemon's
//!   process group and its death do not reach it;
//! - creates the TUN device through boringtun and runs boringtun in its
//!   "UAPI on a file descriptor" mode: boringtun then installs no SIGINT /
//!   SIGTERM handlers and does not watch a socket file of its own;
//! - serves `/var/run/wireguard/<iface>.sock` itself (`uapi_proxy.rs`),
//!   translating boringtun's elapsed-seconds handshake times into the
//!   timestamps the protocol (and `wg show`) expects, and rewriting peer
//!   changes boringtun cannot take in place;
//! - exits cleanly on SIGTERM / SIGINT (removing only its own socket), and
//!   when its socket file is deleted or its interface disappears (what
//!   `wg-quick down` relies on).

use std::io::Read;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use boringtun::device::{DeviceConfig, DeviceHandle};
use nix::sys::stat::{Mode, umask};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::uapi;
use super::uapi_proxy::Backend;

/// Set in the environment of the second stage.
const DETACHED_ENV: &str = "GONDWANA_WG_DEVICE_DETACHED";
/// How long the first stage waits for the socket to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-connection I/O limit on the UAPI socket (a stuck client must not
/// hold the device's configuration lock).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn main(iface: &str, socket_dir: &Path) -> anyhow::Result<()> {
    // The name the daemon's config checked; checked again here because
    // this entry point is also a command of its own.
    gondwana_core::InterfaceName::parse(iface)?;
    let socket = uapi::socket_path(socket_dir, iface);
    if std::env::var_os(DETACHED_ENV).is_none() {
        return start_detached(iface, socket_dir, &socket);
    }
    serve(iface, socket_dir, &socket)
}

/// A socket file that accepts a connection has a live server.
fn socket_is_live(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

pub fn log_path(socket_dir: &Path, iface: &str) -> PathBuf {
    socket_dir.join(format!("{iface}.log"))
}

fn start_detached(iface: &str, socket_dir: &Path, socket: &Path) -> anyhow::Result<()> {
    if socket_is_live(socket) {
        bail!(
            "a WireGuard device already serves {} (interface names must be unique on this host)",
            socket.display()
        );
    }
    std::fs::create_dir_all(socket_dir)
        .with_context(|| format!("creating {}", socket_dir.display()))?;
    let log = log_path(socket_dir, iface);
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let exe = std::env::current_exe().context("finding our own executable")?;
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(DETACHED_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .context("starting the device process")?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            let mut text = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
            bail!("device process exited ({status}): {}", text.trim());
        }
        if socket_is_live(socket) {
            // The child now belongs to init (we exit without waiting).
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "device process did not open {} within 10 s",
                socket.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn serve(iface: &str, socket_dir: &Path, socket: &Path) -> anyhow::Result<()> {
    // Our own session: the daemon's terminal, process group and death are
    // not ours. (Fails only if we already lead one, which is fine.)
    let _ = nix::unistd::setsid();
    // Handlers for the whole process (whatever thread the kernel picks),
    // read on one thread of ours; boringtun installs none in fd mode.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).context("signal handlers")?;
    // The socket takes private keys: root only.
    umask(Mode::from_bits_truncate(0o077));

    std::fs::create_dir_all(socket_dir)
        .with_context(|| format!("creating {}", socket_dir.display()))?;
    if socket_is_live(socket) {
        bail!("a WireGuard device already serves {}", socket.display());
    }
    match std::fs::remove_file(socket) {
        Ok(()) => info!("removed stale socket {}", socket.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", socket.display())),
    }

    let (ours, theirs) = UnixStream::pair().context("socketpair for boringtun's UAPI")?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let config = DeviceConfig {
        n_threads: threads,
        use_connected_socket: true,
        use_multi_queue: true,
        // boringtun owns this descriptor from here on.
        uapi_fd: theirs.into_raw_fd(),
    };
    let device = DeviceHandle::new(iface, config)
        .map_err(|e| anyhow::anyhow!("creating TUN device {iface}: {e:?}"))?;

    let listener =
        UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
    let inode = std::fs::metadata(socket)?.ino();
    let backend = Arc::new(Mutex::new(Backend::new(ours)?));
    std::thread::spawn(move || accept_loop(listener, backend));

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // SIGHUP (a closed terminal) is not a reason to drop the tunnel.
        if let Some(signal) = signals.forever().find(|&s| s != SIGHUP) {
            let _ = tx.send(signal);
        }
    });
    info!(
        "{iface}: userspace WireGuard device up, UAPI on {}",
        socket.display()
    );

    let reason = loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(SIGTERM) => break "SIGTERM".to_string(),
            Ok(signal) => break format!("signal {signal}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => break "signal thread ended".into(),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        match std::fs::metadata(socket) {
            Ok(m) if m.ino() == inode => {}
            _ => break format!("socket {} removed", socket.display()),
        }
        if nix::net::if_::if_nametoindex(iface).is_err() {
            break format!("interface {iface} removed");
        }
    };
    info!("{iface}: stopping ({reason})");
    // Remove the socket only if it is still ours (never a successor's).
    if std::fs::metadata(socket).is_ok_and(|m| m.ino() == inode) {
        let _ = std::fs::remove_file(socket);
    }
    drop(device);
    // boringtun's worker threads do not all end on their own; the TUN and
    // the UDP sockets close with the process.
    std::process::exit(0);
}

fn accept_loop(listener: UnixListener, backend: Arc<Mutex<Backend>>) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let backend = Arc::clone(&backend);
        std::thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(CLIENT_TIMEOUT));
            let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
            super::uapi_proxy::serve_client(conn, &backend);
        });
    }
}

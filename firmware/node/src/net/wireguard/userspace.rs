//! The userspace backend, daemon side: finds a live device process through
//! its UAPI socket (adoption) or starts one, then drives it with the UAPI
//! client. The device process itself lives in `device_process.rs`: it is a
//! separate, long-lived process (like wireguard-go) so that the tunnel
//! keeps passing traffic while the daemon restarts.

use std::ffi::OsString;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::Pid;
use zeroize::Zeroizing;

use gondwana_core::InterfaceName;

use super::{DeviceState, OpenOptions, PeerOp, WgError, uapi};
use crate::net::link::Links;

/// The MTU wg-quick gives a WireGuard interface on a 1500-byte underlay
/// (1500 - 80 bytes of IPv6 + UDP + WireGuard overhead).
pub const DEFAULT_MTU: u32 = 1420;

/// How to start the device process: `program args… <iface> --socket-dir
/// D` (without the last three when `append_interface_args` is false: the
/// tests' launcher passes them in `envs`).
#[derive(Debug, Clone)]
pub struct Launcher {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub envs: Vec<(OsString, OsString)>,
    pub append_interface_args: bool,
}

impl Launcher {
    /// `gondwana wireguard-userspace` from this very binary.
    pub fn current_exe() -> Launcher {
        Launcher {
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
            args: vec!["wireguard-userspace".into()],
            envs: Vec::new(),
            append_interface_args: true,
        }
    }
}

pub struct UserspaceDevice {
    iface: InterfaceName,
    socket: PathBuf,
}

/// Is a device process answering on `iface`'s UAPI socket?
pub async fn is_live(iface: &InterfaceName, options: &OpenOptions) -> bool {
    let socket = uapi::socket_path(&options.socket_dir, iface.as_str());
    uapi::get(&socket).await.is_ok()
}

impl UserspaceDevice {
    pub async fn open(
        iface: &InterfaceName,
        options: &OpenOptions,
    ) -> Result<UserspaceDevice, WgError> {
        let socket = uapi::socket_path(&options.socket_dir, iface.as_str());
        let links = Links::new()?;
        if uapi::get(&socket).await.is_err() {
            if let Some(link) = links.link(iface).await?
                && link.kind.as_deref() != Some("tun")
            {
                return Err(WgError::NotWireguard {
                    iface: iface.to_string(),
                    kind: link.kind.unwrap_or_else(|| "unknown".into()),
                });
            }
            launch(iface, options).await?;
            links.set_mtu(iface, DEFAULT_MTU).await?;
        } else if links.link(iface).await?.is_none() {
            // The socket path is per host, the interface per namespace.
            return Err(WgError::NameTakenElsewhere {
                iface: iface.to_string(),
                socket,
            });
        }
        Ok(UserspaceDevice {
            iface: iface.clone(),
            socket,
        })
    }

    pub async fn get(&self) -> Result<DeviceState, WgError> {
        uapi::get(&self.socket).await
    }

    pub async fn configure(
        &self,
        private_key: &Zeroizing<[u8; 32]>,
        listen_port: u16,
    ) -> Result<(), WgError> {
        uapi::set(&self.socket, &uapi::device_body(private_key, listen_port)).await
    }

    /// Sends `ops` as planned, in order (`uapi::peer_bodies` groups them
    /// the way boringtun needs, without reordering what depends on what).
    pub async fn apply(&self, ops: &[PeerOp]) -> Result<(), WgError> {
        for body in uapi::peer_bodies(ops) {
            uapi::set(&self.socket, &body).await?;
        }
        Ok(())
    }

    /// Stops the device process (found through the socket's peer
    /// credentials) with SIGTERM; it removes its socket and its TUN goes
    /// with it.
    pub async fn delete(self) -> Result<(), WgError> {
        let Some(pid) = server_pid(&self.socket) else {
            return Ok(());
        };
        kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(|e| WgError::Uapi {
            socket: self.socket.clone(),
            detail: format!("SIGTERM to device process {pid}: {e}"),
        })?;
        let links = Links::new()?;
        for _ in 0..100 {
            if links.link(&self.iface).await?.is_none() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(WgError::Uapi {
            socket: self.socket,
            detail: format!("device process {pid} did not stop within 5 s"),
        })
    }
}

/// The pid of the process serving `socket`, from SO_PEERCRED.
pub fn server_pid(socket: &Path) -> Option<i32> {
    let stream = StdUnixStream::connect(socket).ok()?;
    let creds = getsockopt(&stream, PeerCredentials).ok()?;
    Some(creds.pid())
}

/// Runs the launcher (which detaches the device process and returns once
/// its socket answers, or fails with the device's own error message).
async fn launch(iface: &InterfaceName, options: &OpenOptions) -> Result<(), WgError> {
    let launcher = &options.launcher;
    // tokio's Command forks from this thread, so the device process starts
    // in this thread's network namespace (tests run each node in its own).
    let mut command = tokio::process::Command::new(&launcher.program);
    command.args(&launcher.args);
    if launcher.append_interface_args {
        command
            .arg(iface.as_str())
            .arg("--socket-dir")
            .arg(&options.socket_dir);
    }
    command
        .envs(launcher.envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    let output = command
        .output()
        .await
        .map_err(|e| start_error(iface, format!("{}: {e}", launcher.program.display())))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(start_error(
            iface,
            format!("{}: {}", output.status, stderr.trim()),
        ));
    }
    Ok(())
}

fn start_error(iface: &InterfaceName, detail: impl std::fmt::Display) -> WgError {
    WgError::DeviceStart {
        iface: iface.to_string(),
        detail: detail.to_string(),
    }
}

//! One WireGuard interface, driven through either backend with the same
//! small API: the kernel module over generic netlink (`kernel.rs`) or
//! boringtun in a separate long-lived process on a TUN device, spoken to
//! through the standard UAPI socket (`userspace.rs`, `uapi.rs`).
//!
//! Call order: [`WireGuard::open`] (creates the interface or adopts the one
//! that exists), [`WireGuard::configure`] (private key and port; always
//! before peers), then [`WireGuard::apply_peers`] as often as the desired
//! state changes, [`WireGuard::get`] for status. Nothing here decides
//! *which* peers should exist: that is the reconciler's job.

pub mod device_process;
pub mod kernel;
pub mod uapi;
pub mod uapi_proxy;
pub mod userspace;

use std::path::PathBuf;
use std::time::SystemTime;

use zeroize::Zeroizing;

pub use userspace::Launcher;

/// The backend actually driving an interface (reported by status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Kernel,
    Userspace,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Kernel => "kernel",
            Backend::Userspace => "userspace",
        }
    }
}

/// `[wireguard] backend` in the config: what the operator asked for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// Kernel when the module answers, else userspace.
    #[default]
    Auto,
    Kernel,
    Userspace,
    /// No interface at all: control plane only (see docs/dataplane.md).
    None,
}

/// What one peer should look like. `endpoint: None` means "no opinion":
/// the device keeps whatever endpoint it learned from handshakes (a hub's
/// view of roaming nodes). The reconciler's type, shared so nothing
/// converts between two copies of the same four fields.
pub use gondwana_core::dataplane::PeerSpec as PeerConfig;

/// One peer as the device reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    pub config: PeerConfig,
    /// Wall-clock time of the last completed handshake (both backends give
    /// a real timestamp here, boringtun's elapsed seconds are converted).
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Allowed IPs outside our IPv4 model as the device reported them
    /// (an operator's `wg set … allowed-ips fd00::/64`): while there are
    /// any, the peer differs from every desired config and is re-set, which
    /// replaces them.
    pub foreign_allowed_ips: Vec<String>,
}

impl PeerState {
    /// A peer known only by its key so far (the rest is read after it).
    pub fn new(public_key: [u8; 32]) -> PeerState {
        PeerState {
            config: PeerConfig {
                public_key,
                endpoint: None,
                allowed_ips: Vec::new(),
                keepalive: None,
            },
            last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
            foreign_allowed_ips: Vec::new(),
        }
    }

    /// Does this peer, as the device has it, already satisfy `want`?
    /// (One definition for the reconciler and `apply_peers`.)
    pub fn satisfies(&self, want: &PeerConfig) -> bool {
        self.foreign_allowed_ips.is_empty()
            && gondwana_core::dataplane::satisfies(&self.config, want)
    }
}

/// The device as it is now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceState {
    /// `None` until a private key is set.
    pub public_key: Option<[u8; 32]>,
    pub listen_port: u16,
    pub peers: Vec<PeerState>,
}

/// What [`WireGuard::apply_peers`] changed (peers already as desired are
/// counted in `unchanged`, not touched).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerChanges {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// How [`WireGuard::open`] starts things it may need.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How to start the userspace device process when none is running.
    pub launcher: Launcher,
    /// Where the UAPI sockets live (`wg` looks in `/var/run/wireguard`).
    pub socket_dir: PathBuf,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            launcher: Launcher::current_exe(),
            socket_dir: PathBuf::from(uapi::DEFAULT_SOCKET_DIR),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WgError {
    #[error(
        "wireguard backend \"kernel\" was asked for, but the kernel has no WireGuard support \
         (module not loaded or not built): {0}"
    )]
    KernelUnavailable(String),
    #[error("interface {iface} exists but is not a WireGuard interface (kind {kind})")]
    NotWireguard { iface: String, kind: String },
    #[error(
        "interface name {iface} is in use by a userspace WireGuard device in another network \
         namespace (its UAPI socket {socket} is live): give this interface a unique name"
    )]
    NameTakenElsewhere { iface: String, socket: PathBuf },
    #[error("interface name {0:?}: 1-15 characters, no '/' or whitespace")]
    BadName(String),
    #[error("the userspace WireGuard device process for {iface} did not come up: {detail}")]
    DeviceStart { iface: String, detail: String },
    #[error("WireGuard UAPI on {socket}: {detail}")]
    Uapi { socket: PathBuf, detail: String },
    #[error("{0}: wireguard.backend is \"none\" (control plane only)")]
    Disabled(String),
    #[error("WireGuard netlink: {0}")]
    Netlink(String),
    #[error("no private key set on {0}: configure() must come before peers")]
    NoKey(String),
    #[error("{0}")]
    Link(#[from] crate::net::link::LinkError),
}

enum Device {
    Kernel(kernel::KernelDevice),
    Userspace(userspace::UserspaceDevice),
}

/// A WireGuard interface, open through one backend.
pub struct WireGuard {
    iface: String,
    device: Device,
}

impl WireGuard {
    /// Opens `iface`: adopts an existing interface (kernel: a link of kind
    /// wireguard; userspace: a live UAPI socket) with its keys and peers
    /// untouched, else creates it. `Auto` uses the kernel when its
    /// WireGuard generic-netlink family answers, else userspace.
    pub async fn open(
        iface: &str,
        choice: BackendChoice,
        options: &OpenOptions,
    ) -> Result<WireGuard, WgError> {
        check_name(iface)?;
        let device = match choice {
            BackendChoice::Kernel => Device::Kernel(kernel::KernelDevice::open(iface).await?),
            BackendChoice::Userspace => {
                Device::Userspace(userspace::UserspaceDevice::open(iface, options).await?)
            }
            BackendChoice::None => {
                return Err(WgError::Disabled(iface.to_string()));
            }
            BackendChoice::Auto => {
                // A live userspace device wins: it is what is carrying
                // traffic now (adoption), even if the module appeared since.
                if userspace::is_live(iface, options).await {
                    Device::Userspace(userspace::UserspaceDevice::open(iface, options).await?)
                } else {
                    match kernel::KernelDevice::open(iface).await {
                        Ok(dev) => Device::Kernel(dev),
                        Err(WgError::KernelUnavailable(_)) => Device::Userspace(
                            userspace::UserspaceDevice::open(iface, options).await?,
                        ),
                        Err(e) => return Err(e),
                    }
                }
            }
        };
        Ok(WireGuard {
            iface: iface.to_string(),
            device,
        })
    }

    pub fn backend(&self) -> Backend {
        match self.device {
            Device::Kernel(_) => Backend::Kernel,
            Device::Userspace(_) => Backend::Userspace,
        }
    }

    pub fn interface(&self) -> &str {
        &self.iface
    }

    pub async fn get(&self) -> Result<DeviceState, WgError> {
        match &self.device {
            Device::Kernel(d) => d.get().await,
            Device::Userspace(d) => d.get().await,
        }
    }

    /// Sets the private key and listen port, unless they already are what
    /// is asked (so adopting a running interface changes nothing).
    pub async fn configure(
        &self,
        private_key: &Zeroizing<[u8; 32]>,
        listen_port: u16,
    ) -> Result<(), WgError> {
        let current = self.get().await?;
        let public = public_key(private_key);
        if current.public_key == Some(public) && current.listen_port == listen_port {
            return Ok(());
        }
        match &self.device {
            Device::Kernel(d) => d.configure(private_key, listen_port).await,
            Device::Userspace(d) => d.configure(private_key, listen_port).await,
        }
    }

    /// Adds or updates the peers in `upsert` and removes those in `remove`;
    /// every other peer is left alone, and a peer already as desired is not
    /// touched (its session keeps running).
    pub async fn apply_peers(
        &self,
        upsert: &[PeerConfig],
        remove: &[[u8; 32]],
    ) -> Result<PeerChanges, WgError> {
        let current = self.get().await?;
        if current.public_key.is_none() && !upsert.is_empty() {
            return Err(WgError::NoKey(self.iface.clone()));
        }
        let plan = plan::plan(&current.peers, upsert, remove);
        match &self.device {
            Device::Kernel(d) => d.apply(&plan).await?,
            Device::Userspace(d) => d.apply(&plan).await?,
        }
        Ok(plan.changes())
    }

    /// Removes the interface (kernel: deletes the link; userspace: stops
    /// the device process, which takes its TUN and socket with it).
    pub async fn delete(self) -> Result<(), WgError> {
        match self.device {
            Device::Kernel(d) => d.delete().await,
            Device::Userspace(d) => d.delete().await,
        }
    }
}

pub mod plan;

/// The public key of a private key (X25519 base-point multiplication).
pub fn public_key(private_key: &Zeroizing<[u8; 32]>) -> [u8; 32] {
    gondwana_core::keys::WireguardSecret::from_bytes(**private_key).public_key()
}

pub fn check_name(iface: &str) -> Result<(), WgError> {
    if iface.is_empty()
        || iface.len() > 15
        || iface.contains(|c: char| c == '/' || c.is_whitespace() || c == '\0')
        || iface == "."
        || iface == ".."
    {
        return Err(WgError::BadName(iface.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

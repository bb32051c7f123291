//! One WireGuard interface, driven through either backend with the same
//! small API: the kernel module over generic netlink (`kernel.rs`) or
//! boringtun in a separate long-lived process on a TUN device, spoken to
//! through the standard UAPI socket (`userspace.rs`, `uapi.rs`).
//!
//! Call order: [`WireGuard::open`] (creates the interface or adopts the one
//! that exists), [`WireGuard::configure`] (private key and port; always
//! before peers), [`WireGuard::get`] to read the device, then
//! [`WireGuard::apply`] with the [`PeerDiff`] that `gondwana_core` planned
//! from that reading. Nothing here decides *which* peers should exist
//! (`gondwana_core::reconcile`) or which operations get there
//! (`gondwana_core::peer_diff`): the backends execute the operations in
//! order and never read the device again to re-plan them.

pub mod device_process;
pub mod kernel;
pub mod uapi;
pub mod uapi_proxy;
pub mod userspace;

use std::path::PathBuf;

use gondwana_core::InterfaceName;
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

pub use crate::config::BackendChoice;

/// What one peer should look like. `endpoint: None` means "no opinion":
/// the device keeps whatever endpoint it learned from handshakes (a hub's
/// view of roaming nodes). The reconciler's type, shared so nothing
/// converts between two copies of the same four fields.
pub use gondwana_core::dataplane::PeerSpec as PeerConfig;

/// One peer as the device reports it, the device as it is now, the
/// operations that change its peers, and what they changed: the same
/// types `gondwana_core` plans with.
pub use gondwana_core::peer_diff::{
    DevicePeer as PeerState, DeviceState, PeerChanges, PeerDiff, PeerOp,
};

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
    #[error("the userspace WireGuard device process for {iface} did not come up: {detail}")]
    DeviceStart { iface: String, detail: String },
    #[error("WireGuard UAPI on {socket}: {detail}")]
    Uapi { socket: PathBuf, detail: String },
    #[error("{0}: wireguard.backend is \"none\" (control plane only)")]
    Disabled(String),
    #[error("WireGuard netlink: {0}")]
    Netlink(String),
    #[error("no private key set on {0}: configure() must come before peers")]
    NoKey(InterfaceName),
    #[error("{0}")]
    Link(#[from] crate::net::link::LinkError),
}

enum Device {
    Kernel(kernel::KernelDevice),
    Userspace(userspace::UserspaceDevice),
}

/// A WireGuard interface, open through one backend.
pub struct WireGuard {
    iface: InterfaceName,
    device: Device,
}

impl WireGuard {
    /// Opens `iface`: adopts an existing interface (kernel: a link of kind
    /// wireguard; userspace: a live UAPI socket) with its keys and peers
    /// untouched, else creates it. `Auto` uses the kernel when its
    /// WireGuard generic-netlink family answers, else userspace.
    pub async fn open(
        iface: &InterfaceName,
        choice: BackendChoice,
        options: &OpenOptions,
    ) -> Result<WireGuard, WgError> {
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
            iface: iface.clone(),
            device,
        })
    }

    pub fn backend(&self) -> Backend {
        match self.device {
            Device::Kernel(_) => Backend::Kernel,
            Device::Userspace(_) => Backend::Userspace,
        }
    }

    pub fn interface(&self) -> &InterfaceName {
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

    /// Executes `diff`, planned by `gondwana_core` from a [`WireGuard::get`]
    /// of this device, in order: nothing is read back or re-planned.
    pub async fn apply(&self, diff: &PeerDiff) -> Result<(), WgError> {
        if diff.is_empty() {
            return Ok(());
        }
        match &self.device {
            Device::Kernel(d) => d.apply(&diff.ops).await,
            Device::Userspace(d) => d.apply(&diff.ops).await,
        }
    }

    /// For tools and tests that change some peers rather than state the
    /// whole set: reads the device once, plans with
    /// [`PeerDiff::patch`] (the same planner) and applies. Adds or updates
    /// the peers in `upsert` and removes those in `remove`; every other
    /// peer is left alone, and a peer already as desired is not touched.
    pub async fn apply_peers(
        &self,
        upsert: &[PeerConfig],
        remove: &[[u8; 32]],
    ) -> Result<PeerChanges, WgError> {
        let current = self.get().await?;
        if current.public_key.is_none() && !upsert.is_empty() {
            return Err(WgError::NoKey(self.iface.clone()));
        }
        let diff = PeerDiff::patch(&current.peers, upsert, remove);
        self.apply(&diff).await?;
        Ok(diff.changes())
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

/// The public key of a private key (X25519 base-point multiplication).
pub fn public_key(private_key: &Zeroizing<[u8; 32]>) -> [u8; 32] {
    gondwana_core::keys::WireguardSecret::from_bytes(**private_key).public_key()
}

#[cfg(test)]
pub(crate) mod tests;

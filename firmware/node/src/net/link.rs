//! Links, addresses and routes over rtnetlink (never by running `ip`).
//!
//! A [`Links`] is one rtnetlink socket, opened in the network namespace of
//! the calling thread; its connection task runs on the current tokio
//! runtime. Every `ensure_*` is idempotent: calling it again with the same
//! arguments changes nothing.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use gondwana_core::InterfaceName;
use gondwana_core::mesh::Ipv4Net;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

#[derive(Debug, thiserror::Error)]
#[error("{op} {target}: {detail}")]
pub struct LinkError {
    pub op: &'static str,
    pub target: String,
    pub detail: String,
}

/// The kernel's errno inside an rtnetlink error, if it carries one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn fail(op: &'static str, target: impl std::fmt::Display, e: impl std::fmt::Display) -> LinkError {
    LinkError {
        op,
        target: target.to_string(),
        detail: e.to_string(),
    }
}

/// What [`Links::link`] reports about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfoSummary {
    pub index: u32,
    /// `IFLA_INFO_KIND` (`wireguard`, `tun`, `veth` …), if the kernel says.
    pub kind: Option<String>,
    pub up: bool,
}

pub struct Links {
    handle: Handle,
}

impl Links {
    /// Opens an rtnetlink socket in this thread's network namespace. Needs
    /// a tokio runtime (the socket's connection task is spawned on it).
    pub fn new() -> Result<Links, LinkError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| fail("open", "rtnetlink socket", e))?;
        crate::runtime::spawn(connection);
        Ok(Links { handle })
    }

    pub async fn link(&self, name: &InterfaceName) -> Result<Option<LinkInfoSummary>, LinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => {
                let kind = msg.attributes.iter().find_map(|a| match a {
                    LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                        LinkInfo::Kind(k) => Some(kind_name(k)),
                        _ => None,
                    }),
                    _ => None,
                });
                Ok(Some(LinkInfoSummary {
                    index: msg.header.index,
                    kind,
                    up: msg.header.flags.contains(LinkFlags::Up),
                }))
            }
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(libc_enodev()) => Ok(None),
            Err(e) => Err(fail("get link", name, e)),
        }
    }

    pub async fn link_index(&self, name: &InterfaceName) -> Result<Option<u32>, LinkError> {
        Ok(self.link(name).await?.map(|l| l.index))
    }

    async fn require_index(&self, name: &InterfaceName) -> Result<u32, LinkError> {
        self.link_index(name)
            .await?
            .ok_or_else(|| fail("find link", name, "no such interface"))
    }

    pub async fn set_up(&self, name: &InterfaceName) -> Result<(), LinkError> {
        let index = self.require_index(name).await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| fail("set up", name, e))
    }

    pub async fn set_mtu(&self, name: &InterfaceName, mtu: u32) -> Result<(), LinkError> {
        let index = self.require_index(name).await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(mtu).build())
            .execute()
            .await
            .map_err(|e| fail("set mtu of", name, e))
    }

    /// Gives `name` exactly this IPv4 address (`net`'s address with `net`'s
    /// prefix, e.g. 10.10.0.5/24): an identical address is left alone, any
    /// other IPv4 address on the link is removed.
    pub async fn ensure_address(
        &self,
        name: &InterfaceName,
        net: Ipv4Net,
    ) -> Result<(), LinkError> {
        let index = self.require_index(name).await?;
        let mut present = false;
        for msg in self.ipv4_addresses(index, name).await? {
            let addr = address_of(&msg);
            if addr == Some(net.addr()) && msg.header.prefix_len == net.prefix_len() {
                present = true;
            } else {
                self.handle
                    .address()
                    .del(msg)
                    .execute()
                    .await
                    .map_err(|e| fail("delete address on", name, e))?;
            }
        }
        if present {
            return Ok(());
        }
        self.handle
            .address()
            .add(index, IpAddr::V4(net.addr()), net.prefix_len())
            .execute()
            .await
            .map_err(|e| fail("add address on", name, e))
    }

    pub async fn ipv4_addresses_of(&self, name: &InterfaceName) -> Result<Vec<Ipv4Net>, LinkError> {
        let index = self.require_index(name).await?;
        Ok(self
            .ipv4_addresses(index, name)
            .await?
            .iter()
            .filter_map(|m| Ipv4Net::new(address_of(m)?, m.header.prefix_len).ok())
            .collect())
    }

    async fn ipv4_addresses(
        &self,
        index: u32,
        name: &InterfaceName,
    ) -> Result<Vec<AddressMessage>, LinkError> {
        let all: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| fail("list addresses on", name, e))?;
        Ok(all
            .into_iter()
            .filter(|m| m.header.family == AddressFamily::Inet && m.header.index == index)
            .collect())
    }

    /// Routes `dst` out of `name` (replacing any route to exactly `dst` in
    /// the main table, so repeating it is harmless).
    pub async fn ensure_route(&self, dst: Ipv4Net, name: &InterfaceName) -> Result<(), LinkError> {
        let index = self.require_index(name).await?;
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst.network(), dst.prefix_len())
            .output_interface(index)
            .build();
        self.handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(|e| fail("route via", name, e))
    }

    /// Deletes the link; an absent link is not an error.
    pub async fn delete_link(&self, name: &InterfaceName) -> Result<(), LinkError> {
        let Some(index) = self.link_index(name).await? else {
            return Ok(());
        };
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc_enodev()) => Ok(()),
            Err(e) => Err(fail("delete link", name, e)),
        }
    }

    /// Creates a link of kind `wireguard` (needs the kernel module).
    pub async fn add_wireguard(&self, name: &InterfaceName) -> Result<(), rtnetlink::Error> {
        self.handle
            .link()
            .add(rtnetlink::LinkWireguard::new(name.as_str()).build())
            .execute()
            .await
    }
}

fn address_of(msg: &AddressMessage) -> Option<Ipv4Addr> {
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's
    // on point-to-point links); fall back to IFA_ADDRESS when absent.
    let find = |local: bool| {
        msg.attributes.iter().find_map(|a| match (a, local) {
            (AddressAttribute::Local(IpAddr::V4(ip)), true) => Some(*ip),
            (AddressAttribute::Address(IpAddr::V4(ip)), false) => Some(*ip),
            _ => None,
        })
    };
    find(true).or_else(|| find(false))
}

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Wireguard => "wireguard".into(),
        InfoKind::Tun => "tun".into(),
        InfoKind::Veth => "veth".into(),
        InfoKind::Dummy => "dummy".into(),
        InfoKind::Other(s) => s.clone(),
        other => format!("{other:?}").to_lowercase(),
    }
}

const fn libc_enodev() -> i32 {
    19
}

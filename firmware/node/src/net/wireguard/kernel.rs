//! The kernel backend: the `wireguard` generic-netlink family for keys,
//! port and peers, rtnetlink for the link itself. The probe is the
//! question itself: resolving the family (which also lets the kernel
//! autoload the module) answers ENOENT when there is no WireGuard.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use genetlink::GenetlinkHandle;
use gondwana_core::mesh::Ipv4Net;
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_packet_wireguard::{
    WireguardAddressFamily, WireguardAllowedIp, WireguardAllowedIpAttr, WireguardAttribute,
    WireguardCmd, WireguardMessage, WireguardPeer, WireguardPeerAttribute, WireguardPeerFlags,
};
use tokio::sync::Mutex;
use zeroize::{Zeroize, Zeroizing};

use gondwana_core::InterfaceName;

use super::{DeviceState, PeerOp, PeerState, WgError};
use crate::net::link::Links;

/// Peers per SetDevice message: keeps each message well under the
/// netlink socket's buffer (the kernel applies them one by one anyway).
const PEERS_PER_MESSAGE: usize = 64;

const ENOENT: i32 = 2;
const EOPNOTSUPP: i32 = 95;

pub struct KernelDevice {
    iface: InterfaceName,
    handle: Mutex<GenetlinkHandle>,
}

impl KernelDevice {
    /// Adopts the wireguard link `iface` or creates it. Fails with
    /// `KernelUnavailable` when the kernel has no WireGuard.
    pub async fn open(iface: &InterfaceName) -> Result<KernelDevice, WgError> {
        let (connection, handle, _) = genetlink::new_connection()
            .map_err(|e| WgError::Netlink(format!("generic netlink socket: {e}")))?;
        crate::runtime::spawn(connection);
        if let Err(e) = handle.resolve_family::<WireguardMessage>().await {
            return Err(WgError::KernelUnavailable(format!(
                "generic netlink family \"wireguard\": {e}"
            )));
        }
        let links = Links::new()?;
        match links.link(iface).await? {
            Some(link) if link.kind.as_deref() == Some("wireguard") => {}
            Some(link) => {
                return Err(WgError::NotWireguard {
                    iface: iface.to_string(),
                    kind: link.kind.unwrap_or_else(|| "unknown".into()),
                });
            }
            None => {
                if let Err(e) = links.add_wireguard(iface).await {
                    let errno = match &e {
                        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
                        _ => None,
                    };
                    return Err(if matches!(errno, Some(EOPNOTSUPP) | Some(ENOENT)) {
                        WgError::KernelUnavailable(format!("create link of kind wireguard: {e}"))
                    } else {
                        WgError::Netlink(format!("create wireguard link {iface}: {e}"))
                    });
                }
            }
        }
        Ok(KernelDevice {
            iface: iface.clone(),
            handle: Mutex::new(handle),
        })
    }

    pub async fn get(&self) -> Result<DeviceState, WgError> {
        let mut request = NetlinkMessage::from(GenlMessage::from_payload(WireguardMessage {
            cmd: WireguardCmd::GetDevice,
            attributes: vec![WireguardAttribute::IfName(self.iface.to_string())],
        }));
        request.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut handle = self.handle.lock().await;
        let mut answers = handle
            .request(request)
            .await
            .map_err(|e| WgError::Netlink(format!("get {}: {e}", self.iface)))?;
        let mut state = DeviceState::default();
        while let Some(answer) = answers.next().await {
            let answer =
                answer.map_err(|e| WgError::Netlink(format!("get {}: {e}", self.iface)))?;
            match answer.payload {
                NetlinkPayload::InnerMessage(genl) => merge_answer(&mut state, &genl.payload),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(WgError::Netlink(format!("get {}: {e}", self.iface)));
                }
                _ => {}
            }
        }
        Ok(state)
    }

    pub async fn configure(
        &self,
        private_key: &Zeroizing<[u8; 32]>,
        listen_port: u16,
    ) -> Result<(), WgError> {
        let mut message = device_message(self.iface.as_str(), private_key, listen_port);
        let result = self.send(message.clone()).await;
        wipe(&mut message);
        result
    }

    /// Sends `ops` as planned, in order.
    pub async fn apply(&self, ops: &[PeerOp]) -> Result<(), WgError> {
        for message in peer_messages(self.iface.as_str(), ops) {
            self.send(message).await?;
        }
        Ok(())
    }

    pub async fn delete(self) -> Result<(), WgError> {
        Links::new()?.delete_link(&self.iface).await?;
        Ok(())
    }

    async fn send(&self, mut payload: WireguardMessage) -> Result<(), WgError> {
        let mut request = NetlinkMessage::from(GenlMessage::from_payload(payload.clone()));
        wipe(&mut payload);
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        let mut handle = self.handle.lock().await;
        let answers = handle.request(request).await;
        let mut answers =
            answers.map_err(|e| WgError::Netlink(format!("set {}: {e}", self.iface)))?;
        while let Some(answer) = answers.next().await {
            let answer =
                answer.map_err(|e| WgError::Netlink(format!("set {}: {e}", self.iface)))?;
            if let NetlinkPayload::Error(e) = answer.payload
                && e.code.is_some()
            {
                return Err(WgError::Netlink(format!("set {}: {e}", self.iface)));
            }
        }
        Ok(())
    }
}

/// Overwrites a private key held in a message we built.
fn wipe(message: &mut WireguardMessage) {
    for attr in &mut message.attributes {
        if let WireguardAttribute::PrivateKey(key) = attr {
            key.zeroize();
        }
    }
}

pub fn device_message(
    iface: &str,
    private_key: &Zeroizing<[u8; 32]>,
    listen_port: u16,
) -> WireguardMessage {
    WireguardMessage {
        cmd: WireguardCmd::SetDevice,
        attributes: vec![
            WireguardAttribute::IfName(iface.to_string()),
            WireguardAttribute::PrivateKey(**private_key),
            WireguardAttribute::ListenPort(listen_port),
        ],
    }
}

/// SetDevice messages carrying `ops`: an update replaces the peer's
/// allowed IPs in place (the kernel keeps its session).
pub fn peer_messages(iface: &str, ops: &[PeerOp]) -> Vec<WireguardMessage> {
    ops.chunks(PEERS_PER_MESSAGE)
        .map(|chunk| WireguardMessage {
            cmd: WireguardCmd::SetDevice,
            attributes: vec![
                WireguardAttribute::IfName(iface.to_string()),
                WireguardAttribute::Peers(chunk.iter().map(peer_of).collect()),
            ],
        })
        .collect()
}

fn peer_of(op: &PeerOp) -> WireguardPeer {
    let (config, flags) = match op {
        PeerOp::Remove(key) => {
            return WireguardPeer(vec![
                WireguardPeerAttribute::PublicKey(*key),
                WireguardPeerAttribute::Flags(WireguardPeerFlags::RemoveMe),
            ]);
        }
        PeerOp::Add(c) | PeerOp::Update(c) => (c, WireguardPeerFlags::ReplaceAllowedIps),
    };
    let mut attrs = vec![
        WireguardPeerAttribute::PublicKey(config.public_key),
        WireguardPeerAttribute::Flags(flags),
        WireguardPeerAttribute::PersistentKeepalive(config.keepalive.unwrap_or(0)),
    ];
    if let Some(endpoint) = config.endpoint {
        attrs.push(WireguardPeerAttribute::Endpoint(endpoint));
    }
    attrs.push(WireguardPeerAttribute::AllowedIps(
        config
            .allowed_ips
            .iter()
            .map(|net| {
                WireguardAllowedIp(vec![
                    WireguardAllowedIpAttr::Family(WireguardAddressFamily::Ipv4),
                    WireguardAllowedIpAttr::IpAddr(net.network().into()),
                    WireguardAllowedIpAttr::Cidr(net.prefix_len()),
                ])
            })
            .collect(),
    ));
    WireguardPeer(attrs)
}

/// Folds one GetDevice answer into `state`. The kernel splits a large
/// device over several answers; a peer cut in two starts the next answer
/// again with its public key (and the rest of its allowed IPs).
pub fn merge_answer(state: &mut DeviceState, message: &WireguardMessage) {
    for attr in &message.attributes {
        match attr {
            WireguardAttribute::PublicKey(k) => state.public_key = Some(*k),
            WireguardAttribute::ListenPort(p) => state.listen_port = *p,
            WireguardAttribute::Peers(peers) => {
                for peer in peers {
                    let parsed = parse_peer(peer);
                    match state.peers.last_mut() {
                        Some(last) if last.config.public_key == parsed.config.public_key => {
                            last.config.allowed_ips.extend(parsed.config.allowed_ips);
                        }
                        _ => state.peers.push(parsed),
                    }
                }
            }
            _ => {}
        }
    }
}

fn parse_peer(peer: &WireguardPeer) -> PeerState {
    let mut state = PeerState::new([0; 32]);
    for attr in peer.iter() {
        match attr {
            WireguardPeerAttribute::PublicKey(k) => state.config.public_key = *k,
            WireguardPeerAttribute::Endpoint(e) => state.config.endpoint = Some(*e),
            WireguardPeerAttribute::PersistentKeepalive(k) => {
                state.config.keepalive = (*k != 0).then_some(*k)
            }
            WireguardPeerAttribute::LastHandshake(t) if t.seconds > 0 || t.nano_seconds > 0 => {
                let secs = u64::try_from(t.seconds).unwrap_or(0);
                let nanos = u32::try_from(t.nano_seconds).unwrap_or(0).min(999_999_999);
                state.last_handshake = Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos));
            }
            WireguardPeerAttribute::RxBytes(b) => state.rx_bytes = *b,
            WireguardPeerAttribute::TxBytes(b) => state.tx_bytes = *b,
            WireguardPeerAttribute::AllowedIps(ips) => {
                for ip in ips {
                    match allowed_ipv4(ip) {
                        Some(net) => state.config.allowed_ips.push(net),
                        None => state.foreign_allowed_ips.push(describe_allowed_ip(ip)),
                    }
                }
            }
            _ => {}
        }
    }
    state
}

fn allowed_ipv4(ip: &WireguardAllowedIp) -> Option<Ipv4Net> {
    let mut addr = None;
    let mut cidr = None;
    for attr in ip.iter() {
        match attr {
            WireguardAllowedIpAttr::IpAddr(std::net::IpAddr::V4(a)) => addr = Some(*a),
            WireguardAllowedIpAttr::Cidr(c) => cidr = Some(*c),
            _ => {}
        }
    }
    Ipv4Net::new(addr?, cidr?).ok()
}

/// An allowed IP outside our IPv4 model (IPv6), as `addr/cidr` text.
fn describe_allowed_ip(ip: &WireguardAllowedIp) -> String {
    let mut addr = String::from("?");
    let mut cidr = String::from("?");
    for attr in ip.iter() {
        match attr {
            WireguardAllowedIpAttr::IpAddr(a) => addr = a.to_string(),
            WireguardAllowedIpAttr::Cidr(c) => cidr = c.to_string(),
            _ => {}
        }
    }
    format!("{addr}/{cidr}")
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, ParseableParametrized};
    use netlink_packet_generic::GenlHeader;

    use super::*;
    use crate::net::wireguard::PeerConfig;

    fn roundtrip(message: &WireguardMessage) -> WireguardMessage {
        let mut buf = vec![0u8; message.buffer_len()];
        message.emit(&mut buf);
        let header = GenlHeader {
            cmd: message.cmd.into(),
            version: 1,
        };
        WireguardMessage::parse_with_param(&buf[..], header).unwrap()
    }

    fn peer(k: u8, endpoint: Option<&str>) -> PeerConfig {
        PeerConfig {
            public_key: [k; 32],
            endpoint: endpoint.map(|e| e.parse().unwrap()),
            allowed_ips: vec![
                "10.10.0.0/24".parse().unwrap(),
                "10.10.1.7/32".parse().unwrap(),
            ],
            keepalive: Some(25),
        }
    }

    #[test]
    fn device_message_carries_key_and_port_and_survives_encoding() {
        let msg = device_message("wg-mesh", &Zeroizing::new([7; 32]), 51822);
        assert_eq!(roundtrip(&msg), msg);
        assert!(
            msg.attributes
                .contains(&WireguardAttribute::PrivateKey([7; 32]))
        );
        let mut wiped = msg.clone();
        wipe(&mut wiped);
        assert!(
            wiped
                .attributes
                .contains(&WireguardAttribute::PrivateKey([0; 32]))
        );
    }

    #[test]
    fn peer_messages_encode_add_update_remove_and_read_back() {
        let ops = vec![
            PeerOp::Add(peer(1, Some("192.0.2.1:51822"))),
            PeerOp::Update(peer(2, None)),
            PeerOp::Remove([3; 32]),
        ];
        let msgs = peer_messages("wg-mesh", &ops);
        assert_eq!(msgs.len(), 1);
        let back = roundtrip(&msgs[0]);
        assert_eq!(back, msgs[0]);
        let WireguardAttribute::Peers(peers) = &back.attributes[1] else {
            panic!("no peers attribute");
        };
        assert!(peers[2].contains(&WireguardPeerAttribute::Flags(WireguardPeerFlags::RemoveMe)));
        assert!(peers[0].contains(&WireguardPeerAttribute::Flags(
            WireguardPeerFlags::ReplaceAllowedIps
        )));
        // Parsing what we emit gives the configs back.
        let mut state = DeviceState::default();
        merge_answer(&mut state, &back);
        assert_eq!(state.peers[0].config, peer(1, Some("192.0.2.1:51822")));
        assert_eq!(state.peers[1].config, peer(2, None));
    }

    #[test]
    fn an_ipv6_allowed_ip_is_kept_apart_so_the_peer_differs() {
        let allowed = |addr: &str, cidr: u8, family| {
            WireguardAllowedIp(vec![
                WireguardAllowedIpAttr::Family(family),
                WireguardAllowedIpAttr::IpAddr(addr.parse().unwrap()),
                WireguardAllowedIpAttr::Cidr(cidr),
            ])
        };
        let state = parse_peer(&WireguardPeer(vec![
            WireguardPeerAttribute::PublicKey([1; 32]),
            WireguardPeerAttribute::AllowedIps(vec![
                allowed("10.0.0.2", 32, WireguardAddressFamily::Ipv4),
                allowed("fd00::", 64, WireguardAddressFamily::Ipv6),
            ]),
        ]));
        assert_eq!(
            state.config.allowed_ips,
            vec!["10.0.0.2/32".parse().unwrap()]
        );
        assert_eq!(state.foreign_allowed_ips, vec!["fd00::/64"]);
        let mut want = peer(1, None);
        want.allowed_ips = vec!["10.0.0.2/32".parse().unwrap()];
        assert!(!state.satisfies(&want));
    }

    #[test]
    fn many_peers_are_chunked_and_a_split_peer_is_merged() {
        let ops: Vec<PeerOp> = (0..150).map(|i| PeerOp::Add(peer(i as u8, None))).collect();
        assert_eq!(peer_messages("wg0", &ops).len(), 3);

        let first = WireguardMessage {
            cmd: WireguardCmd::GetDevice,
            attributes: vec![WireguardAttribute::Peers(vec![peer_of(&PeerOp::Add(
                peer(9, None),
            ))])],
        };
        let mut rest = peer(9, None);
        rest.allowed_ips = vec!["10.20.0.0/16".parse().unwrap()];
        let second = WireguardMessage {
            cmd: WireguardCmd::GetDevice,
            attributes: vec![WireguardAttribute::Peers(vec![peer_of(&PeerOp::Add(rest))])],
        };
        let mut state = DeviceState::default();
        merge_answer(&mut state, &first);
        merge_answer(&mut state, &second);
        assert_eq!(state.peers.len(), 1);
        assert_eq!(state.peers[0].config.allowed_ips.len(), 3);
    }
}

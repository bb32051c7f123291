//! A client for the cross-platform WireGuard UAPI (`set=1` / `get=1` text
//! protocol on `/var/run/wireguard/<iface>.sock`), as served by our
//! userspace device process, by wireguard-go and by boringtun.
//!
//! `get=1` answers are parsed line by line as they arrive (1,000 peers is
//! ~250 KB of text; nothing is buffered whole). Every request body that
//! carries the private key lives in a `Zeroizing` buffer.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gondwana_core::mesh::Ipv4Net;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use zeroize::Zeroizing;

use super::{DeviceState, PeerConfig, PeerOp, PeerState, WgError};

pub const DEFAULT_SOCKET_DIR: &str = "/var/run/wireguard";

/// How long one UAPI exchange may take before the device is declared hung.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn socket_path(dir: &Path, iface: &str) -> PathBuf {
    dir.join(format!("{iface}.sock"))
}

/// Reads the whole device state.
pub async fn get(socket: &Path) -> Result<DeviceState, WgError> {
    tokio::time::timeout(EXCHANGE_TIMEOUT, get_inner(socket))
        .await
        .map_err(|_| uapi_error(socket, "get=1 timed out"))?
}

async fn get_inner(socket: &Path) -> Result<DeviceState, WgError> {
    let mut parser = GetParser::default();
    exchange(socket, b"get=1\n\n", |line| match parser.line(line) {
        Ok(None) => Ok(false),
        Ok(Some(0)) => Ok(true),
        Ok(Some(errno)) => Err(format!("get=1: errno={errno}")),
        Err(detail) => Err(detail),
    })
    .await?;
    Ok(parser.finish())
}

/// Sends one `set=1` request (`body`: `key=value` lines, each ending in
/// `\n`) and checks the answer.
pub async fn set(socket: &Path, body: &str) -> Result<(), WgError> {
    tokio::time::timeout(EXCHANGE_TIMEOUT, set_inner(socket, body))
        .await
        .map_err(|_| uapi_error(socket, "set=1 timed out"))?
}

async fn set_inner(socket: &Path, body: &str) -> Result<(), WgError> {
    let mut request = Zeroizing::new(String::with_capacity(body.len() + 8));
    request.push_str("set=1\n");
    request.push_str(body);
    request.push('\n');
    exchange(socket, request.as_bytes(), |line| {
        let Some(errno) = line.trim_end().strip_prefix("errno=") else {
            return Ok(false);
        };
        match errno.parse::<i32>() {
            Ok(0) => Ok(true),
            Ok(e) => Err(format!(
                "set=1 refused: errno={e} ({})",
                std::io::Error::from_raw_os_error(e)
            )),
            Err(_) => Err(format!("bad errno line {line:?}")),
        }
    })
    .await
}

/// Writes one request and hands each answer line (without its newline) to
/// `on_line` until it says the answer is complete (`Ok(true)`) or refuses
/// it (`Err(detail)`).
async fn exchange(
    socket: &Path,
    request: &[u8],
    mut on_line: impl FnMut(&str) -> Result<bool, String>,
) -> Result<(), WgError> {
    let mut stream = connect(socket).await?;
    stream
        .write_all(request)
        .await
        .map_err(|e| uapi_error(socket, format!("write: {e}")))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .await
            .map_err(|e| uapi_error(socket, format!("read: {e}")))?;
        if n == 0 {
            return Err(uapi_error(socket, "connection closed before errno="));
        }
        match on_line(line.trim_end_matches('\n')) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(detail) => return Err(uapi_error(socket, detail)),
        }
    }
}

async fn connect(socket: &Path) -> Result<UnixStream, WgError> {
    UnixStream::connect(socket)
        .await
        .map_err(|e| uapi_error(socket, format!("connect: {e}")))
}

fn uapi_error(socket: &Path, detail: impl Into<String>) -> WgError {
    WgError::Uapi {
        socket: socket.to_path_buf(),
        detail: detail.into(),
    }
}

/// `private_key=…` and `listen_port=…` (the key in lowercase hex, as the
/// protocol wants it).
pub fn device_body(private_key: &Zeroizing<[u8; 32]>, listen_port: u16) -> Zeroizing<String> {
    let mut body = Zeroizing::new(String::with_capacity(96));
    body.push_str("private_key=");
    // Digit by digit straight into the zeroizing buffer, so no other copy
    // of the secret is left in memory. Writing into a String cannot fail.
    for b in private_key.iter() {
        let _ = write!(body, "{b:02x}");
    }
    let _ = write!(body, "\nlisten_port={listen_port}\n");
    body
}

/// The `set=1` bodies that carry out `ops`, in order. Two rules shape them:
/// - boringtun cannot change an existing peer (it panics; upstream says
///   "remove and add again"), so an update is a removal followed by an add;
/// - boringtun does not reset `remove`, `endpoint` or keepalive between
///   peer sections of one request, and wireguard-go accepts only
///   `remove=true`: so removals go in their own request, every add names
///   its keepalive (0 = off) and adds without an endpoint come before adds
///   with one.
pub fn peer_bodies(ops: &[PeerOp]) -> Vec<String> {
    let mut removals = String::new();
    let mut adds: Vec<&PeerConfig> = Vec::new();
    for op in ops {
        match op {
            PeerOp::Remove(key) => push_removal(&mut removals, key),
            PeerOp::Update(peer) => {
                push_removal(&mut removals, &peer.public_key);
                adds.push(peer);
            }
            PeerOp::Add(peer) => adds.push(peer),
        }
    }
    adds.sort_by_key(|p| p.endpoint.is_some());
    let mut additions = String::with_capacity(adds.len() * 160);
    for peer in adds {
        let _ = writeln!(additions, "public_key={}", hex(&peer.public_key));
        let _ = writeln!(
            additions,
            "persistent_keepalive_interval={}",
            peer.keepalive.unwrap_or(0)
        );
        if let Some(endpoint) = peer.endpoint {
            let _ = writeln!(additions, "endpoint={endpoint}");
        }
        let _ = writeln!(additions, "replace_allowed_ips=true");
        for ip in &peer.allowed_ips {
            let _ = writeln!(additions, "allowed_ip={ip}");
        }
    }
    [removals, additions]
        .into_iter()
        .filter(|b| !b.is_empty())
        .collect()
}

fn push_removal(body: &mut String, key: &[u8; 32]) {
    let _ = write!(body, "public_key={}\nremove=true\n", hex(key));
}

/// A key as the UAPI writes it: 64 lowercase hex digits.
pub fn hex(bytes: &[u8; 32]) -> String {
    gondwana_core::hash::to_hex(bytes)
}

/// A key as the UAPI reads it (either case); `None` for anything else.
pub fn parse_hex_key(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    gondwana_core::keys::decode_hex32(text).ok()
}

/// Incremental parser of a `get=1` answer.
#[derive(Default)]
pub struct GetParser {
    state: DeviceState,
    peer: Option<PeerState>,
    handshake_sec: u64,
    handshake_nsec: u32,
}

impl GetParser {
    /// Feeds one line (without its newline). Returns `Some(errno)` at the
    /// closing `errno=` line. Unknown keys are skipped (newer protocol
    /// versions add some); allowed IPs outside our IPv4 model (IPv6) are
    /// kept apart, as text, so the peer is seen to differ.
    pub fn line(&mut self, line: &str) -> Result<Option<i32>, String> {
        if line.is_empty() {
            return Ok(None);
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("malformed line {line:?}"));
        };
        let bad = || format!("bad value for {key}: {value:?}");
        match key {
            "errno" => return value.parse().map(Some).map_err(|_| bad()),
            "own_public_key" => self.state.public_key = Some(parse_hex_key(value).ok_or_else(bad)?),
            // wireguard-go and the kernel answer the private key rather
            // than the public one: keep only the public key derived from
            // it (the secret is not kept, and never logged).
            "private_key" => {
                let key = Zeroizing::new(parse_hex_key(value).ok_or_else(bad)?);
                if *key != [0; 32] && self.state.public_key.is_none() {
                    self.state.public_key = Some(super::public_key(&key));
                }
            }
            "listen_port" => self.state.listen_port = value.parse().map_err(|_| bad())?,
            "public_key" => {
                self.close_peer();
                self.peer = Some(PeerState::new(parse_hex_key(value).ok_or_else(bad)?));
            }
            _ => {
                let Some(peer) = self.peer.as_mut() else {
                    return Ok(None);
                };
                match key {
                    "endpoint" => {
                        peer.config.endpoint = Some(value.parse::<SocketAddr>().map_err(|_| bad())?)
                    }
                    "allowed_ip" => match value.parse::<Ipv4Net>() {
                        Ok(net) => peer.config.allowed_ips.push(net),
                        Err(_) => peer.foreign_allowed_ips.push(value.to_string()),
                    },
                    "persistent_keepalive_interval" => {
                        let secs: u16 = value.parse().map_err(|_| bad())?;
                        peer.config.keepalive = (secs != 0).then_some(secs);
                    }
                    "last_handshake_time_sec" => {
                        self.handshake_sec = value.parse().map_err(|_| bad())?
                    }
                    "last_handshake_time_nsec" => {
                        self.handshake_nsec = value.parse().map_err(|_| bad())?
                    }
                    "rx_bytes" => peer.rx_bytes = value.parse().map_err(|_| bad())?,
                    "tx_bytes" => peer.tx_bytes = value.parse().map_err(|_| bad())?,
                    _ => {}
                }
            }
        }
        Ok(None)
    }

    fn close_peer(&mut self) {
        if let Some(mut peer) = self.peer.take() {
            if self.handshake_sec != 0 || self.handshake_nsec != 0 {
                peer.last_handshake = Some(
                    SystemTime::UNIX_EPOCH
                        + Duration::new(self.handshake_sec, self.handshake_nsec.min(999_999_999)),
                );
            }
            self.handshake_sec = 0;
            self.handshake_nsec = 0;
            self.state.peers.push(peer);
        }
    }

    pub fn finish(mut self) -> DeviceState {
        self.close_peer();
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceae86d1b0f1e";
    const KEY_B: &str = "662e14fd594556f522604703340351258903b64f35553763f19426ab2a515c58";

    #[test]
    fn parses_a_get_answer_with_peers_and_handshakes() {
        let answer = format!(
            "own_public_key={KEY_A}\nlisten_port=51822\nfwmark=0\n\
             public_key={KEY_B}\nprotocol_version=1\nendpoint=192.0.2.1:51822\n\
             persistent_keepalive_interval=25\nallowed_ip=10.10.0.0/24\nallowed_ip=fd00::/64\n\
             last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\n\
             rx_bytes=10\ntx_bytes=20\n\
             public_key={KEY_A}\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n\
             rx_bytes=0\ntx_bytes=0\nerrno=0\n"
        );
        let mut p = GetParser::default();
        let mut end = None;
        for line in answer.lines() {
            end = p.line(line).unwrap();
        }
        assert_eq!(end, Some(0));
        let s = p.finish();
        assert_eq!(s.public_key, parse_hex_key(KEY_A));
        assert_eq!(s.listen_port, 51822);
        assert_eq!(s.peers.len(), 2);
        let b = &s.peers[0];
        assert_eq!(b.config.endpoint, Some("192.0.2.1:51822".parse().unwrap()));
        assert_eq!(b.config.keepalive, Some(25));
        assert_eq!(b.config.allowed_ips, vec!["10.10.0.0/24".parse().unwrap()]);
        assert_eq!(
            b.last_handshake,
            Some(SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5))
        );
        assert_eq!((b.rx_bytes, b.tx_bytes), (10, 20));
        assert_eq!(s.peers[1].last_handshake, None);
    }

    #[test]
    fn a_private_key_answer_gives_the_public_key_only() {
        let private = Zeroizing::new([0x11; 32]);
        let mut p = GetParser::default();
        p.line(&format!("private_key={}", hex(&private))).unwrap();
        p.line("listen_port=1").unwrap();
        let s = p.finish();
        assert_eq!(s.public_key, Some(super::super::public_key(&private)));
        assert!(!format!("{s:?}").contains(&hex(&private)));
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let mut p = GetParser::default();
        assert!(p.line("nonsense").is_err());
        assert!(p.line("own_public_key=zz").is_err());
        assert!(p.line("listen_port=99999").is_err());
        assert!(p.line("public_key=00").is_err());
    }

    #[test]
    fn bodies_put_removals_first_and_endpointless_adds_before_others() {
        let key = |b: u8| [b; 32];
        let peer = |b: u8, endpoint: Option<&str>| PeerConfig {
            public_key: key(b),
            endpoint: endpoint.map(|e| e.parse().unwrap()),
            allowed_ips: vec!["10.10.0.2/32".parse().unwrap()],
            keepalive: None,
        };
        let bodies = peer_bodies(&[
            PeerOp::Add(peer(1, Some("192.0.2.1:1"))),
            PeerOp::Update(peer(2, None)),
            PeerOp::Remove(key(3)),
        ]);
        assert_eq!(bodies.len(), 2);
        assert_eq!(
            bodies[0],
            format!(
                "public_key={}\nremove=true\npublic_key={}\nremove=true\n",
                hex(&key(2)),
                hex(&key(3))
            )
        );
        let adds = &bodies[1];
        let first = adds.find(&hex(&key(2))).unwrap();
        let second = adds.find(&hex(&key(1))).unwrap();
        assert!(first < second, "{adds}");
        assert_eq!(adds.matches("persistent_keepalive_interval=0\n").count(), 2);
        assert!(!adds.contains("remove"));
        assert!(peer_bodies(&[]).is_empty());
    }

    #[test]
    fn device_body_is_hex_and_port() {
        let body = device_body(&Zeroizing::new([0xab; 32]), 51822);
        assert_eq!(
            *body,
            format!("private_key={}\nlisten_port=51822\n", "ab".repeat(32))
        );
    }
}

//! The UAPI socket of our userspace device, served by us in front of
//! boringtun (which listens on one descriptor of a socketpair). It speaks
//! the standard protocol to `wg` and to our own client, and smooths over
//! what boringtun 0.7 gets wrong:
//! - handshake times: boringtun answers "seconds since the handshake";
//!   the protocol (and `wg show`) wants a UNIX timestamp. We convert, and
//!   keep the last one per peer after boringtun's session expires (as the
//!   kernel does);
//! - changing an existing peer panics boringtun ("remove and add again"):
//!   a `set=1` is applied to a copy of the current peers and turned into
//!   removals plus adds of exactly the peers whose result differs. Peers
//!   that come out the same are not touched at all (so `wg setconf` with
//!   an unchanged file keeps every session);
//! - boringtun carries `remove`, `endpoint`, keepalive and preshared key
//!   over from one peer section to the next: every add names its keepalive
//!   (and preshared key when any add has one), removals travel in their
//!   own request and adds without an endpoint go before adds with one;
//! - peers or a listen port before a private key panic boringtun:
//!   refused with ENOKEY;
//! - a malformed request is refused before anything is applied.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use zeroize::Zeroizing;

use super::uapi::{hex, parse_hex_key};

const EINVAL: i32 = 22;
const EPROTO: i32 = 71;
const EIO: i32 = 5;
const ENOKEY: i32 = 126;
/// A `set=1` request larger than this is refused (10,000 peers fit).
const MAX_SET_BYTES: usize = 16 << 20;

type Key = [u8; 32];

/// boringtun's end of the conversation: one request at a time.
pub struct Backend {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    handshakes: HashMap<Key, SystemTime>,
    /// The private key last set (hex), answered as `private_key=` like
    /// the kernel and wireguard-go do: `wg show` derives the public key
    /// from it. boringtun itself never answers it.
    private_key: Option<Zeroizing<String>>,
}

impl Backend {
    pub fn new(stream: UnixStream) -> std::io::Result<Backend> {
        Ok(Backend {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            handshakes: HashMap::new(),
            private_key: None,
        })
    }

    /// Sends `get=1` and hands each answer line (without newline) to
    /// `line`; returns the errno.
    fn raw_get(&mut self, mut line: impl FnMut(&str)) -> std::io::Result<i32> {
        self.writer.write_all(b"get=1\n\n")?;
        self.read_answer(|l| line(l))
    }

    fn raw_set(&mut self, body: &str) -> std::io::Result<i32> {
        let mut request = Zeroizing::new(String::with_capacity(body.len() + 8));
        request.push_str("set=1\n");
        request.push_str(body);
        request.push('\n');
        self.writer.write_all(request.as_bytes())?;
        self.read_answer(|_| {})
    }

    /// Reads lines up to `errno=N` and the blank line after it.
    fn read_answer(&mut self, mut line: impl FnMut(&str)) -> std::io::Result<i32> {
        let mut buf = String::new();
        loop {
            buf.clear();
            if self.reader.read_line(&mut buf)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let text = buf.trim_end_matches('\n');
            if let Some(errno) = text.strip_prefix("errno=") {
                let errno = errno.parse().unwrap_or(EIO);
                buf.clear();
                self.reader.read_line(&mut buf)?;
                return Ok(errno);
            }
            line(text);
        }
    }

    /// `get=1` for a client, handshake times made absolute.
    fn get_for_client(&mut self, out: &mut impl Write) -> std::io::Result<i32> {
        if let Some(key) = &self.private_key {
            let mut line = Zeroizing::new(String::with_capacity(80));
            let _ = writeln!(line, "private_key={}", key.as_str());
            out.write_all(line.as_bytes())?;
        }
        let now = SystemTime::now();
        let mut translate = Translator::new(now, std::mem::take(&mut self.handshakes));
        let mut failed = None;
        let errno = self.raw_get(|line| {
            if failed.is_none()
                && let Err(e) = translate.line(line, out)
            {
                failed = Some(e);
            }
        })?;
        let result = translate.finish(out);
        self.handshakes = translate.seen;
        match failed {
            Some(e) => Err(e),
            None => result.map(|()| errno),
        }
    }

    fn current(&mut self) -> std::io::Result<(bool, HashMap<Key, Fields>)> {
        let mut has_key = false;
        let mut peers: HashMap<Key, Fields> = HashMap::new();
        let mut current: Option<Key> = None;
        self.raw_get(|line| {
            let Some((k, v)) = line.split_once('=') else {
                return;
            };
            match k {
                "own_public_key" => has_key = true,
                "public_key" => {
                    current = parse_hex_key(v);
                    if let Some(key) = current {
                        peers.insert(key, Fields::default());
                    }
                }
                _ => {
                    let Some(f) = current.and_then(|c| peers.get_mut(&c)) else {
                        return;
                    };
                    match k {
                        "preshared_key" => f.psk = parse_hex_key(v).filter(|p| *p != [0; 32]),
                        "persistent_keepalive_interval" => f.keepalive = v.parse().unwrap_or(0),
                        "endpoint" => f.endpoint = v.parse().ok(),
                        "allowed_ip" => {
                            if let Ok(net) = v.parse::<IpNet>() {
                                f.allowed.push(net.trunc());
                            }
                        }
                        _ => {}
                    }
                }
            }
        })?;
        for f in peers.values_mut() {
            f.normalize();
        }
        Ok((has_key, peers))
    }

    /// Applies a parsed `set=1` as described in the module doc.
    fn set(&mut self, request: &SetRequest) -> std::io::Result<i32> {
        let (has_key, initial) = self.current()?;
        let mut result = initial.clone();
        if request.replace_peers {
            result.clear();
        }
        for s in &request.sections {
            if s.remove {
                result.remove(&s.key);
                continue;
            }
            match result.get_mut(&s.key) {
                Some(f) => f.merge(s),
                None if s.update_only => {}
                None => {
                    let mut f = Fields::default();
                    f.merge(s);
                    result.insert(s.key, f);
                }
            }
        }
        let mut removals: Vec<&Key> = initial
            .iter()
            .filter(|(k, f)| result.get(*k) != Some(f))
            .map(|(k, _)| k)
            .collect();
        removals.sort();
        let mut adds: Vec<(&Key, &Fields)> = result
            .iter()
            .filter(|(k, f)| initial.get(*k) != Some(f))
            .collect();
        // boringtun panics on peers, and on packets reaching a listening
        // port, while it has no private key.
        let keyless = !has_key && request.private_key.is_none();
        if keyless && (!adds.is_empty() || request.listen_port.is_some()) {
            return Ok(ENOKEY);
        }
        adds.sort_by_key(|(k, f)| (f.endpoint.is_some(), **k));

        let mut first = Zeroizing::new(String::new());
        if let Some(key) = &request.private_key {
            let _ = writeln!(first, "private_key={}", key.as_str());
        }
        if let Some(port) = request.listen_port {
            let _ = writeln!(first, "listen_port={port}");
        }
        if let Some(mark) = request.fwmark {
            let _ = writeln!(first, "fwmark={mark}");
        }
        for key in &removals {
            let _ = write!(first, "public_key={}\nremove=true\n", hex(key));
        }
        if !first.is_empty() {
            let errno = self.raw_set(&first)?;
            if errno != 0 {
                return Ok(errno);
            }
            if let Some(key) = &request.private_key {
                self.private_key = Some(key.clone());
            }
        }
        if adds.is_empty() {
            return Ok(0);
        }
        let any_psk = adds.iter().any(|(_, f)| f.psk.is_some());
        let mut second = Zeroizing::new(String::with_capacity(adds.len() * 200));
        for (key, f) in adds {
            let _ = writeln!(second, "public_key={}", hex(key));
            if any_psk {
                let _ = writeln!(second, "preshared_key={}", hex(&f.psk.unwrap_or([0; 32])));
            }
            let _ = writeln!(second, "persistent_keepalive_interval={}", f.keepalive);
            if let Some(endpoint) = f.endpoint {
                let _ = writeln!(second, "endpoint={endpoint}");
            }
            for net in &f.allowed {
                let _ = writeln!(second, "allowed_ip={net}");
            }
        }
        self.raw_set(&second)
    }
}

/// A peer's configuration as boringtun holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Fields {
    psk: Option<Key>,
    keepalive: u16,
    endpoint: Option<SocketAddr>,
    allowed: Vec<IpNet>,
}

impl Fields {
    fn normalize(&mut self) {
        self.allowed.sort();
        self.allowed.dedup();
    }

    fn merge(&mut self, s: &Section) {
        if s.replace_allowed_ips {
            self.allowed.clear();
        }
        self.allowed.extend(s.allowed.iter().map(IpNet::trunc));
        if let Some(psk) = s.psk {
            self.psk = (psk != [0; 32]).then_some(psk);
        }
        if let Some(k) = s.keepalive {
            self.keepalive = k;
        }
        if let Some(e) = s.endpoint {
            self.endpoint = Some(e);
        }
        self.normalize();
    }
}

#[derive(Debug, Default)]
pub struct SetRequest {
    private_key: Option<Zeroizing<String>>,
    listen_port: Option<u16>,
    fwmark: Option<u32>,
    replace_peers: bool,
    sections: Vec<Section>,
}

#[derive(Debug, Clone, Default)]
struct Section {
    key: Key,
    remove: bool,
    update_only: bool,
    replace_allowed_ips: bool,
    psk: Option<Key>,
    keepalive: Option<u16>,
    endpoint: Option<SocketAddr>,
    allowed: Vec<IpNet>,
}

impl SetRequest {
    /// Takes one request line; `Err(errno)` refuses the whole request.
    pub fn line(&mut self, line: &str) -> Result<(), i32> {
        let (k, v) = line.split_once('=').ok_or(EPROTO)?;
        let boolean = |v: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(EINVAL),
        };
        if let Some(s) = self.sections.last_mut() {
            match k {
                "public_key" => {}
                "remove" => s.remove = boolean(v)?,
                "update_only" => s.update_only = boolean(v)?,
                "replace_allowed_ips" => s.replace_allowed_ips = boolean(v)?,
                "preshared_key" => s.psk = Some(parse_hex_key(v).ok_or(EINVAL)?),
                "persistent_keepalive_interval" => {
                    s.keepalive = Some(v.parse().map_err(|_| EINVAL)?)
                }
                "endpoint" => s.endpoint = Some(v.parse().map_err(|_| EINVAL)?),
                "allowed_ip" => s.allowed.push(v.parse().map_err(|_| EINVAL)?),
                "protocol_version" if v == "1" => {}
                _ => return Err(EINVAL),
            }
            if k != "public_key" {
                return Ok(());
            }
        }
        match k {
            "public_key" => self.sections.push(Section {
                key: parse_hex_key(v).ok_or(EINVAL)?,
                ..Section::default()
            }),
            "private_key" => {
                parse_hex_key(v).ok_or(EINVAL)?;
                self.private_key = Some(Zeroizing::new(v.to_string()));
            }
            "listen_port" => self.listen_port = Some(v.parse().map_err(|_| EINVAL)?),
            "fwmark" => self.fwmark = Some(v.parse().map_err(|_| EINVAL)?),
            "replace_peers" => self.replace_peers = boolean(v)?,
            _ => return Err(EINVAL),
        }
        Ok(())
    }
}

/// Rewrites boringtun's `get=1` answer line by line.
struct Translator {
    now: SystemTime,
    /// Handshake times known before this answer.
    known: HashMap<Key, SystemTime>,
    /// Handshake times of the peers in this answer.
    seen: HashMap<Key, SystemTime>,
    peer: Option<Key>,
    peer_has_handshake: bool,
    elapsed_secs: u64,
}

impl Translator {
    fn new(now: SystemTime, known: HashMap<Key, SystemTime>) -> Translator {
        Translator {
            now,
            known,
            seen: HashMap::new(),
            peer: None,
            peer_has_handshake: false,
            elapsed_secs: 0,
        }
    }

    fn line(&mut self, line: &str, out: &mut impl Write) -> std::io::Result<()> {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        match k {
            "public_key" => {
                self.end_peer(out)?;
                self.peer = parse_hex_key(v);
                self.peer_has_handshake = false;
                writeln!(out, "{line}")?;
                // wireguard-go and the kernel name it; some tools expect it.
                writeln!(out, "protocol_version=1")
            }
            "last_handshake_time_sec" => {
                self.elapsed_secs = v.parse().unwrap_or(0);
                Ok(())
            }
            "last_handshake_time_nsec" => {
                let nanos: u32 = v.parse().unwrap_or(0);
                let elapsed = Duration::new(self.elapsed_secs, nanos.min(999_999_999));
                let at = self
                    .now
                    .checked_sub(elapsed)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                if let Some(peer) = self.peer {
                    self.seen.insert(peer, at);
                }
                self.peer_has_handshake = true;
                write_time(out, at)
            }
            "rx_bytes" => {
                self.remembered(out)?;
                writeln!(out, "{line}")
            }
            _ => writeln!(out, "{line}"),
        }
    }

    /// A peer whose session boringtun dropped keeps its last handshake.
    fn remembered(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.peer_has_handshake {
            return Ok(());
        }
        self.peer_has_handshake = true;
        let Some(peer) = self.peer else { return Ok(()) };
        let Some(at) = self.known.get(&peer).copied() else {
            return Ok(());
        };
        self.seen.insert(peer, at);
        write_time(out, at)
    }

    fn end_peer(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.peer.is_some() {
            self.remembered(out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.end_peer(out)
    }
}

fn write_time(out: &mut impl Write, at: SystemTime) -> std::io::Result<()> {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    writeln!(
        out,
        "last_handshake_time_sec={}\nlast_handshake_time_nsec={}",
        since.as_secs(),
        since.subsec_nanos()
    )
}

/// Serves one client connection: any number of `get=1` / `set=1`.
pub fn serve_client(conn: UnixStream, backend: &Mutex<Backend>) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = BufWriter::new(&conn);
    let mut line = Zeroizing::new(String::with_capacity(256));
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let errno = match line.trim_end_matches('\n') {
            "" => continue,
            "get=1" => {
                let Ok(mut backend) = backend.lock() else {
                    return;
                };
                // The request's blank line is skipped by the loop above.
                match backend.get_for_client(&mut out) {
                    Ok(errno) => errno,
                    Err(_) => return,
                }
            }
            "set=1" => {
                let request = match read_set(&mut reader, &mut line) {
                    Ok(r) => r,
                    Err(errno) => {
                        let _ = write!(out, "errno={errno}\n\n").and_then(|()| out.flush());
                        return;
                    }
                };
                let Ok(mut backend) = backend.lock() else {
                    return;
                };
                backend.set(&request).unwrap_or(EIO)
            }
            _ => EINVAL,
        };
        if write!(out, "errno={errno}\n\n")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

fn read_set(
    reader: &mut BufReader<UnixStream>,
    line: &mut Zeroizing<String>,
) -> Result<SetRequest, i32> {
    let mut request = SetRequest::default();
    let mut total = 0usize;
    let mut failed = None;
    loop {
        line.clear();
        let n = reader.read_line(line).map_err(|_| EIO)?;
        total += n;
        if total > MAX_SET_BYTES {
            return Err(EINVAL);
        }
        let text = line.trim_end_matches('\n');
        if n == 0 || text.is_empty() {
            return match failed {
                Some(errno) => Err(errno),
                None => Ok(request),
            };
        }
        // Keep reading to the end of the request even after an error, so
        // the answer lines up with it.
        if failed.is_none()
            && let Err(errno) = request.line(text)
        {
            failed = Some(errno);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_requests_parse_and_refuse_bad_lines() {
        let mut r = SetRequest::default();
        for l in [
            &format!("private_key={}", "11".repeat(32)),
            "listen_port=51822",
            "replace_peers=true",
            &format!("public_key={}", "22".repeat(32)),
            "endpoint=192.0.2.1:51822",
            "allowed_ip=10.0.0.5/24",
            "persistent_keepalive_interval=25",
            &format!("public_key={}", "33".repeat(32)),
            "remove=true",
        ] {
            r.line(l).unwrap();
        }
        assert!(r.replace_peers);
        assert_eq!(r.sections.len(), 2);
        assert!(r.sections[1].remove);
        assert_eq!(r.sections[0].keepalive, Some(25));
        for bad in [
            "listen_port=x",
            "nonsense",
            "allowed_ip=10.0.0.0/33",
            "public_key=zz",
        ] {
            assert!(SetRequest::default().line(bad).is_err(), "{bad}");
        }
        let mut r = SetRequest::default();
        r.line(&format!("public_key={}", "22".repeat(32))).unwrap();
        assert_eq!(r.line("listen_port=1"), Err(EINVAL));
    }

    #[test]
    fn handshake_times_become_timestamps_and_are_remembered() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let key = "44".repeat(32);
        let mut out = Vec::new();
        let mut t = Translator::new(now, HashMap::new());
        for l in [
            format!("public_key={key}"),
            "last_handshake_time_sec=5".into(),
            "last_handshake_time_nsec=0".into(),
            "rx_bytes=1".into(),
            "tx_bytes=2".into(),
        ] {
            t.line(&l, &mut out).unwrap();
        }
        t.finish(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("last_handshake_time_sec=1799999995\n"),
            "{text}"
        );
        // Later, boringtun's session is gone: the time stays.
        let mut out = Vec::new();
        let mut t = Translator::new(now, t.seen);
        for l in [format!("public_key={key}"), "rx_bytes=1".into()] {
            t.line(&l, &mut out).unwrap();
        }
        t.finish(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("last_handshake_time_sec=1799999995\n"),
            "{text}"
        );
    }
}

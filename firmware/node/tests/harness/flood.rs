//! Many-source HTTP clients for the flood tests: a connection bound to a
//! chosen loopback source address (all of 127.0.0.0/8 is local), requests
//! pipelined on it, statuses counted.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};

use super::mesh::{Resp, parse_response};

/// The `i`-th flood source: 127.<first>.x.y, never 127.0.0.1.
pub fn source(first: u8, i: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, first, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// A TCP connection from `from` (port chosen by the kernel) to
/// 127.0.0.1:`port`.
pub fn connect_from(from: Ipv4Addr, port: u16) -> io::Result<TcpStream> {
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(from, 0)),
    )?;
    socket::connect(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
    )?;
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.set_write_timeout(Some(Duration::from_secs(20)))?;
    Ok(stream)
}

/// `count` pipelined `GET path` from `from` on one connection (the last
/// asks to close); the status of each answer, in order.
pub fn pipelined_gets(from: Ipv4Addr, port: u16, path: &str, count: usize) -> Vec<u16> {
    let mut stream = connect_from(from, port).expect("connect");
    let mut out = String::new();
    for i in 0..count {
        let close = if i + 1 == count {
            "close"
        } else {
            "keep-alive"
        };
        out.push_str(&format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: {close}\r\n\r\n"
        ));
    }
    stream.write_all(out.as_bytes()).expect("write requests");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read answers");
    split_answers(&raw)
}

/// The statuses of back-to-back HTTP/1.1 answers (each with a
/// Content-Length, as the API writes them).
fn split_answers(mut raw: &[u8]) -> Vec<u16> {
    let mut statuses = Vec::new();
    while !raw.is_empty() {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an answer head");
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let status: u16 = head[9..12].parse().expect("status code");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().expect("content-length"))
            .unwrap_or(0);
        statuses.push(status);
        raw = &raw[end + 4 + len..];
    }
    statuses
}

/// One request from `from` (closing the connection after it).
pub fn request_from(from: Ipv4Addr, port: u16, method: &str, path: &str, body: &[u8]) -> Resp {
    let mut stream = connect_from(from, port).expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read answer");
    parse_response(&raw).expect("an HTTP answer")
}

/// `sources` × `per_source` pipelined GETs of `path`, over `threads`
/// client threads; the count of each status.
pub fn flood(
    port: u16,
    path: &str,
    first_octet: u8,
    sources: u32,
    per_source: usize,
) -> std::collections::BTreeMap<u16, usize> {
    const THREADS: u32 = 8;
    let per_thread: Vec<Vec<u16>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    (t..sources)
                        .step_by(THREADS as usize)
                        .flat_map(|i| {
                            pipelined_gets(source(first_octet, i), port, path, per_source)
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut counts = std::collections::BTreeMap::new();
    for status in per_thread.into_iter().flatten() {
        *counts.entry(status).or_insert(0) += 1;
    }
    counts
}

/// Flood sizes: 600 sources × 20 requests (12,000 nonces, above the
/// 10,000 the old nonce table held), or `GW_FLOOD_SOURCES` sources.
pub fn flood_sources() -> u32 {
    std::env::var("GW_FLOOD_SOURCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
}

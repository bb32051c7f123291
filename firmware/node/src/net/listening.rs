//! Whether anything on this box listens on a port: read from the kernel's
//! socket tables (`/proc/net/tcp`, `tcp6`, `udp`, `udp6`), not by a connect
//! probe — a probe would show up in the service's own logs, cannot see a
//! UDP socket, and a service bound only to the mesh address would need
//! the probe to come from there. An offer for a port nothing listens on
//! is allowed; `service list`/`show` say so (docs/services.md).

use std::fs;

/// TCP's `LISTEN` state in `/proc/net/tcp` (include/net/tcp_states.h).
const TCP_LISTEN: &str = "0A";
/// A bound UDP socket shows as `CLOSE` (07): no connection, still receiving.
const UDP_BOUND: &str = "07";

/// Whether a TCP socket listens (or, for `udp`, a UDP socket is bound) on
/// `port`, on any local address. `None` when the tables cannot be read
/// (another network namespace's procfs, no procfs): unknown, not "no".
pub fn is_listening(udp: bool, port: u16) -> Option<bool> {
    let (files, state) = if udp {
        (["/proc/net/udp", "/proc/net/udp6"], UDP_BOUND)
    } else {
        (["/proc/net/tcp", "/proc/net/tcp6"], TCP_LISTEN)
    };
    let mut read_any = false;
    for file in files {
        // IPv6 may be absent from the kernel: its table then is too.
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        read_any = true;
        if table_has(&text, state, port) {
            return Some(true);
        }
    }
    read_any.then_some(false)
}

/// Whether a row of a `/proc/net/{tcp,udp}[6]` table has local port `port`
/// in `state`. Rows: `sl local_address rem_address st ...`, addresses as
/// `HEXADDR:HEXPORT`.
fn table_has(text: &str, state: &str, port: u16) -> bool {
    text.lines().skip(1).any(|line| {
        let mut cols = line.split_whitespace();
        let (Some(_), Some(local), Some(_), Some(st)) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            return false;
        };
        let local_port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        st == state && local_port == Some(port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:A1B2 0100007F:1F91 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";

    #[test]
    fn finds_listening_ports_only() {
        assert!(table_has(TCP, TCP_LISTEN, 8080));
        // 8081 is only the remote end of an established connection.
        assert!(!table_has(TCP, TCP_LISTEN, 8081));
        assert!(!table_has(TCP, TCP_LISTEN, 0xA1B2));
        assert!(!table_has("", TCP_LISTEN, 8080));
        assert!(!table_has("header\ngarbage", TCP_LISTEN, 8080));
    }

    #[test]
    fn a_real_listener_is_seen() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(is_listening(false, port), Some(true));
        drop(l);
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            is_listening(true, u.local_addr().unwrap().port()),
            Some(true)
        );
    }
}

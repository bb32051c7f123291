//! Every numeric setting has a range, checked at load (and at SIGHUP), so a
//! value that would make the daemon abort later — `retry_initial_secs =
//! nan` panicked in `Duration::from_secs_f64`, a zero pull interval in
//! tokio's timer — is refused with the key's name and the allowed range
//! (exit 7) instead of becoming a restart loop on a box. The ranges are
//! documented in docs/config.md; a test there keeps the two in step.

use std::net::SocketAddr;

use super::Config;

/// `(key, lowest, highest, unit)` for the whole-number keys.
pub const WHOLE: &[(&str, u64, u64, &str)] = &[
    ("mesh.wireguard_port", 1, 65_535, ""),
    ("mesh.api_port", 1, 65_535, ""),
    ("mesh.max_peers", 1, 100_000, ""),
    ("api.max_body_bytes", 4_096, 64 << 20, " bytes"),
    ("hub.enroll_rate_burst", 1, 100_000, ""),
    ("hub.enroll_rate_per_minute", 1, 1_000_000, ""),
    ("enroll.directory_pull_secs", 1, 86_400, " seconds"),
    ("relay.max_kbit_per_pair", 64, 100_000_000, " kbit/s"),
    ("relay.idle_secs", 10, 604_800, " seconds"),
];

/// `(key, lowest, highest)` for the keys in seconds with a fraction.
pub const SECONDS: &[(&str, f64, f64)] = &[
    ("enroll.retry_initial_secs", 0.01, 3_600.0),
    ("enroll.retry_max_secs", 0.01, 86_400.0),
];

/// The first setting out of range, as `key: problem`.
pub fn check(c: &Config) -> Result<(), String> {
    let whole_values = [
        u64::from(c.mesh.wireguard_port),
        u64::from(c.mesh.api_port),
        u64::try_from(c.mesh.max_peers).unwrap_or(u64::MAX),
        u64::try_from(c.api.max_body_bytes).unwrap_or(u64::MAX),
        u64::from(c.hub.enroll_rate_burst),
        u64::from(c.hub.enroll_rate_per_minute),
        c.enroll.directory_pull_secs,
        c.relay.max_kbit_per_pair,
        c.relay.idle_secs,
    ];
    for (&(key, low, high, unit), value) in WHOLE.iter().zip(whole_values) {
        if !(low..=high).contains(&value) {
            return Err(format!(
                "{key} = {value} is out of range: {low} to {high}{unit}"
            ));
        }
    }
    let second_values = [c.enroll.retry_initial_secs, c.enroll.retry_max_secs];
    for (&(key, low, high), value) in SECONDS.iter().zip(second_values) {
        // NaN fails `contains` too.
        if !(low..=high).contains(&value) {
            return Err(format!(
                "{key} = {value} is out of range: {low} to {high} seconds"
            ));
        }
    }
    if c.enroll.retry_max_secs < c.enroll.retry_initial_secs {
        return Err(format!(
            "enroll.retry_max_secs = {} is below enroll.retry_initial_secs = {}: the cap must be at least the first delay",
            c.enroll.retry_max_secs, c.enroll.retry_initial_secs
        ));
    }
    let listeners = [
        ("api.loopback", c.api.loopback),
        ("api.listen", c.api.listen),
        ("hub.enroll_listen", c.hub.enroll_listen),
    ];
    for (key, addr) in listeners {
        if addr.is_some_and(|a: SocketAddr| a.port() == 0) {
            return Err(format!(
                "{key}: port 0 (a random port) is not allowed: 1 to 65535"
            ));
        }
    }
    if c.relay.runs_on(c.role) {
        check_relay_ports(c)?;
    }
    if let Some(endpoint) = &c.hub.public_endpoint {
        check_endpoint(endpoint).map_err(|p| format!("hub.public_endpoint: {p}"))?;
    }
    Ok(())
}

/// The relay's ports must not take WireGuard's: the hub's port and the
/// nodes' listen ports (`mesh.wireguard_port` + 0..4095, docs/paths.md).
fn check_relay_ports(c: &Config) -> Result<(), String> {
    let range = c.relay.port_range;
    let wg_first = u32::from(c.mesh.wireguard_port);
    let wg_last = wg_first + u32::from(LISTEN_PORT_SPREAD) - 1;
    if u32::from(range.first) <= wg_last && wg_first <= u32::from(range.last) {
        return Err(format!(
            "relay.port_range = \"{range}\" overlaps the WireGuard listen ports \
             {wg_first}-{wg_last} (mesh.wireguard_port and the nodes' ports above it)"
        ));
    }
    Ok(())
}

/// How many listen ports above `mesh.wireguard_port` nodes may take.
pub const LISTEN_PORT_SPREAD: u16 = 4096;

/// `host:port` as nodes get it in the grant: a DNS name, an IPv4 address
/// or a bracketed IPv6 address, a port 1-65535, not a wildcard address.
fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or("expected host:port, e.g. hub.example.net:51822")?;
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => return Err("the port must be 1 to 65535"),
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.is_empty() || bare.contains(char::is_whitespace) {
        return Err("expected host:port, e.g. hub.example.net:51822");
    }
    if bare
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        return Err("a wildcard address (0.0.0.0, ::) is not where nodes can reach the hub");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_in_range() {
        assert_eq!(check(&Config::default()), Ok(()));
    }

    #[test]
    fn relay_ports_stay_clear_of_wireguard() {
        let mut c = Config {
            role: crate::config::Role::Hub,
            ..Config::default()
        };
        c.relay.port_range = "51000-51822".parse().unwrap();
        assert!(check(&c).unwrap_err().contains("relay.port_range"));
        c.relay.port_range = "55917-55917".parse().unwrap();
        assert!(check(&c).is_err());
        c.relay.port_range = "55918-56999".parse().unwrap();
        assert_eq!(check(&c), Ok(()));
        // A node without a relay is not held to it.
        c.role = crate::config::Role::Node;
        c.relay.port_range = "51822-51822".parse().unwrap();
        assert_eq!(check(&c), Ok(()));
    }

    #[test]
    fn endpoints() {
        for ok in ["hub.example.net:51822", "10.0.0.1:1", "[2001:db8::1]:51822"] {
            assert_eq!(check_endpoint(ok), Ok(()), "{ok}");
        }
        for bad in [
            "hub",
            "hub:0",
            "hub:65536",
            ":51822",
            "0.0.0.0:51822",
            "[::]:1",
            "hub:+1",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_range_is_documented() {
        let doc = include_str!("../../../../docs/config.md");
        let whole = WHOLE.iter().map(|(k, l, h, _)| (*k, format!("{l}–{h}")));
        let seconds = SECONDS.iter().map(|(k, l, h)| (*k, format!("{l}–{h}")));
        for (key, range) in whole.chain(seconds) {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` |")))
                .unwrap_or_else(|| panic!("docs/config.md has no row for {key}"));
            assert!(
                row.contains(&range),
                "docs/config.md row of {key} should say {range}: {row}"
            );
        }
    }
}

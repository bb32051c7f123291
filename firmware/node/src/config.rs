//! `/etc/gondwana/gondwana.toml`. Every key is documented in docs/config.md;
//! unknown keys are refused so a typo never silently falls back to a default.
//! Errors name the key and the line, never a value (`toml_errors`).

mod keys;
mod ranges;
mod update;

pub use update::UpdateConfig;

use std::path::{Path, PathBuf};

use std::net::SocketAddr;
use std::time::Duration;

use gondwana_core::mesh::{self, Ipv4Net};
use gondwana_core::{Boxname, InterfaceName};
use serde::Deserialize;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/gondwana/gondwana.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/gondwana";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the state lives (the state partition's mount point).
    pub state_dir: Option<PathBuf>,
    /// The name this box asks for at first boot; derived from its id if absent.
    pub boxname: Option<String>,
    /// `hub` (assigns addresses, signs the directory) or `node`.
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub wireguard: WireguardConfig,
    #[serde(default)]
    pub mesh: MeshConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub hub: HubConfig,
    #[serde(default)]
    pub enroll: EnrollConfig,
    #[serde(default)]
    pub firewall: FirewallConfig,
    #[serde(default)]
    pub relay: RelayConfig,
    #[serde(default)]
    pub update: UpdateConfig,
}

/// The ciphertext relay (docs/paths.md, "The relay").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Run the forwarder for the pairs naming this box; unset: on for a
    /// hub, off for a node ([`RelayConfig::runs_on`]).
    pub enabled: Option<bool>,
    /// The address the pairs' ports are bound on.
    pub listen: std::net::Ipv4Addr,
    /// Where pairs' ports come from: `first-last`, checked at load.
    pub port_range: PortRange,
    /// Bound on each pair, both directions together, in kbit/s.
    pub max_kbit_per_pair: u64,
    /// A pair without traffic and without a node asking for it this long
    /// is released by the allocator.
    pub idle_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            enabled: None,
            listen: std::net::Ipv4Addr::UNSPECIFIED,
            port_range: PortRange {
                first: 56_000,
                last: 56_999,
            },
            max_kbit_per_pair: 100_000,
            idle_secs: 600,
        }
    }
}

impl RelayConfig {
    /// Whether a box of `role` runs the forwarder.
    pub fn runs_on(&self, role: Role) -> bool {
        self.enabled.unwrap_or(role == Role::Hub)
    }
}

/// An inclusive range of ports, written `first-last` (`56000-56999`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<PortRange, String> {
        let bad = || format!("{s:?}: expected first-last, ports 1-65535, first <= last");
        let (first, last) = s.split_once('-').ok_or_else(bad)?;
        let port = |t: &str| match t.trim().parse::<u16>() {
            Ok(p) if p != 0 && t.trim().bytes().all(|b| b.is_ascii_digit()) => Ok(p),
            _ => Err(bad()),
        };
        let (first, last) = (port(first)?, port(last)?);
        if first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PortRange, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The mesh firewall (docs/firewall.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallConfig {
    /// Off only for development hosts and tests that share a network
    /// namespace; a box in the field always runs it.
    pub enabled: bool,
    /// Our nf_tables table (family inet), replaced at every start.
    pub table: String,
    /// TCP ports of this box open to the whole mesh subnet (like the API
    /// port), e.g. 22 on the images; every other port needs a grant.
    pub mesh_open_ports: Vec<u16>,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        FirewallConfig {
            enabled: true,
            table: DEFAULT_FIREWALL_TABLE.into(),
            mesh_open_ports: Vec::new(),
        }
    }
}

/// Our nf_tables table when the config names none.
pub const DEFAULT_FIREWALL_TABLE: &str = "gondwana";

/// At most this many ports open to the whole mesh: a box lends a few
/// services to everyone; the rest goes through grants.
pub const MAX_MESH_OPEN_PORTS: usize = 16;

/// `firewall.mesh_open_ports`: 1-65535, at most [`MAX_MESH_OPEN_PORTS`],
/// no repeats and not the API port (which is open already).
pub fn check_open_ports(ports: &[u16], api_port: u16) -> Result<(), String> {
    if ports.len() > MAX_MESH_OPEN_PORTS {
        return Err(format!(
            "{} ports, at most {MAX_MESH_OPEN_PORTS}",
            ports.len()
        ));
    }
    for (i, &port) in ports.iter().enumerate() {
        if port == 0 {
            return Err("port 0 is out of range: 1 to 65535".into());
        }
        if port == api_port {
            return Err(format!(
                "port {port} is mesh.api_port, open to the mesh already"
            ));
        }
        if ports[..i].contains(&port) {
            return Err(format!("port {port} is listed twice"));
        }
    }
    Ok(())
}

/// `firewall.table`: an nf_tables table name we are willing to replace.
pub fn check_table_name(name: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "firewall table name {name:?}: 1-32 characters, letters, digits, '_' or '-', starting with a letter"
        ))
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Hub,
    #[default]
    Node,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeshConfig {
    pub subnet: Ipv4Net,
    pub wireguard_port: u16,
    /// Checked when the config is read: a bad name is a config error.
    pub interface: InterfaceName,
    pub api_port: u16,
    pub reserved_subnets: Vec<Ipv4Net>,
    /// Node: at most this many WireGuard peers, the hub included
    /// (docs/paths.md, "Peers").
    pub max_peers: usize,
}

/// `mesh.max_peers`: a 1,000-box mesh fits a MOCHAbin (docs/paths.md).
pub const DEFAULT_MAX_PEERS: usize = 1000;

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            subnet: parse_net(mesh::DEFAULT_SUBNET),
            wireguard_port: mesh::DEFAULT_WG_PORT,
            interface: default_interface(),
            api_port: mesh::DEFAULT_API_PORT,
            reserved_subnets: mesh::DEFAULT_RESERVED
                .iter()
                .map(|s| parse_net(s))
                .collect(),
            max_peers: DEFAULT_MAX_PEERS,
        }
    }
}

fn default_interface() -> InterfaceName {
    // A compile-time constant; the test below proves it valid.
    InterfaceName::parse(mesh::DEFAULT_INTERFACE)
        .unwrap_or_else(|_| unreachable!("mesh::DEFAULT_INTERFACE is a valid name"))
}

fn parse_net(s: &str) -> Ipv4Net {
    // Only called on the compile-time defaults above, which are valid.
    s.parse().unwrap_or_default()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Loopback listener; the port is `mesh.api_port` unless given here.
    pub loopback: Option<SocketAddr>,
    /// One more listener (e.g. a LAN address). Full API, like loopback.
    pub listen: Option<SocketAddr>,
    /// Root-only Unix socket for CLI admin commands while the daemon runs.
    pub admin_socket: PathBuf,
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            loopback: None,
            listen: None,
            admin_socket: PathBuf::from("/run/gondwana/admin.sock"),
            max_body_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// WireGuard endpoint nodes are given: `host:port`, a DNS name allowed.
    pub public_endpoint: Option<String>,
    /// The public enrolment listener: serves only enrolment and health.
    pub enroll_listen: Option<SocketAddr>,
    /// The URL nodes use to reach `enroll_listen`, written into enroll.toml.
    pub public_url: Option<String>,
    /// Enrolment attempts allowed per source address: burst and per minute.
    #[serde(default = "default_enroll_burst")]
    pub enroll_rate_burst: u32,
    #[serde(default = "default_enroll_per_minute")]
    pub enroll_rate_per_minute: u32,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            public_endpoint: None,
            enroll_listen: None,
            public_url: None,
            enroll_rate_burst: default_enroll_burst(),
            enroll_rate_per_minute: default_enroll_per_minute(),
        }
    }
}

fn default_enroll_burst() -> u32 {
    20
}
fn default_enroll_per_minute() -> u32 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrollConfig {
    /// enroll.toml files tried in order (the boot partition's, then any
    /// mounted `GW_CONFIG` volume's).
    pub search_paths: Vec<PathBuf>,
    /// Where `gondwana.enroll=` is looked for.
    pub kernel_cmdline: PathBuf,
    /// Backoff between attempts: first delay and cap, in seconds.
    pub retry_initial_secs: f64,
    pub retry_max_secs: f64,
    /// How often an enrolled node pulls the directory.
    pub directory_pull_secs: u64,
    /// The hub's full API for directory pulls and identity-mirror pushes.
    /// Default: the hub's mesh address and API port from the grant
    /// (reached through the tunnel).
    pub hub_api_url: Option<String>,
    /// The label of a FAT volume (a USB stick) whose `gondwana/enroll.toml`
    /// is tried after `search_paths`; empty disables (boot/gw_config.rs).
    pub config_volume_label: String,
    /// Where such a volume is mounted (read-only, only while it is read).
    pub config_volume_mount: PathBuf,
}

impl Default for EnrollConfig {
    fn default() -> Self {
        EnrollConfig {
            search_paths: vec![
                PathBuf::from("/boot/gondwana/enroll.toml"),
                PathBuf::from("/run/gondwana/gw-config/gondwana/enroll.toml"),
            ],
            kernel_cmdline: PathBuf::from("/proc/cmdline"),
            retry_initial_secs: 1.0,
            retry_max_secs: 300.0,
            directory_pull_secs: 60,
            hub_api_url: None,
            config_volume_label: "GW_CONFIG".into(),
            config_volume_mount: PathBuf::from("/run/gondwana/gw-config"),
        }
    }
}

impl EnrollConfig {
    pub fn retry_initial(&self) -> Duration {
        Duration::from_secs_f64(self.retry_initial_secs.clamp(0.01, 3600.0))
    }
    pub fn retry_max(&self) -> Duration {
        Duration::from_secs_f64(self.retry_max_secs.clamp(0.01, 86400.0))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireguardConfig {
    /// A file holding an existing private key in base64 (`wg genkey` output).
    pub private_key_file: Option<PathBuf>,
    /// An existing wg-quick config whose `[Interface] PrivateKey` is adopted.
    pub wg_quick_config: Option<PathBuf>,
    /// `auto` (kernel when the module answers, else userspace), `kernel`
    /// or `userspace` (docs/wireguard.md).
    #[serde(default)]
    pub backend: BackendChoice,
}

/// `[wireguard] backend` in the config: what the operator asked for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    /// A setting a command needs is missing or unusable; the text names
    /// the key to set (e.g. `[hub] public_url` for `token create`).
    #[error("{0}")]
    Setting(String),
}

/// An existing WireGuard key the config asks us to adopt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdoptSource {
    KeyFile(PathBuf),
    WgQuick(PathBuf),
}

impl Config {
    /// Loads `path`. A missing file is fine only when it is the default path
    /// (a fresh box has no config); a path the user named must exist.
    pub fn load(path: &Path, explicitly_named: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicitly_named => {
                return Ok(Config::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            detail: crate::toml_errors::describe(
                &text,
                &e,
                keys::KEYS,
                crate::toml_errors::Values::OfKnownKeys,
            ),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |detail: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            detail,
        };
        if let Some(name) = &self.boxname {
            Boxname::parse(name).map_err(|e| invalid(format!("boxname {name:?}: {e}")))?;
        }
        if self.wireguard.private_key_file.is_some() && self.wireguard.wg_quick_config.is_some() {
            return Err(invalid(
                "wireguard.private_key_file and wireguard.wg_quick_config are exclusive: name one key"
                    .into(),
            ));
        }
        mesh::check_subnet(&self.mesh.subnet, &self.mesh.reserved_subnets, &[])
            .map_err(|e| invalid(format!("mesh.subnet: {e}")))?;
        check_table_name(&self.firewall.table)
            .map_err(|e| invalid(format!("firewall.table: {e}")))?;
        check_open_ports(&self.firewall.mesh_open_ports, self.mesh.api_port)
            .map_err(|e| invalid(format!("firewall.mesh_open_ports: {e}")))?;
        ranges::check(self).map_err(invalid)?;
        self.update.check().map_err(invalid)?;
        if let Some(url) = &self.hub.public_url {
            crate::hub_url::check(url).map_err(|p| invalid(format!("hub.public_url: {p}")))?;
        }
        if self.role == Role::Hub && self.hub.public_endpoint.is_none() {
            return Err(invalid(
                "role = \"hub\" needs hub.public_endpoint (host:port)".into(),
            ));
        }
        Ok(())
    }

    pub fn boxname(&self) -> Option<Boxname> {
        self.boxname.as_deref().and_then(|n| Boxname::parse(n).ok())
    }

    pub fn adopt_source(&self) -> Option<AdoptSource> {
        let wg = &self.wireguard;
        wg.private_key_file
            .clone()
            .map(AdoptSource::KeyFile)
            .or_else(|| wg.wg_quick_config.clone().map(AdoptSource::WgQuick))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path, true)
    }

    #[test]
    fn mesh_open_ports_are_checked_at_load() {
        let ok = parse("[firewall]\nmesh_open_ports = [22, 2222]\n").unwrap();
        assert_eq!(ok.firewall.mesh_open_ports, [22, 2222]);
        for (ports, why) in [
            ("[0]", "out of range"),
            ("[22, 22]", "listed twice"),
            ("[8798]", "mesh.api_port"),
            ("[70000]", ""),
        ] {
            let e = parse(&format!("[firewall]\nmesh_open_ports = {ports}\n"))
                .err()
                .unwrap_or_else(|| panic!("{ports} accepted"))
                .to_string();
            assert!(
                e.contains("mesh_open_ports") && e.contains(why),
                "{ports}: {e}"
            );
        }
    }

    #[test]
    fn relay_section_parses_and_refuses_bad_ranges() {
        let d = Config::default();
        assert!(d.relay.runs_on(Role::Hub) && !d.relay.runs_on(Role::Node));
        assert_eq!(d.relay.port_range.to_string(), "56000-56999");
        let c = parse(
            "[relay]\nenabled = true\nlisten = \"192.0.2.1\"\nport_range = \"57000-57009\"\n\
             max_kbit_per_pair = 800\nidle_secs = 30\n",
        )
        .unwrap();
        assert!(c.relay.runs_on(Role::Node));
        assert_eq!(
            c.relay.port_range,
            PortRange {
                first: 57000,
                last: 57009
            }
        );
        assert_eq!(c.relay.listen, std::net::Ipv4Addr::new(192, 0, 2, 1));
        for bad in [
            "port_range = \"57000\"",
            "port_range = \"0-10\"",
            "port_range = \"9-8\"",
            "port_range = \"1-70000\"",
            "port_range = \"+1-9\"",
            "max_kbit_per_pair = 0",
            "idle_secs = 0",
            "listen = \"::\"",
        ] {
            let e = parse(&format!("[relay]\n{bad}\n"));
            assert!(
                matches!(&e, Err(ConfigError::Invalid { detail, .. }) if detail.contains("relay")),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            "state_dir = \"/tmp/s\"\nboxname = \"box-1\"\n[wireguard]\nprivate_key_file = \"/k\"\n",
        )
        .unwrap();
        assert_eq!(c.state_dir.as_deref(), Some(Path::new("/tmp/s")));
        assert_eq!(c.boxname().unwrap().as_str(), "box-1");
        assert_eq!(c.adopt_source(), Some(AdoptSource::KeyFile("/k".into())));
        assert_eq!(c.wireguard.backend, BackendChoice::Auto);
        let u = parse("[wireguard]\nbackend = \"userspace\"\n").unwrap();
        assert_eq!(u.wireguard.backend, BackendChoice::Userspace);
    }

    #[test]
    fn refuses_typos_bad_names_and_two_keys() {
        assert!(parse("stat_dir = \"/x\"\n").is_err());
        assert!(parse("[wireguard]\nbackend = \"kernal\"\n").is_err());
        assert!(parse("boxname = \"Bad_Name\"\n").is_err());
        assert!(
            parse("[wireguard]\nprivate_key_file = \"/a\"\nwg_quick_config = \"/b\"\n").is_err()
        );
    }

    #[test]
    fn a_bad_interface_name_is_a_config_error() {
        assert_eq!(
            Config::default().mesh.interface.as_str(),
            mesh::DEFAULT_INTERFACE
        );
        let ok = parse("[mesh]\ninterface = \"wg-test0\"\n").unwrap();
        assert_eq!(ok.mesh.interface.as_str(), "wg-test0");
        for bad in [".", "..", "a/b", "sixteen-chars-xx", "", "a b", "a:b"] {
            let err = parse(&format!("[mesh]\ninterface = {bad:?}\n"));
            assert!(
                matches!(err, Err(ConfigError::Invalid { ref detail, .. }) if detail.contains("interface")),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn missing_default_is_empty_but_missing_named_is_an_error() {
        let missing = Path::new("/nonexistent/gondwana.toml");
        assert!(Config::load(missing, false).is_ok());
        assert!(Config::load(missing, true).is_err());
    }
}

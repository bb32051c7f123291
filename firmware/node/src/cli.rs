//! The command line (clap). `main` dispatches; each command lives in
//! `commands/` or, for first boot, `boot/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::DEFAULT_CONFIG_PATH;

#[derive(Debug, Parser)]
#[command(
    name = "gondwana",
    about = "Gondwana mesh node: identity, enrolment, WireGuard and nftables",
    version = crate::build_info::LONG_VERSION
)]
pub struct Cli {
    /// State directory (the state partition). Overrides `state_dir` in the config.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Config file (TOML). A missing default file means "all defaults".
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Provision this node's identity if it has none (idempotent).
    Firstboot(JsonFlag),
    /// Show, rotate, verify or export the identity.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Show or verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print version, build commit and target.
    Version(JsonFlag),
    /// Run the daemon: API, enrolment (node) or enrolment service (hub).
    Run,
    /// Role, enrolment, identity mirror and directory at a glance.
    Status(JsonFlag),
    /// The daemon's recent log lines from its ring in RAM (like OpenWrt's `logread`).
    #[command(after_help = "Example:\n  gondwana logs -n 50 -f")]
    Logs(LogsArgs),
    /// Enrol into a mesh by hand (the daemon does it by itself from enroll.toml).
    Enroll(EnrollArgs),
    /// Hub: enrolment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Hub: enrolled nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// The signed mesh directory.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Internal: the userspace WireGuard device process (boringtun on a TUN
    /// device, UAPI socket for `wg`). Started by the daemon; detaches.
    #[command(hide = true)]
    WireguardUserspace(WireguardUserspaceArgs),
    /// Firewall grants: let one mesh address reach one TCP port of this box.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Signed A/B updates: install a bundle into the inactive slot, show the slots.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Lend services over the mesh: offer one of this box's ports, list the mesh's offers, subscribe, decide on requests.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Benchmark driver (scripts/bench): N grants in one netlink batch.
    #[command(hide = true)]
    FirewallBench {
        #[arg(long, default_value_t = 1000)]
        count: u32,
        #[arg(long, default_value = "gondwana")]
        table: String,
    },
    /// Internal (scripts/bench): apply a wg-style peer file through the
    /// daemon's WireGuard code and print timings.
    #[command(hide = true)]
    WireguardBench(WireguardBenchArgs),
    /// Internal (the images' rcS): kernel modules.
    #[command(hide = true, subcommand)]
    Modules(ModulesCommand),
}

#[derive(Debug, Subcommand)]
pub enum ModulesCommand {
    /// Load the modules a list names (paths relative to its directory,
    /// dependencies first) in this one process; one already loaded is fine.
    Load { list: PathBuf },
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only the last N lines (then follow, with -f).
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<usize>,
    /// Keep printing lines as they are written, until interrupted.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// One JSON object per line: time, level, target, message.
    #[arg(long)]
    pub json: bool,
    /// The ring's current file [default: $GONDWANA_LOG_RING, else /run/gondwana/log].
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WireguardBenchArgs {
    pub interface: String,
    /// `[Interface] PrivateKey`, `ListenPort` and `[Peer]` sections.
    pub peers_file: PathBuf,
    /// Keep running (holding the interface open) until stdin closes.
    #[arg(long)]
    pub hold: bool,
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Allow IP (inside the mesh subnet) to reach TCP PORT here.
    Add {
        #[arg(long)]
        ip: std::net::Ipv4Addr,
        #[arg(long)]
        port: u32,
        /// Kernel-side timeout, e.g. 90s, 30m, 12h. None: until `grant del`.
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Hub: grant on this node (boxname, node id or mesh address).
        #[arg(long)]
        node: Option<String>,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Remove a grant.
    Del {
        #[arg(long)]
        ip: std::net::Ipv4Addr,
        #[arg(long)]
        port: u32,
        /// Hub: remove it on this node.
        #[arg(long)]
        node: Option<String>,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// The grants the kernel holds now, with the time they have left.
    List {
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Offer a port of this box to the mesh: signed with the node key,
    /// published in the directory through the hub.
    Offer {
        /// The service's name, a DNS label (`web`, `dns`).
        name: String,
        #[arg(long)]
        port: u32,
        #[arg(long, value_parser = ["tcp", "udp"], default_value = "tcp")]
        proto: String,
        /// Who gets it: `auto` (any box that asks), `manual` (the operator
        /// approves each request), `allow:BOXNAME,TAG,...`.
        #[arg(long, value_name = "auto|manual|allow:NAMES")]
        approve: String,
        /// One line for the boxes that list it.
        #[arg(long)]
        description: Option<String>,
        /// The longest a subscription lasts before it must be renewed, e.g. 1h, 7d.
        #[arg(long, value_parser = humantime::parse_duration)]
        max_duration: Option<std::time::Duration>,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Withdraw one of this box's offers (a signed withdrawal in the directory).
    Withdraw {
        name: String,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Every offer of the mesh, from this box's verified directory.
    List {
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// One offer, as NAME@BOXNAME.
    Show {
        #[arg(value_name = "NAME@BOXNAME")]
        service: String,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Ask a box for one of its services: a signed subscription sent to it
    /// over the mesh, renewed by this box while it is wanted.
    Subscribe {
        #[arg(value_name = "NAME@BOXNAME")]
        service: String,
        /// How long each grant lasts before this box renews it, e.g. 10m, 1h
        /// (default: 1h, or the offer's maximum if shorter).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// End a subscription: the provider closes its port to this box.
    Unsubscribe {
        #[arg(value_name = "NAME@BOXNAME")]
        service: String,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Provider: the subscription requests waiting for this box's operator.
    Requests {
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Provider: approve a box's request for one of this box's services.
    Approve {
        /// The service (one of this box's offers).
        name: String,
        /// The consumer: boxname, node id or mesh address.
        consumer: String,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Provider: deny a request, or end a subscription it approved.
    Deny {
        name: String,
        consumer: String,
        /// Told to the consumer in the signed decision.
        #[arg(long)]
        reason: Option<String>,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct WireguardUserspaceArgs {
    /// The interface to create (unique on this host: the socket path is).
    pub interface: String,
    /// Where the UAPI socket goes (`wg` looks in /var/run/wireguard).
    #[arg(long, default_value = crate::net::wireguard::uapi::DEFAULT_SOCKET_DIR)]
    pub socket_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// An enroll.toml, as `token create --out` writes it; `-` reads it from
    /// standard input.
    #[arg(
        value_name = "FILE",
        required_unless_present = "hub",
        conflicts_with_all = ["hub", "hub_key", "token"]
    )]
    pub file: Option<PathBuf>,
    /// Instead of FILE: the hub's enrolment URL, e.g. http://hub.example.net:8799
    #[arg(long, requires_all = ["hub_key", "token"])]
    pub hub: Option<String>,
    /// The hub's signing public key (hex): the pin.
    #[arg(long, requires = "hub")]
    pub hub_key: Option<String>,
    /// The enrolment token (gwt1-…). Visible in the process list: prefer FILE.
    #[arg(long, requires = "hub")]
    pub token: Option<String>,
    /// The boxname to ask for (overrides the file's).
    #[arg(long)]
    pub boxname: Option<String>,
    /// Machine-readable output (one JSON value).
    #[arg(long)]
    pub json: bool,
}

/// `token create --ttl`: a lifetime, or `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTtl {
    Never,
    Secs(u64),
}

/// `never`, or a duration of 1 s to 3650 days (`30m`, `24h`, `7d`). A zero
/// lifetime would print a secret that is already dead: refused here, so
/// it is a bad command line (exit 2).
fn parse_ttl(text: &str) -> Result<TokenTtl, String> {
    use crate::service::request::MAX_TOKEN_TTL_SECS;
    if text == "never" {
        return Ok(TokenTtl::Never);
    }
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{e} (e.g. 30m, 24h, 7d, or never)"))?;
    if d.as_secs() == 0 {
        return Err("a token must live at least 1s (or use never)".into());
    }
    if d.as_secs() > MAX_TOKEN_TTL_SECS {
        return Err(format!(
            "at most {}d; use never for a token that does not expire",
            MAX_TOKEN_TTL_SECS / 86_400
        ));
    }
    Ok(TokenTtl::Secs(d.as_secs()))
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints it once.
    Create {
        /// How many nodes may enrol with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Lifetime by the hub's clock, e.g. 30m, 24h, 7d (default 7d), or
        /// `never`.
        #[arg(long, value_name = "DURATION|never", value_parser = parse_ttl)]
        ttl: Option<TokenTtl>,
        /// Every node enrolling with it gets this boxname.
        #[arg(long)]
        boxname: Option<String>,
        /// Tags recorded with the nodes it enrols (repeatable).
        #[arg(long)]
        tag: Vec<String>,
        /// Let a new key take over an existing boxname (re-flashed box).
        #[arg(long)]
        replace: bool,
        /// Write a ready enroll.toml (hub URL, hub key pin, token) here;
        /// `-` writes it to standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// List tokens (no secrets).
    List {
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke {
        id: String,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List enrolled nodes.
    List {
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// One node, by node id or boxname.
    Show {
        who: String,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a node (a signed directory record); frees its address.
    Revoke {
        who: String,
        #[arg(long, default_value = "revoked by the operator")]
        reason: String,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// The directory's live nodes and revocations.
    Show {
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Verify every signature and hash link of the stored directory.
    Verify(JsonFlag),
    /// Write the whole directory as one self-verifying bundle.
    Export(ExportArgs),
    /// Append what verifies from an exported bundle (`-`: standard input).
    Import {
        file: PathBuf,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// The running slot and each slot's release and state.
    Status(JsonFlag),
    /// Verify a signed bundle and write it into the inactive slot.
    Install {
        /// The bundle file (scripts/build-images writes out/gondwana-<board>.bundle).
        bundle: PathBuf,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// On the hub: verify a bundle and its signed release record, serve the
    /// bundle to the mesh and append the record to the directory.
    Publish {
        /// The bundle file.
        bundle: PathBuf,
        /// The release record `gondwana-release record` wrote (default:
        /// BUNDLE with `.release` appended).
        #[arg(long)]
        record: Option<PathBuf>,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Store a signed release-key rotation record (from `gondwana-release
    /// rotate`): bundles signed by its new key verify from now on.
    Trust {
        /// The rotation record file.
        record: PathBuf,
        /// Machine-readable output (one JSON value).
        #[arg(long)]
        json: bool,
    },
    /// Disarm the trial an install armed: the next boot is the good slot.
    Cancel(JsonFlag),
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Machine-readable output (one JSON value).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Node id, boxname, public keys, log length and tip.
    Show(JsonFlag),
    /// Replace a key by a fresh one, recorded in the identity log.
    Rotate(RotateArgs),
    /// Verify the stored identity log (or an exported one with --file).
    Verify(VerifyArgs),
    /// Write the public identity log as a self-verifying file.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
#[group(skip)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["signing", "wireguard"])))]
pub struct RotateArgs {
    /// Rotate the ed25519 signing key (signed by the old and the new key).
    #[arg(long)]
    pub signing: bool,
    /// Rotate the WireGuard key.
    #[arg(long)]
    pub wireguard: bool,
    /// Machine-readable output (one JSON value).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An exported identity log to verify instead of the local one
    /// (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Machine-readable output (one JSON value).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output file; `-` writes to standard output (refused on a terminal).
    #[arg(long, short, value_name = "FILE", default_value = "-")]
    pub out: PathBuf,
    /// Print a JSON summary (with `--out -`: the bundle as base64 in it).
    /// Machine-readable output (one JSON value).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List the audit records.
    Show(JsonFlag),
    /// Check the hash chain: detects altered, removed or reordered records.
    Verify(JsonFlag),
}

impl Cli {
    pub fn config_path(&self) -> (PathBuf, bool) {
        match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        }
    }
}

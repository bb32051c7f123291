//! The command line (clap). `main` dispatches; each command lives in
//! `commands/` or, for first boot, `boot/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::DEFAULT_CONFIG_PATH;

#[derive(Debug, Parser)]
#[command(
    name = "gondwana",
    about = "Gondwana mesh node: identity, enrolment, WireGuard and nftables",
    disable_version_flag = true
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
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Machine-readable output.
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
#[group(required = true, multiple = false)]
pub struct RotateArgs {
    /// Rotate the ed25519 signing key (signed by the old and the new key).
    #[arg(long)]
    pub signing: bool,
    /// Rotate the WireGuard key.
    #[arg(long)]
    pub wireguard: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An exported identity log to verify instead of the local one.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output file; `-` writes to standard output (refused on a terminal).
    #[arg(long, short, value_name = "FILE", default_value = "-")]
    pub out: PathBuf,
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

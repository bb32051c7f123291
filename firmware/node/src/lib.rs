//! The `gondwana` binary as a library: `main.rs` only calls [`main`], and the
//! integration tests import types (schema, exit codes, config) from here
//! instead of copying them.
#![forbid(unsafe_code)]

// First: its macros are visible to the modules declared after it.
#[macro_use]
mod log;

mod api;
mod boot;
mod build_info;
mod cli;
mod cli_examples;
mod clock;
mod commands;
mod config;
mod daemon;
pub mod exit;
mod hub_url;
mod net;
mod persistence;
mod pid_lock;
mod random;
mod relay;
mod runtime;
mod service;
mod store;
mod toml_errors;
mod update;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::FromArgMatches;

use crate::boot::firstboot::{self, KeyOrigin};
use crate::cli::{AuditCommand, Cli, Command, IdentityCommand, ModulesCommand};
use crate::commands::{audit, directory, enroll, grant, hub, identity, logs, version};
use crate::config::{Config, DEFAULT_STATE_DIR};

/// The command-line tree (arguments, help with examples, version): for
/// the build-time completions and man pages (`firmware/docgen`).
pub use crate::cli_examples::command;

/// The whole program: parse the command line, run it, map errors to exit codes.
pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(&cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => exit::report(&e),
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    if let Command::Version(flag) = &cli.command {
        version::run(flag.json);
        return Ok(());
    }
    // Before any config: the device process needs none, and must not fail
    // on a config the daemon is about to reload.
    if let Command::WireguardUserspace(args) = &cli.command {
        return net::wireguard::device_process::main(&args.interface, &args.socket_dir);
    }
    // Runs before the daemon at boot: no config, no state.
    if let Command::Modules(ModulesCommand::Load { list }) = &cli.command {
        return commands::modules::load(list);
    }
    // Needs no config: a broken one must not hide the lines that explain it.
    if let Command::Logs(args) = &cli.command {
        return logs::run(args);
    }
    let (config_path, named) = cli.config_path();
    let config = Config::load(&config_path, named)?;
    let state_dir = cli
        .state_dir
        .clone()
        .or_else(|| config.state_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    match &cli.command {
        Command::Firstboot(flag) => firstboot_command(&state_dir, &config, flag.json),
        Command::Identity(IdentityCommand::Show(flag)) => {
            identity::show(&state_dir, &config, flag.json)
        }
        Command::Identity(IdentityCommand::Rotate(args)) => {
            identity::rotate(&state_dir, &config, args)
        }
        Command::Identity(IdentityCommand::Verify(args)) => {
            identity::verify(&state_dir, &config, args)
        }
        Command::Identity(IdentityCommand::Export(args)) => {
            identity::export(&state_dir, &config, args)
        }
        Command::Audit(AuditCommand::Show(flag)) => audit::show(&state_dir, &config, flag.json),
        Command::Audit(AuditCommand::Verify(flag)) => audit::verify(&state_dir, &config, flag.json),
        Command::Version(_)
        | Command::WireguardUserspace(_)
        | Command::Logs(_)
        | Command::Modules(_) => Ok(()),
        Command::WireguardBench(args) => commands::wireguard_bench::run(
            &args.interface,
            &args.peers_file,
            config.wireguard.backend,
            args.hold,
        ),
        Command::Run => daemon::run(config, config_path, named, state_dir),
        Command::Status(flag) => commands::status::status(&state_dir, &config, flag.json),
        Command::Enroll(args) => enroll::enroll(&state_dir, &config, args),
        Command::Token(c) => hub::token(&state_dir, &config, c),
        Command::Node(c) => hub::node(&state_dir, &config, c),
        Command::Directory(c) => directory::run(&state_dir, &config, c),
        Command::Grant(c) => grant::run(&state_dir, &config, c),
        Command::Update(c) => commands::update::run(&state_dir, &config, c),
        Command::Service(c) => commands::offers::run(&state_dir, &config, c),
        Command::FirewallBench { count, table } => grant::bench(*count, table),
    }
}

fn firstboot_command(
    state_dir: &std::path::Path,
    config: &Config,
    json: bool,
) -> anyhow::Result<()> {
    // A running daemon holds the state, so the identity exists: report it.
    let request = service::Request::Identity;
    if let Some(mut v) =
        service::socket::send(config, state_dir, &request).map_err(|e| e.into_anyhow())?
    {
        if json {
            v["provisioned_now"] = serde_json::json!(false);
            v["wireguard_key_source"] = serde_json::json!("existing");
            v["state_dir"] = serde_json::json!(state_dir);
            println!("{v}");
        } else {
            println!(
                "identity already provisioned in {} (unchanged; the daemon runs)",
                state_dir.display()
            );
            identity::print_state_json(&v);
        }
        return Ok(());
    }
    let outcome = firstboot::run(state_dir, config)?;
    if let Some(warning) = &outcome.warning {
        eprintln!("gondwana: warning: {warning}");
    }
    let (provisioned, key_source) = match &outcome.origin {
        KeyOrigin::Generated => (true, "generated".to_string()),
        KeyOrigin::Adopted(from) => (true, format!("adopted from {from}")),
        KeyOrigin::Existing => (false, "existing".to_string()),
    };
    let state = &outcome.identity.state;
    if json {
        let mut v = identity::state_json(state);
        v["provisioned_now"] = serde_json::json!(provisioned);
        v["wireguard_key_source"] = serde_json::json!(key_source);
        v["state_dir"] = serde_json::json!(state_dir);
        println!("{v}");
    } else {
        if provisioned {
            println!(
                "identity provisioned in {} (wireguard key {key_source})",
                state_dir.display()
            );
        } else {
            println!(
                "identity already provisioned in {} (unchanged)",
                state_dir.display()
            );
        }
        identity::print_state(state);
    }
    Ok(())
}

/// `gondwana … | head` closes our stdout early; Rust's print macros then
/// panic. Exit like a C tool killed by SIGPIPE would, without a backtrace.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

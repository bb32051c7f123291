//! `gondwana update status|install` (docs/updates.md).

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use super::call;
use super::output::print_json;
use crate::cli::UpdateCommand;
use crate::config::Config;
use crate::service::Request;
use crate::service::request::UpdateInstall;

pub fn run(state_dir: &Path, config: &Config, command: &UpdateCommand) -> anyhow::Result<()> {
    match command {
        UpdateCommand::Status(flag) => {
            let v = call(state_dir, config, Request::UpdateStatus)?;
            if flag.json {
                print_json(&v);
            } else {
                print_status(&v);
            }
        }
        UpdateCommand::Install { bundle, json } => {
            // Absolute: a running daemon opens it from its own directory.
            let bundle =
                std::path::absolute(bundle).with_context(|| format!("{}", bundle.display()))?;
            let v = call(
                state_dir,
                config,
                Request::UpdateInstall(UpdateInstall { bundle }),
            )?;
            if *json {
                print_json(&v);
            } else {
                println!(
                    "installed {} into slot {} ({}); reboot to boot it once on trial (marked good when healthy, else back to this slot)",
                    describe(&v["release"]),
                    v["slot"].as_str().unwrap_or("?"),
                    v["device"].as_str().unwrap_or("?"),
                );
            }
        }
    }
    Ok(())
}

fn describe(release: &Value) -> String {
    match release["label"].as_str() {
        Some(l) if !l.is_empty() => format!("version {} ({l})", release["version"]),
        _ => format!("version {}", release["version"]),
    }
}

fn print_status(v: &Value) {
    println!(
        "board {}, running slot {}, good slot {}",
        v["board"].as_str().unwrap_or("?"),
        v["running_slot"].as_str().unwrap_or("?"),
        v["good_slot"].as_str().unwrap_or("?")
    );
    if !v["trial"].is_null() {
        let t = &v["trial"];
        let what = if t["release"].is_null() {
            String::new()
        } else {
            format!(" ({})", describe(&t["release"]))
        };
        println!(
            "trial: slot {}{what}: {}",
            t["slot"].as_str().unwrap_or("?"),
            t["state"].as_str().unwrap_or("?")
        );
    }
    if let Some(text) = v["last_update"]["text"].as_str() {
        println!("last update: {text}");
    }
    for s in v["slots"].as_array().into_iter().flatten() {
        let state = s["state"].as_str().unwrap_or("?");
        let what = if s["release"].is_null() {
            String::new()
        } else {
            format!(", {}", describe(&s["release"]))
        };
        println!(
            "slot {}: {state}{what} ({})",
            s["slot"].as_str().unwrap_or("?"),
            s["device"].as_str().unwrap_or("?"),
        );
    }
}

//! `gondwana update status|install|publish|trust|cancel` (docs/updates.md).

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use super::call;
use super::output::print_json;
use crate::cli::UpdateCommand;
use crate::config::Config;
use crate::service::Request;
use crate::service::request::{UpdateInstall, UpdatePublish, UpdateTrust};

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
            let bundle = absolute(bundle)?;
            let request = Request::UpdateInstall(UpdateInstall { bundle });
            show(&call(state_dir, config, request)?, *json, |v| {
                println!(
                    "installed {} into slot {} ({}); reboot to boot it once on trial (marked good when healthy, else back to this slot)",
                    describe(&v["release"]),
                    v["slot"].as_str().unwrap_or("?"),
                    v["device"].as_str().unwrap_or("?"),
                )
            });
        }
        UpdateCommand::Trust { record, json } => {
            let record = absolute(record)?;
            let request = Request::UpdateTrust(UpdateTrust { record });
            show(&call(state_dir, config, request)?, *json, |v| {
                let r = &v["record"];
                let new = r["new_key"].as_str().unwrap_or("?");
                match v["skipped"].as_str() {
                    Some(why) => println!("not stored: {why} ({new})"),
                    None => println!(
                        "stored: release key {new} replaces {} (seq {}); {} rotation record(s) stored",
                        r["old_key"].as_str().unwrap_or("?"),
                        r["seq"],
                        v["stored_records"]
                    ),
                }
            });
        }
        UpdateCommand::Cancel(flag) => {
            show(
                &call(state_dir, config, Request::UpdateCancel)?,
                flag.json,
                |v| {
                    println!(
                        "{}; the next boot is slot {} (install again to arm a trial)",
                        v["text"].as_str().unwrap_or("cancelled"),
                        v["good_slot"].as_str().unwrap_or("?")
                    )
                },
            );
        }
        UpdateCommand::Publish {
            bundle,
            record,
            json,
        } => {
            let record = match record {
                Some(r) => r.clone(),
                None => {
                    let mut r = bundle.clone().into_os_string();
                    r.push(".release");
                    r.into()
                }
            };
            let request = UpdatePublish {
                bundle: absolute(bundle)?,
                record: absolute(&record)?,
            };
            let v = call(state_dir, config, Request::UpdatePublish(request))?;
            if *json {
                print_json(&v);
            } else {
                let state = if v["published"] == true {
                    "published"
                } else {
                    "already published"
                };
                println!(
                    "{state}: {} for {}, bundle {} ({} bytes)",
                    describe(&v["release"]),
                    v["release"]["board"].as_str().unwrap_or("?"),
                    v["release"]["bundle_blake2b"].as_str().unwrap_or("?"),
                    v["release"]["bundle_size"],
                );
            }
        }
    }
    Ok(())
}

/// Absolute: a running daemon opens the file from its own directory.
fn absolute(p: &Path) -> anyhow::Result<std::path::PathBuf> {
    std::path::absolute(p).with_context(|| format!("{}", p.display()))
}

/// One JSON value (`--json`), else the lines `human` prints.
fn show(v: &Value, json: bool, human: impl FnOnce(&Value)) {
    if json {
        print_json(v);
    } else {
        human(v);
    }
}

fn describe(release: &Value) -> String {
    match release["label"].as_str() {
        Some(l) if !l.is_empty() => format!("version {} ({l})", release["version"]),
        _ => format!("version {}", release["version"]),
    }
}

fn print_status(v: &Value) {
    match v["slots_error"].as_str() {
        Some(e) => println!("slots: {e}"),
        None => println!(
            "board {}, running slot {}, good slot {}",
            v["board"].as_str().unwrap_or("?"),
            v["running_slot"].as_str().unwrap_or("?"),
            v["good_slot"].as_str().unwrap_or("?")
        ),
    }
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
    print_mesh(&v["mesh"]);
}

/// The `mesh` part: policy, the newest release, its download, the step.
fn print_mesh(m: &Value) {
    if let Some(e) = m["error"].as_str() {
        println!("releases: {e}");
        return;
    }
    let window = m["window"]
        .as_str()
        .map(|w| format!(", window {w} UTC"))
        .unwrap_or_default();
    println!("policy {}{window}", m["policy"].as_str().unwrap_or("?"));
    let r = &m["release"];
    if r.is_null() {
        println!("release: none");
    } else {
        let d = &r["download"];
        println!(
            "release: {} (bundle {}), download {} {}/{} bytes",
            describe(r),
            r["bundle_blake2b"].as_str().unwrap_or("?"),
            d["state"].as_str().unwrap_or("?"),
            d["bytes"],
            d["size"],
        );
    }
    let step = &m["step"];
    let why = step["why"]
        .as_str()
        .map(|w| format!(": {w}"))
        .unwrap_or_default();
    println!("next step: {}{why}", step["step"].as_str().unwrap_or("?"));
    if let Some(e) = m["last"]["error"].as_str() {
        println!("last attempt failed: {e}");
    }
    for refused in m["refused"].as_array().into_iter().flatten() {
        println!("{}", refused.as_str().unwrap_or("?"));
    }
}

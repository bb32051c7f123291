//! `gondwana service offer|withdraw|list|show`: through the running
//! daemon when there is one (it publishes to the hub at once), else in
//! this process (the record is signed and queued; the daemon publishes it
//! when it runs). docs/services.md is the guide.

use std::path::Path;

use serde_json::Value;

use super::call;
use super::output::{self, Table};
use crate::cli::ServiceCommand;
use crate::config::Config;
use crate::service::Request;
use crate::service::request::{OfferSpec, ServiceAt, ServiceName};

pub fn run(state_dir: &Path, config: &Config, command: &ServiceCommand) -> anyhow::Result<()> {
    let (request, as_json) = match command {
        ServiceCommand::Offer {
            name,
            port,
            proto,
            approve,
            description,
            max_duration,
            json,
        } => (
            Request::ServiceOffer(OfferSpec {
                name: name.clone(),
                port: *port,
                proto: proto.clone(),
                approve: approve.clone(),
                description: description.clone(),
                max_duration_secs: max_duration.map(|d| d.as_secs()),
            }),
            *json,
        ),
        ServiceCommand::Withdraw { name, json } => (
            Request::ServiceWithdraw(ServiceName { name: name.clone() }),
            *json,
        ),
        ServiceCommand::List { json } => (Request::ServiceList, *json),
        ServiceCommand::Show { service, json } => (
            Request::ServiceShow(ServiceAt {
                service: service.clone(),
            }),
            *json,
        ),
        // Subscriptions and the provider's decisions.
        other => {
            super::subscriptions::run(state_dir, config, other)?;
            return Ok(());
        }
    };
    let v = call(state_dir, config, request)?;
    output::print(&v, as_json, |v| match command {
        ServiceCommand::List { .. } => print_list(v),
        ServiceCommand::Show { .. } => print_one(v),
        _ => print_outcome(v),
    });
    Ok(())
}

/// An offer or withdrawal: published, or queued and why.
fn print_outcome(v: &Value) {
    let name = v["name"].as_str().unwrap_or("");
    let what = if v["kind"] == "withdrawal" {
        "withdrawal of"
    } else {
        "offer"
    };
    if v["published"] == true {
        let unchanged = if v["changed"] == false {
            " (already in the directory)"
        } else {
            ""
        };
        println!("{what} {name} published in the mesh directory{unchanged}");
    } else if v["queued"] == true {
        println!("{what} {name} signed and queued, NOT published yet");
        eprintln!(
            "gondwana: warning: {}",
            v["note"].as_str().unwrap_or("the hub has not taken it yet")
        );
    } else {
        println!("{what} {name}: {}", v["note"].as_str().unwrap_or("done"));
    }
    if let Some(note) = v["listening_note"].as_str() {
        eprintln!("gondwana: warning: {note}");
    }
}

fn approve_text(o: &Value) -> String {
    o["approve"].as_str().unwrap_or("").to_string()
}

/// The NOTE column: what the operator should know about an offer.
fn note(o: &Value) -> String {
    let mut notes = Vec::new();
    if o["state"] == "queued" {
        notes.push("queued: not published yet".to_string());
    }
    if o["listening"] == false {
        notes.push(format!(
            "nothing listens on {}/{}",
            o["proto"].as_str().unwrap_or(""),
            o["port"]
        ));
    }
    notes.join("; ")
}

fn print_list(v: &Value) {
    let mut table = Table::new(&[
        "SERVICE", "PROVIDER", "MESH IP", "PORT", "PROTO", "APPROVE", "NOTE",
    ]);
    for o in v.as_array().into_iter().flatten() {
        table.row(vec![
            o["name"].as_str().unwrap_or("").into(),
            o["provider"].as_str().unwrap_or("").into(),
            o["mesh_ip"].as_str().unwrap_or("").into(),
            o["port"].to_string(),
            o["proto"].as_str().unwrap_or("").into(),
            approve_text(o),
            note(o),
        ]);
    }
    table.print();
}

fn print_one(o: &Value) {
    let field = |label: &str, value: String| println!("{label:<13}{value}");
    field(
        "service:",
        format!(
            "{}@{}",
            o["name"].as_str().unwrap_or(""),
            o["provider"].as_str().unwrap_or("")
        ),
    );
    field(
        "provider:",
        format!(
            "{} ({})",
            o["provider_node_id"].as_str().unwrap_or(""),
            o["mesh_ip"].as_str().unwrap_or("")
        ),
    );
    field(
        "address:",
        format!(
            "{}:{}/{}",
            o["mesh_ip"].as_str().unwrap_or(""),
            o["port"],
            o["proto"].as_str().unwrap_or("")
        ),
    );
    field("approval:", approve_text(o));
    if let Some(d) = o["description"].as_str() {
        field("description:", d.to_string());
    }
    if let Some(secs) = o["max_duration_secs"].as_u64() {
        field("max length:", output::short_duration(secs));
    }
    field(
        "state:",
        o["state"].as_str().unwrap_or("published").to_string(),
    );
    if let Some(seq) = o["directory_seq"].as_u64() {
        field("directory:", format!("entry {seq}, verified"));
    }
    let listening = match o["listening"].as_bool() {
        Some(true) => "yes".to_string(),
        Some(false) => "NO: nothing listens on that port on this box".to_string(),
        None if o["this_box"] == true => "unknown (cannot read /proc/net)".to_string(),
        None => "- (another box's service)".to_string(),
    };
    field("listening:", listening);
}

//! `gondwana service subscribe|unsubscribe|requests|approve|deny` (the
//! offers' commands are commands/offers.rs): always
//! through the running daemon (it holds the books, sends requests over the
//! mesh and owns the firewall); docs/services.md.

use std::path::Path;

use serde_json::Value;

use super::call;
use super::output::{self, Table};
use crate::cli::ServiceCommand;
use crate::config::Config;
use crate::service::Request;
use crate::service::request::{Subscribe, Verdict};

/// Runs a subscription command; `false` for another `service` command
/// (commands/offers.rs runs those and hands these here).
pub fn run(state_dir: &Path, config: &Config, command: &ServiceCommand) -> anyhow::Result<bool> {
    let (request, as_json) = match command {
        ServiceCommand::Subscribe {
            service,
            duration,
            json,
        } => (
            Request::ServiceSubscribe(Subscribe {
                service: service.clone(),
                duration_secs: duration.map(|d| d.as_secs().max(1)),
            }),
            *json,
        ),
        ServiceCommand::Unsubscribe { service, json } => (
            Request::ServiceUnsubscribe(Subscribe {
                service: service.clone(),
                duration_secs: None,
            }),
            *json,
        ),
        ServiceCommand::Requests { json } => (Request::ServiceRequests, *json),
        ServiceCommand::Approve {
            name,
            consumer,
            json,
        } => (
            Request::ServiceApprove(Verdict {
                name: name.clone(),
                consumer: consumer.clone(),
                reason: None,
            }),
            *json,
        ),
        ServiceCommand::Deny {
            name,
            consumer,
            reason,
            json,
        } => (
            Request::ServiceDeny(Verdict {
                name: name.clone(),
                consumer: consumer.clone(),
                reason: reason.clone(),
            }),
            *json,
        ),
        _ => return Ok(false),
    };
    let v = call(state_dir, config, request)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let ServiceCommand::Requests { .. } = command {
        let rows: Vec<Value> = v.as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            println!("no requests waiting");
        } else {
            provider_table(&rows).print();
        }
    } else if v.get("consumer").is_some() {
        println!("{}", provider_line(&v));
    } else {
        println!("{}", consumer_line(&v));
    }
    Ok(true)
}

/// `web@kitchen: active, 59m left` — a subscription as its consumer holds it.
pub fn consumer_line(v: &Value) -> String {
    format!(
        "{}@{}: {}",
        v["service"].as_str().unwrap_or(""),
        v["provider"].as_str().unwrap_or("?"),
        consumer_state(v)
    )
}

/// The consumer's state in words: `pending (waiting for the provider's
/// operator)`, `active, 59m left`, `denied: reason`, `provider unreachable`…
pub fn consumer_state(v: &Value) -> String {
    let state = v["state"].as_str().unwrap_or("");
    let mut text = match state {
        "active" => format!(
            "active, {} left",
            output::short_duration(v["remaining_secs"].as_u64().unwrap_or(0))
        ),
        "pending" => "pending (waiting for the provider's operator)".into(),
        "requesting" => "requested, no answer yet".into(),
        "denied" | "refused" => format!("{state}: {}", v["reason"].as_str().unwrap_or("")),
        "withdrawn" => "not offered (withdrawn)".into(),
        other => other.into(),
    };
    if v["unreachable"] == true {
        text.push_str(" — provider unreachable");
    }
    if v["unsubscribing"] == true {
        text.push_str(" — unsubscribing");
    }
    text
}

/// `files for hall (10.64.0.9): pending` — a subscription as its provider holds it.
fn provider_line(v: &Value) -> String {
    format!(
        "{} for {} ({}): {}",
        v["service"].as_str().unwrap_or(""),
        v["consumer_boxname"]
            .as_str()
            .unwrap_or(v["consumer"].as_str().unwrap_or("")),
        v["consumer_ip"].as_str().unwrap_or(""),
        provider_state(v)
    )
}

fn provider_state(v: &Value) -> String {
    match v["state"].as_str().unwrap_or("") {
        "active" => format!(
            "active, {} left",
            output::short_duration(v["remaining_secs"].as_u64().unwrap_or(0))
        ),
        state @ ("denied" | "ended") => match v["reason"].as_str() {
            Some(r) => format!("{state}: {r}"),
            None => state.into(),
        },
        other => other.into(),
    }
}

/// The provider's subscriptions as a table (requests, status).
pub fn provider_table(rows: &[Value]) -> Table {
    let mut table = Table::new(&["SERVICE", "CONSUMER", "MESH IP", "ASKED FOR", "STATE"]);
    for v in rows {
        table.row(vec![
            v["service"].as_str().unwrap_or("").into(),
            v["consumer_boxname"]
                .as_str()
                .unwrap_or(v["consumer"].as_str().unwrap_or(""))
                .into(),
            v["consumer_ip"].as_str().unwrap_or("").into(),
            output::short_duration(v["requested_secs"].as_u64().unwrap_or(0)),
            provider_state(v),
        ]);
    }
    table
}

/// The consumer's subscriptions as a table (status).
pub fn consumer_table(rows: &[Value]) -> Table {
    let mut table = Table::new(&["SERVICE", "PROVIDER", "STATE"]);
    for v in rows {
        table.row(vec![
            v["service"].as_str().unwrap_or("").into(),
            v["provider"].as_str().unwrap_or("?").into(),
            consumer_state(v),
        ]);
    }
    table
}

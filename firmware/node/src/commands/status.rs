//! `gondwana status`: through the admin socket (root) or the state (no
//! daemon), else — a user who can read neither, e.g. a non-root login on a
//! box whose state dir is 0700 — the daemon's read-only `GET /v1/status` on
//! its loopback API.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use serde_json::{Value, json};

use super::human::{ago, bytes, duration, table, when};
use crate::config::Config;
use crate::service::{Request, local};

const API_TIMEOUT: Duration = Duration::from_secs(5);

pub fn status(state_dir: &Path, config: &Config, json_out: bool) -> anyhow::Result<()> {
    let mut v = match local::call(state_dir, config, &Request::Status) {
        Ok(v) => v,
        Err(e) => {
            let cause = unreadable_state(state_dir)
                .map(anyhow::Error::msg)
                .unwrap_or_else(|| e.into_anyhow());
            let url = loopback_status_url(config);
            match fetch(&url) {
                Ok(v) => {
                    if !json_out {
                        eprintln!(
                            "gondwana: note: read through the daemon's API at {url} (read-only), because: {cause:#}"
                        );
                    }
                    let mut v = v;
                    v["read_via"] = json!("api");
                    v
                }
                Err(api) => {
                    let hint = if nix::unistd::geteuid().is_root() {
                        "start the daemon (gondwana run)"
                    } else {
                        "run as root, or start the daemon (gondwana run)"
                    };
                    return Err(cause.context(format!(
                        "no status: nothing answers at {url} either ({api}); {hint}"
                    )));
                }
            }
        }
    };
    if v.get("peers").is_none() {
        // Read from the state: no device was asked.
        v["peers"] = Value::Null;
    }
    if v.get("read_via").is_none() {
        let via = if v["daemon"]["running"] == true {
            "admin_socket"
        } else {
            "state"
        };
        v["read_via"] = json!(via);
    }
    if json_out {
        println!("{v}");
    } else {
        print!("{}", render(&v, crate::clock::now_unix()));
    }
    Ok(())
}

/// A state dir that exists but this user may not list: says so, instead of
/// the store's "no state yet".
fn unreadable_state(state_dir: &Path) -> Option<String> {
    match std::fs::read_dir(state_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(format!(
            "the state dir {} is not readable by this user (uid {}): it is root's",
            state_dir.display(),
            nix::unistd::geteuid()
        )),
        _ => None,
    }
}

/// The loopback listener every daemon serves (`api.loopback`, else
/// 127.0.0.1:`mesh.api_port`).
fn loopback_status_url(config: &Config) -> String {
    let addr = config.api.loopback.unwrap_or(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        config.mesh.api_port,
    )));
    format!("http://{addr}/v1/status")
}

fn fetch(url: &str) -> anyhow::Result<Value> {
    let runtime = crate::runtime::current_thread()?;
    let (status, body) = runtime.block_on(crate::api::request(
        http::Method::GET,
        url,
        None,
        bytes::Bytes::new(),
        API_TIMEOUT,
        4 << 20,
    ))?;
    if !status.is_success() {
        return Err(anyhow!("it answered {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| anyhow!("its answer is not JSON: {e}"))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn time(v: &Value, now: u64) -> String {
    v.as_u64()
        .map(|t| when(t, now))
        .unwrap_or_else(|| "-".into())
}

/// The human status: the box, the daemon, the enrolment, the data plane,
/// then the peers table (like `wg show` and `tailscale status`).
pub fn render(v: &Value, now: u64) -> String {
    let mut out = String::new();
    let mut line = |label: &str, text: String| out.push_str(&format!("{label:<12}{text}\n"));
    line(
        "box:",
        format!("{} ({})", s(&v["boxname"]), s(&v["node_id"])),
    );
    line("role:", s(&v["role"]));
    let d = &v["daemon"];
    line(
        "daemon:",
        match d["uptime_secs"].as_u64() {
            Some(up) if d["running"] == true => format!("running, up {}", duration(up)),
            _ if d["running"] == true => "running".into(),
            _ => "not running (read from the state)".into(),
        },
    );
    if v["read_via"] == "api" {
        line("read via:", "the loopback API (read-only)".into());
    }
    if v["persistent"] == false {
        line(
            "persistent:",
            "no (state on tmpfs: this identity is lost at reboot)".into(),
        );
    }
    let h = &v["hub"];
    if h.is_object() {
        line(
            "hub:",
            format!(
                "subnet {}, {} nodes ({} revoked), endpoint {}",
                s(&h["subnet"]),
                h["nodes"],
                h["revoked_nodes"],
                s(&h["public_endpoint"])
            ),
        );
    }
    let e = &v["enrolment"];
    match e["state"].as_str() {
        Some("enrolled") => {
            line(
                "enrolment:",
                format!("enrolled as {} in {}", s(&e["mesh_ip"]), s(&e["subnet"])),
            );
            line(
                "  hub:",
                format!("{} ({})", s(&e["hub"]), s(&e["hub_node_id"])),
            );
            line("  since:", time(&e["since_unix"], now));
        }
        Some("enrolling") => line(
            "enrolment:",
            format!(
                "enrolling from {}: {} attempts, last error: {}",
                s(&e["source"]),
                e["attempts"],
                s(&e["last_error"])
            ),
        ),
        Some("revoked") => {
            let r = &e["revocation"];
            line(
                "enrolment:",
                format!(
                    "REVOKED by the hub (directory entry {}): {}; was {} in {}",
                    s(&r["directory_seq"]),
                    s(&r["reason"]),
                    s(&e["mesh_ip"]),
                    s(&e["subnet"])
                ),
            );
            line("  learned:", time(&r["revoked_unix"], now));
        }
        Some(other) => line("enrolment:", other.to_string()),
        None => {}
    }
    let i = &v["identity"];
    if i.is_object() {
        let tip = s(&i["local_tip"]);
        line(
            "identity:",
            format!(
                "log {} entries (tip {}), hub mirror {}",
                i["local_entries"],
                &tip[..16.min(tip.len())],
                i["hub_entries"]
                    .as_u64()
                    .map_or("unknown".into(), |n| n.to_string())
            ),
        );
        if let Some(w) = i["warning"].as_str() {
            line("WARNING:", w.to_string());
        }
    }
    line(
        "directory:",
        format!("{} entries", v["directory"]["entries"]),
    );
    let dp = &v["dataplane"];
    if dp.is_object() {
        let mut text = s(&dp["state"]);
        if let Some(backend) = dp["backend"].as_str() {
            text.push_str(&format!(", {backend} backend"));
        }
        line("data plane:", text);
        line(
            "  device:",
            format!("{} {}", s(&dp["interface"]), s(&dp["address"])),
        );
        line("  port:", s(&dp["listen_port"]));
        line("  key:", s(&dp["public_key"]));
        if let Some(err) = dp["error"].as_str() {
            line("  error:", err.to_string());
        }
    }
    let fw = &v["firewall"];
    if fw.is_object() {
        line(
            "firewall:",
            if fw["enabled"] == true {
                format!("table {} on {}", s(&fw["table"]), s(&fw["interface"]))
            } else {
                "disabled".into()
            },
        );
    }
    if let Some(offers) = v["offers"].as_array().filter(|o| !o.is_empty()) {
        line("offers:", offers_line(offers));
    }
    out.push('\n');
    out.push_str(&peers_table(&v["peers"], v["daemon"]["running"] == true));
    out.push('\n');
    out.push_str(&subscriptions(&v["subscriptions"]));
    out
}

/// The subscriptions to this box's offers and the ones it holds (nothing
/// when there are none).
fn subscriptions(v: &Value) -> String {
    use super::subscriptions::{consumer_table, provider_table};
    let mut out = String::new();
    for (key, title, table) in [
        (
            "provider",
            "subscriptions to this box's services:",
            provider_table as fn(&[Value]) -> _,
        ),
        ("consumer", "this box's subscriptions:", consumer_table),
    ] {
        let rows = v[key].as_array().cloned().unwrap_or_default();
        if !rows.is_empty() {
            out.push('\n');
            out.push_str(title);
            out.push('\n');
            out.push_str(&table(&rows).render());
        }
    }
    out
}

/// `web (tcp/8080, auto), files (tcp/445, manual: nothing listens)`.
fn offers_line(offers: &[Value]) -> String {
    let one = |o: &Value| {
        let mut notes = vec![s(&o["approve"])];
        if o["state"] == "queued" {
            notes.push("queued, not published yet".into());
        }
        if o["listening"] == false {
            notes.push("nothing listens".into());
        }
        format!(
            "{} ({}/{}, {})",
            s(&o["name"]),
            s(&o["proto"]),
            o["port"],
            notes.join(": ")
        )
    };
    offers.iter().map(one).collect::<Vec<_>>().join(", ")
}

fn peers_table(peers: &Value, daemon_running: bool) -> String {
    let Some(list) = peers.as_array() else {
        return if daemon_running {
            "peers: none (no WireGuard device: backend \"none\" or not enrolled yet)".into()
        } else {
            "peers: unknown (the daemon is not running)".into()
        };
    };
    if list.is_empty() {
        return "peers: none".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let name = p["name"].as_str().map_or_else(
                || {
                    format!(
                        "{}…",
                        &s(&p["public_key"])[..8.min(s(&p["public_key"]).len())]
                    )
                },
                str::to_string,
            );
            let handshake = p["handshake_age_secs"].as_u64().map_or("never".into(), ago);
            vec![
                name,
                s(&p["mesh_ip"]),
                p["path"].as_str().unwrap_or("-").to_string(),
                p["endpoint"].as_str().unwrap_or("(none)").to_string(),
                handshake,
                bytes(p["rx_bytes"].as_u64().unwrap_or(0)),
                bytes(p["tx_bytes"].as_u64().unwrap_or(0)),
            ]
        })
        .collect();
    table(
        &[
            "PEER",
            "MESH IP",
            "PATH",
            "ENDPOINT",
            "LAST HANDSHAKE",
            "RX",
            "TX",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_box_enrolment_dataplane_and_peers() {
        let v = json!({
            "role": "node", "boxname": "kitchen", "node_id": "gw:abc",
            "daemon": {"running": true, "uptime_secs": 75},
            "enrolment": {"state": "enrolled", "mesh_ip": "10.10.0.2", "subnet": "10.10.0.0/24",
                          "hub": "http://hub:8799", "hub_node_id": "gw:hub", "since_unix": 1000},
            "directory": {"entries": 3},
            "dataplane": {"state": "up", "backend": "userspace", "interface": "wg-mesh",
                          "address": "10.10.0.2/24", "listen_port": 51820, "public_key": "K="},
            "peers": [{"name": "hub", "public_key": "P=", "mesh_ip": "10.10.0.1", "path": "direct",
                       "endpoint": "192.0.2.1:51820", "handshake_age_secs": 72,
                       "rx_bytes": 1536, "tx_bytes": 100}],
        });
        let text = render(&v, 1072);
        for want in [
            "box:        kitchen (gw:abc)",
            "daemon:     running, up 1m 15s",
            "  since:    1970-01-01T00:16:40Z (1m 12s ago)",
            "data plane: up, userspace backend",
            "  port:     51820",
            "  key:      K=",
            "  device:   wg-mesh 10.10.0.2/24",
            "PEER  MESH IP    PATH    ENDPOINT         LAST HANDSHAKE  RX        TX",
            "hub   10.10.0.1  direct  192.0.2.1:51820  1m 12s ago      1.50 KiB  100 B",
        ] {
            assert!(text.contains(want), "{want:?} missing in\n{text}");
        }
    }
}

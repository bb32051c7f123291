//! Enrolments against a running hub, the way a node does them: a fresh
//! nonce, a signed submission, the grant verified against the pinned hub
//! key. One TCP connection per request (`Connection: close`), as the node's
//! client does.
//!
//! The node identities (genesis log entries) are made before the clock
//! starts; the clients run on one thread (a current-thread runtime), so on a
//! small machine the hub keeps the other cores.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gondwana_core::Boxname;
use gondwana_core::enrol::{self, EnrolRequest};
use gondwana_core::identity_log::{IdentityState, build};
use gondwana_core::keys::{PublicKey, SigningSecret, WireguardSecret, decode_hex32};
use gondwana_core::token::TokenSecret;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{json_str, ms, percentile_ms, random_bytes};

/// One whole exchange (both requests) must finish within this.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Errors quoted in the output (the rest are only counted).
const QUOTED_ERRORS: usize = 3;

pub struct Spec {
    pub hub: String,
    pub token: String,
    pub hub_key: String,
    pub count: usize,
    pub concurrency: usize,
}

struct Node {
    signing: SigningSecret,
    wireguard: WireguardSecret,
    log: Vec<Vec<u8>>,
    state: IdentityState,
}

struct Target {
    addr: SocketAddr,
    /// `IP:PORT` as given, for the Host header.
    authority: String,
    token: TokenSecret,
    token_key: PublicKey,
    hub_key: PublicKey,
}

struct Outcome {
    latency: Duration,
    /// Since the start of the run.
    finished: Duration,
    result: Result<Ipv4Addr, String>,
}

pub fn run(spec: &Spec) -> Result<String, String> {
    let authority = spec
        .hub
        .strip_prefix("http://")
        .ok_or_else(|| format!("--hub {:?}: expected http://IP:PORT", spec.hub))?
        .trim_end_matches('/')
        .to_string();
    let addr: SocketAddr = authority
        .parse()
        .map_err(|_| format!("--hub {:?}: expected http://IP:PORT", spec.hub))?;
    let token = TokenSecret::parse(spec.token.trim()).map_err(|e| format!("--token: {e}"))?;
    let hub_key = decode_hex32(spec.hub_key.trim()).map_err(|e| format!("--hub-key: {e}"))?;
    let target = Arc::new(Target {
        addr,
        authority,
        token_key: token.public_key(),
        token,
        hub_key,
    });

    // Distinct boxnames across runs against the same hub.
    let run_tag = gondwana_core::hash::to_hex(&random_bytes::<3>()?);
    let t = Instant::now();
    let nodes = (0..spec.count)
        .map(|i| make_node(&format!("bench-{run_tag}-{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let pregen = t.elapsed();
    eprintln!(
        "enrol: {} node identities made in {:.2} s",
        spec.count,
        pregen.as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    let started = Instant::now();
    let mut outcomes = runtime.block_on(drive(target, Arc::new(nodes), spec.concurrency));
    let secs = started.elapsed().as_secs_f64();

    let mut errors: Vec<String> = Vec::new();
    let mut addresses = HashSet::new();
    let mut latencies = Vec::with_capacity(outcomes.len());
    for o in &outcomes {
        match &o.result {
            Ok(ip) => {
                addresses.insert(*ip);
                latencies.push(o.latency);
            }
            Err(e) => {
                if errors.len() < QUOTED_ERRORS && !errors.contains(e) {
                    errors.push(e.clone());
                }
            }
        }
    }
    let ok = latencies.len();
    let failed = outcomes.len() - ok;
    latencies.sort_unstable();
    let per_sec = ok as f64 / secs;
    let (p50, p99) = (
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0),
    );
    let max = ms(latencies.last().copied().unwrap_or(Duration::ZERO));

    // The rate over each tenth of the run (by completion order): shows
    // whether enrolling gets slower as the registry grows.
    outcomes.sort_unstable_by_key(|o| o.finished);
    let block = outcomes.len().div_ceil(10).max(1);
    let mut block_rates = Vec::new();
    let mut from = Duration::ZERO;
    for chunk in outcomes.chunks(block) {
        let until = chunk.last().map(|o| o.finished).unwrap_or(from);
        let span = (until - from).as_secs_f64().max(1e-9);
        block_rates.push(format!("{:.1}", chunk.len() as f64 / span));
        from = until;
    }

    eprintln!(
        "enrol: {ok} enrolled, {failed} failed in {secs:.2} s ({} clients): {per_sec:.1}/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
        spec.concurrency
    );
    for e in &errors {
        eprintln!("enrol: error: {e}");
    }
    Ok(format!(
        "{{\"bench\":\"enrol\",\"count\":{},\"concurrency\":{},\"ok\":{ok},\"failed\":{failed},\
         \"distinct_addresses\":{},\"pregen_secs\":{:.3},\"secs\":{secs:.3},\"enrol_per_sec\":{per_sec:.1},\
         \"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"max_ms\":{max:.3},\"block_rates\":[{}],\"errors\":[{}]}}",
        spec.count,
        spec.concurrency,
        addresses.len(),
        pregen.as_secs_f64(),
        block_rates.join(","),
        errors
            .iter()
            .map(|e| json_str(e))
            .collect::<Vec<_>>()
            .join(","),
    ))
}

fn make_node(boxname: &str) -> Result<Node, String> {
    let signing = SigningSecret::from_seed(random_bytes::<32>()?);
    let wireguard = WireguardSecret::from_bytes(random_bytes::<32>()?);
    let boxname = Boxname::parse(boxname).map_err(|e| format!("boxname {boxname}: {e}"))?;
    let (genesis, state) = build::genesis(&signing, wireguard.public_key(), boxname)
        .map_err(|e| format!("genesis: {e}"))?;
    Ok(Node {
        signing,
        wireguard,
        log: vec![genesis],
        state,
    })
}

async fn drive(target: Arc<Target>, nodes: Arc<Vec<Node>>, concurrency: usize) -> Vec<Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (target, nodes, next) = (target.clone(), nodes.clone(), next.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(node) = nodes.get(i) else { break };
                    let t = Instant::now();
                    let result = tokio::time::timeout(EXCHANGE_TIMEOUT, enrol_one(&target, node))
                        .await
                        .unwrap_or_else(|_| Err(format!("no answer within {EXCHANGE_TIMEOUT:?}")));
                    out.push(Outcome {
                        latency: t.elapsed(),
                        finished: started.elapsed(),
                        result,
                    });
                    let done = i + 1;
                    if done % 1000 == 0 {
                        eprintln!(
                            "enrol: {done}/{} started-and-done in {:.1} s",
                            nodes.len(),
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
                out
            })
        })
        .collect();
    let mut all = Vec::with_capacity(nodes.len());
    for client in clients {
        match client.await {
            Ok(out) => all.extend(out),
            Err(e) => eprintln!("enrol: a client task failed: {e}"),
        }
    }
    all
}

/// The node's side of one enrolment; the mesh address granted.
async fn enrol_one(target: &Target, node: &Node) -> Result<Ipv4Addr, String> {
    let (status, body) = call(target, Method::GET, "/v1/enroll/nonce", None).await?;
    if status != StatusCode::OK {
        return Err(format!("nonce: {status} {}", excerpt(&body)));
    }
    let hub_nonce = parse_hex_field(&body, "nonce")?;
    let hub_wireguard_key = parse_hex_field(&body, "hub_wireguard_key")?;
    let request = EnrolRequest {
        version: enrol::VERSION,
        hub_nonce,
        wireguard_key: node.state.wireguard_key,
        boxname: node.state.boxname.clone(),
        token_key: target.token_key,
    };
    let submission = enrol::build_submission(
        &node.signing,
        &node.wireguard,
        &hub_wireguard_key,
        &node.log,
        &request,
        &target.token,
    )
    .map_err(|e| format!("building the submission: {e}"))?;
    let (status, body) = call(target, Method::POST, "/v1/enroll", Some(submission)).await?;
    if status != StatusCode::OK {
        return Err(format!("enroll: {status} {}", excerpt(&body)));
    }
    let response = enrol::decode_response(&body).map_err(|e| format!("response: {e}"))?;
    let grant = enrol::open_grant(&response.grant, &target.hub_key, &request, &node.state)
        .map_err(|e| format!("grant: {e}"))?;
    Ok(grant.mesh_ip)
}

/// One request on its own connection; the status and the whole body.
async fn call(
    target: &Target,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, Bytes), String> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", target.addr))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    // Drives the connection's I/O; ends when the connection closes.
    tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(HOST, target.authority.as_str())
        .header(CONNECTION, "close");
    if body.is_some() {
        request = request.header(CONTENT_TYPE, "application/octet-stream");
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{method} {path}: reading the answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// `"<field>": "<64 hex digits>"` of the nonce answer (`nonce`,
/// `hub_wireguard_key`).
fn parse_hex_field(body: &[u8], field: &str) -> Result<[u8; 32], String> {
    let text = std::str::from_utf8(body).map_err(|_| "nonce answer is not UTF-8".to_string())?;
    let bad = || format!("nonce answer without {field}: {}", excerpt(body));
    let after_key = text.split_once(&format!("\"{field}\"")).ok_or_else(bad)?.1;
    let value = after_key
        .trim_start()
        .strip_prefix(':')
        .ok_or_else(bad)?
        .trim_start()
        .strip_prefix('"')
        .ok_or_else(bad)?;
    let hex = value.split_once('"').ok_or_else(bad)?.0;
    decode_hex32(hex).map_err(|e| format!("{field} {hex:?}: {e}"))
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_answers() {
        let hex = "07".repeat(32);
        let wg = "08".repeat(32);
        let answer = format!("{{\"nonce\":\"{hex}\",\"hub_wireguard_key\":\"{wg}\"}}");
        assert_eq!(
            parse_hex_field(answer.as_bytes(), "nonce").unwrap(),
            [7; 32]
        );
        assert_eq!(
            parse_hex_field(answer.as_bytes(), "hub_wireguard_key").unwrap(),
            [8; 32]
        );
        assert_eq!(
            parse_hex_field(format!("{{ \"nonce\" : \"{hex}\" }}").as_bytes(), "nonce").unwrap(),
            [7; 32]
        );
        assert!(parse_hex_field(b"{}", "nonce").is_err());
        assert!(parse_hex_field(b"{\"nonce\":\"zz\"}", "nonce").is_err());
    }

    #[test]
    fn made_nodes_submit_verifiable_requests() {
        let node = make_node("bench-abc-1").unwrap();
        let token = TokenSecret::from_seed([5; 32]);
        let request = EnrolRequest {
            version: enrol::VERSION,
            hub_nonce: [7; 32],
            wireguard_key: node.state.wireguard_key,
            boxname: node.state.boxname.clone(),
            token_key: token.public_key(),
        };
        let hub_wireguard = WireguardSecret::from_bytes([9; 32]);
        let bytes = enrol::build_submission(
            &node.signing,
            &node.wireguard,
            &hub_wireguard.public_key(),
            &node.log,
            &request,
            &token,
        )
        .unwrap();
        let verified = enrol::verify_submission(&bytes, &hub_wireguard).unwrap();
        assert_eq!(verified.request, request);
        assert_eq!(verified.identity, node.state);
    }
}

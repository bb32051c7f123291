//! `gondwana-bench lending`: provider CPU per N subscriptions (the issue's
//! "provider CPU per 1,000 subscriptions, with the grants in one batch,
//! against 1,000 `nft add element` processes"). Run inside a network
//! namespace of its own (scripts/bench does), as root.
//!
//! Ours, in two parts, both CPU time (user + system) from getrusage:
//!
//! 1. In this process (`RUSAGE_SELF`): core's real `ProviderBook` handles N
//!    subscriptions, each signed by its own consumer key and checked
//!    against a directory view of N + 1 nodes (auto approval), each
//!    decision is sealed with the provider's key, and the book is
//!    serialised after each one — what the daemon stores per request. Not
//!    included: the HTTP exchange and the store's durable commit (one
//!    fsync'd redb transaction per request; `scripts/bench` section 4's
//!    reference measures those).
//! 2. The N grants in one netlink batch: `gondwana firewall-bench --count
//!    N` (the shipped binary's real batch: base table, then the N elements
//!    with a timeout in one batch, then one dump to count them), as a child
//!    process (`RUSAGE_CHILDREN`): its process start and the base table are
//!    counted against us. Its grants are the book's, element for element:
//!    10.64.0.1 + i, port 8000, one hour.
//!
//! The reference: N `nft add element inet gwbenchref grants { ip . 8000
//! timeout 1h }` processes, one after another (`RUSAGE_CHILDREN`), into a
//! set of the same type; creating its table is not counted.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Instant;

use gondwana_core::boxname::Boxname;
use gondwana_core::directory::{Record, View};
use gondwana_core::keys::SigningSecret;
use gondwana_core::lending::{
    Approval, GrantChange, Offer, OfferRef, Protocol, ProviderBook, ProviderSettings, Publication,
    Request, ServiceName, Subscription, VERSION, seal_decision, seal_publication, seal_request,
};
use gondwana_core::node_id::NodeId;
use gondwana_core::time::Millis;
use nix::sys::resource::{UsageWho, getrusage};

pub struct Spec {
    pub count: usize,
    /// The gondwana binary (its hidden `firewall-bench`).
    pub gondwana: String,
}

const PORT: u16 = 8000;
const REF_TABLE: &str = "gwbenchref";

fn key(i: u32) -> SigningSecret {
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&i.to_be_bytes());
    SigningSecret::from_seed(seed)
}

fn ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a40_0001 + i)
}

/// CPU seconds (user + system) of this process or of its waited-for
/// children.
fn cpu(who: UsageWho) -> Result<f64, String> {
    let u = getrusage(who).map_err(|e| format!("getrusage: {e}"))?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(secs(u.user_time()) + secs(u.system_time()))
}

fn run_ok(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn run(spec: &Spec) -> Result<String, String> {
    let n = u32::try_from(spec.count).map_err(|_| "--count too large")?;
    // The provider is node 0 at 10.64.0.0/10's last host; consumers 1..=n.
    let provider_key = key(u32::MAX);
    let provider = NodeId::from_genesis_key(&provider_key.public_key());
    let mut view = View::default();
    let node = |id: NodeId, k: &SigningSecret, at: Ipv4Addr, name: String| {
        Ok::<_, String>(Record::Node {
            node_id: id,
            boxname: Boxname::parse(&name).map_err(|e| e.to_string())?,
            signing_key: k.public_key(),
            wireguard_key: [1; 32],
            mesh_ip: at,
            endpoint_hint: None,
        })
    };
    view.apply(&node(
        provider.clone(),
        &provider_key,
        Ipv4Addr::new(10, 127, 255, 254),
        "provider".into(),
    )?);
    let service = ServiceName::parse("web").map_err(|e| e.to_string())?;
    let offer = Publication::Offer(Offer {
        version: VERSION,
        provider: provider.clone(),
        name: service.clone(),
        serial: 1,
        protocol: Protocol::Tcp,
        port: PORT,
        approval: Approval::Auto,
        description: None,
        max_duration_secs: None,
    });
    let sealed = seal_publication(&offer, &provider_key).map_err(|e| e.to_string())?;
    let record = heapless::Vec::from_slice(&sealed).map_err(|_| "offer too large")?;
    view.apply(&Record::Lending(record));
    // The consumers' side (not the provider's CPU): keys, records, requests.
    let mut requests = Vec::with_capacity(spec.count);
    for i in 0..n {
        let k = key(i);
        let id = NodeId::from_genesis_key(&k.public_key());
        view.apply(&node(id.clone(), &k, ip(i), format!("c{i}"))?);
        let request = Request::Subscribe(Subscription {
            version: VERSION,
            offer: OfferRef {
                provider: provider.clone(),
                name: service.clone(),
                serial: 1,
            },
            consumer: id,
            consumer_ip: ip(i),
            duration_secs: 3600,
            counter: 1,
        });
        requests.push((
            ip(i),
            seal_request(&request, &k).map_err(|e| e.to_string())?,
        ));
    }

    // 1. The book.
    let mut book = ProviderBook::new(provider, ProviderSettings::default());
    let mut granted = 0usize;
    let mut saved_bytes = 0usize;
    let cpu0 = cpu(UsageWho::RUSAGE_SELF)?;
    let t0 = Instant::now();
    for (i, (from, bytes)) in requests.iter().enumerate() {
        let now = Millis(1_000 + i as u64);
        let out = book
            .handle(bytes, *from, &view, now)
            .map_err(|r| format!("request {i} refused: {r}"))?;
        let decision = out.decision.ok_or("no decision")?;
        seal_decision(&decision, &provider_key).map_err(|e| e.to_string())?;
        granted += out
            .grants
            .iter()
            .filter(|g| {
                matches!(g, GrantChange::Add { grant, timeout_secs: 3600, .. }
                    if grant.ip == *from && grant.port == PORT)
            })
            .count();
        saved_bytes = book.save(now).len();
    }
    let book_wall = t0.elapsed().as_secs_f64();
    let book_cpu = cpu(UsageWho::RUSAGE_SELF)? - cpu0;

    // 2. The grants in one batch, by the shipped binary.
    let c0 = cpu(UsageWho::RUSAGE_CHILDREN)?;
    let t1 = Instant::now();
    let fw = run_ok(Command::new(&spec.gondwana).args([
        "firewall-bench",
        "--count",
        &spec.count.to_string(),
        "--table",
        "gwbenchlend",
    ]))?;
    let batch_wall = t1.elapsed().as_secs_f64();
    let batch_cpu = cpu(UsageWho::RUSAGE_CHILDREN)? - c0;

    // The reference: one `nft add element` process per grant.
    run_ok(Command::new("nft").args(["add", "table", "inet", REF_TABLE]))?;
    run_ok(Command::new("nft").args([
        "add",
        "set",
        "inet",
        REF_TABLE,
        "grants",
        "{ type ipv4_addr . inet_service; flags timeout; }",
    ]))?;
    let c1 = cpu(UsageWho::RUSAGE_CHILDREN)?;
    let t2 = Instant::now();
    for i in 0..n {
        run_ok(Command::new("nft").args([
            "add",
            "element",
            "inet",
            REF_TABLE,
            "grants",
            &format!("{{ {} . {PORT} timeout 1h }}", ip(i)),
        ]))?;
    }
    let nft_wall = t2.elapsed().as_secs_f64();
    let nft_cpu = cpu(UsageWho::RUSAGE_CHILDREN)? - c1;
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", REF_TABLE])
        .status();
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", "gwbenchlend"])
        .status();

    Ok(format!(
        "{{\"count\": {}, \"granted\": {granted}, \"saved_book_bytes\": {saved_bytes}, \
         \"book_cpu_s\": {book_cpu:.6}, \"book_wall_s\": {book_wall:.6}, \
         \"batch_cpu_s\": {batch_cpu:.6}, \"batch_wall_s\": {batch_wall:.6}, \"batch\": {}, \
         \"nft_cpu_s\": {nft_cpu:.6}, \"nft_wall_s\": {nft_wall:.6}}}",
        spec.count,
        fw.trim()
    ))
}

//! Service offers published through the hub (docs/services.md): a real hub
//! and three node daemons on loopback. n1 offers `web`; n2 sees it in
//! `service list --json` with the right fields and n1 says whether
//! anything listens; n1 withdraws it and n2 no longer lists it. The hub
//! refuses — appending nothing, counting each — a forged offer (another
//! key), one a node signs for another provider, malformed bytes and one
//! from a revoked node; the same bytes again append nothing. An offer made
//! while the hub is down is queued and published when it is back. Every
//! step is in the audit logs, which verify.

mod harness;

use std::net::TcpListener;
use std::time::Duration;

use gondwana_core::NodeId;
use gondwana_core::directory::{self, Head, Record};
use gondwana_core::envelope::{Envelope, MAX_ENVELOPE_BODY, decode_canonical, tag};
use gondwana_core::keys::SigningSecret;
use gondwana_core::lending::{self, Approval, Offer, Protocol, Publication, ServiceName};
use harness::mesh::{FakeNode, Hub, Mesh, Node, assert_refused, get, metric, poll, post};
use serde_json::Value;

const ENROL_TIMEOUT: Duration = Duration::from_secs(60);
/// Nodes pull the directory every second: an offer shows within a few.
const SEEN_TIMEOUT: Duration = Duration::from_secs(20);
const PUBLISH: &str = "/v1/services/publish";

fn list(node: &Node) -> Vec<Value> {
    match node.cli(&["service", "list", "--json"]).ok().json() {
        Value::Array(a) => a,
        other => panic!("service list --json is not an array: {other}"),
    }
}

/// Polls `node`'s `service list --json` (every 250 ms: each look is a
/// process) until `f` holds.
fn wait_list(node: &Node, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    poll(
        SEEN_TIMEOUT,
        what,
        || {
            let l = list(node);
            if f(&l) {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(200));
            None
        },
        || format!("{}'s list: {:?}", node.name, list(node)),
    )
}

fn find<'a>(l: &'a [Value], name: &str, provider: &str) -> Option<&'a Value> {
    l.iter()
        .find(|o| o["name"] == name && o["provider"] == provider)
}

/// The hub's directory entries, verified, and its head.
fn hub_entries(hub: &Hub) -> (Vec<Record>, Vec<Vec<u8>>, Head) {
    let r = get(hub.api_port, "/v1/directory?after=0").expect("GET /v1/directory");
    assert_eq!(r.status, 200, "{}", r.text());
    let verified = directory::verify_bundle(&r.body, &hub.key(), &Head::default())
        .expect("the hub's directory verifies");
    let head = verified.last().map(|v| v.2).unwrap_or_default();
    let records = verified.iter().map(|v| v.0.record.clone()).collect();
    let raws = verified.iter().map(|v| v.1.clone()).collect();
    (records, raws, head)
}

/// The service a signed publication names (its signature checked, not
/// its signer).
fn publication_name(bytes: &[u8]) -> String {
    let env = Envelope::verify(tag::LENDING_PUBLICATION, bytes).unwrap();
    let p: Publication = decode_canonical(&env.body, MAX_ENVELOPE_BODY).unwrap();
    p.name().to_string()
}

fn offer_of(provider: &NodeId, name: &str, serial: u64) -> Publication {
    Publication::Offer(Offer {
        version: lending::VERSION,
        provider: provider.clone(),
        name: ServiceName::parse(name).unwrap(),
        serial,
        protocol: Protocol::Tcp,
        port: 2222,
        approval: Approval::Auto,
        description: None,
        max_duration_secs: None,
    })
}

fn refusals(hub: &Hub, reason: &str) -> f64 {
    metric(
        &hub.metrics(),
        &format!("gondwana_offer_refusals_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(-1.0)
}

fn audit_kinds(cli: impl Fn(&[&str]) -> harness::Run) -> Vec<String> {
    let rows = cli(&["audit", "show", "--json"]).ok().json();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn offers_are_published_listed_withdrawn_and_forgeries_refused() {
    let m = Mesh::new();
    let mut hub = m.hub();
    hub.start();
    let token = hub.dir.join("enroll.toml");
    hub.token(&["--uses", "3"], &token);
    let enroll = std::fs::read_to_string(&token).unwrap();
    let start = |name: &str| {
        let mut n = m.node(name, &hub);
        n.set_enroll(&enroll);
        n.start();
        n
    };
    let (n1, n2, mut n3) = (start("o13-n1"), start("o13-n2"), start("o13-n3"));
    let statuses: Vec<Value> = [&n1, &n2, &n3]
        .iter()
        .map(|n| n.wait_enrolled(ENROL_TIMEOUT))
        .collect();
    let boxname = |i: usize| statuses[i]["boxname"].as_str().unwrap().to_string();
    let (n1, n2) = (&n1, &n2);
    let n1_box = boxname(0);

    // n1 offers `web` on a port something listens on.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let port_s = port.to_string();
    let r = n1
        .cli(&[
            "service",
            "offer",
            "web",
            "--port",
            &port_s,
            "--approve",
            "auto",
            "--description",
            "the test web",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(r["published"], true, "{r}");
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["kind"], "offer", "{r}");

    // n2 sees it, from its own verified directory.
    let l = wait_list(n2, "n2 to list web", |l| find(l, "web", &n1_box).is_some());
    let web = find(&l, "web", &n1_box).unwrap();
    assert_eq!(web["port"], port, "{web}");
    assert_eq!(web["proto"], "tcp", "{web}");
    assert_eq!(web["approve"], "auto", "{web}");
    assert_eq!(web["description"], "the test web", "{web}");
    assert_eq!(web["mesh_ip"], statuses[0]["enrolment"]["mesh_ip"], "{web}");
    assert_eq!(web["provider_node_id"], statuses[0]["node_id"], "{web}");
    assert_eq!(web["state"], "published", "{web}");
    assert_eq!(web["this_box"], false, "{web}");
    assert_eq!(web["listening"], Value::Null, "{web}");
    // Human output: a table with a header.
    let text = n2.cli(&["service", "list"]).ok().stdout();
    assert!(text.starts_with("SERVICE"), "{text}");
    assert!(text.contains("web") && text.contains(&n1_box), "{text}");
    // The provider knows something listens; an offer for a port nothing
    // listens on is taken, and says so.
    let l = wait_list(n1, "n1 to list its own web", |l| {
        find(l, "web", &n1_box).is_some()
    });
    let own = find(&l, "web", &n1_box).unwrap();
    assert_eq!(own["listening"], true, "{own}");
    assert_eq!(own["this_box"], true, "{own}");
    let idle_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let r = n1.cli(&[
        "service",
        "offer",
        "idle",
        "--port",
        &idle_port,
        "--approve",
        "manual",
    ]);
    r.ok().stderr_contains("nothing listens");
    wait_list(n1, "n1 to list idle", |l| {
        find(l, "idle", &n1_box).is_some()
    });
    let shown = n1
        .cli(&["service", "show", &format!("idle@{n1_box}"), "--json"])
        .ok()
        .json();
    assert_eq!(shown["listening"], false, "{shown}");
    assert_eq!(shown["approve"], "manual", "{shown}");
    // Status says so too.
    let st = n1.status();
    let idle = st["offers"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == "idle"))
        .unwrap_or_else(|| panic!("no idle in status offers: {st}"));
    assert_eq!(idle["listening"], false, "{st}");
    let text = n1.cli(&["status"]).ok().stdout();
    assert!(
        text.contains("idle (tcp/") && text.contains("nothing listens"),
        "{text}"
    );
    n1.cli(&["service", "show", "nope@nobody"]).expect_code(1);
    // The hub offers one of its own: checked and appended directly.
    let hub_box = hub.cli(&["status", "--json"]).ok().json()["boxname"]
        .as_str()
        .unwrap()
        .to_string();
    let r = hub
        .cli(&[
            "service",
            "offer",
            "dns",
            "--port",
            "53",
            "--proto",
            "udp",
            "--approve",
            "allow:gw-x,tag:lab",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(r["published"], true, "{r}");
    let l = wait_list(n2, "n2 to list the hub's dns", |l| {
        find(l, "dns", &hub_box).is_some()
    });
    let dns = find(&l, "dns", &hub_box).unwrap();
    assert_eq!(dns["proto"], "udp", "{dns}");
    assert_eq!(dns["approve"], "allow:gw-x,tag:lab", "{dns}");
    // Bad arguments: exit 2, nothing signed.
    for bad in [
        &[
            "service",
            "offer",
            "Not_A_Label",
            "--port",
            "80",
            "--approve",
            "auto",
        ][..],
        &["service", "offer", "ok", "--port", "0", "--approve", "auto"],
        &[
            "service",
            "offer",
            "ok",
            "--port",
            "80",
            "--approve",
            "sometimes",
        ],
    ] {
        n1.cli(bad).expect_code(2);
    }

    // The same bytes again: answered, nothing appended.
    let web_bytes = {
        let (records, _, _) = hub_entries(&hub);
        records
            .iter()
            .find_map(|r| match r {
                Record::Lending(b) if publication_name(b) == "web" => Some(b.to_vec()),
                _ => None,
            })
            .expect("web's Lending record")
    };
    let (_, _, before) = hub_entries(&hub);
    let again = post(hub.api_port, PUBLISH, &web_bytes).unwrap();
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["changed"], false);
    assert_eq!(hub_entries(&hub).2, before, "a republish appended");

    // Refusals: each appends nothing and is counted.
    let n1_id = NodeId::parse(statuses[0]["node_id"].as_str().unwrap()).unwrap();
    let forger = SigningSecret::from_seed([7; 32]);
    let forged = lending::seal_publication(&offer_of(&n1_id, "evil", 50), &forger).unwrap();
    assert_refused(
        &post(hub.api_port, PUBLISH, &forged).unwrap(),
        403,
        "bad_signature",
    );
    // n3 stopped, its key read, then it signs an offer naming n1.
    n3.stop();
    let n3_key = FakeNode::from_state_dir(&n3.state).signing;
    let n3_id = NodeId::parse(statuses[2]["node_id"].as_str().unwrap()).unwrap();
    let other = lending::seal_publication(&offer_of(&n1_id, "evil", 51), &n3_key).unwrap();
    assert_refused(
        &post(hub.api_port, PUBLISH, &other).unwrap(),
        403,
        "not_provider",
    );
    for garbage in [&b"not a record"[..], &[], &web_bytes[..web_bytes.len() - 1]] {
        assert_refused(
            &post(hub.api_port, PUBLISH, garbage).unwrap(),
            400,
            "malformed",
        );
    }
    let mut flipped = web_bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_refused(
        &post(hub.api_port, PUBLISH, &flipped).unwrap(),
        403,
        "bad_signature",
    );
    // A stale serial: an older offer can not come back.
    // (n3's own offer, accepted, then revoked.)
    let own3 = lending::seal_publication(&offer_of(&n3_id, "ssh", 1), &n3_key).unwrap();
    let r = post(hub.api_port, PUBLISH, &own3).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    hub.cli(&["node", "revoke", &boxname(2), "--json"]).ok();
    let (_, _, before) = hub_entries(&hub);
    let revoked = lending::seal_publication(&offer_of(&n3_id, "ssh2", 1), &n3_key).unwrap();
    assert_refused(
        &post(hub.api_port, PUBLISH, &revoked).unwrap(),
        403,
        "node_revoked",
    );
    let unknown_key = SigningSecret::from_seed([9; 32]);
    let unknown_id = NodeId::from_genesis_key(&unknown_key.public_key());
    let unknown = lending::seal_publication(&offer_of(&unknown_id, "x", 1), &unknown_key).unwrap();
    assert_refused(
        &post(hub.api_port, PUBLISH, &unknown).unwrap(),
        403,
        "unknown_node",
    );
    assert_eq!(
        hub_entries(&hub).2,
        before,
        "a refused publication appended"
    );
    for (reason, at_least) in [
        ("bad_signature", 2.0),
        ("not_provider", 1.0),
        ("malformed", 3.0),
        ("node_revoked", 1.0),
        ("unknown_node", 1.0),
    ] {
        assert!(refusals(&hub, reason) >= at_least, "{reason}");
    }
    // The revoked node's offer left every list with it.
    wait_list(n2, "n2 to drop the revoked node's offer", |l| {
        !l.iter().any(|o| o["name"] == "ssh")
    });

    // Withdrawal: gone from n2's list.
    let r = n1
        .cli(&["service", "withdraw", "web", "--json"])
        .ok()
        .json();
    assert_eq!(r["published"], true, "{r}");
    assert_eq!(r["kind"], "withdrawal", "{r}");
    wait_list(n2, "n2 to drop web", |l| find(l, "web", &n1_box).is_none());
    n1.cli(&["service", "withdraw", "web"]).expect_code(1);
    // The withdrawn offer's bytes again: stale, refused.
    assert_refused(
        &post(hub.api_port, PUBLISH, &web_bytes).unwrap(),
        409,
        "stale_serial",
    );
    let m_text = hub.metrics();
    assert_eq!(
        metric(
            &m_text,
            "gondwana_offer_publications_total{kind=\"withdrawal\"}"
        ),
        Some(1.0)
    );

    // The hub down: the offer is queued, and published when it is back.
    hub.stop();
    let r = n1
        .cli(&[
            "service",
            "offer",
            "late",
            "--port",
            &port_s,
            "--approve",
            "auto",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(r["published"], false, "{r}");
    assert_eq!(r["queued"], true, "{r}");
    assert!(r["note"].as_str().unwrap().contains("unreachable"), "{r}");
    let own = find(&list(n1), "late", &n1_box).cloned().unwrap();
    assert_eq!(own["state"], "queued", "{own}");
    hub.start();
    wait_list(n2, "n2 to list the queued offer", |l| {
        find(l, "late", &n1_box).is_some()
    });
    wait_list(n1, "n1's queue to empty", |l| {
        find(l, "late", &n1_box).is_some_and(|o| o["state"] == "published")
    });

    // Audit: where it happened, and the chains verify.
    let kinds = audit_kinds(|a| n1.cli(a));
    for kind in ["service.offer", "service.withdraw", "service.queue"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "n1 audit lacks {kind}: {kinds:?}"
        );
    }
    let kinds = audit_kinds(|a| hub.cli(a));
    for kind in ["directory.offer", "directory.withdraw"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "hub audit lacks {kind}: {kinds:?}"
        );
    }
    n1.cli(&["audit", "verify"]).ok();
    hub.cli(&["audit", "verify"]).ok();
    drop(listener);
}

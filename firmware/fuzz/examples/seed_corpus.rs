//! Writes valid inputs for every fuzz target, so fuzzing starts from bytes
//! the decoders accept and mutates from there:
//!
//!     cargo run --example seed_corpus --no-default-features -- DIR
//!
//! creates `DIR/<target>/<name>` for each target (deterministic: fixed key
//! seeds, no RNG, no clock). Not instrumented and not a fuzz target.

use std::path::{Path, PathBuf};

use gondwana_core::audit::{self, AuditHead};
use gondwana_core::directory::{self, Head};
use gondwana_core::enrol::{self, EnrolRequest};
use gondwana_core::envelope::{self, Envelope, MAX_ENVELOPE_BODY, tag};
use gondwana_core::hash::to_hex;
use gondwana_core::identity_log::{self, IdentityEvent, build};
use gondwana_core::keys::{SigningSecret, WireguardSecret, wg_key_to_base64};
use gondwana_core::token::TokenSecret;
use gondwana_core::{Boxname, NodeId};
use gondwana_fuzz::{candidate_report, directory_records, fixture, sign_raw_body, valid_grant};

struct Out {
    root: PathBuf,
    count: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self.count += 1;
    }
}

/// Genesis, then every other event kind, signed with the right keys.
/// Returns the entries and whether the log ends retired at each step.
fn long_log() -> (Vec<Vec<u8>>, Vec<identity_log::IdentityState>) {
    let first = SigningSecret::from_seed([11; 32]);
    let second = SigningSecret::from_seed([12; 32]);
    let (g, mut state) = build::genesis(
        &first,
        [0x5b; 32],
        Boxname::parse("long-log").expect("boxname"),
    )
    .expect("genesis");
    let mut entries = vec![g];
    let mut states = vec![state.clone()];
    let steps: Vec<(IdentityEvent, &SigningSecret, Option<&SigningSecret>)> = vec![
        (
            IdentityEvent::RotateWireguard {
                new_wireguard_key: [0x5c; 32],
            },
            &first,
            None,
        ),
        (
            IdentityEvent::Rename {
                boxname: Boxname::parse("renamed-0").expect("boxname"),
            },
            &first,
            None,
        ),
        (
            IdentityEvent::RotateSigning {
                new_signing_key: second.public_key(),
            },
            &first,
            Some(&second),
        ),
        (IdentityEvent::Retire, &second, None),
    ];
    for (event, signer, new_signer) in steps {
        let (raw, next) = build::next(&state, signer, event, new_signer).expect("log entry");
        entries.push(raw);
        states.push(next.clone());
        state = next;
    }
    (entries, states)
}

fn main() {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new("corpus").to_path_buf());
    let mut out = Out { root, count: 0 };
    let f = fixture();

    // Identity log: entries, bundles of every prefix.
    let (entries, states) = long_log();
    for (i, raw) in entries.iter().enumerate() {
        out.put("identity_entry", &format!("long-{i}"), raw);
        let body = identity_log::describe(raw).expect("own entry describes");
        out.put(
            "signed_bodies",
            &format!("entry-body-{i}"),
            &envelope::encode(&body),
        );
        let bundle = identity_log::export_bundle(&entries[..=i]).expect("bundle");
        assert_eq!(
            identity_log::import_bundle(&bundle).expect("own bundle").1,
            states[i]
        );
        out.put("identity_bundle", &format!("long-{}", i + 1), &bundle);
    }
    out.put("identity_entry", "fixture-genesis", &f.node_log[0]);
    out.put(
        "identity_bundle",
        "fixture",
        &identity_log::export_bundle(&f.node_log).expect("bundle"),
    );

    // Enrolment submissions: the fixture node, and a node whose log has a
    // key rotation before enrolment (signed by its current key).
    let submission = enrol::build_submission(
        &f.node_signing,
        &f.node_wireguard,
        &f.hub_wireguard.public_key(),
        &f.node_log,
        &f.request,
        &f.token,
    )
    .expect("submission");
    enrol::verify_submission(&submission, &f.hub_wireguard).expect("own submission verifies");
    out.put("enrol_submission", "fixture", &submission);
    {
        let first = SigningSecret::from_seed([21; 32]);
        let second = SigningSecret::from_seed([22; 32]);
        let (g, s0) = build::genesis(&first, [0x31; 32], Boxname::parse("rotated").expect("name"))
            .expect("genesis");
        let (r1, s1) = build::next(
            &s0,
            &first,
            IdentityEvent::RotateSigning {
                new_signing_key: second.public_key(),
            },
            Some(&second),
        )
        .expect("rotate signing");
        let rotated_wireguard = WireguardSecret::from_bytes([0x32; 32]);
        let (r2, s2) = build::next(
            &s1,
            &second,
            IdentityEvent::RotateWireguard {
                new_wireguard_key: rotated_wireguard.public_key(),
            },
            None,
        )
        .expect("rotate wireguard");
        let token = TokenSecret::from_seed([23; 32]);
        let request = EnrolRequest {
            version: enrol::VERSION,
            hub_nonce: [0xa5; 32],
            wireguard_key: s2.wireguard_key,
            boxname: Boxname::parse("rotated").expect("name"),
            token_key: token.public_key(),
        };
        let log = vec![g, r1, r2];
        let bytes = enrol::build_submission(
            &second,
            &rotated_wireguard,
            &f.hub_wireguard.public_key(),
            &log,
            &request,
            &token,
        )
        .expect("submission");
        enrol::verify_submission(&bytes, &f.hub_wireguard).expect("own submission verifies");
        out.put("enrol_submission", "rotated", &bytes);
        out.put(
            "signed_bodies",
            "request-rotated",
            &envelope::encode(&request),
        );
    }
    out.put(
        "signed_bodies",
        "request-fixture",
        &envelope::encode(&f.request),
    );

    // Grants: the sealed grant (whole-envelope path) and its body (the
    // signed-by-the-harness path), for the fixture's request.
    let grant = valid_grant();
    let sealed = enrol::seal_grant(&grant, &f.hub).expect("grant");
    enrol::open_grant(&sealed, &f.hub_key, &f.request, &f.node_state).expect("own grant opens");
    out.put("enrol_grant", "sealed", &sealed);
    out.put("enrol_grant", "body", &envelope::encode(&grant));
    out.put("signed_bodies", "grant", &envelope::encode(&grant));

    // Firewall grant commands: sealed, and the body alone.
    let command = gondwana_core::grant::GrantCommand {
        version: gondwana_core::grant::VERSION,
        nonce: [9; 32],
        action: gondwana_core::grant::GrantAction::Add {
            timeout_secs: Some(3600),
        },
        ip: [10, 10, 0, 7],
        port: 22,
    };
    let sealed = gondwana_core::grant::seal_command(&command, &f.hub).expect("command");
    out.put("grant_command", "sealed", &sealed);
    out.put("grant_command", "body", &envelope::encode(&command));

    // Directory: a bundle of every record kind from the empty head, and the
    // entry bodies on their own.
    let mut head = Head::default();
    let mut raws = Vec::new();
    for (i, record) in directory_records().into_iter().enumerate() {
        let (raw, next) = directory::append(&head, &f.hub, record).expect("append");
        let body = Envelope::verify(tag::DIRECTORY_ENTRY, &raw)
            .expect("own entry")
            .body;
        out.put("directory_bundle", &format!("entry-body-{i}"), &body);
        out.put("signed_bodies", &format!("directory-entry-{i}"), &body);
        raws.push(raw);
        head = next;
    }
    for n in 1..=raws.len() {
        let bundle = directory::encode_bundle(&f.hub_key, 0, head, &raws[..n]);
        let verified = directory::verify_bundle(&bundle, &f.hub_key, &Head::default())
            .expect("own bundle verifies");
        assert_eq!(verified.len(), n);
        out.put("directory_bundle", &format!("bundle-{n}"), &bundle);
    }

    // Enrolment responses: the grant with the directory's first page, and
    // with an empty directory.
    let full = directory::encode_bundle(&f.hub_key, 0, head, &raws);
    for (name, dir) in [("with-directory", full), ("empty-directory", Vec::new())] {
        let bytes = enrol::encode_response(&sealed, dir).expect("response");
        enrol::decode_response(&bytes).expect("own response decodes");
        out.put("enrol_response", name, &bytes);
    }

    // Envelopes under every tag, including the largest body allowed.
    for (i, t) in tag::ALL.iter().enumerate() {
        let sealed = Envelope::seal(t, &f.request, &f.node_signing).expect("seal");
        out.put("envelope", &format!("request-tag-{i}"), &sealed);
    }
    out.put("envelope", "grant", &sealed);
    out.put("envelope", "directory-entry", &raws[0]);
    out.put(
        "envelope",
        "max-body",
        &sign_raw_body(tag::ENROL_REQUEST, &[0xab; MAX_ENVELOPE_BODY], &f.hub).expect("max body"),
    );
    out.put(
        "envelope",
        "empty-body",
        &sign_raw_body(tag::DIRECTORY_ENTRY, &[], &f.hub).expect("empty body"),
    );

    // Audit records of every kind, and one with the longest text.
    let mut audit_head = AuditHead::default();
    for (i, kind) in [
        audit::kind::IDENTITY_GENESIS,
        audit::kind::IDENTITY_ADOPT_WIREGUARD,
        audit::kind::IDENTITY_ROTATE_SIGNING,
        audit::kind::IDENTITY_ROTATE_WIREGUARD,
        audit::kind::STATE_MIGRATED,
    ]
    .into_iter()
    .enumerate()
    {
        let fields = [
            audit::Field::text("x", "detail"),
            audit::Field::uint("n", i as u64),
            audit::Field::time("at", 1_700_000_000),
        ];
        let (raw, next) = audit_head.next_record(1_700_000_000 + i as u64, kind, &fields);
        audit::decode_record(&raw, audit_head.len).expect("own record");
        out.put("audit_record", &format!("record-{i}"), &raw);
        audit_head = next;
    }
    let long: Vec<audit::Field> = (0..audit::MAX_FIELDS)
        .map(|_| audit::Field::text(&"n".repeat(40), &"é".repeat(200)))
        .collect();
    let (raw, _) = audit_head.next_record(u64::MAX, &"k".repeat(40), &long);
    out.put("audit_record", "long-text", &raw);

    // Endpoint candidates: reports, and a snapshot carrying one.
    for seq in [1, 2, u64::MAX] {
        out.put(
            "candidates",
            &format!("report-{seq}"),
            &candidate_report(seq),
        );
    }
    let report = gondwana_core::candidates::decode_report(&candidate_report(3))
        .expect("report")
        .0;
    let hub_id = NodeId::from_genesis_key(&f.hub_key);
    let node = NodeId::from_genesis_key(&f.node_signing.public_key());
    let snapshot = gondwana_core::candidates::SnapshotBody {
        version: gondwana_core::candidates::VERSION,
        hub_id: hub_id.clone(),
        serial: 3,
        issued_unix: 1_700_000_000,
        probe_round: 1,
        nodes: vec![gondwana_core::candidates::NodeEntry {
            node_id: node.clone(),
            observed: Some("198.51.100.7:40001".parse().expect("addr")),
            report: Some(report),
        }],
        relays: vec![gondwana_core::candidates::RelayPair {
            a: hub_id.clone().min(node.clone()),
            b: hub_id.clone().max(node),
            relay: hub_id,
            port_a: 56000,
            port_b: 56001,
        }],
    };
    let sealed = gondwana_core::candidates::seal_snapshot(&snapshot, &f.hub).expect("snapshot");
    out.put("candidates", "snapshot", &sealed);
    out.put("candidates", "snapshot-body", &envelope::encode(&snapshot));

    // Update bundles: a sealed prefix and head, its manifest, a rotation
    // record and a release file.
    let manifest = gondwana_core::update::Manifest {
        format: gondwana_core::update::FORMAT,
        board: "mochabin".into(),
        version: 7,
        label: "v7".into(),
        min_version: 2,
        release_key: f.hub_key,
        parts: vec![
            gondwana_core::update::Part {
                target: gondwana_core::update::Target::RootSlot,
                size: 4096,
                blake2b: [7; 32],
            },
            gondwana_core::update::Part {
                target: gondwana_core::update::Target::BootFile("Image".into()),
                size: 64,
                blake2b: [8; 32],
            },
        ],
    };
    let rotation = gondwana_core::update::seal_rotation(1, &f.hub, [0x42; 32]).expect("rotation");
    let sealed = gondwana_core::update::seal(&manifest, &f.hub, std::slice::from_ref(&rotation))
        .expect("bundle head");
    out.put("update_bundle", "prefix-and-head", &sealed);
    out.put("update_bundle", "manifest", &envelope::encode(&manifest));
    out.put("update_bundle", "rotation-body", &rotation.body);
    out.put(
        "update_bundle",
        "release",
        b"board=mochabin\nversion=7\nmin_version=2\nlabel=v7\n",
    );

    // Lending: the hub's offer, a withdrawal, the node's subscription and
    // unsubscribe, the hub's decision (sealed, and bodies alone), and saved
    // provider and consumer books.
    {
        use gondwana_core::lending::{
            self, ConsumerBook, ConsumerSettings, Decision, ProviderBook, ProviderSettings,
            Publication, Request, ServiceName, Unsubscribe, Verdict, Withdrawal,
        };
        use gondwana_core::time::Millis;
        use gondwana_fuzz::{lending_offer, lending_subscription, lending_view};
        let view = lending_view();
        let hub_id = NodeId::from_genesis_key(&f.hub_key);
        let node_id = NodeId::from_genesis_key(&f.node_signing.public_key());
        let web = ServiceName::parse("web").expect("name");
        let body = |raw: &[u8]| {
            envelope::decode_canonical::<Envelope>(raw, envelope::MAX_ENVELOPE_BYTES)
                .expect("own envelope")
                .body
                .to_vec()
        };
        let offer = lending_offer();
        let withdrawal = lending::seal_publication(
            &Publication::Withdrawal(Withdrawal {
                version: lending::VERSION,
                provider: hub_id.clone(),
                name: web.clone(),
                serial: 2,
            }),
            &f.hub,
        )
        .expect("withdrawal");
        let subscription = lending_subscription(1);
        let unsubscribe = lending::seal_request(
            &Request::Unsubscribe(Unsubscribe {
                version: lending::VERSION,
                provider: hub_id.clone(),
                name: web.clone(),
                consumer: node_id.clone(),
                counter: 2,
            }),
            &f.node_signing,
        )
        .expect("unsubscribe");
        let mut book = ProviderBook::new(hub_id.clone(), ProviderSettings::default());
        let taken = book
            .handle(
                &subscription,
                std::net::Ipv4Addr::new(10, 10, 0, 2),
                &view,
                Millis(0),
            )
            .expect("own subscription is taken");
        let decision: Decision = taken.decision.expect("decision");
        assert!(matches!(decision.verdict, Verdict::Accepted { .. }));
        let decision = lending::seal_decision(&decision, &f.hub).expect("decision");
        for (name, raw) in [
            ("offer", &offer),
            ("withdrawal", &withdrawal),
            ("subscription", &subscription),
            ("unsubscribe", &unsubscribe),
            ("decision", &decision),
        ] {
            out.put("lending", name, raw);
            out.put("lending", &format!("{name}-body"), &body(raw));
        }
        out.put("lending", "provider-book", &book.save(Millis(1000)));
        let mut consumer = ConsumerBook::new(node_id, ConsumerSettings::default(), 1);
        consumer
            .subscribe(&hub_id, &web, 600, Millis(0))
            .expect("subscribe");
        consumer.poll(&view, Millis(0));
        out.put("lending", "consumer-book", &consumer.save(Millis(0)));
    }
    // Release records: one with a wave plan and a rotation, and its body.
    let body = gondwana_core::update::ReleaseBody::for_bundle(
        &manifest,
        &envelope::encode(&manifest),
        4096 + 64 + 300,
        [9; 32],
        1_764_374_400,
        vec![
            gondwana_core::update::Wave {
                percent: 10,
                after_secs: 0,
            },
            gondwana_core::update::Wave {
                percent: 100,
                after_secs: 86_400,
            },
        ],
    );
    let record = gondwana_core::update::seal_release(&body, &f.hub, &[]).expect("release record");
    out.put("release_record", "record", &record);
    out.put("release_record", "body", &envelope::encode(&body));

    // Text forms.
    let node_id = NodeId::from_genesis_key(&f.node_state.signing_key);
    out.put("text_parsers", "node-id", node_id.as_str().as_bytes());
    out.put("text_parsers", "boxname", b"box-1");
    out.put("text_parsers", "boxname-max", "a".repeat(63).as_bytes());
    out.put("text_parsers", "token", f.token.to_text().as_bytes());
    let wg = wg_key_to_base64(&[0x42; 32]);
    out.put("text_parsers", "wg-key", wg.as_bytes());
    out.put("text_parsers", "hex-key", to_hex(&f.hub_key).as_bytes());
    out.put(
        "text_parsers",
        "wg-quick",
        format!(
            "# mesh\n[Interface]\nAddress = 10.10.0.2/24\nPrivateKey = {wg} # mine\n\
             ListenPort = 51822\n\n[Peer]\nPublicKey = {wg}\nAllowedIPs = 10.10.0.0/24\n"
        )
        .as_bytes(),
    );

    println!(
        "seed_corpus: {} inputs in {}",
        out.count,
        out.root.display()
    );
}

//! The enrolment machine on a virtual clock: `now` is a number the test
//! advances, the hub is a function that answers or refuses.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::*;
use crate::directory::encode_bundle;
use crate::enrol::{self, EnrolGrant, encode_response, seal_grant};
use crate::hash::to_hex;
use crate::identity_log::build;
use crate::keys::{SigningSecret, WireguardSecret};

const SECOND: Duration = Duration::from_secs(1);

fn settings() -> Settings {
    Settings {
        search_paths: 2,
        retry_initial: SECOND,
        retry_max: Duration::from_secs(60),
    }
}

fn hub() -> SigningSecret {
    SigningSecret::from_seed([200; 32])
}

fn identity() -> IdentityState {
    let signing = SigningSecret::from_seed([1; 32]);
    let wireguard = WireguardSecret::from_bytes([2; 32]);
    build::genesis(
        &signing,
        wireguard.public_key(),
        Boxname::parse("n").unwrap(),
    )
    .unwrap()
    .1
}

fn instruction() -> Instruction {
    Instruction {
        hub_url: "http://hub:8799".into(),
        hub_key: hub().public_key(),
        token_key: [9; 32],
        boxname: Some(Boxname::parse("box-1").unwrap()),
        source: "/boot/gondwana/enroll.toml".into(),
    }
}

fn nonce_answer() -> NonceAnswer {
    NonceAnswer {
        nonce: Some(to_hex(&[7; 32])),
        hub_key: Some(to_hex(&hub().public_key())),
        hub_wireguard_key: Some(to_hex(&[3; 32])),
    }
}

/// What the hub answers to `request`, signed by `signer`, in `subnet`.
fn grant_answer(request: &EnrolRequest, signer: &SigningSecret, subnet: &str) -> GrantAnswer {
    let id = identity();
    let subnet: Ipv4Net = subnet.parse().unwrap();
    let base = u32::from(subnet.network());
    let grant = EnrolGrant {
        version: enrol::VERSION,
        hub_nonce: request.hub_nonce,
        node_id: id.node_id.clone(),
        node_signing_key: id.signing_key,
        node_wireguard_key: id.wireguard_key,
        boxname: request.boxname.clone(),
        mesh_ip: Ipv4Addr::from(base + 2),
        subnet,
        hub_node_id: id.node_id,
        hub_mesh_ip: Ipv4Addr::from(base + 1),
        hub_wireguard_key: [3; 32],
        hub_endpoint: heapless::String::try_from("hub:51822").unwrap(),
        wireguard_port: 51822,
        api_port: 8798,
        directory_len: 0,
        directory_tip: [0; 32],
    };
    let sealed = seal_grant(&grant, signer).unwrap();
    let page = encode_bundle(&hub().public_key(), 0, Default::default(), &[]);
    GrantAnswer {
        body: encode_response(&sealed, page).unwrap(),
        host_subnets: vec!["192.168.1.0/24".parse().unwrap()],
        reserved_subnets: vec![],
    }
}

fn actions(m: &mut EnrolMachine) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn events(m: &mut EnrolMachine) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// Runs a round up to the nonce request, the instruction found in the
/// second search path.
fn to_nonce(m: &mut EnrolMachine, now: Millis) {
    assert_eq!(actions(m), [Action::CheckEnrolled]);
    m.handle_check(false, settings(), now);
    assert_eq!(actions(m), [Action::Look(Source::SearchPath(0))]);
    m.handle_lookup(Lookup::Absent, now);
    assert_eq!(actions(m), [Action::Look(Source::SearchPath(1))]);
    m.handle_lookup(Lookup::Found(instruction()), now);
    read_identity(m, now);
}

fn read_identity(m: &mut EnrolMachine, now: Millis) {
    assert_eq!(actions(m), [Action::ReadIdentity]);
    m.handle_identity(Ok(identity()), now);
    assert_eq!(
        actions(m),
        [Action::RequestNonce {
            hub_url: "http://hub:8799".into()
        }]
    );
}

/// Answers the nonce request; returns the request to sign.
fn to_grant(m: &mut EnrolMachine, now: Millis) -> EnrolRequest {
    m.handle_nonce(Exchange::Answered(nonce_answer()), now);
    match actions(m).as_slice() {
        [
            Action::SendEnrolment {
                hub_url,
                request,
                hub_wireguard_key,
            },
        ] => {
            assert_eq!(hub_url, "http://hub:8799");
            assert_eq!(*hub_wireguard_key, [3; 32]);
            assert_eq!(request.hub_nonce, [7; 32]);
            assert_eq!(request.boxname.as_str(), "box-1");
            assert_eq!(request.wireguard_key, identity().wireguard_key);
            (**request).clone()
        }
        other => panic!("{other:?}"),
    }
}

/// The failure event and the wait it leads to.
fn failed(m: &mut EnrolMachine, now: Millis) -> (String, Duration) {
    let ev = events(m);
    let Some(Event::AttemptFailed { error, .. }) = ev.first() else {
        panic!("{ev:?}");
    };
    assert!(
        matches!(ev.last(), Some(Event::Status(Progress::Enrolling { last_error: Some(e), .. })) if e == error)
    );
    assert_eq!(actions(m), []);
    let wait = m.poll_timeout().expect("a failure waits").since(now);
    (error.clone(), wait)
}

#[test]
fn sources_come_in_order_search_paths_stick_command_line() {
    assert_eq!(
        sources(2).collect::<Vec<_>>(),
        [
            Source::SearchPath(0),
            Source::SearchPath(1),
            Source::ConfigVolume,
            Source::KernelCmdline
        ]
    );
    let mut m = EnrolMachine::new(1);
    let t = Millis(1000);
    assert_eq!(m.poll_action(), Some(Action::CheckEnrolled));
    m.handle_check(false, settings(), t);
    let mut looked = Vec::new();
    while let Some(Action::Look(source)) = m.poll_action() {
        looked.push(source);
        m.handle_lookup(Lookup::Absent, t);
    }
    assert_eq!(looked, sources(2).collect::<Vec<_>>());
    assert_eq!(events(&mut m), [Event::Status(Progress::Unenrolled)]);
    assert_eq!(m.poll_timeout(), Some(t + LOOK_AGAIN));
    // Not before the timer, then a new round that checks the store first.
    m.handle_timeout(Millis((t + LOOK_AGAIN).0 - 1));
    assert_eq!(actions(&mut m), []);
    m.handle_timeout(t + LOOK_AGAIN);
    assert_eq!(actions(&mut m), [Action::CheckEnrolled]);
}

#[test]
fn a_full_enrolment_through_refusals_and_transport_errors() {
    let mut m = EnrolMachine::new(42);
    let mut now = Millis(0);
    // 1: the hub is unreachable.
    to_nonce(&mut m, now);
    m.handle_nonce(Exchange::Failed("connection refused".into()), now);
    let (error, wait) = failed(&mut m, now);
    assert_eq!(error, "connection refused");
    assert!(wait >= SECOND / 2 && wait <= SECOND);
    now = m.poll_timeout().unwrap();
    m.handle_timeout(now);
    // 2: the hub refuses the nonce.
    to_nonce(&mut m, now);
    m.handle_nonce(
        Exchange::Refused {
            status: "503 Service Unavailable".into(),
            detail: "busy: try later".into(),
        },
        now,
    );
    let (error, wait) = failed(&mut m, now);
    assert_eq!(
        error,
        "hub answered 503 Service Unavailable to the nonce request: busy: try later"
    );
    assert!(wait >= SECOND && wait <= 2 * SECOND);
    now = m.poll_timeout().unwrap();
    m.handle_timeout(now);
    // 3: the hub refuses the submission.
    to_nonce(&mut m, now);
    to_grant(&mut m, now);
    m.handle_grant(
        Exchange::Refused {
            status: "403 Forbidden".into(),
            detail: "bad_token: unknown".into(),
        },
        now,
    );
    let (error, _) = failed(&mut m, now);
    assert_eq!(
        error,
        "hub refused the enrolment (403 Forbidden): bad_token: unknown"
    );
    now = m.poll_timeout().unwrap();
    m.handle_timeout(now);
    // 4: granted and stored.
    to_nonce(&mut m, now);
    let request = to_grant(&mut m, now);
    m.handle_grant(
        Exchange::Answered(grant_answer(&request, &hub(), "10.10.0.0/24")),
        now,
    );
    let Some(Action::Store(accepted)) = m.poll_action() else {
        panic!("no store");
    };
    assert_eq!(accepted.grant.mesh_ip, Ipv4Addr::new(10, 10, 0, 2));
    assert_eq!(accepted.hub_key, hub().public_key());
    assert_eq!(accepted.source, "/boot/gondwana/enroll.toml");
    assert!(!m.is_finished());
    m.handle_stored(Ok(()), now);
    assert!(m.is_enrolled() && m.is_finished());
    assert_eq!(m.attempts(), 4);
    assert_eq!(
        events(&mut m),
        [
            Event::Enrolled {
                mesh_ip: Ipv4Addr::new(10, 10, 0, 2),
                boxname: Boxname::parse("box-1").unwrap(),
                source: "/boot/gondwana/enroll.toml".into()
            },
            Event::Status(Progress::Enrolled),
        ]
    );
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn backoff_doubles_to_the_cap_within_jitter_bounds() {
    for seed in 0..20 {
        let mut m = EnrolMachine::new(seed);
        let mut now = Millis(0);
        for attempt in 1..=10u32 {
            to_nonce(&mut m, now);
            m.handle_nonce(Exchange::Failed("timeout".into()), now);
            let (_, wait) = failed(&mut m, now);
            let full = (SECOND * (1 << (attempt - 1).min(6))).min(settings().retry_max);
            // Half to full, rounded up to a millisecond.
            assert!(
                wait >= full / 2 && wait <= full + Duration::from_millis(1),
                "seed {seed} attempt {attempt}: {wait:?} for {full:?}"
            );
            now = m.poll_timeout().unwrap();
            m.handle_timeout(now);
        }
    }
    // Two boxes with different seeds do not retry in step.
    let waits = |seed| {
        let mut m = EnrolMachine::new(seed);
        to_nonce(&mut m, Millis(0));
        m.handle_nonce(Exchange::Failed("x".into()), Millis(0));
        failed(&mut m, Millis(0)).1
    };
    assert_ne!(waits(1), waits(2));
    assert_eq!(waits(3), waits(3));
}

#[test]
fn a_hub_naming_another_key_than_the_pin_gets_no_submission() {
    let mut m = EnrolMachine::new(1);
    to_nonce(&mut m, Millis(0));
    let answer = NonceAnswer {
        hub_key: Some(to_hex(&[0xEE; 32])),
        ..nonce_answer()
    };
    m.handle_nonce(Exchange::Answered(answer), Millis(0));
    let (error, _) = failed(&mut m, Millis(0));
    assert!(
        error.contains("pinned") && error.contains("not submitting"),
        "{error}"
    );
    // No key named: the grant's signature is the check that counts.
    let mut m = EnrolMachine::new(1);
    to_nonce(&mut m, Millis(0));
    let answer = NonceAnswer {
        hub_key: None,
        ..nonce_answer()
    };
    m.handle_nonce(Exchange::Answered(answer), Millis(0));
    assert!(matches!(
        actions(&mut m).as_slice(),
        [Action::SendEnrolment { .. }]
    ));
}

#[test]
fn a_grant_signed_by_another_key_or_overlapping_this_host_is_refused() {
    let impostor = SigningSecret::from_seed([66; 32]);
    for (signer, subnet, expect) in [
        (&impostor, "10.10.0.0/24", "grant"),
        (&hub(), "192.168.1.0/24", "refusing to join this mesh"),
    ] {
        let mut m = EnrolMachine::new(1);
        to_nonce(&mut m, Millis(0));
        let request = to_grant(&mut m, Millis(0));
        m.handle_grant(
            Exchange::Answered(grant_answer(&request, signer, subnet)),
            Millis(0),
        );
        let (error, _) = failed(&mut m, Millis(0));
        assert!(error.contains(expect), "{error}");
    }
}

#[test]
fn a_nonce_answer_missing_fields_fails_the_attempt() {
    for (answer, expect) in [
        (
            NonceAnswer {
                nonce: None,
                ..nonce_answer()
            },
            "has no nonce",
        ),
        (
            NonceAnswer {
                hub_wireguard_key: None,
                ..nonce_answer()
            },
            "has no hub_wireguard_key",
        ),
    ] {
        let mut m = EnrolMachine::new(1);
        to_nonce(&mut m, Millis(0));
        m.handle_nonce(Exchange::Answered(answer), Millis(0));
        let (error, _) = failed(&mut m, Millis(0));
        assert!(error.contains(expect), "{error}");
    }
}

#[test]
fn a_bad_config_waits_the_longest_retry_and_counts_as_an_attempt() {
    let mut m = EnrolMachine::new(1);
    let now = Millis(500);
    m.poll_action();
    m.handle_check(false, settings(), now);
    m.poll_action();
    m.handle_lookup(Lookup::Invalid("enroll.toml: token: bad".into()), now);
    assert_eq!(actions(&mut m), []);
    assert_eq!(
        events(&mut m),
        [
            Event::Status(Progress::Enrolling {
                attempts: 1,
                last_error: Some("enroll.toml: token: bad".into()),
                source: BAD_CONFIG_SOURCE.into()
            }),
            Event::BadConfig {
                error: "enroll.toml: token: bad".into()
            }
        ]
    );
    // No jitter, no growth: a person has to fix the file.
    assert_eq!(m.poll_timeout(), Some(now + settings().retry_max));
    m.handle_timeout(now + settings().retry_max);
    assert_eq!(actions(&mut m), [Action::CheckEnrolled]);
}

#[test]
fn enrolment_done_elsewhere_ends_the_machine_at_the_next_round() {
    let mut m = EnrolMachine::new(1);
    m.poll_action();
    m.handle_check(true, settings(), Millis(0));
    assert!(m.is_enrolled());
    assert_eq!(events(&mut m), [Event::Status(Progress::Enrolled)]);
    assert_eq!(actions(&mut m), []);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn one_shot_gives_up_on_the_first_failure_and_stores_on_success() {
    let mut m = EnrolMachine::once(instruction());
    read_identity(&mut m, Millis(0));
    m.handle_nonce(Exchange::Failed("unreachable".into()), Millis(0));
    assert!(m.is_finished() && !m.is_enrolled());
    assert_eq!(
        events(&mut m),
        [Event::GaveUp {
            error: "unreachable".into()
        }]
    );
    assert_eq!(m.poll_timeout(), None);

    let mut m = EnrolMachine::once(instruction());
    read_identity(&mut m, Millis(0));
    let request = to_grant(&mut m, Millis(0));
    m.handle_grant(
        Exchange::Answered(grant_answer(&request, &hub(), "10.10.0.0/24")),
        Millis(0),
    );
    assert!(matches!(m.poll_action(), Some(Action::Store(_))));
    m.handle_stored(Ok(()), Millis(0));
    assert_eq!(
        events(&mut m),
        [Event::Enrolled {
            mesh_ip: Ipv4Addr::new(10, 10, 0, 2),
            boxname: Boxname::parse("box-1").unwrap(),
            source: "/boot/gondwana/enroll.toml".into()
        }]
    );
}

#[test]
fn answers_out_of_turn_are_ignored() {
    let mut m = EnrolMachine::new(1);
    m.handle_lookup(Lookup::Found(instruction()), Millis(0));
    m.handle_identity(Ok(identity()), Millis(0));
    m.handle_nonce(Exchange::Answered(nonce_answer()), Millis(0));
    m.handle_stored(Ok(()), Millis(0));
    assert_eq!(actions(&mut m), [Action::CheckEnrolled]);
    assert_eq!(events(&mut m), []);
    assert_eq!(m.attempts(), 0);
}

#[test]
fn an_unreadable_identity_is_a_failed_attempt() {
    let mut m = EnrolMachine::new(1);
    to_nonce_lookup(&mut m);
    m.handle_identity(Err("state is locked".into()), Millis(0));
    assert_eq!(failed(&mut m, Millis(0)).0, "state is locked");
}

fn to_nonce_lookup(m: &mut EnrolMachine) {
    m.poll_action();
    m.handle_check(false, settings(), Millis(0));
    m.poll_action();
    m.handle_lookup(Lookup::Found(instruction()), Millis(0));
    assert_eq!(actions(m), [Action::ReadIdentity]);
}

#[test]
fn a_failed_store_is_a_failed_attempt() {
    let mut m = EnrolMachine::new(1);
    to_nonce(&mut m, Millis(0));
    let request = to_grant(&mut m, Millis(0));
    m.handle_grant(
        Exchange::Answered(grant_answer(&request, &hub(), "10.10.0.0/24")),
        Millis(0),
    );
    m.poll_action();
    m.handle_stored(Err("disk full".into()), Millis(0));
    assert_eq!(failed(&mut m, Millis(0)).0, "disk full");
    assert!(!m.is_finished());
}

use super::super::tests::{id, key, name, offer, publish, view};
use super::*;
use crate::hash::blake2b256;
use crate::lending::provider::{Outcome, ProviderBook, ProviderSettings};
use crate::lending::{Approval, Publication, open_decision, seal_decision, seal_request};

const ME: u8 = 1;
const PROVIDER: u8 = 2;

fn mesh() -> View {
    let mut v = view(3);
    publish(
        &mut v,
        PROVIDER,
        &Publication::Offer(offer(PROVIDER, "web", 1, Approval::Auto)),
    );
    publish(
        &mut v,
        PROVIDER,
        &Publication::Offer(offer(PROVIDER, "files", 1, Approval::Manual)),
    );
    v
}

fn consumer() -> ConsumerBook {
    ConsumerBook::new(id(ME), ConsumerSettings::default(), 7)
}

/// Both sides as the drivers run them: the consumer's due requests sealed,
/// sent to the provider, its decision sealed, opened and reported back.
/// Returns the provider outcomes.
fn exchange(c: &mut ConsumerBook, p: &mut ProviderBook, v: &View, now: Millis) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for o in c.poll(v, now) {
        let raw = seal_request(&o.request, &key(ME)).unwrap();
        match p.handle(&raw, Ipv4Addr::new(10, 10, 0, ME), v, now) {
            Ok(out) => {
                let sealed = seal_decision(out.decision.as_ref().unwrap(), &key(PROVIDER)).unwrap();
                let decision = open_decision(&sealed, &key(PROVIDER).public_key()).unwrap();
                c.on_decision(&decision, &blake2b256(&raw), now).unwrap();
                outcomes.push(out);
            }
            Err(refusal) => {
                let last_counter = match refusal {
                    crate::lending::Refusal::StaleCounter { last, .. } => Some(last),
                    _ => None,
                };
                let failure = Failure::Refused {
                    code: refusal.code().into(),
                    last_counter,
                };
                c.on_failure(&o.provider, &o.name, &failure, now).unwrap();
            }
        }
    }
    outcomes
}

fn status(c: &ConsumerBook, service: &str) -> Status {
    c.subscriptions(Millis(0))
        .into_iter()
        .find(|i| i.name == name(service))
        .unwrap()
        .status
}

#[test]
fn auto_subscription_is_active_and_renewed_at_half_time() {
    let v = mesh();
    let mut c = consumer();
    let mut p = ProviderBook::new(id(PROVIDER), ProviderSettings::default());
    c.subscribe(&id(PROVIDER), &name("web"), 600, Millis(0))
        .unwrap();
    let out = exchange(&mut c, &mut p, &v, Millis(0));
    assert_eq!(out.len(), 1);
    assert_eq!(
        status(&c, "web"),
        Status::Active {
            until: Millis(600_000)
        }
    );
    assert_eq!(c.next_wake(), Some(Millis(300_000)));
    assert!(c.poll(&v, Millis(299_999)).is_empty());
    exchange(&mut c, &mut p, &v, Millis(300_000));
    assert_eq!(
        status(&c, "web"),
        Status::Active {
            until: Millis(900_000)
        }
    );
    assert_eq!(c.counter(&id(PROVIDER), &name("web")), 2);
    // Unsubscribe: the provider closes the grant, the want is gone.
    c.unsubscribe(&id(PROVIDER), &name("web"), Millis(400_000))
        .unwrap();
    let out = exchange(&mut c, &mut p, &v, Millis(400_000));
    assert!(matches!(
        out[0].grants[0],
        crate::lending::GrantChange::Remove { .. }
    ));
    assert!(c.subscriptions(Millis(0)).is_empty());
    assert_eq!(c.counter(&id(PROVIDER), &name("web")), 3, "kept");
}

#[test]
fn a_pending_request_is_polled_with_the_same_bytes_until_approved() {
    let v = mesh();
    let mut c = consumer();
    let mut p = ProviderBook::new(id(PROVIDER), ProviderSettings::default());
    c.subscribe(&id(PROVIDER), &name("files"), 600, Millis(0))
        .unwrap();
    exchange(&mut c, &mut p, &v, Millis(0));
    assert_eq!(status(&c, "files"), Status::Pending);
    let first = c.poll(&v, Millis(10_000));
    assert_eq!(
        c.counter(&id(PROVIDER), &name("files")),
        1,
        "no new counter"
    );
    assert_eq!(first.len(), 1);
    c.on_failure(
        &id(PROVIDER),
        &name("files"),
        &Failure::Unreachable,
        Millis(10_000),
    )
    .unwrap();
    p.approve(&id(ME), &name("files"), &v, Millis(11_000))
        .unwrap();
    exchange(&mut c, &mut p, &v, Millis(20_000));
    assert!(matches!(status(&c, "files"), Status::Active { .. }));
    // Denied later: the consumer learns it at its renewal and stops.
    p.deny(&id(ME), &name("files"), "enough", &v, Millis(30_000))
        .unwrap();
    exchange(&mut c, &mut p, &v, Millis(320_000));
    assert_eq!(
        status(&c, "files"),
        Status::Denied {
            reason: "enough".into()
        }
    );
    assert_eq!(c.next_wake(), None);
}

#[test]
fn silence_makes_the_provider_unreachable_and_the_grant_expire() {
    let v = mesh();
    let mut c = consumer();
    let mut p = ProviderBook::new(id(PROVIDER), ProviderSettings::default());
    c.subscribe(&id(PROVIDER), &name("web"), 60, Millis(0))
        .unwrap();
    exchange(&mut c, &mut p, &v, Millis(0));
    let mut now = Millis(30_000);
    for _ in 0..5 {
        let sent = c.poll(&v, now);
        assert_eq!(sent.len(), 1, "at {now:?}");
        c.on_failure(&id(PROVIDER), &name("web"), &Failure::Unreachable, now)
            .unwrap();
        now = c.next_wake().unwrap().max(now);
        c.tick(now);
    }
    let info = &c.subscriptions(now)[0];
    assert!(info.unreachable);
    assert_eq!(info.status, Status::Expired);
    // The provider is back: active again (renewed with a new counter).
    let now = c.next_wake().unwrap();
    exchange(&mut c, &mut p, &v, now);
    assert!(matches!(status(&c, "web"), Status::Active { .. }));
    assert!(!c.subscriptions(now)[0].unreachable);
}

#[test]
fn lost_counters_and_changed_offers_recover() {
    let mut v = mesh();
    let mut p = ProviderBook::new(id(PROVIDER), ProviderSettings::default());
    let mut c = consumer();
    c.subscribe(&id(PROVIDER), &name("web"), 600, Millis(0))
        .unwrap();
    for t in [0, 300_000, 600_000] {
        exchange(&mut c, &mut p, &v, Millis(t));
    }
    // The consumer's state is lost: its counter restarts below the
    // provider's, which says where it stands.
    let mut fresh = consumer();
    fresh
        .subscribe(&id(PROVIDER), &name("web"), 600, Millis(700_000))
        .unwrap();
    exchange(&mut fresh, &mut p, &v, Millis(700_000));
    assert_eq!(status(&fresh, "web"), Status::Requesting);
    assert_eq!(fresh.counter(&id(PROVIDER), &name("web")), 3);
    assert_eq!(fresh.next_wake(), Some(Millis(702_000)));
    let at = fresh.next_wake().unwrap();
    exchange(&mut fresh, &mut p, &v, at);
    assert!(matches!(status(&fresh, "web"), Status::Active { .. }));
    assert_eq!(fresh.counter(&id(PROVIDER), &name("web")), 4);
    // The offer changes: the next request names the new serial.
    publish(
        &mut v,
        PROVIDER,
        &Publication::Offer(offer(PROVIDER, "web", 2, Approval::Auto)),
    );
    p.on_view(&v);
    let at = fresh.next_wake().unwrap();
    let sent = fresh.poll(&v, at);
    match &sent[0].request {
        Request::Subscribe(s) => assert_eq!(s.offer.serial, 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn saved_and_restored_with_a_new_clock() {
    let v = mesh();
    let mut c = consumer();
    let mut p = ProviderBook::new(id(PROVIDER), ProviderSettings::default());
    c.subscribe(&id(PROVIDER), &name("web"), 600, Millis(50_000))
        .unwrap();
    exchange(&mut c, &mut p, &v, Millis(50_000));
    let saved = c.save(Millis(100_000));
    let back =
        ConsumerBook::restore(id(ME), ConsumerSettings::default(), 7, &saved, Millis(0)).unwrap();
    assert_eq!(
        status(&back, "web"),
        Status::Active {
            until: Millis(550_000)
        }
    );
    assert_eq!(back.next_wake(), Some(Millis(250_000)));
    assert_eq!(back.counter(&id(PROVIDER), &name("web")), 1);
    assert!(
        ConsumerBook::restore(
            id(ME),
            ConsumerSettings::default(),
            7,
            &saved[1..],
            Millis(0)
        )
        .is_err()
    );
    assert_eq!(
        c.subscribe(&id(PROVIDER), &name("web"), 0, Millis(0)),
        Err(ConsumerError::Invalid(LendingError::BadDuration(0)))
    );
    assert_eq!(
        c.unsubscribe(&id(PROVIDER), &name("nope"), Millis(0)),
        Err(ConsumerError::NotSubscribed)
    );
}

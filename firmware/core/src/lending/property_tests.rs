//! The property the issue names: whatever the sequence of requests
//! (forged, replayed, for other addresses), operator commands, directory
//! changes, expiries and restarts, a grant the provider opens names the
//! subscriber's own /32 from its directory record, and every grant left
//! open after a directory change still does.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::provider::{ProviderBook, ProviderSettings};
use super::tests::{id, key, name, node_record, offer, publish, view};
use super::*;
use crate::directory::{Record, View};
use crate::node_id::NodeId;
use crate::time::Millis;

const PROVIDER: u8 = 2;
const SERVICES: [&str; 3] = ["web", "files", "club"];

#[derive(Debug, Clone)]
enum Op {
    Subscribe {
        signer: u8,
        consumer: u8,
        service: usize,
        claimed: u8,
        from: u8,
        /// 0 replays the last counter.
        step: u64,
        duration: u64,
    },
    Unsubscribe {
        consumer: u8,
        service: usize,
        step: u64,
    },
    Approve {
        consumer: u8,
        service: usize,
    },
    Deny {
        consumer: u8,
        service: usize,
    },
    Revoke(u8),
    Move {
        consumer: u8,
        to: u8,
    },
    Reoffer {
        service: usize,
        port: u16,
    },
    Withdraw(usize),
    Advance(u64),
    Restart,
}

fn node() -> impl Strategy<Value = u8> {
    1u8..=6
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (node(), node(), 0..3usize, prop_oneof![node(), Just(40u8)], prop_oneof![node(), Just(41u8)], 0..3u64, 1..900u64)
            .prop_map(|(signer, consumer, service, claimed, from, step, duration)| Op::Subscribe {
                // Mostly honest, sometimes forged or misaddressed.
                signer: if signer % 3 == 0 { signer } else { consumer },
                consumer,
                service,
                claimed: if claimed % 4 == 0 { claimed } else { consumer },
                from: if from % 5 == 0 { from } else { consumer },
                step,
                duration,
            }),
        1 => (node(), 0..3usize, 0..3u64).prop_map(|(consumer, service, step)| Op::Unsubscribe { consumer, service, step }),
        1 => (node(), 0..3usize).prop_map(|(consumer, service)| Op::Approve { consumer, service }),
        1 => (node(), 0..3usize).prop_map(|(consumer, service)| Op::Deny { consumer, service }),
        1 => node().prop_map(Op::Revoke),
        1 => (node(), 50u8..60).prop_map(|(consumer, to)| Op::Move { consumer, to }),
        1 => (0..3usize, prop_oneof![Just(8080u16), Just(9090u16)]).prop_map(|(service, port)| Op::Reoffer { service, port }),
        1 => (0..3usize).prop_map(Op::Withdraw),
        1 => (1..400u64).prop_map(Op::Advance),
        1 => Just(Op::Restart),
    ]
}

struct World {
    view: View,
    book: ProviderBook,
    now: Millis,
    counters: BTreeMap<(u8, usize), u64>,
    serials: [u64; 3],
    open: BTreeMap<(NodeId, ServiceName), LendingGrant>,
}

impl World {
    fn new() -> World {
        let mut view = view(6);
        for (i, s) in SERVICES.iter().enumerate() {
            let approval = match i {
                0 => Approval::Auto,
                1 => Approval::Manual,
                _ => Approval::Allow(
                    heapless::Vec::from_slice(&[Principal::Boxname(
                        crate::Boxname::parse("box-3").unwrap(),
                    )])
                    .unwrap(),
                ),
            };
            publish(
                &mut view,
                PROVIDER,
                &Publication::Offer(offer(PROVIDER, s, 1, approval)),
            );
        }
        World {
            view,
            book: ProviderBook::new(id(PROVIDER), ProviderSettings::default()),
            now: Millis(0),
            counters: BTreeMap::new(),
            serials: [1; 3],
            open: BTreeMap::new(),
        }
    }

    fn counter(&mut self, consumer: u8, service: usize, step: u64) -> u64 {
        let c = self.counters.entry((consumer, service)).or_insert(0);
        *c += step;
        *c
    }

    /// Applies a machine's grant changes, checking each addition.
    fn apply(&mut self, out: &Outcome) -> Result<(), TestCaseError> {
        for change in &out.grants {
            match change {
                GrantChange::Add {
                    consumer,
                    name,
                    grant,
                    ..
                } => {
                    let own = self.view.nodes.get(consumer).map(|n| n.mesh_ip);
                    prop_assert_eq!(
                        Some(grant.ip),
                        own,
                        "grant for {} to another address",
                        consumer
                    );
                    if let Some(before) = self.open.get(&(consumer.clone(), name.clone())) {
                        prop_assert_eq!(before, grant, "a second grant without removing the first");
                    }
                    self.open.insert((consumer.clone(), name.clone()), *grant);
                }
                GrantChange::Remove {
                    consumer,
                    name,
                    grant,
                } => {
                    let held = self.open.remove(&(consumer.clone(), name.clone()));
                    prop_assert_eq!(held, Some(*grant), "removed a grant never opened");
                }
            }
        }
        Ok(())
    }

    /// Every open grant: the consumer's current address, the offer's port.
    fn check_open(&self) -> Result<(), TestCaseError> {
        for ((consumer, service), grant) in &self.open {
            let node = self.view.nodes.get(consumer);
            prop_assert!(
                node.is_some(),
                "grant left open for a node gone: {}",
                consumer
            );
            prop_assert_eq!(Some(grant.ip), node.map(|n| n.mesh_ip));
            let offer = self.view.lending.offer(&id(PROVIDER), service);
            prop_assert_eq!(offer.map(|o| o.offer.port), Some(grant.port));
        }
        Ok(())
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let mut view_changed = false;
        match op.clone() {
            Op::Subscribe {
                signer,
                consumer,
                service,
                claimed,
                from,
                step,
                duration,
            } => {
                let counter = self.counter(consumer, service, step);
                let request = Request::Subscribe(Subscription {
                    version: VERSION,
                    offer: OfferRef {
                        provider: id(PROVIDER),
                        name: name(SERVICES[service]),
                        serial: self.serials[service],
                    },
                    consumer: id(consumer),
                    consumer_ip: Ipv4Addr::new(10, 10, 0, claimed),
                    duration_secs: duration,
                    counter,
                });
                let raw = seal_request(&request, &key(signer)).unwrap();
                let from = self.address(from);
                if let Ok(out) = self.book.handle(&raw, from, &self.view, self.now) {
                    self.apply(&out)?;
                }
            }
            Op::Unsubscribe {
                consumer,
                service,
                step,
            } => {
                let counter = self.counter(consumer, service, step);
                let request = Request::Unsubscribe(Unsubscribe {
                    version: VERSION,
                    provider: id(PROVIDER),
                    name: name(SERVICES[service]),
                    consumer: id(consumer),
                    counter,
                });
                let raw = seal_request(&request, &key(consumer)).unwrap();
                let from = self.address(consumer);
                if let Ok(out) = self.book.handle(&raw, from, &self.view, self.now) {
                    self.apply(&out)?;
                }
            }
            Op::Approve { consumer, service } => {
                let r = self.book.approve(
                    &id(consumer),
                    &name(SERVICES[service]),
                    &self.view,
                    self.now,
                );
                if let Ok(out) = r {
                    self.apply(&out)?;
                }
            }
            Op::Deny { consumer, service } => {
                let r = self.book.deny(
                    &id(consumer),
                    &name(SERVICES[service]),
                    "no",
                    &self.view,
                    self.now,
                );
                if let Ok(out) = r {
                    self.apply(&out)?;
                }
            }
            Op::Revoke(n) if n != PROVIDER => {
                self.view.apply(&Record::Revoke {
                    node_id: id(n),
                    reason: heapless::String::try_from("revoked").unwrap(),
                });
                view_changed = true;
            }
            Op::Move { consumer, to } if consumer != PROVIDER => {
                // A revoked node never comes back.
                if self.view.nodes.contains_key(&id(consumer)) {
                    let mut record = node_record(consumer, consumer);
                    if let Record::Node { mesh_ip, .. } = &mut record {
                        *mesh_ip = Ipv4Addr::new(10, 10, 0, to);
                    }
                    self.view.apply(&record);
                    view_changed = true;
                }
            }
            Op::Reoffer { service, port } => {
                self.serials[service] += 1;
                let o = Offer {
                    port,
                    ..offer(
                        PROVIDER,
                        SERVICES[service],
                        self.serials[service],
                        Approval::Auto,
                    )
                };
                publish(&mut self.view, PROVIDER, &Publication::Offer(o));
                view_changed = true;
            }
            Op::Withdraw(service) => {
                self.serials[service] += 1;
                let w = Withdrawal {
                    version: VERSION,
                    provider: id(PROVIDER),
                    name: name(SERVICES[service]),
                    serial: self.serials[service],
                };
                publish(&mut self.view, PROVIDER, &Publication::Withdrawal(w));
                view_changed = true;
            }
            Op::Advance(secs) => {
                self.now = self.now + std::time::Duration::from_secs(secs);
                let out = self.book.tick(self.now);
                self.apply(&out)?;
            }
            Op::Restart => {
                let saved = self.book.save(self.now);
                self.now = Millis(0);
                let (book, out) = ProviderBook::restore(
                    id(PROVIDER),
                    ProviderSettings::default(),
                    &saved,
                    self.now,
                )
                .unwrap();
                self.book = book;
                // The kernel set is gone with a reboot; the additions reopen it.
                self.open.clear();
                self.apply(&out)?;
            }
            Op::Revoke(_) | Op::Move { .. } => {}
        }
        if view_changed {
            let out = self.book.on_view(&self.view);
            self.apply(&out)?;
            self.check_open()?;
        }
        Ok(())
    }

    fn address(&self, n: u8) -> Ipv4Addr {
        self.view
            .nodes
            .get(&id(n))
            .map_or(Ipv4Addr::new(10, 10, 0, n), |r| r.mesh_ip)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn grants_open_only_to_the_subscribers_own_address(ops in proptest::collection::vec(op(), 1..48)) {
        let mut world = World::new();
        for op in &ops {
            world.step(op)?;
        }
        world.check_open()?;
    }
}

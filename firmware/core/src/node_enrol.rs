//! The node's enrolment as a sans-IO machine (docs/protocol.md,
//! "Enrolment"; docs/architecture.md, "Enrolment and sync machines").
//!
//! [`EnrolMachine`] decides; its driver (`firmware/node`,
//! `daemon/enrol_task.rs`) reads sources, talks HTTP, writes the store and
//! sleeps. Everything the machine decides is here: which enrolment sources
//! are looked at in which order, the pin check on the hub's nonce answer,
//! the request it answers, grant acceptance (signature under the pin, the
//! request it answers, the collision guard), the "bad config" wait and the
//! jittered, capped backoff after a failed attempt. A refusal by the hub and
//! a transport error are both a failed attempt: the hub may be restarting
//! or its operator may fix the token, so the node keeps trying either way.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::Boxname;
use crate::backoff::{self, Jitter};
use crate::enrol::EnrolRequest;
use crate::identity_log::IdentityState;
use crate::time::Millis;

mod checks;
mod io;

pub use io::{
    Accepted, Action, BAD_CONFIG_SOURCE, Event, Exchange, GrantAnswer, Instruction, LOOK_AGAIN,
    Lookup, NonceAnswer, Progress, Settings, Source, sources,
};

#[derive(Debug)]
enum State {
    /// Waiting for the timer, then a new round.
    Waiting {
        until: Millis,
    },
    Checking,
    Looking {
        next: usize,
        of: usize,
    },
    ReadingIdentity {
        instruction: Instruction,
    },
    AwaitingNonce {
        instruction: Instruction,
        identity: IdentityState,
    },
    AwaitingGrant {
        instruction: Instruction,
        request: EnrolRequest,
        identity: IdentityState,
    },
    Storing {
        mesh_ip: Ipv4Addr,
        boxname: Boxname,
        source: String,
    },
    Enrolled,
    GaveUp,
}

/// The node's enrolment machine.
///
/// Call order, like quinn-proto's `Connection`:
/// 1. Build with [`EnrolMachine::new`] (the daemon: keeps trying) or
///    [`EnrolMachine::once`] (one attempt for a given instruction: the
///    `enroll` command and the admin API).
/// 2. Drain [`poll_action`](Self::poll_action): for each action, do the I/O
///    it names and feed the outcome to the `handle_*` method it names, with
///    the current time. Drain [`poll_event`](Self::poll_event) for status,
///    logs and metrics.
/// 3. When there is no action, sleep until
///    [`poll_timeout`](Self::poll_timeout) and call
///    [`handle_timeout`](Self::handle_timeout); then go to 2.
/// 4. Stop when [`is_finished`](Self::is_finished) (enrolled, or a
///    one-shot attempt gave up).
///
/// A `handle_*` call that does not answer the pending action is ignored.
#[derive(Debug)]
pub struct EnrolMachine {
    state: State,
    one_shot: bool,
    attempts: u32,
    settings: Settings,
    jitter: Jitter,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl EnrolMachine {
    /// The daemon's machine: check for a stored enrolment, then look for an
    /// instruction, forever until enrolled. `seed` drives the jitter.
    pub fn new(seed: u64) -> EnrolMachine {
        let mut m = EnrolMachine::empty(seed, false);
        m.begin_round();
        m
    }

    /// One attempt with `instruction`, no retry: [`Event::GaveUp`] or
    /// [`Event::Enrolled`] ends it.
    pub fn once(instruction: Instruction) -> EnrolMachine {
        let mut m = EnrolMachine::empty(0, true);
        m.start_attempt(instruction);
        m
    }

    fn empty(seed: u64, one_shot: bool) -> EnrolMachine {
        EnrolMachine {
            state: State::Checking,
            one_shot,
            attempts: 0,
            settings: Settings {
                search_paths: 0,
                retry_initial: Duration::from_secs(1),
                retry_max: Duration::from_secs(60),
            },
            jitter: Jitter::new(seed),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // ---- getters ----

    /// Attempts so far (bad configs included, as status counts them).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn is_enrolled(&self) -> bool {
        matches!(self.state, State::Enrolled)
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Enrolled | State::GaveUp)
    }

    // ---- outputs ----

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due, if waiting.
    pub fn poll_timeout(&self) -> Option<Millis> {
        match self.state {
            State::Waiting { until } => Some(until),
            _ => None,
        }
    }

    // ---- inputs ----

    /// The timer: a new round once the wait is over.
    pub fn handle_timeout(&mut self, now: Millis) {
        if let State::Waiting { until } = self.state
            && now >= until
        {
            self.begin_round();
        }
    }

    /// Answers [`Action::CheckEnrolled`], with the settings for this round.
    pub fn handle_check(&mut self, already_enrolled: bool, settings: Settings, _now: Millis) {
        if !matches!(self.state, State::Checking) {
            return;
        }
        self.settings = settings;
        if already_enrolled {
            self.state = State::Enrolled;
            self.events.push_back(Event::Status(Progress::Enrolled));
            return;
        }
        self.state = State::Looking {
            next: 0,
            of: sources(settings.search_paths).count(),
        };
        self.look_next();
    }

    /// Answers [`Action::Look`].
    pub fn handle_lookup(&mut self, found: Lookup, now: Millis) {
        let State::Looking { next, of } = self.state else {
            return;
        };
        match found {
            Lookup::Absent if next < of => self.look_next(),
            Lookup::Absent => {
                self.events.push_back(Event::Status(Progress::Unenrolled));
                self.wait(now + LOOK_AGAIN);
            }
            Lookup::Found(instruction) => self.start_attempt(instruction),
            Lookup::Invalid(error) => {
                // Counted as an attempt so status shows the box is stuck,
                // and retried at the slowest pace: only a person fixes it.
                self.attempts = self.attempts.saturating_add(1);
                self.events.push_back(Event::Status(Progress::Enrolling {
                    attempts: self.attempts,
                    last_error: Some(error.clone()),
                    source: BAD_CONFIG_SOURCE.into(),
                }));
                self.events.push_back(Event::BadConfig { error });
                self.wait(now + self.settings.retry_max);
            }
        }
    }

    /// Answers [`Action::ReadIdentity`] with the identity's public state.
    pub fn handle_identity(&mut self, identity: Result<IdentityState, String>, now: Millis) {
        let State::ReadingIdentity { instruction } = &self.state else {
            return;
        };
        let instruction = instruction.clone();
        match identity {
            Ok(identity) => {
                let hub_url = instruction.hub_url.clone();
                self.then(
                    Action::RequestNonce { hub_url },
                    State::AwaitingNonce {
                        instruction,
                        identity,
                    },
                );
            }
            Err(e) => self.fail(&instruction.source, e, now),
        }
    }

    /// Answers [`Action::RequestNonce`].
    pub fn handle_nonce(&mut self, answer: Exchange<NonceAnswer>, now: Millis) {
        let State::AwaitingNonce {
            instruction,
            identity,
        } = &self.state
        else {
            return;
        };
        let (instruction, identity) = (instruction.clone(), identity.clone());
        let answer = match answer {
            Exchange::Answered(a) => a,
            Exchange::Refused { status, detail } => {
                return self.fail(
                    &instruction.source,
                    format!("hub answered {status} to the nonce request: {detail}"),
                    now,
                );
            }
            Exchange::Failed(e) => return self.fail(&instruction.source, e, now),
        };
        match checks::request_for(&instruction, &answer, &identity) {
            Ok((request, hub_wireguard_key)) => {
                let send = Action::SendEnrolment {
                    hub_url: instruction.hub_url.clone(),
                    request: Box::new(request.clone()),
                    hub_wireguard_key,
                };
                self.then(
                    send,
                    State::AwaitingGrant {
                        instruction,
                        request,
                        identity,
                    },
                );
            }
            Err(e) => self.fail(&instruction.source, e, now),
        }
    }

    /// Answers [`Action::SendEnrolment`].
    pub fn handle_grant(&mut self, answer: Exchange<GrantAnswer>, now: Millis) {
        let State::AwaitingGrant {
            instruction,
            request,
            identity,
        } = &self.state
        else {
            return;
        };
        let source = instruction.source.clone();
        let accepted = match answer {
            Exchange::Answered(a) => checks::accept(instruction, request, identity, a),
            Exchange::Refused { status, detail } => {
                Err(format!("hub refused the enrolment ({status}): {detail}"))
            }
            Exchange::Failed(e) => Err(e),
        };
        match accepted {
            Ok(accepted) => {
                let storing = State::Storing {
                    mesh_ip: accepted.grant.mesh_ip,
                    boxname: accepted.grant.boxname.clone(),
                    source,
                };
                self.then(Action::Store(Box::new(accepted)), storing);
            }
            Err(e) => self.fail(&source, e, now),
        }
    }

    /// Answers [`Action::Store`].
    pub fn handle_stored(&mut self, result: Result<(), String>, now: Millis) {
        let State::Storing {
            mesh_ip,
            boxname,
            source,
        } = &self.state
        else {
            return;
        };
        let enrolled = Event::Enrolled {
            mesh_ip: *mesh_ip,
            boxname: boxname.clone(),
            source: source.clone(),
        };
        match result {
            Ok(()) => {
                self.state = State::Enrolled;
                self.events.push_back(enrolled);
                if !self.one_shot {
                    self.events.push_back(Event::Status(Progress::Enrolled));
                }
            }
            Err(e) => {
                let source = source.clone();
                self.fail(&source, e, now)
            }
        }
    }

    // ---- transitions ----

    /// Asks the driver for `action` and waits for its answer in `state`.
    fn then(&mut self, action: Action, state: State) {
        self.actions.push_back(action);
        self.state = state;
    }

    fn begin_round(&mut self) {
        self.then(Action::CheckEnrolled, State::Checking);
    }

    fn look_next(&mut self) {
        let State::Looking { next, of } = &mut self.state else {
            return;
        };
        if let Some(source) = sources(self.settings.search_paths).nth(*next) {
            *next += 1;
            self.actions.push_back(Action::Look(source));
        } else {
            // Unreachable by construction; end the round rather than stall.
            *next = *of;
        }
    }

    fn start_attempt(&mut self, instruction: Instruction) {
        self.attempts = self.attempts.saturating_add(1);
        self.then(Action::ReadIdentity, State::ReadingIdentity { instruction });
    }

    fn fail(&mut self, source: &str, error: String, now: Millis) {
        if self.one_shot {
            self.state = State::GaveUp;
            self.events.push_back(Event::GaveUp { error });
            return;
        }
        self.events.push_back(Event::AttemptFailed {
            attempt: self.attempts,
            error: error.clone(),
        });
        self.events.push_back(Event::Status(Progress::Enrolling {
            attempts: self.attempts,
            last_error: Some(error),
            source: source.into(),
        }));
        let delay = backoff::delay(
            self.attempts,
            self.settings.retry_initial,
            self.settings.retry_max,
            self.jitter.fraction(),
        );
        self.wait(now + delay);
    }

    fn wait(&mut self, until: Millis) {
        self.state = State::Waiting { until };
    }
}

#[cfg(test)]
mod tests;

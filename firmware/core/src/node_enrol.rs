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

use ipnet::Ipv4Net;

use crate::Boxname;
use crate::backoff::{self, Jitter};
use crate::enrol::{self, EnrolGrant, EnrolRequest};
use crate::hash::to_hex;
use crate::identity_log::IdentityState;
use crate::keys::{PublicKey, decode_hex32};
use crate::mesh;
use crate::time::Millis;

/// How long an unenrolled box with no instruction anywhere waits before it
/// looks again (a stick may be plugged in at any time).
pub const LOOK_AGAIN: Duration = Duration::from_secs(5);

/// The source named in status while an instruction does not parse.
pub const BAD_CONFIG_SOURCE: &str = "enrolment config";

/// Where an enrolment instruction may be, in the order [`sources`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `enroll.search_paths[i]`: a file on the boot partition or under
    /// `/run`. Readable means found (a parse error is then bad config).
    SearchPath(usize),
    /// `gondwana/enroll.toml` on the FAT volume labelled `GW_CONFIG`.
    ConfigVolume,
    /// `gondwana.enroll=` on the kernel command line.
    KernelCmdline,
}

/// The order sources are looked at: every search path, then the stick,
/// then the kernel command line. The first one found is used.
pub fn sources(search_paths: usize) -> impl Iterator<Item = Source> {
    (0..search_paths)
        .map(Source::SearchPath)
        .chain([Source::ConfigVolume, Source::KernelCmdline])
}

/// The public part of an enrolment instruction (`enroll.toml`). The token's
/// secret stays with the driver, which needs it only to sign the submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Without a trailing `/`.
    pub hub_url: String,
    /// The pin: the grant must verify under it.
    pub hub_key: PublicKey,
    pub token_key: PublicKey,
    pub boxname: Option<Boxname>,
    /// Where it came from, for status and logs.
    pub source: String,
}

/// What looking at one [`Source`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Absent,
    Found(Instruction),
    /// Present but unusable: the "bad config" wait follows.
    Invalid(String),
}

/// The settings the machine reads at the start of each round (SIGHUP may
/// change them between rounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How many `enroll.search_paths` there are.
    pub search_paths: usize,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// The outcome of one HTTP exchange with the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange<T> {
    /// A success status; `T` is what the driver read from the body.
    Answered(T),
    /// An error status: `status` as the driver prints it ("403 Forbidden"),
    /// `detail` the hub's error text.
    Refused { status: String, detail: String },
    /// No usable answer: connection, timeout, unreadable body, local fault.
    Failed(String),
}

/// The fields of the hub's JSON nonce answer, as strings when they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NonceAnswer {
    pub nonce: Option<String>,
    /// The hub's signing key as it states it (unauthenticated: only used to
    /// stop before spending a use of the token on the wrong hub).
    pub hub_key: Option<String>,
    pub hub_wireguard_key: Option<String>,
}

/// The hub's answer to the submission, with what the collision guard needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantAnswer {
    /// The `POST /v1/enroll` body.
    pub body: Vec<u8>,
    /// Subnets on this host's other interfaces.
    pub host_subnets: Vec<Ipv4Net>,
    /// `mesh.reserved_subnets`.
    pub reserved_subnets: Vec<Ipv4Net>,
}

/// A grant that passed every check: what the driver stores, in one
/// transaction with the first directory page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub grant: EnrolGrant,
    /// The grant envelope as the hub signed it.
    pub grant_raw: Vec<u8>,
    /// The first directory page (a bundle from sequence 0).
    pub first_page: Vec<u8>,
    pub hub_url: String,
    pub hub_key: PublicKey,
    pub source: String,
}

/// What the driver must do next. Each has exactly one answer, named on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Is an enrolment already stored (another path may have enrolled the
    /// box)? Answer: [`EnrolMachine::handle_check`].
    CheckEnrolled,
    /// Look at one source. Answer: [`EnrolMachine::handle_lookup`].
    Look(Source),
    /// Read the node's identity (keep its secrets for the submission).
    /// Answer: [`EnrolMachine::handle_identity`].
    ReadIdentity,
    /// `GET {hub_url}/v1/enroll/nonce`. Answer: [`EnrolMachine::handle_nonce`].
    RequestNonce { hub_url: String },
    /// Sign `request` (identity keys, the token secret, a proof of the
    /// WireGuard key for `hub_wireguard_key`) and `POST {hub_url}/v1/enroll`.
    /// Answer: [`EnrolMachine::handle_grant`].
    SendEnrolment {
        hub_url: String,
        request: EnrolRequest,
        hub_wireguard_key: PublicKey,
    },
    /// Store the grant and first page in one transaction.
    /// Answer: [`EnrolMachine::handle_stored`].
    Store(Box<Accepted>),
}

/// What the machine tells the driver (status, logs, metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The status the node reports changed.
    Status(Progress),
    /// An attempt failed (refused, unreachable, grant refused, not stored).
    AttemptFailed { attempt: u32, error: String },
    /// An instruction was found but does not parse.
    BadConfig { error: String },
    /// The grant is stored (`source`: where the instruction came from).
    Enrolled {
        mesh_ip: Ipv4Addr,
        boxname: Boxname,
        source: String,
    },
    /// One-shot mode: the attempt failed; the machine is finished.
    GaveUp { error: String },
}

/// The node's enrolment status, as `gondwana status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Unenrolled,
    Enrolling {
        attempts: u32,
        last_error: Option<String>,
        source: String,
    },
    Enrolled,
}

#[derive(Debug)]
enum State {
    /// Waiting for the timer, then a new round.
    Waiting { until: Millis },
    Checking,
    Looking { next: usize, of: usize },
    ReadingIdentity { instruction: Instruction },
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
                self.actions.push_back(Action::RequestNonce {
                    hub_url: instruction.hub_url.clone(),
                });
                self.state = State::AwaitingNonce {
                    instruction,
                    identity,
                };
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
        match request_for(&instruction, &answer, &identity) {
            Ok((request, hub_wireguard_key)) => {
                self.actions.push_back(Action::SendEnrolment {
                    hub_url: instruction.hub_url.clone(),
                    request: request.clone(),
                    hub_wireguard_key,
                });
                self.state = State::AwaitingGrant {
                    instruction,
                    request,
                    identity,
                };
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
            Exchange::Answered(a) => accept(instruction, request, identity, a),
            Exchange::Refused { status, detail } => Err(format!(
                "hub refused the enrolment ({status}): {detail}"
            )),
            Exchange::Failed(e) => Err(e),
        };
        match accepted {
            Ok(accepted) => {
                self.state = State::Storing {
                    mesh_ip: accepted.grant.mesh_ip,
                    boxname: accepted.grant.boxname.clone(),
                    source,
                };
                self.actions.push_back(Action::Store(Box::new(accepted)));
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

    fn begin_round(&mut self) {
        self.state = State::Checking;
        self.actions.push_back(Action::CheckEnrolled);
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
        self.actions.push_back(Action::ReadIdentity);
        self.state = State::ReadingIdentity { instruction };
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

/// The pin check and the request the nonce answer leads to.
fn request_for(
    instruction: &Instruction,
    answer: &NonceAnswer,
    identity: &IdentityState,
) -> Result<(EnrolRequest, PublicKey), String> {
    let pin = to_hex(&instruction.hub_key);
    // A hub that names another key than our pin would only hand us a grant
    // we must refuse, after spending a use of our token: stop here.
    if let Some(key) = &answer.hub_key
        && *key != pin
    {
        return Err(format!(
            "the hub at {} says its key is {key}, but the pinned hub key is {pin}: not submitting",
            instruction.hub_url
        ));
    }
    let nonce = answer
        .nonce
        .as_deref()
        .ok_or("hub's nonce answer has no nonce")?;
    let hub_nonce = decode_hex32(nonce).map_err(|e| e.to_string())?;
    // Unauthenticated like `hub_key`: a substituted key only makes the
    // proof of our WireGuard key fail at the hub.
    let hub_wireguard_key = answer
        .hub_wireguard_key
        .as_deref()
        .ok_or("hub's nonce answer has no hub_wireguard_key")
        .map(decode_hex32)?
        .map_err(|e| e.to_string())?;
    let request = EnrolRequest {
        version: enrol::VERSION,
        hub_nonce,
        wireguard_key: identity.wireguard_key,
        boxname: instruction
            .boxname
            .clone()
            .unwrap_or_else(|| identity.boxname.clone()),
        token_key: instruction.token_key,
    };
    Ok((request, hub_wireguard_key))
}

/// Grant acceptance: signed under the pin, answering our request, and a
/// mesh that does not overlap this host's networks (or a reserved one),
/// which would take traffic from them.
fn accept(
    instruction: &Instruction,
    request: &EnrolRequest,
    identity: &IdentityState,
    answer: GrantAnswer,
) -> Result<Accepted, String> {
    let response = enrol::decode_response(&answer.body).map_err(|e| e.to_string())?;
    let grant = enrol::open_grant(&response.grant, &instruction.hub_key, request, identity)
        .map_err(|e| e.to_string())?;
    mesh::check_subnet(&grant.subnet, &answer.reserved_subnets, &answer.host_subnets)
        .map_err(|e| format!("{e}: refusing to join this mesh"))?;
    Ok(Accepted {
        grant,
        grant_raw: response.grant.to_vec(),
        first_page: response.directory,
        hub_url: instruction.hub_url.clone(),
        hub_key: instruction.hub_key,
        source: instruction.source.clone(),
    })
}

#[cfg(test)]
mod tests;

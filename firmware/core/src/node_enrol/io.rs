//! The enrolment machine's inputs and outputs.

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::Boxname;
use crate::enrol::{EnrolGrant, EnrolRequest};
use crate::keys::PublicKey;

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
    /// box)? Answer: [`super::EnrolMachine::handle_check`].
    CheckEnrolled,
    /// Look at one source. Answer: [`super::EnrolMachine::handle_lookup`].
    Look(Source),
    /// Read the node's identity (keep its secrets for the submission).
    /// Answer: [`super::EnrolMachine::handle_identity`].
    ReadIdentity,
    /// `GET {hub_url}/v1/enroll/nonce`. Answer: [`super::EnrolMachine::handle_nonce`].
    RequestNonce { hub_url: String },
    /// Sign `request` (identity keys, the token secret, a proof of the
    /// WireGuard key for `hub_wireguard_key`) and `POST {hub_url}/v1/enroll`.
    /// Answer: [`super::EnrolMachine::handle_grant`].
    SendEnrolment {
        hub_url: String,
        request: Box<EnrolRequest>,
        hub_wireguard_key: PublicKey,
    },
    /// Store the grant and first page in one transaction.
    /// Answer: [`super::EnrolMachine::handle_stored`].
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
    /// No instruction found, no grant stored.
    Unenrolled,
    Enrolling {
        attempts: u32,
        last_error: Option<String>,
        source: String,
    },
    Enrolled,
}

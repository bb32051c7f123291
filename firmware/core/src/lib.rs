//! Gondwana's pure logic: no I/O, no async, no clock, no RNG.
//!
//! Randomness (key seeds) and time come in as arguments, so everything here is
//! deterministic and testable byte for byte. The `gondwana` binary
//! (`firmware/node`) supplies the OS RNG, the clock and the storage.
#![forbid(unsafe_code)]

pub mod audit;
pub mod backoff;
pub mod boxname;
pub mod candidate_book;
pub mod candidates;
pub mod dataplane;
pub mod directory;
pub mod enrol;
pub mod envelope;
pub mod grant;
pub mod hash;
pub mod hub_enrol;
pub mod identity_log;
pub mod interface_name;
pub mod keys;
pub mod lending;
pub mod lending_records;
pub mod mesh;
pub mod node_enrol;
pub mod node_id;
pub mod node_sync;
pub mod nonce;
pub mod ordered;
pub mod paths;
pub mod peer_diff;
pub mod reconcile;
pub mod relay_alloc;
pub mod revocation;
pub mod time;
pub mod token;
pub mod update;
pub mod wg_proof;
pub mod wg_quick;

pub use boxname::Boxname;
pub use interface_name::InterfaceName;
pub use node_id::NodeId;

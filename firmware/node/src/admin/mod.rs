//! Admin actions (tokens, nodes) and how the CLI reaches them: through the
//! daemon's root-only Unix socket when a daemon runs, else on the store.

pub mod client;
pub mod ops;

//! The one way this binary builds a tokio runtime: current-thread, timers
//! and I/O on. The boxes have 2 cores and the work is I/O-bound; one thread
//! keeps memory and scheduling predictable.

use anyhow::Context;

pub fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

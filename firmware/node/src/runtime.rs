//! The one way this binary builds a tokio runtime: current-thread, timers
//! and I/O on. The boxes have 2 cores and the work is I/O-bound; one thread
//! keeps memory and scheduling predictable.

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use tokio::task::JoinHandle;

pub fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `tokio::spawn`, through one task type per output type: `task` is boxed
/// as a trait object. tokio compiles its task machinery (cell, harness,
/// join handle, and the future's state machine inlined into its poll) once
/// per spawned future type, a few KB of the release binary apiece
/// (docs/architecture.md, "Binary size"). For tasks spawned once or per
/// netlink socket, where one allocation and an indirect poll cost nothing;
/// the API's per-connection tasks keep `tokio::spawn`.
pub fn spawn<T: Send + 'static>(task: impl Future<Output = T> + Send + 'static) -> JoinHandle<T> {
    spawn_boxed(Box::pin(task))
}

fn spawn_boxed<T: Send + 'static>(
    task: Pin<Box<dyn Future<Output = T> + Send + 'static>>,
) -> JoinHandle<T> {
    tokio::spawn(task)
}

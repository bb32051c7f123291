//! What the drivers of core's sans-IO machines (`enrol_task`, `sync_task`)
//! share: the clock they feed the machines, and the outcome of an HTTP
//! exchange or a blocking store call as the machines take it.

use std::any::Any;
use std::time::Duration;

use gondwana_core::node_enrol::Exchange;
use gondwana_core::time::Millis;
use http::StatusCode;

/// Every call to the hub: long enough for a slow link, short enough that a
/// black-holed tunnel counts as lost contact within one pull.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The machines' clock: [`Millis`] since the driver started.
pub struct Clock(tokio::time::Instant);

impl Clock {
    pub fn start() -> Clock {
        Clock(tokio::time::Instant::now())
    }

    pub fn now(&self) -> Millis {
        Millis::from_elapsed(self.0.elapsed())
    }

    pub async fn sleep_until(&self, deadline: Millis) {
        tokio::time::sleep_until(self.0 + deadline.since_epoch()).await
    }
}

/// An error as the logs and status show it (with its causes).
pub fn text(e: impl Into<anyhow::Error>) -> String {
    format!("{:#}", e.into())
}

/// The outcome of a blocking store call run off the runtime's thread.
pub fn joined<T, E: Into<anyhow::Error>>(
    r: Result<Result<T, E>, tokio::task::JoinError>,
) -> Result<T, String> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(text(e)),
        Err(e) => Err(text(e)),
    }
}

pub fn refused<T>(status: StatusCode, body: &[u8]) -> Exchange<T> {
    Exchange::Refused {
        status: status.to_string(),
        detail: error_text(body),
    }
}

/// The hub's JSON error (`error: detail`), else the start of the body.
pub fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => format!(
            "{}: {}",
            v["error"].as_str().unwrap_or("error"),
            v["detail"].as_str().unwrap_or("")
        ),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// A value of any type, as the blocking pool hands it back to [`blocking`].
type AnyValue = Box<dyn Any + Send>;

/// Runs `f` on tokio's blocking pool, as `tokio::task::spawn_blocking`
/// does, but through one task type for every caller: each distinct
/// `spawn_blocking` closure compiles tokio's task machinery anew, ~2 KB of
/// the release binary apiece (docs/architecture.md, "Binary size"). For
/// the cold store calls and checks of the candidates, paths, view, sync,
/// revocation and node enrolment tasks, of the daemon's start, the admin
/// socket, grant commands and the identity-log, directory and mirror
/// routes; the price is one allocation per call. The hub's enrolment route,
/// status and peer programming (measured by scripts/bench) keep
/// `spawn_blocking`.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let out = spawn_any(Box::new(move || Box::new(f()) as AnyValue)).await?;
    match out.downcast::<T>() {
        Ok(value) => Ok(*value),
        // The closure above boxed a T: nothing else comes back.
        Err(_) => unreachable!("blocking: the pool returned another type"),
    }
}

fn spawn_any(f: Box<dyn FnOnce() -> AnyValue + Send>) -> tokio::task::JoinHandle<AnyValue> {
    tokio::task::spawn_blocking(f)
}

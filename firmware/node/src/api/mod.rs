//! The HTTP API plumbing: listeners (TCP and the admin Unix socket) with
//! size and time limits, the request/response/error types that routes use,
//! routing helpers, a node-to-node client, per-source rate limiting and
//! Prometheus metrics. The routes themselves implement [`Handler`].
#![allow(dead_code, unused_imports)] // wired by the daemon

pub mod client;
mod message;
pub mod metrics;
pub mod process_metrics;
pub mod rate_limit;
mod route;
pub mod server;

pub use client::{ClientError, request};
pub use message::parse_query_param;
pub use message::{
    ApiError, ApiRequest, ApiResponse, CONTENT_TYPE_JSON, CONTENT_TYPE_OCTETS, CONTENT_TYPE_TEXT,
    Handler, UNIX_PEER,
};
pub use metrics::{Metrics, PROMETHEUS_CONTENT_TYPE};
pub use rate_limit::RateLimiter;
pub use route::{query_param, segments};
pub use server::{Limits, serve, serve_unix};

//! The HTTP server of `wasi-http serve`, above any [`Handler`]: one worker thread
//! per core, each a current-thread Tokio runtime with its own `SO_REUSEPORT`
//! listener (a request's connection, handler and response never change threads);
//! HTTP/1.1 and HTTP/2 (h2c, or TLS with ALPN); connection limits; admission
//! (slots and a bounded queue, then 503); header and body limits and timeouts;
//! idle connections; an access line per request; Prometheus [`Metrics`] (with a
//! `/metrics` and `/healthz` listener, [`serve_metrics`]); graceful drain.
//!
//! Below the seam sit the WASI 0.2 and 0.3 services of `wasi-http-host`, or
//! anything else that implements [`Handler`]; this crate never sees a component.
//!
//! [`Handler`]: wasi_http_core::Handler
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod admission;
mod batched_log;
mod conn;
mod metrics;
mod respond;
mod server;
mod watchdog;

pub use admission::{Admission, Rejected};
pub use batched_log::{BatchedLog, BatchedLogWriter};
pub use metrics::{serve_metrics, ExternalCounter, Metrics, METRICS_MAX_CONNECTIONS};
pub use server::{Server, ServerConfig, ServerError};
pub use wasi_http_client::{server_tls_config, ServerCertificate, StagedCertificate};

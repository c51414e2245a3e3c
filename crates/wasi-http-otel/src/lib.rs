//! OpenTelemetry tracing for `wasi-http`: [`OtlpTracer`], a
//! [`wasi_http_core::Tracer`] on the OpenTelemetry SDK that exports over
//! OTLP/HTTP (protobuf).
//!
//! Spans never wait for the collector: finished spans go into a bounded queue
//! (a full one drops the span and counts it, [`TraceStats::dropped`]), and a
//! thread of its own sends them in batches, so a dead or slow collector costs
//! a request one failed `try_send` at most. Sampling is parent-based: a
//! request's `traceparent` decides, and a new trace is sampled at
//! [`OtlpConfig::sample_ratio`].
//!
//! The exporter sends through a [`wasi_http_client::Client`] of its own (TLS
//! with the webpki roots, no outbound policy): the guests' policy does not
//! apply to the host's own telemetry.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod export;
mod http_client;
mod tracer;

pub use export::TraceStats;
pub use tracer::{OtelError, OtlpConfig, OtlpTracer};

//! The outbound HTTP client of a WASI HTTP host: what a guest's outgoing requests go
//! through by default.
//!
//! [`Client`] implements [`WasiHttpHooks`](wasi_http_core::WasiHttpHooks), so it is
//! the default policy of a `wasi-http-host` context; an embedder that sends
//! requests some other way implements the hooks instead and never builds one.
//!
//! - Pooled connections: HTTP/1.1 keep-alive per destination, HTTP/2 (by ALPN, or
//!   h2c by prior knowledge for listed destinations) shared; limits per destination
//!   and in flight, with queueing until the connect timeout.
//! - rustls with configurable trust ([`TlsOptions`]) and client certificates.
//! - [`OutboundPolicy`]: an allow-list on the URL, blocked networks on every
//!   resolved address, before any connection.
//! - Typed DNS failures (`DNS-error` with an rcode, `DNS-timeout`) from the system
//!   resolver or, with the `hickory` feature, named nameservers.
//! - One timeout per phase (DNS, connect, TLS, first byte, between bytes), guests'
//!   request options cut to a maximum.
//! - Counters ([`Client::stats`]) for whoever exports metrics.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod dns;
mod framing;
mod policy;
mod pool;
mod stats;
mod tls;

pub use client::{default_tls_config, Client, ClientConfig};
pub use dns::Resolver;
pub use policy::{DestinationRule, OutboundPolicy, RuleError, INTERNAL_NETWORKS};
pub use stats::ClientStatsSnapshot;
pub use tls::{
    server_tls_config, ClientAuth, ServerCertificate, StagedCertificate, TlsError, TlsOptions,
    TrustRoots,
};

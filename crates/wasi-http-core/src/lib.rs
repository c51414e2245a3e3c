//! The version-independent semantics of a WASI HTTP host, free of generated
//! bindings: the `error-code` enum and its status mapping, `fields` (validation,
//! limits, immutability, forbidden names), header and URI rules, request options,
//! the body queue with byte-counted backpressure and the lazy body reader, the
//! policy hooks, and the [`Handler`] seam between a server and the services
//! (WASI 0.2 or 0.3) below it.
//!
//! The `wasi-http-host` crate adapts these to each WASI version; the
//! `wasi-http-client` and `wasi-http-server` crates build on them.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod body;
mod error;
mod fields;
mod handler;
pub mod headers;
mod hooks;
mod limits;
mod options;
pub mod reaper;
mod request_id;
mod responses;
pub mod trace;
pub mod uri;

pub use body::{BodyReader, BodyWriter, ChannelBody, Direction, HostBody};
pub use error::{
    find_in_chain, from_hyper_request_error, from_hyper_response_error, from_io_error,
    DnsErrorPayload, ErrorCode, FieldSizePayload, TlsAlertReceivedPayload,
};
pub use fields::{FieldError, Fields};
pub use handler::{ComponentName, Handler, InFlight, RequestContext, ServiceEvents};
pub use hooks::{IncomingResponse, NoOutbound, OutgoingRequest, ResponseFuture, WasiHttpHooks};
pub use limits::Limits;
pub use options::{HostRequestOptions, OptionsError, RequestOptions, Timeout, Timeouts};
pub use request_id::next_request_id;
pub use responses::{close_after, error_response, unavailable};
pub use trace::{AttrValue, RequestTrace, Span, SpanKind, TraceContext, Tracer};

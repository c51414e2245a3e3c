//! A host implementation of WASI HTTP for Wasmtime components, both versions:
//! [`p2`] (`wasi:http@0.2.x`, the `wasi:http/proxy` world) and [`p3`]
//! (`wasi:http@0.3.0`, the `wasi:http/service` world, native `stream`/`future`,
//! many requests per instance at once).
//!
//! The semantics (error codes, fields, header and URI rules, bodies, request
//! options, policy hooks) are `wasi-http-core`'s, once; each version's module is a
//! thin adapter over them. Outgoing requests go through the policy hooks
//! ([`WasiHttpHooks`]), by default the `wasi-http-client` crate's `Client`
//! (feature `client`).
//!
//! For serving: [`new_engine`] makes an engine, [`detect`] tells a component's
//! version, and [`p2::ProxyService`] / [`p3::Service`] (or [`AnyService`], either)
//! answer requests through the `wasi_http_core::Handler` seam that the
//! `wasi-http-server` crate drives.
#![deny(missing_docs)]
// Denied, not forbidden: the 0.3 bindings `bindgen!` generates contain `unsafe`
// (allowed on that module alone); this crate writes none.
#![deny(unsafe_code)]

mod convert;
mod ctx;
mod detect;
mod engine;
mod error;
#[cfg(feature = "p2")]
pub mod p2;
#[cfg(feature = "p3")]
pub mod p3;
mod service;

pub use ctx::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
pub use detect::{detect, AnyService, ComponentKind, DetectError};
pub use engine::{new_engine, EngineConfig, EPOCH_TICK};
pub use error::HttpError;
pub use service::{GuestOutput, GuestState, InstanceReuse, ServiceConfig, ServiceError};
pub use wasi_http_core::{
    ErrorCode, Fields, IncomingResponse, Limits, OutgoingRequest, ResponseFuture, WasiHttpHooks,
};

/// Selects [`WasiHttpCtxView`] as the implementation of the generated traits.
pub(crate) struct HasHttp;

impl wasmtime::component::HasData for HasHttp {
    type Data<'a> = WasiHttpCtxView<'a>;
}

/// The hooks of a default context: the default client, or no outbound requests
/// without the `client` feature.
pub(crate) fn default_hooks() -> std::sync::Arc<dyn WasiHttpHooks> {
    #[cfg(feature = "client")]
    {
        std::sync::Arc::new(wasi_http_client::Client::default())
    }
    #[cfg(not(feature = "client"))]
    {
        std::sync::Arc::new(wasi_http_core::NoOutbound)
    }
}

//! A host implementation of WASI HTTP (`wasi:http@0.2.x`, the `wasi:http/proxy` world)
//! for Wasmtime components.
//!
//! Embedders link it into their own `wasmtime` engine; [`ProxyService`] serves a proxy
//! component over hyper with a fresh instance per request.
//!
//! # Embedding
//!
//! The store's data implements [`WasiHttpView`] (and `wasmtime_wasi::WasiView`), the
//! linker gets [`add_to_linker_async`], and requests go in with
//! [`WasiHttpCtxView::new_incoming_request`]:
//!
//! ```no_run
//! use wasi_http_host::{bindings::ProxyPre, WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
//! use wasmtime::component::{Component, Linker, ResourceTable};
//! use wasmtime::{Engine, Store};
//! use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
//!
//! struct MyState {
//!     wasi: WasiCtx,
//!     http: WasiHttpCtx,
//!     table: ResourceTable,
//! }
//!
//! impl WasiView for MyState {
//!     fn ctx(&mut self) -> WasiCtxView<'_> {
//!         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
//!     }
//! }
//!
//! impl WasiHttpView for MyState {
//!     fn http(&mut self) -> WasiHttpCtxView<'_> {
//!         WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table }
//!     }
//! }
//!
//! # async fn run() -> wasmtime::Result<()> {
//! let engine = Engine::default();
//! let component = Component::from_file(&engine, "guest.wasm")?;
//! let mut linker = Linker::<MyState>::new(&engine);
//! wasi_http_host::add_to_linker_async(&mut linker)?;
//! let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;
//!
//! // Per request: a fresh store and instance.
//! let state = MyState {
//!     wasi: WasiCtx::builder().build(),
//!     http: WasiHttpCtx::default(),
//!     table: ResourceTable::new(),
//! };
//! let mut store = Store::new(&engine, state);
//! let request = http::Request::get("http://localhost/hello")
//!     .body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! let mut view = store.data_mut().http();
//! let req = view.new_incoming_request(http::uri::Scheme::HTTP, request)?;
//! let (out, response) = view.new_response_outparam()?;
//! let proxy = pre.instantiate_async(&mut store).await?;
//! let guest = tokio::spawn(async move {
//!     proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
//! });
//! // Resolves when the guest sets the response; the body streams as it writes.
//! let response = response.await?;
//! println!("status {}", response.status());
//! let _ = guest.await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
// `unsafe` is denied everywhere but in `cache`, which maps precompiled code
// (see its module docs for why that is sound).
#![deny(unsafe_code)]

pub mod bindings;
mod body;
mod cache;
mod client;
mod ctx;
pub mod error_code;
mod fields;
mod host;
mod limits;
mod linker;
mod metrics;
mod reaper;
mod request;
mod response;
mod server;
mod trailers;

pub use body::{boxed, empty, HostBody, HostIncomingBody, HostOutgoingBody};
pub use cache::{CacheError, CacheOutcome, ComponentCache, ComponentCacheConfig};
pub use client::{
    default_tls_config, server_tls_config, Client, ClientAuth, ClientConfig, DestinationRule,
    HostFutureIncomingResponse, IncomingResponse, OutboundPolicy, OutgoingRequest, Resolver,
    ResponseFuture, RuleError, TlsError, TlsOptions, TrustRoots, INTERNAL_NETWORKS,
};
pub use ctx::{
    DefaultHooks, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
    DEFAULT_FORBIDDEN_HEADERS,
};
pub use error_code::{ErrorCode, ErrorCodeError, HttpError};
pub use fields::{FieldsError, HostFields};
pub use limits::Limits;
pub use linker::{
    add_only_http_to_linker, add_to_linker_async, add_to_linker_async_with_wasi,
    add_to_linker_sync, add_to_linker_sync_with_wasi,
};
pub use metrics::{serve_metrics, Metrics};
pub use request::{HostIncomingRequest, HostOutgoingRequest, HostRequestOptions};
pub use response::{HostIncomingResponse, HostOutgoingResponse, HostResponseOutparam};
pub use server::{
    new_engine, BatchedLog, BatchedLogWriter, EngineConfig, GuestOutput, GuestResponseError,
    IncomingRequestError, InstanceReuse, ProxyService, ProxyState, ResponseReceiver, Server,
    ServerConfig, ServerError, ServiceConfig, ServiceError, EPOCH_TICK,
};
pub use trailers::HostFutureTrailers;

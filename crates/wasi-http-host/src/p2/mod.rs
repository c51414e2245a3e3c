//! WASI 0.2: `wasi:http@0.2.x` (the `wasi:http/proxy` world), for guests built
//! against any `wasi:*@0.2.N` with N <= 12.
//!
//! A thin adapter: the generated host traits look resources up, delegate to
//! `wasi-http-core` and convert. The 0.2 resources are host types of their own
//! ([`HostIncomingRequest`], ...); `fields` and `request-options` are the
//! version-independent [`wasi_http_core::Fields`] and
//! [`wasi_http_core::HostRequestOptions`].
//!
//! # Embedding
//!
//! The store's data implements [`WasiHttpView`](crate::WasiHttpView) (and
//! `wasmtime_wasi::WasiView`), the linker gets [`add_to_linker_async`], and
//! requests go in with [`WasiHttpCtxView::new_incoming_request`](crate::WasiHttpCtxView::new_incoming_request):
//!
//! ```no_run
//! use wasi_http_host::p2::bindings::ProxyPre;
//! use wasi_http_host::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
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
//! wasi_http_host::p2::add_to_linker_async(&mut linker)?;
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
//!
//! [`ProxyService`] does all of that, with limits, deadlines and instance reuse.

pub mod bindings;
mod body;
mod host;
mod linker;
mod outgoing;
mod resources;
mod service;

pub use self::body::{HostFutureTrailers, HostIncomingBody, HostOutgoingBody};
pub use self::linker::{
    add_only_http_to_linker, add_to_linker_async, add_to_linker_async_with_wasi,
    add_to_linker_sync, add_to_linker_sync_with_wasi,
};
pub use self::outgoing::HostFutureIncomingResponse;
pub use self::resources::{
    GuestResponseError, HostIncomingRequest, HostIncomingResponse, HostOutgoingRequest,
    HostOutgoingResponse, HostResponseOutparam, IncomingRequestError, ResponseReceiver,
};
pub use self::service::ProxyService;

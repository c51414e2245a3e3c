//! WASI 0.3: `wasi:http@0.3.0` (the `wasi:http/service` world), with the component
//! model's native `stream<u8>` and `future<T>` and many requests per instance at
//! once.
//!
//! A thin adapter: the generated host traits look resources up, delegate to
//! `wasi-http-core` and convert. `request` and `response` are [`HostRequest`] and
//! [`HostResponse`]; `fields` and `request-options` are the version-independent
//! [`wasi_http_core::Fields`] and [`wasi_http_core::HostRequestOptions`]. Bodies
//! a guest writes are piped into the core's body queue as the guest writes them
//! (backpressure: the queue's byte budget), received bodies are read frame by
//! frame as the guest reads.
//!
//! # Embedding
//!
//! The engine needs the component model's async ABI
//! ([`EngineConfig::component_model_async`](crate::EngineConfig::component_model_async)),
//! the store's data implements [`WasiHttpView`](crate::WasiHttpView) and
//! `wasmtime_wasi::WasiView`, the linker gets [`add_to_linker`]; calls go through
//! the store's event loop (`Store::run_concurrent`). [`Service`] does all of it,
//! with instance reuse, limits and deadlines:
//!
//! ```no_run
//! use wasi_http_core::RequestContext;
//! use wasi_http_host::{new_engine, EngineConfig, ServiceConfig};
//! use wasmtime::component::Component;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = EngineConfig::default();
//! config.component_model_async = true;
//! let (engine, _pooling) = new_engine(&config)?;
//! let component = Component::from_file(&engine, "service.wasm")?;
//! let service = wasi_http_host::p3::Service::new(&engine, &component, ServiceConfig::default())?;
//!
//! let request = http::Request::get("http://localhost/hello")
//!     .body(http_body_util::Empty::<bytes::Bytes>::new())?;
//! let response = service
//!     .handle(request, RequestContext::new(http::uri::Scheme::HTTP))
//!     .await;
//! // The body streams as the guest writes it.
//! println!("status {}", response.status());
//! # Ok(())
//! # }
//! ```

pub mod bindings;
mod body;
mod host;
mod instance;
mod linker;
mod resources;
mod service;

pub use self::linker::{add_only_http_to_linker, add_to_linker, add_to_linker_with_p2};
pub use self::resources::{HostRequest, HostResponse};
pub use self::service::Service;

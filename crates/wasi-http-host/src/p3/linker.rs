//! Adding the 0.3 host to a `wasmtime::component::Linker` (whose engine has the
//! component model's async ABI: [`crate::EngineConfig::component_model_async`]).

use wasmtime::component::Linker;
use wasmtime_wasi::WasiView;

use crate::{HasHttp, WasiHttpView};

/// Adds the `wasi:http/service` and `wasi:http/middleware` worlds' imports:
/// `wasi:http@0.3.0` (types, client, handler) and `wasmtime-wasi`'s WASI 0.3 cli, clocks, random, filesystem and
/// sockets. What guests may use is what the store's `WasiCtx` grants.
pub fn add_to_linker<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiHttpView + WasiView + Send + 'static,
{
    wasmtime_wasi::p3::add_to_linker(linker)?;
    add_only_http_to_linker(linker)
}

/// [`add_to_linker`] plus all of WASI 0.2 (including `wasi:http@0.2.x`): real 0.3
/// components import 0.2 interfaces too (componentize-py's import two dozen at
/// 0.2.9, the WASI test suite's 0.2.4 cli and io).
pub fn add_to_linker_with_p2<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiHttpView + WasiView + Send + 'static,
{
    add_to_linker(linker)?;
    #[cfg(feature = "p2")]
    crate::p2::add_to_linker_async_with_wasi(linker)?;
    #[cfg(not(feature = "p2"))]
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    Ok(())
}

/// Adds only `wasi:http/types@0.3.0`, `wasi:http/client@0.3.0` and the
/// `wasi:http/handler@0.3.0` import of middleware (its requests go to
/// [`WasiHttpHooks::forward_request`](wasi_http_core::WasiHttpHooks::forward_request)).
pub fn add_only_http_to_linker<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiHttpView + Send + 'static,
{
    super::bindings::http::types::add_to_linker::<T, HasHttp>(linker, T::http)?;
    super::bindings::http::client::add_to_linker::<T, HasHttp>(linker, T::http)?;
    super::bindings::http::handler::add_to_linker::<T, HasHttp>(linker, T::http)?;
    Ok(())
}

//! Adding the 0.2 host to a `wasmtime::component::Linker`.

use wasmtime::component::Linker;
use wasmtime_wasi::WasiView;

use crate::{HasHttp, WasiHttpView};

/// Adds the `wasi:http/proxy` imports (HTTP plus the proxy world's `wasi:io`, clocks,
/// random and stdio from `wasmtime-wasi`), for async embeddings.
pub fn add_to_linker_async<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiHttpView + WasiView + 'static,
{
    wasmtime_wasi::p2::add_to_linker_proxy_interfaces_async(linker)?;
    add_only_http_to_linker(linker)
}

/// Adds the `wasi:http/proxy` imports for synchronous embeddings (blocking
/// `wasi:io` functions run on `wasmtime-wasi`'s ambient Tokio runtime).
pub fn add_to_linker_sync<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiHttpView + WasiView + 'static,
{
    wasmtime_wasi::p2::add_to_linker_proxy_interfaces_sync(linker)?;
    add_only_http_to_linker(linker)
}

/// Adds `wasi:http` plus all of WASI p2 (cli environment/exit/terminal, filesystem,
/// sockets), for guests that import more than the proxy world. What they may use is
/// what the store's `WasiCtx` grants (by default: nothing).
pub fn add_to_linker_async_with_wasi<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiHttpView + WasiView + 'static,
{
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    add_only_http_to_linker(linker)
}

/// The synchronous counterpart of [`add_to_linker_async_with_wasi`].
pub fn add_to_linker_sync_with_wasi<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiHttpView + WasiView + 'static,
{
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    add_only_http_to_linker(linker)
}

/// Adds only `wasi:http/types` and `wasi:http/outgoing-handler`; the embedder adds
/// `wasi:io` and the rest. The host functions never block, so they serve both
/// sync and async embeddings.
pub fn add_only_http_to_linker<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiHttpView + 'static,
{
    // `send-informational` is behind an unstable WIT feature; link it so guests that
    // import it get an error result rather than a link failure.
    let mut options = super::bindings::http::types::LinkOptions::default();
    options.informational_outbound_responses(true);
    super::bindings::http::types::add_to_linker::<T, HasHttp>(linker, &options, T::http)?;
    super::bindings::http::outgoing_handler::add_to_linker::<T, HasHttp>(linker, T::http)?;
    Ok(())
}

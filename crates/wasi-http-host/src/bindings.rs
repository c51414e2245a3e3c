//! The one place that runs `bindgen!`: Rust types and host traits generated from the
//! vendored `wasi:http@0.2.12` WIT. `wasi:io`, `wasi:clocks`, `wasi:random` and `wasi:cli`
//! are mapped onto `wasmtime-wasi`'s p2 bindings so streams and pollables are shared.
#![allow(missing_docs)]

mod generated {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasi-http-host:bindings/proxy",
        imports: { default: tracing | trappable },
        exports: { default: async },
        require_store_data_send: true,
        trappable_error_type: {
            "wasi:http/types.error-code" => crate::error_code::HttpError,
        },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:random": wasmtime_wasi::p2::bindings::random,
            "wasi:cli": wasmtime_wasi::p2::bindings::cli,
            "wasi:http/types.fields": crate::fields::HostFields,
            "wasi:http/types.incoming-request": crate::request::HostIncomingRequest,
            "wasi:http/types.outgoing-request": crate::request::HostOutgoingRequest,
            "wasi:http/types.request-options": crate::request::HostRequestOptions,
            "wasi:http/types.response-outparam": crate::response::HostResponseOutparam,
            "wasi:http/types.incoming-response": crate::response::HostIncomingResponse,
            "wasi:http/types.outgoing-response": crate::response::HostOutgoingResponse,
            "wasi:http/types.incoming-body": crate::body::HostIncomingBody,
            "wasi:http/types.outgoing-body": crate::body::HostOutgoingBody,
            "wasi:http/types.future-trailers": crate::trailers::HostFutureTrailers,
            "wasi:http/types.future-incoming-response": crate::client::HostFutureIncomingResponse,
        },
    });
}

pub use generated::exports;
pub use generated::wasi::http;
pub use generated::{Proxy, ProxyIndices, ProxyPre};

/// The same world for synchronous embeddings: `call_handle` is a plain function.
/// The imports are the ones above (the host functions never block).
pub mod sync {
    mod generated {
        wasmtime::component::bindgen!({
            path: "wit",
            world: "wasi-http-host:bindings/proxy",
            require_store_data_send: true,
            with: {
                "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
                "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
                "wasi:random": wasmtime_wasi::p2::bindings::random,
                "wasi:cli": wasmtime_wasi::p2::bindings::cli,
                "wasi:http": crate::bindings::http,
            },
        });
    }

    pub use generated::exports;
    pub use generated::{Proxy, ProxyIndices, ProxyPre};
}

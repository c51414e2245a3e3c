//! The one place that runs `bindgen!` for WASI 0.2: Rust types and host traits
//! generated from the vendored `wasi:http@0.2.12` WIT (`wit/`). `wasi:io`,
//! `wasi:clocks`, `wasi:random` and `wasi:cli` are mapped onto `wasmtime-wasi`'s p2
//! bindings so streams and pollables are shared; `fields` and `request-options`
//! are the version-independent types of `wasi-http-core`.
#![allow(missing_docs)]

mod generated {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "wasi-http-host:bindings/proxy",
        imports: { default: tracing | trappable },
        exports: { default: async },
        require_store_data_send: true,
        trappable_error_type: {
            "wasi:http/types.error-code" => crate::HttpError,
        },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:random": wasmtime_wasi::p2::bindings::random,
            "wasi:cli": wasmtime_wasi::p2::bindings::cli,
            "wasi:http/types.fields": wasi_http_core::Fields,
            "wasi:http/types.incoming-request": crate::p2::HostIncomingRequest,
            "wasi:http/types.outgoing-request": crate::p2::HostOutgoingRequest,
            "wasi:http/types.request-options": wasi_http_core::HostRequestOptions,
            "wasi:http/types.response-outparam": crate::p2::HostResponseOutparam,
            "wasi:http/types.incoming-response": crate::p2::HostIncomingResponse,
            "wasi:http/types.outgoing-response": crate::p2::HostOutgoingResponse,
            "wasi:http/types.incoming-body": crate::p2::HostIncomingBody,
            "wasi:http/types.outgoing-body": crate::p2::HostOutgoingBody,
            "wasi:http/types.future-trailers": crate::p2::HostFutureTrailers,
            "wasi:http/types.future-incoming-response": crate::p2::HostFutureIncomingResponse,
        },
    });
}

pub use generated::exports;
pub use generated::wasi::http;
pub use generated::{Proxy, ProxyIndices, ProxyPre};

mod conversions {
    use super::generated::wasi::http::types::{
        DnsErrorPayload, FieldSizePayload, TlsAlertReceivedPayload,
    };
    wasi_http_core::error_code_conversions!(super::generated::wasi::http::types::ErrorCode);
    crate::convert::method_and_scheme_conversions!(super::generated::wasi::http::types);

    use super::generated::wasi::http::types::HeaderError;
    use wasi_http_core::FieldError;

    impl From<FieldError> for HeaderError {
        fn from(e: FieldError) -> Self {
            match e {
                FieldError::InvalidSyntax => HeaderError::InvalidSyntax,
                FieldError::Immutable => HeaderError::Immutable,
                // 0.2.12 has no size case: a limit is `forbidden` (documented).
                FieldError::Forbidden | FieldError::SizeExceeded => HeaderError::Forbidden,
                _ => HeaderError::Forbidden,
            }
        }
    }
}

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
                "wasi:http": crate::p2::bindings::http,
            },
        });
    }

    pub use generated::exports;
    pub use generated::{Proxy, ProxyIndices, ProxyPre};
}

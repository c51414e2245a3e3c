//! The one place that runs `bindgen!` for WASI 0.3: Rust types and host traits
//! generated from the vendored `wasi:http@0.3.0` WIT (`wit-p3/`). `wasi:cli`,
//! `wasi:clocks` and `wasi:random` are `wasmtime-wasi`'s p3 bindings; `fields` and
//! `request-options` are the version-independent types of `wasi-http-core`.
#![allow(missing_docs)]

// The generated export wrappers use `unsafe` (`TypedFunc::new_unchecked` on a
// function whose type bindgen checked): Wasmtime's code, not ours.
#[allow(unsafe_code)]
mod generated {
    wasmtime::component::bindgen!({
        path: "wit-p3",
        world: "wasi-http-host:bindings-p3/service",
        imports: {
            "wasi:http/client.send": async | store | trappable | tracing,
            "wasi:http/handler.handle": async | store | trappable | tracing,
            "wasi:http/types.[static]request.new": store | trappable | tracing,
            "wasi:http/types.[static]request.consume-body": store | trappable | tracing,
            "wasi:http/types.[static]response.new": store | trappable | tracing,
            "wasi:http/types.[static]response.consume-body": store | trappable | tracing,
            default: trappable | tracing,
        },
        exports: { default: async | store },
        require_store_data_send: true,
        trappable_error_type: {
            "wasi:http/types.error-code" => crate::HttpError,
        },
        with: {
            "wasi:cli": wasmtime_wasi::p3::bindings::cli,
            "wasi:clocks": wasmtime_wasi::p3::bindings::clocks,
            "wasi:random": wasmtime_wasi::p3::bindings::random,
            "wasi:http/types.fields": wasi_http_core::Fields,
            "wasi:http/types.request-options": wasi_http_core::HostRequestOptions,
            "wasi:http/types.request": crate::p3::HostRequest,
            "wasi:http/types.response": crate::p3::HostResponse,
        },
    });
}

pub use generated::exports;
pub use generated::wasi::http;
pub use generated::{Service, ServiceIndices, ServicePre};

mod conversions {
    use super::generated::wasi::http::types::{
        DnsErrorPayload, FieldSizePayload, TlsAlertReceivedPayload,
    };
    wasi_http_core::error_code_conversions!(super::generated::wasi::http::types::ErrorCode);
    crate::convert::method_and_scheme_conversions!(super::generated::wasi::http::types);
}

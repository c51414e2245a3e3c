//! Implementations of 0.2's `bindgen!`-generated host traits. They only look
//! resources up in the table, delegate and convert.

mod body;
mod fields;
mod request;
mod response;

use wasmtime::component::Resource;

use crate::p2::bindings::http::types::{self, ErrorCode};
use crate::p2::{HostFutureIncomingResponse, HostOutgoingRequest};
use crate::{HttpError, WasiHttpCtxView};

impl types::Host for WasiHttpCtxView<'_> {
    fn convert_error_code(&mut self, err: HttpError) -> wasmtime::Result<ErrorCode> {
        err.into_guest()
    }

    fn http_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::IoError>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let err = self.table.get(&err)?;
        Ok(err
            .downcast_ref::<wasi_http_core::ErrorCode>()
            .map(|code| code.clone().into()))
    }
}

impl crate::p2::bindings::http::outgoing_handler::Host for WasiHttpCtxView<'_> {
    fn handle(
        &mut self,
        request: Resource<HostOutgoingRequest>,
        options: Option<Resource<wasi_http_core::HostRequestOptions>>,
    ) -> Result<Resource<HostFutureIncomingResponse>, HttpError> {
        let span = tracing::debug_span!("outgoing-request");
        let _enter = span.enter();
        crate::p2::outgoing::handle(self, request, options)
    }
}

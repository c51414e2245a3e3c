//! Implementations of the `bindgen!`-generated host traits. They only look resources up
//! in the table and delegate to the concept modules (`fields`, `request`, ...).

mod body;
mod fields;
mod handler;
mod request;
mod response;

use wasmtime::component::{HasData, Resource};

use crate::bindings::http::types;
use crate::error_code::{ErrorCode, ErrorCodeError, HttpError};
use crate::WasiHttpCtxView;

/// Selects [`WasiHttpCtxView`] as the implementation of the generated traits.
pub(crate) struct HasHttp;

impl HasData for HasHttp {
    type Data<'a> = WasiHttpCtxView<'a>;
}

impl types::Host for WasiHttpCtxView<'_> {
    fn convert_error_code(&mut self, err: HttpError) -> wasmtime::Result<ErrorCode> {
        err.into_guest()
    }

    fn http_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::IoError>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let err = self.table.get(&err)?;
        Ok(err.downcast_ref::<ErrorCodeError>().map(|e| e.0.clone()))
    }
}

impl crate::bindings::http::outgoing_handler::Host for WasiHttpCtxView<'_> {
    fn handle(
        &mut self,
        request: Resource<crate::request::HostOutgoingRequest>,
        options: Option<Resource<crate::request::HostRequestOptions>>,
    ) -> Result<Resource<crate::client::HostFutureIncomingResponse>, HttpError> {
        handler::handle(self, request, options)
    }
}

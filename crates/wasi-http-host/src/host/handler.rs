use wasmtime::component::Resource;

use crate::client::HostFutureIncomingResponse;
use crate::error_code::HttpError;
use crate::request::{HostOutgoingRequest, HostRequestOptions};
use crate::WasiHttpCtxView;

pub(super) fn handle(
    view: &mut WasiHttpCtxView<'_>,
    request: Resource<HostOutgoingRequest>,
    options: Option<Resource<HostRequestOptions>>,
) -> Result<Resource<HostFutureIncomingResponse>, HttpError> {
    let span = tracing::debug_span!("outgoing-request");
    let _enter = span.enter();
    crate::client::handle(view, request, options)
}

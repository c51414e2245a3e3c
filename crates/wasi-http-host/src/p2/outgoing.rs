//! 0.2's `outgoing-handler.handle` and `future-incoming-response`: the guest's
//! request is checked and handed to the hooks (by default the client); the
//! response head arrives in the background.

use futures::FutureExt;
use wasi_http_core::body::BodyReader;
use wasi_http_core::{
    Direction, ErrorCode, Fields, HostRequestOptions, IncomingResponse, OutgoingRequest,
};
use wasmtime::component::Resource;
use wasmtime_wasi::p2::Pollable;
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;

use super::body::HostIncomingBody;
use super::{HostIncomingResponse, HostOutgoingRequest};
use crate::{HttpError, WasiHttpCtx, WasiHttpCtxView};

/// The host side of a `future-incoming-response` resource.
pub struct HostFutureIncomingResponse {
    state: FutureState,
}

enum FutureState {
    Pending(AbortOnDropJoinHandle<Result<IncomingResponse, ErrorCode>>),
    Ready(Result<IncomingResponse, ErrorCode>),
    Consumed,
}

#[wasmtime_wasi::async_trait]
impl Pollable for HostFutureIncomingResponse {
    async fn ready(&mut self) {
        if let FutureState::Pending(handle) = &mut self.state {
            let result = handle.await;
            self.state = FutureState::Ready(result);
        }
    }
}

impl HostFutureIncomingResponse {
    /// `None` while pending, `Some(Err(()))` once consumed.
    pub(crate) fn take(&mut self) -> Option<Result<Result<IncomingResponse, ErrorCode>, ()>> {
        if let FutureState::Pending(handle) = &mut self.state {
            let result = handle.now_or_never()?;
            self.state = FutureState::Ready(result);
        }
        match std::mem::replace(&mut self.state, FutureState::Consumed) {
            FutureState::Ready(result) => Some(Ok(result)),
            FutureState::Consumed => Some(Err(())),
            FutureState::Pending(_) => None,
        }
    }
}

/// `outgoing-handler.handle`: validates the request, applies policy, starts sending.
pub(crate) fn handle(
    view: &mut WasiHttpCtxView<'_>,
    request: Resource<HostOutgoingRequest>,
    options: Option<Resource<HostRequestOptions>>,
) -> Result<Resource<HostFutureIncomingResponse>, HttpError> {
    let req = view.table.delete(request)?;
    let options = match options {
        Some(options) => view.table.delete(options)?.options().clone(),
        None => Default::default(),
    };
    let hooks = view.ctx.hooks.clone();
    view.ctx.started += 1;

    let method = req
        .method
        .to_http()
        .ok_or(ErrorCode::HttpRequestMethodInvalid)?;
    // The WIT lets the host pick a scheme when the guest sets none: HTTPS is the safe one.
    let scheme = match &req.scheme {
        Some(s) => s.to_http().ok_or(ErrorCode::HttpProtocolError)?,
        None => http::uri::Scheme::HTTPS,
    };
    if !hooks.is_supported_scheme(&scheme) {
        return Err(ErrorCode::HttpProtocolError.into());
    }
    let uri = wasi_http_core::uri::outgoing_uri(
        Some(scheme),
        req.authority.as_deref(),
        req.path_with_query.as_deref(),
    )?;
    if wasi_http_core::headers::content_length(req.headers.map()).is_err() {
        return Err(ErrorCode::HttpProtocolError.into());
    }
    let body = match req.body.into_body() {
        Some(body) => http_body_util::BodyExt::boxed_unsync(body),
        None => wasi_http_core::body::empty(),
    };
    let mut http_req = http::Request::new(body);
    *http_req.method_mut() = method;
    *http_req.uri_mut() = uri;
    *http_req.headers_mut() = req.headers.into_map();

    let mut outgoing = OutgoingRequest::new(http_req);
    outgoing.trace = view.ctx.trace.clone();
    outgoing.call_depth = view.ctx.call_depth;
    outgoing.options = options;
    let future = hooks.send_request(outgoing)?;
    // Spawned so the request makes progress (and its body is consumed) while the
    // guest writes the body, whether or not it polls the future.
    let handle = wasmtime_wasi::runtime::spawn(future);
    let resource = view.table.push(HostFutureIncomingResponse {
        state: FutureState::Pending(handle),
    })?;
    Ok(resource)
}

/// Turns a received response into an `incoming-response` for the guest.
pub(crate) fn into_guest_response(
    ctx: &WasiHttpCtx,
    response: IncomingResponse,
) -> Result<HostIncomingResponse, ErrorCode> {
    let (parts, body) = response.response.into_parts();
    let headers = Fields::from_received(parts.headers, &ctx.limits)
        .map_err(|_| ErrorCode::HttpResponseHeaderSectionSize(None))?;
    let reader = BodyReader::new(
        body,
        response.between_bytes_timeout,
        &ctx.limits,
        Direction::Response,
    );
    Ok(HostIncomingResponse {
        status: parts.status.as_u16(),
        headers,
        body: Some(HostIncomingBody::new(reader)),
    })
}

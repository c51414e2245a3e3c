//! 0.2's message resources: `incoming-request`, `outgoing-request`,
//! `outgoing-response`, `response-outparam` and `incoming-response`, and the
//! embedder's side of an incoming request (`new_incoming_request`,
//! `new_response_outparam`, [`ResponseReceiver`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Body;
use tokio::sync::oneshot;
use wasi_http_core::body::{BodyReader, BodyWriter};
use wasi_http_core::{Direction, ErrorCode, Fields, HostBody, Limits};
use wasmtime::component::Resource;

use super::bindings::http::types::{Method, Scheme};
use super::body::{HostIncomingBody, OutgoingBodySlot};
use crate::WasiHttpCtxView;

/// The host side of an `incoming-request` resource: a request received by the server.
pub struct HostIncomingRequest {
    pub(crate) method: http::Method,
    pub(crate) scheme: Option<http::uri::Scheme>,
    pub(crate) authority: Option<String>,
    pub(crate) path_with_query: Option<String>,
    pub(crate) headers: Fields,
    pub(crate) body: Option<HostIncomingBody>,
}

/// The host side of an `outgoing-request` resource: a request the guest builds.
pub struct HostOutgoingRequest {
    pub(crate) method: Method,
    pub(crate) scheme: Option<Scheme>,
    pub(crate) authority: Option<String>,
    pub(crate) path_with_query: Option<String>,
    pub(crate) headers: Fields,
    pub(crate) body: OutgoingBodySlot,
}

impl HostOutgoingRequest {
    pub(crate) fn new(headers: Fields) -> Self {
        HostOutgoingRequest {
            method: Method::Get,
            scheme: None,
            authority: None,
            path_with_query: None,
            headers,
            body: OutgoingBodySlot::default(),
        }
    }

    /// The guest's `body`: once only. The declared `content-length` is enforced.
    pub(crate) fn take_body(&mut self, limits: &Limits) -> Option<BodyWriter> {
        self.body
            .take_writer(self.headers.map(), limits, Direction::Request)
    }
}

/// The host side of an `outgoing-response` resource: the guest's response.
pub struct HostOutgoingResponse {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: Fields,
    pub(crate) body: OutgoingBodySlot,
}

impl HostOutgoingResponse {
    pub(crate) fn new(headers: Fields) -> Self {
        HostOutgoingResponse {
            status: http::StatusCode::OK,
            headers,
            body: OutgoingBodySlot::default(),
        }
    }

    /// The guest's `body`: once only. The declared `content-length` is enforced.
    pub(crate) fn take_body(&mut self, limits: &Limits) -> Option<BodyWriter> {
        self.body
            .take_writer(self.headers.map(), limits, Direction::Response)
    }

    /// Turns the guest's response into an `http` response for the server.
    pub(crate) fn into_http(self, limits: &Limits) -> http::Response<HostBody> {
        let mut headers = self.headers.into_map();
        let declared = wasi_http_core::headers::content_length(&headers);
        let body = match self.body.into_body() {
            Some(body) => body,
            None => {
                // No body was written: finishing an empty one checks the declared
                // length, so `content-length: 5` with no body aborts instead of hanging.
                let expected = declared.unwrap_or(None);
                let (writer, body) =
                    wasi_http_core::body::channel_of(limits, expected, Direction::Response);
                let _ = writer.finish(None);
                body
            }
        };
        if declared.is_err() {
            // Conflicting or invalid lengths would make the framing ambiguous.
            headers.remove(http::header::CONTENT_LENGTH);
        }
        let mut response = http::Response::new(http_body_util::BodyExt::boxed_unsync(body));
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

/// What the guest delivered through a `response-outparam`.
pub(crate) type GuestResponse = Result<http::Response<HostBody>, ErrorCode>;

/// The host side of a `response-outparam` resource.
pub struct HostResponseOutparam {
    tx: oneshot::Sender<GuestResponse>,
}

impl HostResponseOutparam {
    /// An outparam and the receiver the server awaits.
    fn new() -> (Self, oneshot::Receiver<GuestResponse>) {
        let (tx, rx) = oneshot::channel();
        (HostResponseOutparam { tx }, rx)
    }

    /// Hands the guest's response (or error) to the server.
    pub(crate) fn deliver(self, response: GuestResponse) {
        // The server may have stopped waiting (client gone); nothing to do then.
        let _ = self.tx.send(response);
    }

    /// `send-informational`: hyper's server cannot emit arbitrary 1xx responses, so
    /// this host refuses them with an error the guest can handle.
    pub(crate) fn send_informational(
        &self,
        status: u16,
        _headers: Fields,
    ) -> Result<(), crate::HttpError> {
        if !(100..200).contains(&status) || status == 101 {
            return Err(ErrorCode::HttpProtocolError.into());
        }
        Err(
            ErrorCode::internal("informational (1xx) responses are not supported by this host")
                .into(),
        )
    }
}

/// The host side of an `incoming-response` resource: a response to the guest's request.
pub struct HostIncomingResponse {
    pub(crate) status: u16,
    pub(crate) headers: Fields,
    pub(crate) body: Option<HostIncomingBody>,
}

/// A final (non-1xx) status a guest may set: 200..=999 per the `http` crate's range.
pub(crate) fn final_status(status: u16) -> Option<http::StatusCode> {
    http::StatusCode::from_u16(status)
        .ok()
        .filter(|s| !s.is_informational())
}

/// Why an `http::Request` could not become an `incoming-request`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IncomingRequestError {
    /// The header section exceeds the [`Limits`]; answer 431.
    HeadersTooLarge,
    /// The resource table is full.
    Table(String),
}

impl std::fmt::Display for IncomingRequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IncomingRequestError::HeadersTooLarge => {
                f.write_str("request header section too large")
            }
            IncomingRequestError::Table(e) => write!(f, "resource table: {e}"),
        }
    }
}

impl std::error::Error for IncomingRequestError {}

impl WasiHttpCtxView<'_> {
    /// Makes a 0.2 `incoming-request` resource from a request received by a server.
    ///
    /// The authority comes from the URI (HTTP/2, absolute-form) or else the `Host`
    /// header (HTTP/1.1). `scheme` is how the request arrived (`http` or `https`).
    pub fn new_incoming_request<B>(
        &mut self,
        scheme: http::uri::Scheme,
        request: http::Request<B>,
    ) -> Result<Resource<HostIncomingRequest>, IncomingRequestError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>,
    {
        let (parts, body) = request.into_parts();
        let authority = wasi_http_core::uri::received_authority(&parts);
        let path_with_query = parts.uri.path_and_query().map(|p| p.as_str().to_owned());
        let headers = Fields::from_received(parts.headers, &self.ctx.limits)
            .map_err(|_| IncomingRequestError::HeadersTooLarge)?;
        let reader = BodyReader::new(
            wasi_http_core::body::boxed(body),
            None,
            &self.ctx.limits,
            Direction::Request,
        );
        let request = HostIncomingRequest {
            method: parts.method,
            scheme: Some(scheme),
            authority,
            path_with_query,
            headers,
            body: Some(HostIncomingBody::new(reader)),
        };
        self.table
            .push(request)
            .map_err(|e| IncomingRequestError::Table(e.to_string()))
    }

    /// Makes a 0.2 `response-outparam` and the receiver that resolves when the guest
    /// sets it.
    pub fn new_response_outparam(
        &mut self,
    ) -> wasmtime::Result<(Resource<HostResponseOutparam>, ResponseReceiver)> {
        let (param, rx) = HostResponseOutparam::new();
        Ok((self.table.push(param)?, ResponseReceiver(rx)))
    }
}

/// Why the guest produced no response.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum GuestResponseError {
    /// The guest called `response-outparam.set` with an error code.
    ErrorCode(ErrorCode),
    /// The guest returned (or trapped) without setting the response.
    NotSet,
}

impl std::fmt::Display for GuestResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestResponseError::ErrorCode(code) => {
                write!(f, "guest responded with error {code}")
            }
            GuestResponseError::NotSet => f.write_str("guest did not set a response"),
        }
    }
}

impl std::error::Error for GuestResponseError {}

/// Resolves to the guest's response once it calls `response-outparam.set`.
#[derive(Debug)]
pub struct ResponseReceiver(oneshot::Receiver<GuestResponse>);

impl Future for ResponseReceiver {
    type Output = Result<http::Response<HostBody>, GuestResponseError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(GuestResponseError::ErrorCode(code)),
            Err(_) => Err(GuestResponseError::NotSet),
        })
    }
}

//! Policy hooks an embedder may replace: how outgoing requests are sent, which
//! headers a guest may not set, which schemes it may use.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::body::HostBody;
use crate::error::ErrorCode;
use crate::options::RequestOptions;

/// Policy consulted by the host for every guest. Only
/// [`send_request`](Self::send_request) must be written; the rest has production
/// defaults. The `wasi-http-client` crate's `Client` implements it.
pub trait WasiHttpHooks: Send + Sync {
    /// Sends an outgoing request on the guest's behalf (`outgoing-handler.handle` in
    /// 0.2, `client.send` in 0.3).
    ///
    /// Returning `Err` hands the error code to the guest at once; the returned
    /// future is driven by the host in the background, whether or not the guest
    /// waits for it.
    fn send_request(&self, request: OutgoingRequest) -> Result<ResponseFuture, ErrorCode>;

    /// Hands a request to the next handler: a WASI 0.3 middleware's
    /// `wasi:http/handler` import (`handle`). The default has no next handler
    /// and refuses with `HTTP-request-denied`; a host that chains components
    /// calls the next one here. Returning `Err` hands the error code to the
    /// guest at once.
    fn forward_request(&self, request: OutgoingRequest) -> Result<ResponseFuture, ErrorCode> {
        tracing::warn!(
            path = %request.request.uri().path(),
            "a middleware called its next handler, but none follows it here"
        );
        Err(ErrorCode::HttpRequestDenied)
    }

    /// Whether a guest may not set this header on `fields` it creates. The default
    /// forbids the headers the host manages itself ([`DEFAULT_FORBIDDEN_HEADERS`]).
    ///
    /// [`DEFAULT_FORBIDDEN_HEADERS`]: crate::headers::DEFAULT_FORBIDDEN_HEADERS
    fn is_forbidden_header(&self, name: &http::HeaderName) -> bool {
        crate::headers::is_default_forbidden(name)
    }

    /// Whether an outgoing request may use this scheme. The default allows `http`
    /// and `https`; anything else fails with `HTTP-protocol-error`.
    fn is_supported_scheme(&self, scheme: &http::uri::Scheme) -> bool {
        *scheme == http::uri::Scheme::HTTP || *scheme == http::uri::Scheme::HTTPS
    }
}

/// Hooks that refuse every outgoing request (`HTTP-request-denied`), with the
/// default header and scheme policy: for embedders that give guests no network.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOutbound;

impl WasiHttpHooks for NoOutbound {
    fn send_request(&self, request: OutgoingRequest) -> Result<ResponseFuture, ErrorCode> {
        tracing::warn!(
            destination = %request.request.uri(),
            "outbound request denied: this host sends no outgoing requests"
        );
        Err(ErrorCode::HttpRequestDenied)
    }
}

/// A request on its way out, as handed to [`WasiHttpHooks::send_request`].
#[derive(Debug)]
#[non_exhaustive]
pub struct OutgoingRequest {
    /// The request, with an absolute URI (scheme and authority always present).
    pub request: http::Request<HostBody>,
    /// The timeouts the guest asked for (not yet cut to the host's maximum).
    pub options: RequestOptions,
    /// The tracing of the request the guest was handling when it sent this one:
    /// the sender makes a client span under it and writes `traceparent` (unless
    /// the guest set its own).
    pub trace: Option<crate::trace::RequestTrace>,
    /// The [`call_depth`](crate::RequestContext::call_depth) of the request the
    /// guest was handling: a request handed to another component in-process
    /// goes one deeper.
    pub call_depth: u32,
}

impl OutgoingRequest {
    /// A request with no guest timeouts.
    pub fn new(request: http::Request<HostBody>) -> Self {
        OutgoingRequest {
            request,
            options: RequestOptions::default(),
            trace: None,
            call_depth: 0,
        }
    }
}

/// A response received for an outgoing request.
#[derive(Debug)]
#[non_exhaustive]
pub struct IncomingResponse {
    /// The response; its body streams from the network.
    pub response: http::Response<HostBody>,
    /// Longest wait allowed between two body frames.
    pub between_bytes_timeout: Option<Duration>,
}

impl IncomingResponse {
    /// A response with no between-bytes timeout.
    pub fn new(response: http::Response<HostBody>) -> Self {
        IncomingResponse {
            response,
            between_bytes_timeout: None,
        }
    }
}

/// The future of an outgoing request's response head.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<IncomingResponse, ErrorCode>> + Send>>;

//! The seam between a server and what answers its requests: a server does
//! admission, limits, TLS, logging, metrics and drain, then hands each request to a
//! [`Handler`] (a WASI 0.2 or 0.3 service, or anything else) with a
//! [`RequestContext`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;

use crate::body::HostBody;
use crate::error::ErrorCode;

/// Answers requests. Implementations never fail: their own failures become error
/// responses. Dropping the returned future (the client went away), or the
/// response body before its end, stops the work done for the request.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle<B>(
        &self,
        request: http::Request<B>,
        cx: RequestContext,
    ) -> impl Future<Output = http::Response<HostBody>> + Send
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>;
}

/// What a server hands a [`Handler`] besides the request.
#[non_exhaustive]
pub struct RequestContext {
    /// The request's id, unique in this process (for logs).
    pub id: Arc<str>,
    /// How the request arrived (`http` or `https`).
    pub scheme: http::uri::Scheme,
    /// Where the handler reports guest events (metrics), if anywhere.
    pub events: Option<Arc<dyn ServiceEvents>>,
    /// The request's slot under the server's concurrency limit: the handler keeps
    /// it until all work for the request is done (which may be after the response).
    pub slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The request's tracing (its server span's context), if spans are recorded.
    pub trace: Option<crate::trace::RequestTrace>,
    /// How many in-process calls deep the request is: 0 from the network, one
    /// more for each component that handed it on without a socket (an app's
    /// internal calls). Hooks cut loops with it.
    pub call_depth: u32,
}

impl RequestContext {
    /// A context with a fresh request id, no events and no slot.
    pub fn new(scheme: http::uri::Scheme) -> Self {
        RequestContext::with_id(crate::request_id::next_request_id(), scheme)
    }

    /// A context for the request with this id, no events and no slot.
    pub fn with_id(id: Arc<str>, scheme: http::uri::Scheme) -> Self {
        RequestContext {
            id,
            scheme,
            events: None,
            slot: None,
            trace: None,
            call_depth: 0,
        }
    }
}

/// The component that answered a request, when a handler routes among several
/// (an app): set as a response extension, it names the component in the
/// server's access line, metrics and server span.
#[derive(Debug, Clone)]
pub struct ComponentName(pub Arc<str>);

/// Guest events a handler reports (a server counts them in its metrics). Every
/// method has a do-nothing default.
pub trait ServiceEvents: Send + Sync {
    /// A guest started working for a request.
    fn guest_started(&self) {}
    /// ... and is done (stopped, trapped or finished).
    fn guest_finished(&self) {}
    /// An instance was made in `elapsed`.
    fn instantiated(&self, elapsed: Duration) {
        let _ = elapsed;
    }
    /// A guest trapped; `deadline`: it was stopped at its request deadline.
    fn trapped(&self, deadline: bool) {
        let _ = deadline;
    }
}

/// Counts a running guest with [`ServiceEvents::guest_started`] for as long as it
/// lives.
pub struct InFlight(Option<Arc<dyn ServiceEvents>>);

impl InFlight {
    /// Starts counting (nothing without `events`).
    pub fn new(events: Option<Arc<dyn ServiceEvents>>) -> Self {
        if let Some(events) = &events {
            events.guest_started();
        }
        InFlight(events)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(events) = &self.0 {
            events.guest_finished();
        }
    }
}

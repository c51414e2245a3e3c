//! Requests that go from one component of an app to another without the
//! network: internal calls (`http://NAME.internal/...`, to the components a
//! component's `call` lists) and a middleware's next handler in a route's
//! chain. Both are the callee's service handling the caller's request
//! in-process: its body streams in from the caller, the callee's response
//! streams back, under the callee's own limits and deadline. The policy (who
//! may call whom, the depth limit, admission) is here; the mechanism is the
//! hooks of `wasi-http-core`.

use std::sync::{Arc, OnceLock, Weak};

use wasi_http_core::{
    ErrorCode, Handler, IncomingResponse, OutgoingRequest, RequestContext, ResponseFuture,
    WasiHttpHooks,
};
use wasi_http_host::AnyService;

use crate::app::{PATH_INFO_HEADER, ROUTE_HEADER};

/// The reserved host suffix of internal calls: `http://NAME.internal/`.
pub(crate) const INTERNAL_SUFFIX: &str = ".internal";

/// How deep in-process calls may nest (a request handed on 508 times is in a
/// loop; the caller gets `loop-detected`). 508 is the limit RFC 5842 gives
/// WebDAV's loop detection and what Spin users expect.
pub(crate) const MAX_CALL_DEPTH: u32 = 508;

/// An app's components by name, for internal calls. Hooks hold it weakly: the
/// app owns its components, whose hooks point back at them.
pub(crate) type Components = Vec<(Arc<str>, AnyService)>;

/// The server's admission, set once it is bound (an app is built before, and
/// again on every reload).
pub(crate) type AdmissionCell = Arc<OnceLock<wasi_http_server::Admission>>;

/// What every component's hooks of one app share: its components (set once
/// they are all built), the server's admission and metrics.
#[derive(Clone)]
pub(crate) struct Shared {
    components: Arc<OnceLock<Weak<Components>>>,
    admission: AdmissionCell,
    metrics: wasi_http_server::Metrics,
}

impl Shared {
    pub(crate) fn new(admission: AdmissionCell, metrics: wasi_http_server::Metrics) -> Self {
        Shared {
            components: Arc::default(),
            admission,
            metrics,
        }
    }

    /// Makes `components` the targets of internal calls.
    pub(crate) fn set_components(&self, components: &Arc<Components>) {
        let _ = self.components.set(Arc::downgrade(components));
    }
}

/// What one component of an app reaches besides the network.
pub(crate) struct Links {
    /// Its name (for logs).
    pub(crate) name: Arc<str>,
    /// The components its `call` lists.
    pub(crate) may_call: Vec<Arc<str>>,
    pub(crate) shared: Shared,
    /// The next component of the chain it is a middleware in, and that one's name.
    pub(crate) next: Option<(Arc<str>, AnyService)>,
}

/// A component's hooks: its own outbound client for the network, internal
/// calls to the components it may call, and its next handler in a chain.
pub(crate) struct CallHooks {
    client: wasi_http_client::Client,
    links: Links,
}

impl CallHooks {
    pub(crate) fn new(client: wasi_http_client::Client, links: Links) -> Self {
        CallHooks { client, links }
    }
}

impl WasiHttpHooks for CallHooks {
    fn send_request(&self, request: OutgoingRequest) -> Result<ResponseFuture, ErrorCode> {
        match internal_name(request.request.uri()) {
            Some(callee) => self.call(callee.to_owned(), request),
            None => self.client.send_request(request),
        }
    }

    fn forward_request(&self, request: OutgoingRequest) -> Result<ResponseFuture, ErrorCode> {
        let Some((name, next)) = &self.links.next else {
            tracing::warn!(
                component = %self.links.name,
                "a middleware called its next handler outside a chain: no route puts a \
                 component after it (use it in a `chain = [...]`)"
            );
            return Err(ErrorCode::HttpRequestDenied);
        };
        // Part of the request the chain was admitted for: no slot of its own.
        let cx = context(&request, None)?;
        Ok(in_process(
            name.clone(),
            next.clone(),
            request,
            cx,
            self.links.shared.metrics.clone(),
        ))
    }

    fn is_forbidden_header(&self, name: &http::HeaderName) -> bool {
        self.client.is_forbidden_header(name)
    }

    fn is_supported_scheme(&self, scheme: &http::uri::Scheme) -> bool {
        self.client.is_supported_scheme(scheme)
    }
}

impl CallHooks {
    fn call(&self, callee: String, request: OutgoingRequest) -> Result<ResponseFuture, ErrorCode> {
        let Some(name) = self
            .links
            .may_call
            .iter()
            .find(|n| n.eq_ignore_ascii_case(&callee))
            .cloned()
        else {
            tracing::warn!(
                component = %self.links.name,
                callee,
                "internal call denied: add the callee to the component's `call = [...]`"
            );
            return Err(ErrorCode::HttpRequestDenied);
        };
        let components = self
            .links
            .shared
            .components
            .get()
            .and_then(Weak::upgrade)
            .ok_or(ErrorCode::HttpRequestDenied)?;
        let service = components
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.clone())
            .ok_or(ErrorCode::HttpRequestDenied)?;
        let admission = self.links.shared.admission.get().cloned();
        let metrics = self.links.shared.metrics.clone();
        let scheme = http::uri::Scheme::HTTP;
        let mut cx = context(&request, Some(scheme))?;
        Ok(Box::pin(async move {
            // The same slots and queue as requests from the network: internal
            // calls never run more guests than the server's limit.
            if let Some(admission) = admission {
                match admission.admit().await {
                    Ok(permit) => cx.slot = Some(permit),
                    Err(e) => {
                        tracing::warn!(callee = %name, error = %e, "internal call refused");
                        return Ok(IncomingResponse::new(wasi_http_core::unavailable()));
                    }
                }
            }
            let mut request = request;
            // A callee's route headers are the router's, never a caller's.
            request.request.headers_mut().remove(ROUTE_HEADER);
            request.request.headers_mut().remove(PATH_INFO_HEADER);
            in_process(name, service, request, cx, metrics).await
        }))
    }
}

/// `NAME` of `http://NAME.internal/...` (the host, case-insensitively).
fn internal_name(uri: &http::Uri) -> Option<&str> {
    let host = uri.host()?;
    let cut = host.len().checked_sub(INTERNAL_SUFFIX.len())?;
    (host.is_char_boundary(cut) && host[cut..].eq_ignore_ascii_case(INTERNAL_SUFFIX))
        .then(|| &host[..cut])
}

/// The callee's request context: one level deeper than the caller's request,
/// in the same trace.
fn context(
    request: &OutgoingRequest,
    scheme: Option<http::uri::Scheme>,
) -> Result<RequestContext, ErrorCode> {
    let depth = request.call_depth + 1;
    if depth > MAX_CALL_DEPTH {
        tracing::warn!(
            depth,
            "in-process call refused: {MAX_CALL_DEPTH} calls deep, a loop between components"
        );
        return Err(ErrorCode::LoopDetected);
    }
    let scheme = scheme
        .or_else(|| request.request.uri().scheme().cloned())
        .unwrap_or(http::uri::Scheme::HTTP);
    let mut cx = RequestContext::new(scheme);
    cx.call_depth = depth;
    cx.trace = request.trace.clone();
    Ok(cx)
}

/// The callee handling the request; its response, streaming, as if from the
/// network.
fn in_process(
    name: Arc<str>,
    service: AnyService,
    request: OutgoingRequest,
    mut cx: RequestContext,
    metrics: wasi_http_server::Metrics,
) -> ResponseFuture {
    // The guest's own timeouts, as the network client applies them: the
    // response head within the first-byte timeout, the body's frames apart by
    // at most the between-bytes one. The callee's deadline is its own.
    let first_byte = request.options.first_byte_timeout;
    let between_bytes = request.options.between_bytes_timeout;
    let request = request.request;
    cx.events = Some(metrics.events());
    Box::pin(async move {
        let handled = service.handle(request, cx);
        let response = match first_byte {
            Some(limit) => tokio::time::timeout(limit, handled)
                .await
                .map_err(|_| ErrorCode::ConnectionReadTimeout)?,
            None => handled.await,
        };
        metrics.answered_by(&name, response.status());
        let mut response = IncomingResponse::new(response);
        response.between_bytes_timeout = between_bytes;
        Ok(response)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_names() {
        let name = |u: &str| internal_name(&u.parse().unwrap()).map(str::to_owned);
        assert_eq!(name("http://api.internal/x").as_deref(), Some("api"));
        assert_eq!(name("http://API.INTERNAL:80/").as_deref(), Some("API"));
        assert_eq!(name("https://auth.internal").as_deref(), Some("auth"));
        assert_eq!(name("http://api.internal.example/"), None);
        assert_eq!(name("http://internal/"), None);
        assert_eq!(name("http://example.com/"), None);
    }
}

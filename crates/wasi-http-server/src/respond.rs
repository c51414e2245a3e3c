//! What happens to one request above the [`Handler`]: header and body limits,
//! admission (slots and a bounded queue), then the handler, then metrics and the
//! access line when the response body ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::time::{Duration, Instant};

use http_body::Body;
use http_body_util::BodyExt;
use wasi_http_core::body::{BodyEnd, BodyWatch, Watched};
use wasi_http_core::{
    close_after, error_response, next_request_id, unavailable, ErrorCode, Handler, HostBody,
    RequestContext,
};

use crate::conn::Busy;
use crate::server::Shared;
use crate::watchdog::Progress;

/// Admission, limits, the handler, then the access log and metrics.
pub(crate) async fn respond<H: Handler>(
    shared: &Arc<Shared<H>>,
    req: http::Request<hyper::body::Incoming>,
    scheme: http::uri::Scheme,
    busy: Busy,
) -> http::Response<HostBody> {
    let started = Instant::now();
    let config = &shared.config;
    let id = next_request_id();
    let line = AccessLine {
        id: id.clone(),
        component: None,
        method: req.method().clone(),
        // Shares the request's bytes: no copy.
        path: req.uri().path_and_query().cloned(),
        version: req.version(),
    };
    let mut span = config
        .tracer
        .as_ref()
        .map(|tracer| server_span(tracer, &req, &scheme));
    let trace = span
        .as_ref()
        .zip(config.tracer.as_ref())
        .map(|(span, tracer)| wasi_http_core::RequestTrace {
            tracer: tracer.clone(),
            context: span.context(),
        });
    let response = admit_and_handle(shared, req, scheme, id, trace).await;
    // Found here, in the task that sends the response (HTTP/2: the stream's).
    let progress = config.response_write_timeout.map(|_| busy.progress());
    let status = response.status();
    config.metrics.answered(status, started.elapsed());
    let mut line = line;
    if let Some(component) = response.extensions().get::<wasi_http_core::ComponentName>() {
        config.metrics.answered_by(&component.0, status);
        if let Some(span) = span.as_mut().filter(|s| s.is_recording()) {
            span.set_attribute("wasi_http.component", component.0.to_string().into());
        }
        line.component = Some(component.0.clone());
    }
    if let Some(span) = span.as_mut().filter(|s| s.is_recording()) {
        span.set_attribute(
            "http.response.status_code",
            i64::from(status.as_u16()).into(),
        );
        if status.is_server_error() {
            span.set_error(status.as_str().to_owned().into());
        }
    }
    response.map(|body| {
        let declared = body.size_hint().exact();
        Watched::new(
            body,
            AccessLog {
                declared,
                bytes: 0,
                line: config.access_log.then_some(line),
                status,
                started,
                progress,
                span,
                _busy: busy,
            },
        )
        .boxed_unsync()
    })
}

/// The request's server span, a child of the client's `traceparent` if it sent
/// one (OpenTelemetry's HTTP server conventions).
fn server_span<B>(
    tracer: &Arc<dyn wasi_http_core::Tracer>,
    req: &http::Request<B>,
    scheme: &http::uri::Scheme,
) -> Box<dyn wasi_http_core::Span> {
    let parent = wasi_http_core::TraceContext::from_headers(req.headers());
    let method = wasi_http_core::trace::method_name(req.method());
    let name = if method == "_OTHER" { "HTTP" } else { method };
    let mut span = tracer.start(
        std::borrow::Cow::Borrowed(name),
        wasi_http_core::SpanKind::Server,
        parent.as_ref(),
    );
    if span.is_recording() {
        span.set_attribute("http.request.method", method.into());
        let scheme = if *scheme == http::uri::Scheme::HTTPS {
            "https"
        } else {
            "http"
        };
        span.set_attribute("url.scheme", scheme.into());
        span.set_attribute("url.path", req.uri().path().to_owned().into());
        if let Some(query) = req.uri().query() {
            span.set_attribute("url.query", query.to_owned().into());
        }
        let version = match req.version() {
            http::Version::HTTP_2 => "2",
            http::Version::HTTP_10 => "1.0",
            _ => "1.1",
        };
        span.set_attribute("network.protocol.version", version.into());
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers().get(http::header::HOST)?.to_str().ok());
        if let Some(authority) = authority.filter(|a| wasi_http_core::uri::valid_authority(a)) {
            span.set_attribute("server.address", authority.to_owned().into());
        }
    }
    span
}

async fn admit_and_handle<H: Handler>(
    shared: &Arc<Shared<H>>,
    req: http::Request<hyper::body::Incoming>,
    scheme: http::uri::Scheme,
    id: Arc<str>,
    trace: Option<wasi_http_core::RequestTrace>,
) -> http::Response<HostBody> {
    let config = &shared.config;
    let metrics = &config.metrics;
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > config.max_header_bytes {
        metrics.rejected("headers_too_large");
        return error_response(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    if let Err(e) = wasi_http_core::uri::check_received_authority(&req) {
        tracing::debug!(error = %e, "request refused: bad authority");
        metrics.rejected("invalid_authority");
        return close_after(error_response(http::StatusCode::BAD_REQUEST));
    }
    // hyper has already refused an invalid or conflicting length; this is the
    // number it framed the body by.
    let declared = wasi_http_core::headers::content_length(req.headers())
        .ok()
        .flatten();
    if let (Some(max), Some(len)) = (config.max_request_body_bytes, declared) {
        if len > max {
            metrics.rejected("body_too_large");
            return close_after(error_response(http::StatusCode::PAYLOAD_TOO_LARGE));
        }
    }

    // A free slot, or a place in the bounded queue.
    let Ok(permit) = shared.admission.admit().await else {
        return unavailable();
    };

    let verdict = Arc::new(BodyVerdict::default());
    let req = req.map(|body| {
        Watched::new(
            body,
            BodyLimit {
                read: 0,
                max: config.max_request_body_bytes,
                timeout: config.request_body_timeout,
                sleep: None,
                armed: false,
                verdict: verdict.clone(),
            },
        )
    });
    let mut cx = RequestContext::with_id(id, scheme);
    cx.events = Some(metrics.events());
    cx.slot = Some(permit);
    cx.trace = trace;
    let response = shared.handler.handle(req, cx).await;
    // The guest saw its body stream fail; whatever it answered, the client's
    // mistake decides the status.
    match verdict.get() {
        Some(status) => close_after(error_response(status)),
        None => response,
    }
}

/// Why a request body was cut off, if it was.
#[derive(Default)]
struct BodyVerdict(std::sync::Mutex<Option<http::StatusCode>>);

impl BodyVerdict {
    fn set(&self, status: http::StatusCode) {
        if let Ok(mut v) = self.0.lock() {
            v.get_or_insert(status);
        }
    }

    fn get(&self) -> Option<http::StatusCode> {
        self.0.lock().ok().and_then(|v| *v)
    }
}

/// A request body's size limit and between-frames timeout.
struct BodyLimit {
    read: u64,
    max: Option<u64>,
    timeout: Duration,
    /// One timer per body, re-armed (not reallocated) after each frame.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
    verdict: Arc<BodyVerdict>,
}

impl BodyWatch for BodyLimit {
    fn data(&mut self, len: usize) -> Result<(), ErrorCode> {
        self.armed = false;
        self.read += len as u64;
        if self.max.is_some_and(|max| self.read > max) {
            self.verdict.set(http::StatusCode::PAYLOAD_TOO_LARGE);
            return Err(ErrorCode::HttpRequestBodySize(Some(self.read)));
        }
        Ok(())
    }

    fn pending(&mut self, cx: &mut Context<'_>) -> Result<(), ErrorCode> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if !self.armed {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.armed = true;
        if sleep.as_mut().poll(cx).is_ready() {
            self.verdict.set(http::StatusCode::REQUEST_TIMEOUT);
            return Err(ErrorCode::ConnectionReadTimeout);
        }
        Ok(())
    }
}

struct AccessLine {
    id: Arc<str>,
    /// The component that answered, in an app.
    component: Option<Arc<str>>,
    method: http::Method,
    path: Option<http::uri::PathAndQuery>,
    version: http::Version,
}

/// The response body, counted; the access line is written when it ends or drops.
struct AccessLog {
    /// The body's declared length (`content-length`), if any.
    declared: Option<u64>,
    bytes: u64,
    line: Option<AccessLine>,
    status: http::StatusCode,
    started: Instant,
    /// Where the response write timeout's watchdog sees this body's progress.
    progress: Option<Arc<Progress>>,
    /// The request's server span, ended when the body is.
    span: Option<Box<dyn wasi_http_core::Span>>,
    _busy: Busy,
}

impl BodyWatch for AccessLog {
    fn data(&mut self, len: usize) -> Result<(), ErrorCode> {
        self.bytes += len as u64;
        if let Some(progress) = &self.progress {
            progress.sent();
        }
        Ok(())
    }

    fn pending(&mut self, _cx: &mut Context<'_>) -> Result<(), ErrorCode> {
        if let Some(progress) = &self.progress {
            progress.asked();
        }
        Ok(())
    }

    fn end(&mut self, end: BodyEnd<'_>) {
        if let Some(progress) = &self.progress {
            progress.asked();
        }
        let outcome = match end {
            BodyEnd::Complete => "complete",
            BodyEnd::Failed(_) => "body error",
            BodyEnd::Dropped { inner_ended } => {
                // hyper stops polling a body once its content-length is written (or
                // it says it has ended), so a body dropped then was delivered whole;
                // it never polls the body of a response that has none (HEAD, 204,
                // 304).
                let bodiless = self.status == http::StatusCode::NO_CONTENT
                    || self.status == http::StatusCode::NOT_MODIFIED
                    || self
                        .line
                        .as_ref()
                        .is_some_and(|line| line.method == http::Method::HEAD);
                if bodiless || inner_ended || self.declared == Some(self.bytes) {
                    "complete"
                } else {
                    "client gone before the end"
                }
            }
        };
        if let Some(span) = self.span.as_mut().filter(|s| s.is_recording()) {
            span.set_attribute("http.response.body.size", (self.bytes as i64).into());
            if outcome != "complete" {
                span.set_error(outcome.into());
            }
        }
        // Ends the server span.
        self.span = None;
        if let Some(line) = self.line.take() {
            tracing::info!(
                target: "wasi_http::access",
                request_id = %line.id,
                component = line.component.as_deref(),
                method = %line.method,
                path = %line.path.as_ref().map_or("/", |p| p.as_str()),
                version = ?line.version,
                status = self.status.as_u16(),
                bytes = self.bytes,
                // Whole microseconds, so the number prints as `0.223`, not
                // `0.22294599999999998`.
                duration_ms = self.started.elapsed().as_micros() as f64 / 1000.0,
                outcome,
            );
        }
    }
}

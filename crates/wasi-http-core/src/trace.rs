//! Distributed tracing, version-independent and free of any tracing SDK: W3C
//! trace context (`traceparent` and `tracestate`, read from requests and
//! written into outgoing ones) and the [`Tracer`] seam spans go through. A
//! request's [`RequestTrace`] flows from the server (its server span) through
//! the [`RequestContext`](crate::RequestContext) to the guest's store and into
//! each [`OutgoingRequest`](crate::OutgoingRequest), whose client span and
//! injected `traceparent` continue the trace. Without a tracer, nothing of it
//! exists and nothing is spent.

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};

/// The W3C trace context of a span: what `traceparent` (and `tracestate`) carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    state: Option<HeaderValue>,
    remote: bool,
}

const SAMPLED: u8 = 0x01;

impl TraceContext {
    /// A span's context (`None` for an all-zero trace or span id, which W3C
    /// trace context declares invalid).
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], sampled: bool) -> Option<Self> {
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            flags: if sampled { SAMPLED } else { 0 },
            state: None,
            remote: false,
        })
    }

    /// With this `tracestate` (passed on as it came).
    pub fn with_state(mut self, state: Option<HeaderValue>) -> Self {
        self.state = state;
        self
    }

    /// The trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The span id.
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// Whether the trace is sampled (recorded).
    pub fn is_sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The `tracestate` to pass on, if any.
    pub fn state(&self) -> Option<&HeaderValue> {
        self.state.as_ref()
    }

    /// Whether this context came from another process (a request's headers).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The context a request's `traceparent` (and `tracestate`) carry: exactly
    /// one `traceparent` of version `00` (or a later version's first four
    /// fields, as the spec asks), with non-zero ids. Anything else is no
    /// context: the request starts a new trace.
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
        let mut values = headers.get_all("traceparent").iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let mut context = parse_traceparent(value.as_bytes())?;
        // Several `tracestate` lines are one list (RFC 9110 §5.3); passed on
        // joined, at most 512 bytes as the spec lets vendors truncate.
        let mut state = String::new();
        for v in headers.get_all("tracestate") {
            let Ok(v) = v.to_str() else {
                return Some(context);
            };
            if !state.is_empty() {
                state.push(',');
            }
            state.push_str(v.trim());
        }
        if !state.is_empty() && state.len() <= 512 {
            context.state = HeaderValue::from_str(&state).ok();
        }
        context.remote = true;
        Some(context)
    }

    /// The `traceparent` value: `00-<trace id>-<span id>-<flags>`.
    pub fn traceparent(&self) -> HeaderValue {
        let mut out = Vec::with_capacity(55);
        out.extend_from_slice(b"00-");
        hex_into(&self.trace_id, &mut out);
        out.push(b'-');
        hex_into(&self.span_id, &mut out);
        out.push(b'-');
        hex_into(&[self.flags & SAMPLED], &mut out);
        // Lowercase hex and dashes: always a valid header value.
        HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Writes `traceparent` (and `tracestate`) into `headers`, unless they
    /// already carry a `traceparent` (a guest that propagates its own).
    pub fn inject(&self, headers: &mut HeaderMap) {
        if headers.contains_key("traceparent") {
            return;
        }
        headers.insert("traceparent", self.traceparent());
        if let Some(state) = &self.state {
            headers.insert("tracestate", state.clone());
        }
    }
}

fn hex_into(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

fn parse_traceparent(v: &[u8]) -> Option<TraceContext> {
    // version "-" trace-id "-" parent-id "-" trace-flags, lowercase hex.
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex_byte(&v[0..2])?;
    // Version ff is invalid; version 00 has exactly 55 bytes; a later version
    // may append fields after another dash.
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let mut trace_id = [0u8; 16];
    for (i, b) in trace_id.iter_mut().enumerate() {
        *b = hex_byte(&v[3 + 2 * i..5 + 2 * i])?;
    }
    let mut span_id = [0u8; 8];
    for (i, b) in span_id.iter_mut().enumerate() {
        *b = hex_byte(&v[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = hex_byte(&v[53..55])?;
    let mut context = TraceContext::new(trace_id, span_id, flags & SAMPLED != 0)?;
    context.flags = flags & SAMPLED;
    Some(context)
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(two[0])? << 4 | digit(two[1])?)
}

/// A method's name for spans: the standard ones as they are, anything else
/// `_OTHER` (OpenTelemetry's HTTP conventions: a bounded set of values).
pub fn method_name(method: &http::Method) -> &'static str {
    use http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::PATCH => "PATCH",
        M::CONNECT => "CONNECT",
        M::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// What a span is, in OpenTelemetry's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpanKind {
    /// The handling of a request received (the server span).
    Server,
    /// A request sent (an outgoing request's span).
    Client,
    /// Work inside the host (instantiation, the guest's handling).
    Internal,
}

/// A span attribute's value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AttrValue {
    /// Text.
    Str(Cow<'static, str>),
    /// An integer.
    I64(i64),
    /// A flag.
    Bool(bool),
}

impl From<&'static str> for AttrValue {
    fn from(s: &'static str) -> Self {
        AttrValue::Str(Cow::Borrowed(s))
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(Cow::Owned(s))
    }
}

impl From<i64> for AttrValue {
    fn from(n: i64) -> Self {
        AttrValue::I64(n)
    }
}

impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        AttrValue::Bool(b)
    }
}

/// Where spans go: an OpenTelemetry exporter in `wasi-http serve`
/// (`wasi-http-otel`), anything else for an embedder.
pub trait Tracer: Send + Sync + 'static {
    /// Starts a span, a child of `parent` (a new trace without one); the tracer's
    /// sampler decides whether it is recorded. It ends when dropped.
    fn start(
        &self,
        name: Cow<'static, str>,
        kind: SpanKind,
        parent: Option<&TraceContext>,
    ) -> Box<dyn Span>;
}

/// A started span; it ends when dropped.
pub trait Span: Send {
    /// Its context (what children and outgoing requests carry).
    fn context(&self) -> TraceContext;
    /// Whether it is recorded: attributes of an unsampled span are not worth
    /// computing.
    fn is_recording(&self) -> bool;
    /// Sets an attribute.
    fn set_attribute(&mut self, key: &'static str, value: AttrValue);
    /// Marks the span failed, with why.
    fn set_error(&mut self, description: Cow<'static, str>);
}

/// A request's tracing: the tracer and the context its work continues (the
/// server span's, then the guest's handling span's).
#[derive(Clone)]
pub struct RequestTrace {
    /// Where spans go.
    pub tracer: Arc<dyn Tracer>,
    /// The parent of the spans made for this request.
    pub context: TraceContext,
}

impl std::fmt::Debug for RequestTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTrace")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl RequestTrace {
    /// Starts a child span of this request's context; and the trace its own
    /// children continue.
    pub fn child(&self, name: &'static str, kind: SpanKind) -> (Box<dyn Span>, RequestTrace) {
        let span = self
            .tracer
            .start(Cow::Borrowed(name), kind, Some(&self.context));
        let trace = RequestTrace {
            tracer: self.tracer.clone(),
            context: span.context(),
        };
        (span, trace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn traceparent_round_trip_and_refusals() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::from_headers(&headers(&[
            ("traceparent", tp),
            ("tracestate", "a=1"),
            ("tracestate", "b=2"),
        ]))
        .unwrap();
        assert!(ctx.is_sampled() && ctx.is_remote());
        assert_eq!(ctx.traceparent(), tp);
        assert_eq!(ctx.state().unwrap(), "a=1,b=2");
        // A later version with an extra field is read; its flags keep the
        // sampled bit only.
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what";
        let ctx = TraceContext::from_headers(&headers(&[("traceparent", later)])).unwrap();
        assert!(ctx.traceparent().to_str().unwrap().ends_with("-01"));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
        ] {
            assert_eq!(
                TraceContext::from_headers(&headers(&[("traceparent", bad)])),
                None,
                "{bad}"
            );
        }
        // Two traceparents: neither is trusted.
        assert_eq!(
            TraceContext::from_headers(&headers(&[("traceparent", tp), ("traceparent", tp)])),
            None
        );
    }

    #[test]
    fn inject_leaves_a_guests_own_traceparent() {
        let ctx = TraceContext::new([1; 16], [2; 8], false).unwrap();
        let mut h = HeaderMap::new();
        ctx.inject(&mut h);
        assert_eq!(
            h["traceparent"],
            "00-01010101010101010101010101010101-0202020202020202-00"
        );
        let mut own = headers(&[("traceparent", "guest's")]);
        ctx.inject(&mut own);
        assert_eq!(own["traceparent"], "guest's");
    }
}

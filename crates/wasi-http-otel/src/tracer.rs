//! [`OtlpTracer`]: the SDK's tracer behind `wasi_http_core::Tracer`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind as OtelKind, Status, TraceContextExt, TraceFlags,
    TraceId, TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanExporter as _};
use opentelemetry_sdk::Resource;
use wasi_http_core::{AttrValue, SpanKind, TraceContext};

use crate::export::{Batching, QueueProcessor, TraceStats};

/// Where and how spans are exported.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OtlpConfig {
    /// The collector's traces URL, e.g. `http://collector:4318/v1/traces`
    /// ([`OtlpConfig::traces_url`] makes it from a base endpoint).
    pub traces_url: String,
    /// The `service.name` resource attribute. Default: `OTEL_SERVICE_NAME` (read
    /// by the SDK) or `wasi-http`.
    pub service_name: Option<String>,
    /// The share of new traces (no sampled parent) that is recorded, 0 to 1.
    /// A request's `traceparent` decides for its own trace. Default: 1.
    pub sample_ratio: f64,
    /// Most finished spans waiting for export; past it they are dropped (and
    /// counted). Default: 2048.
    pub max_queue: usize,
    /// Most spans per export request. Default: 512.
    pub max_batch: usize,
    /// Longest a span waits for its batch to fill. Default: 1 s.
    pub batch_interval: Duration,
    /// Longest one export may take. Default: 10 s.
    pub export_timeout: Duration,
}

impl OtlpConfig {
    /// Settings for the collector at `traces_url`, defaults otherwise.
    pub fn new(traces_url: impl Into<String>) -> Self {
        OtlpConfig {
            traces_url: traces_url.into(),
            service_name: None,
            sample_ratio: 1.0,
            max_queue: 2048,
            max_batch: 512,
            batch_interval: Duration::from_secs(1),
            export_timeout: Duration::from_secs(10),
        }
    }

    /// The traces URL of an OTLP/HTTP endpoint's base (`OTEL_EXPORTER_OTLP_ENDPOINT`
    /// semantics): `http://collector:4318` becomes `http://collector:4318/v1/traces`.
    pub fn traces_url(endpoint: &str) -> String {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    }
}

/// Why tracing could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum OtelError {
    /// The traces URL is not an absolute `http` or `https` URL.
    Endpoint(String),
    /// The OTLP exporter could not be built.
    Exporter(String),
    /// The export thread could not start.
    Thread(std::io::Error),
}

impl std::fmt::Display for OtelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OtelError::Endpoint(url) => write!(
                f,
                "OTLP endpoint `{url}` is not an http:// or https:// URL (e.g. \
                 http://localhost:4318)"
            ),
            OtelError::Exporter(e) => write!(f, "cannot build the OTLP exporter: {e}"),
            OtelError::Thread(e) => write!(f, "cannot start the trace export thread: {e}"),
        }
    }
}

impl std::error::Error for OtelError {}

/// A [`wasi_http_core::Tracer`] exporting to an OTLP/HTTP collector.
#[derive(Clone)]
pub struct OtlpTracer {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    stats: Arc<TraceStats>,
    /// Spans started while backing off, for choosing the few to record.
    backed_off: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for OtlpTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpTracer").finish_non_exhaustive()
    }
}

impl OtlpTracer {
    /// Starts exporting (a thread of its own sends the batches).
    pub fn start(config: OtlpConfig) -> Result<OtlpTracer, OtelError> {
        let url: http::Uri = config
            .traces_url
            .parse()
            .map_err(|_| OtelError::Endpoint(config.traces_url.clone()))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(OtelError::Endpoint(config.traces_url));
        }
        let mut client = wasi_http_client::ClientConfig::default();
        client.first_byte_timeout = config.export_timeout;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(crate::http_client::ExportClient(
                wasi_http_client::Client::new(client),
            ))
            .with_endpoint(config.traces_url.clone())
            .with_timeout(config.export_timeout)
            .build()
            .map_err(|e| OtelError::Exporter(e.to_string()))?;
        let mut resource = Resource::builder();
        if let Some(name) = &config.service_name {
            resource = resource.with_service_name(name.clone());
        } else if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("wasi-http");
        }
        let resource = resource.build();
        exporter.set_resource(&resource);
        let stats = Arc::new(TraceStats::default());
        let processor = QueueProcessor::start(
            exporter,
            Batching {
                queue: config.max_queue,
                batch: config.max_batch,
                interval: config.batch_interval,
                timeout: config.export_timeout,
            },
            stats.clone(),
        )
        .map_err(OtelError::Thread)?;
        let ratio = config.sample_ratio.clamp(0.0, 1.0);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("wasi-http");
        Ok(OtlpTracer {
            tracer,
            provider,
            stats,
            backed_off: Arc::default(),
        })
    }

    /// The export counters (for metrics).
    pub fn stats(&self) -> Arc<TraceStats> {
        self.stats.clone()
    }

    /// Sends the spans still queued, waiting at most a few seconds. Call from
    /// outside an async runtime (it blocks).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::debug!(error = %e, "trace export shutdown");
        }
    }
}

impl wasi_http_core::Tracer for OtlpTracer {
    fn start(
        &self,
        name: Cow<'static, str>,
        kind: SpanKind,
        parent: Option<&TraceContext>,
    ) -> Box<dyn wasi_http_core::Span> {
        // While spans are being lost (a collector down or slower than the
        // traffic), one in `PROBE` is recorded to find out when it is back; the
        // others only carry the trace on, at next to no cost.
        if self
            .stats
            .backing_off
            .load(std::sync::atomic::Ordering::Relaxed)
            && !self
                .backed_off
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .is_multiple_of(PROBE)
        {
            return Box::new(Unrecorded(unrecorded_context(parent)));
        }
        let kind = match kind {
            SpanKind::Server => OtelKind::Server,
            SpanKind::Client => OtelKind::Client,
            _ => OtelKind::Internal,
        };
        let cx = match parent {
            Some(parent) => Context::new().with_remote_span_context(span_context(parent)),
            None => Context::new(),
        };
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(&self.tracer, &cx);
        Box::new(OtelSpan(span))
    }
}

/// While backing off, one span in this many is recorded.
const PROBE: u64 = 64;

/// A child of `parent` (or a new trace) that is not recorded: what propagation
/// needs, a span id and the parent's trace id and flags.
fn unrecorded_context(parent: Option<&TraceContext>) -> TraceContext {
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
    let ids = RandomIdGenerator::default();
    let span_id = ids.new_span_id().to_bytes();
    let context = match parent {
        Some(p) => TraceContext::new(p.trace_id(), span_id, p.is_sampled())
            .map(|c| c.with_state(p.state().cloned())),
        None => TraceContext::new(ids.new_trace_id().to_bytes(), span_id, false),
    };
    // Random ids are never all zero in practice; a fixed id keeps the type total.
    context.unwrap_or_else(fallback_context)
}

fn fallback_context() -> TraceContext {
    TraceContext::new([1; 16], [1; 8], false).unwrap_or_else(|| unreachable!("non-zero ids"))
}

/// A span that is not recorded, while backing off.
struct Unrecorded(TraceContext);

impl wasi_http_core::Span for Unrecorded {
    fn context(&self) -> TraceContext {
        self.0.clone()
    }

    fn is_recording(&self) -> bool {
        false
    }

    fn set_attribute(&mut self, _key: &'static str, _value: AttrValue) {}

    fn set_error(&mut self, _description: Cow<'static, str>) {}
}

fn span_context(t: &TraceContext) -> SpanContext {
    let state = t
        .state()
        .and_then(|s| s.to_str().ok())
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    SpanContext::new(
        TraceId::from_bytes(t.trace_id()),
        SpanId::from_bytes(t.span_id()),
        if t.is_sampled() {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        t.is_remote(),
        state,
    )
}

/// An SDK span; ends when dropped.
struct OtelSpan(opentelemetry_sdk::trace::Span);

impl wasi_http_core::Span for OtelSpan {
    fn context(&self) -> TraceContext {
        let sc = self.0.span_context();
        let state = sc.trace_state().header();
        TraceContext::new(
            sc.trace_id().to_bytes(),
            sc.span_id().to_bytes(),
            sc.is_sampled(),
        )
        .map(|t| {
            t.with_state(
                (!state.is_empty())
                    .then(|| http::HeaderValue::from_str(&state).ok())
                    .flatten(),
            )
        })
        // The SDK never makes all-zero ids; a fallback keeps the type total.
        .unwrap_or_else(fallback_context)
    }

    fn is_recording(&self) -> bool {
        self.0.is_recording()
    }

    fn set_attribute(&mut self, key: &'static str, value: AttrValue) {
        let kv = match value {
            AttrValue::Str(s) => KeyValue::new(key, s),
            AttrValue::I64(n) => KeyValue::new(key, n),
            AttrValue::Bool(b) => KeyValue::new(key, b),
            _ => return,
        };
        self.0.set_attribute(kv);
    }

    fn set_error(&mut self, description: Cow<'static, str>) {
        self.0.set_status(Status::error(description));
    }
}

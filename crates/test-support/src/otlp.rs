//! An OTLP/HTTP trace receiver on loopback: what a collector would get.

use super::*;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// A span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// Trace id, lowercase hex.
    pub trace_id: String,
    /// Span id, lowercase hex.
    pub span_id: String,
    /// Parent span id, lowercase hex (empty for a root).
    pub parent: String,
    /// Its name.
    pub name: String,
    /// OTLP's kind: 1 internal, 2 server, 3 client.
    pub kind: i32,
    /// Attributes, values as text.
    pub attributes: Vec<(String, String)>,
    /// The `service.name` of its resource.
    pub service: String,
}

impl ReceivedSpan {
    /// An attribute's value as text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Accepts `POST /v1/traces` (protobuf) and keeps every span.
pub struct OtlpReceiver {
    origin: Origin,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(n)) => n.to_string(),
        Some(Value::DoubleValue(f)) => f.to_string(),
        _ => String::new(),
    }
}

impl OtlpReceiver {
    /// Starts it on 127.0.0.1.
    pub async fn start() -> OtlpReceiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        let origin = Origin::start(None, move |req: Request<Incoming>| {
            let sink = sink.clone();
            async move {
                let path = req.uri().path().to_owned();
                let body = req.into_body().collect().await.map(|b| b.to_bytes());
                let decoded = body
                    .ok()
                    .filter(|_| path == "/v1/traces")
                    .and_then(|b| ExportTraceServiceRequest::decode(b).ok());
                let Some(export) = decoded else {
                    return Response::builder()
                        .status(StatusCode::BAD_REQUEST)
                        .body(full("bad export"))
                        .expect("response");
                };
                let mut received = sink.lock().expect("spans");
                for resource_spans in export.resource_spans {
                    let service = resource_spans
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .find(|kv| kv.key == "service.name")
                        .map(|kv| text(kv.value.as_ref()))
                        .unwrap_or_default();
                    for scope in resource_spans.scope_spans {
                        for span in scope.spans {
                            received.push(ReceivedSpan {
                                trace_id: hex(&span.trace_id),
                                span_id: hex(&span.span_id),
                                parent: hex(&span.parent_span_id),
                                name: span.name,
                                kind: span.kind,
                                attributes: span
                                    .attributes
                                    .iter()
                                    .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                                    .collect(),
                                service: service.clone(),
                            });
                        }
                    }
                }
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/x-protobuf")
                    .body(full(Bytes::new()))
                    .expect("response")
            }
        })
        .await;
        OtlpReceiver { origin, spans }
    }

    /// Its base URL (for `--otlp-endpoint`).
    pub fn endpoint(&self) -> String {
        self.origin.url("")
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("spans").clone()
    }

    /// Waits up to `limit` for `n` spans of `trace_id`.
    pub async fn wait_for(&self, trace_id: &str, n: usize, limit: Duration) -> Vec<ReceivedSpan> {
        let start = std::time::Instant::now();
        loop {
            let spans: Vec<ReceivedSpan> = self
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect();
            if spans.len() >= n || start.elapsed() > limit {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

//! Prometheus metrics of a [`Server`](crate::Server), the guests below it and
//! their outgoing client.
//!
//! Every metric is a shared atomic, updated on the request path without locks (the
//! rejection family takes a read lock); the client's counters are its own and are
//! read at scrape time. [`Metrics::encode`] renders the text exposition format.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use wasi_http_client::Client;
use wasi_http_core::ServiceEvents;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = [(&'static str, &'static str); 1];

/// Counters, gauges and histograms of one server. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    /// `requests_total` by status class (1xx..5xx), looked up once rather than per
    /// request; all five series are therefore exported from the start, at 0.
    by_class: [Counter; 5],
    pub(crate) rejected: Family<Labels, Counter>,
    pub(crate) duration: Histogram,
    pub(crate) in_flight: Gauge,
    pub(crate) queued: Gauge,
    pub(crate) connections: Gauge,
    pub(crate) connections_rejected: Counter,
    pub(crate) timeouts: Family<Labels, Counter>,
    /// Requests answered by each component of an app, by status class.
    by_component: Family<Vec<(&'static str, String)>, Counter>,
    /// The outbound clients (one per component), read at scrape time.
    clients: Arc<std::sync::RwLock<Vec<Client>>>,
    pub(crate) instantiation: Histogram,
    /// Whether the server takes traffic (`/readyz`): set once it serves, cleared
    /// when it starts to drain.
    ready: std::sync::atomic::AtomicBool,
    pub(crate) traps: Counter,
    pub(crate) deadline_exceeded: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(None)
    }
}

/// A counter kept elsewhere (by a tracer, say), read at each scrape.
#[non_exhaustive]
pub struct ExternalCounter {
    /// Its name, without the `wasi_http_` prefix and the `_total` suffix.
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Its value now.
    pub value: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl ExternalCounter {
    /// A counter read through `value`.
    pub fn new(
        name: &'static str,
        help: &'static str,
        value: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        ExternalCounter {
            name,
            help,
            value: Arc::new(value),
        }
    }
}

impl std::fmt::Debug for ExternalCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalCounter")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The external counters, read at each scrape.
#[derive(Debug)]
struct ExternalCollector(Vec<ExternalCounter>);

impl Collector for ExternalCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for counter in &self.0 {
            let value = ConstCounter::new((counter.value)());
            value.encode(encoder.encode_descriptor(
                counter.name,
                counter.help,
                None,
                value.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// A fresh set of metrics; with `client`, its outbound counters are included.
    pub fn new(client: Option<&Client>) -> Self {
        Metrics::with_external(client, Vec::new())
    }

    /// Like [`new`](Self::new), with counters kept elsewhere exported too.
    pub fn with_external(client: Option<&Client>, external: Vec<ExternalCounter>) -> Self {
        let mut registry = Registry::with_prefix("wasi_http");
        if !external.is_empty() {
            registry.register_collector(Box::new(ExternalCollector(external)));
        }
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by status class",
            requests.clone(),
        );
        let rejected = Family::<Labels, Counter>::default();
        registry.register(
            "requests_rejected",
            "Requests refused before reaching a guest, by reason",
            rejected.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "request_duration_seconds",
            "Time from request head to response head",
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Requests whose guest is running",
            in_flight.clone(),
        );
        let queued = Gauge::default();
        registry.register(
            "requests_queued",
            "Requests waiting for a free instance slot",
            queued.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections_open",
            "Open client connections",
            connections.clone(),
        );
        let connections_rejected = Counter::default();
        registry.register(
            "connections_rejected",
            "Connections closed at once because the connection limit was reached",
            connections_rejected.clone(),
        );
        let timeouts = Family::<Labels, Counter>::default();
        registry.register(
            "client_timeouts",
            "Connections closed or responses aborted because the client was too slow, \
             by timeout (header_read, response_write)",
            timeouts.clone(),
        );
        let instantiation = Histogram::new(exponential_buckets(0.00001, 2.0, 16));
        registry.register(
            "instantiation_seconds",
            "Time to instantiate the component for a request",
            instantiation.clone(),
        );
        let traps = Counter::default();
        registry.register("guest_traps", "Guest traps", traps.clone());
        let deadline_exceeded = Counter::default();
        registry.register(
            "guest_deadline_exceeded",
            "Guests stopped at the request deadline",
            deadline_exceeded.clone(),
        );
        let clients = Arc::new(std::sync::RwLock::new(
            client.into_iter().cloned().collect(),
        ));
        registry.register_collector(Box::new(ClientCollector(clients.clone())));
        let by_component = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "component_requests",
            "Requests answered by each component of an app, by status class",
            by_component.clone(),
        );
        let by_class = ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .map(|c| requests.get_or_create(&[("class", c)]).clone());
        Metrics {
            inner: Arc::new(Inner {
                registry,
                by_class,
                rejected,
                duration,
                in_flight,
                queued,
                connections,
                connections_rejected,
                timeouts,
                by_component,
                clients,
                instantiation,
                ready: std::sync::atomic::AtomicBool::new(false),
                traps,
                deadline_exceeded,
            }),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }

    /// Requests whose guest is still running (for tests and health checks).
    pub fn requests_in_flight(&self) -> i64 {
        self.inner.in_flight.get()
    }

    /// Open client connections.
    pub fn connections_open(&self) -> i64 {
        self.inner.connections.get()
    }

    /// Whether the server takes traffic: what `/readyz` answers. A [`Server`]
    /// sets it once it serves and clears it when its drain starts; an embedder
    /// may clear it earlier (a dependency down, say).
    ///
    /// [`Server`]: crate::Server
    pub fn set_ready(&self, ready: bool) {
        self.inner
            .ready
            .store(ready, std::sync::atomic::Ordering::Release);
    }

    /// See [`set_ready`](Self::set_ready).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn answered(&self, status: http::StatusCode, elapsed: std::time::Duration) {
        // A status code is 100..=999 (`http` checks); 6xx..9xx count as 5xx.
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.inner.by_class[class].inc();
        self.inner.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a request a component of an app answered (by its name: the
    /// label set is the app's components), in
    /// `component_requests_total{component,class}`.
    pub fn answered_by(&self, component: &str, status: http::StatusCode) {
        let class =
            ["1xx", "2xx", "3xx", "4xx", "5xx"][usize::from(status.as_u16() / 100).clamp(1, 5) - 1];
        self.inner
            .by_component
            .get_or_create(&vec![
                ("component", component.to_owned()),
                ("class", class.to_owned()),
            ])
            .inc();
    }

    /// Counts a request refused before any guest, by a handler (an app's
    /// router: `no_route`), in `requests_rejected_total{reason}`.
    pub fn count_rejection(&self, reason: &'static str) {
        self.rejected(reason);
    }

    /// The outbound clients whose counters are exported (an app has one per
    /// component; a reload replaces them).
    pub fn set_clients(&self, clients: Vec<Client>) {
        if let Ok(mut current) = self.inner.clients.write() {
            *current = clients;
        }
    }

    pub(crate) fn rejected(&self, reason: &'static str) {
        self.inner
            .rejected
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    pub(crate) fn queued(&self) -> &Gauge {
        &self.inner.queued
    }

    pub(crate) fn connections(&self) -> &Gauge {
        &self.inner.connections
    }

    pub(crate) fn connection_rejected(&self) {
        self.inner.connections_rejected.inc();
    }

    /// A connection or response was cut off by a client timeout of this kind.
    pub(crate) fn timed_out(&self, kind: &'static str) {
        self.inner
            .timeouts
            .get_or_create(&[("timeout", kind)])
            .inc();
    }

    /// Where services report guest events (in flight, instantiation, traps).
    pub fn events(&self) -> Arc<dyn ServiceEvents> {
        self.inner.clone()
    }
}

impl ServiceEvents for Inner {
    fn guest_started(&self) {
        self.in_flight.inc();
    }

    fn guest_finished(&self) {
        self.in_flight.dec();
    }

    fn instantiated(&self, elapsed: Duration) {
        self.instantiation.observe(elapsed.as_secs_f64());
    }

    fn trapped(&self, deadline: bool) {
        if deadline {
            self.deadline_exceeded.inc();
        } else {
            self.traps.inc();
        }
    }
}

/// The outbound clients' counters, summed, read at each scrape.
#[derive(Debug)]
struct ClientCollector(Arc<std::sync::RwLock<Vec<Client>>>);

impl Collector for ClientCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(clients) = self.0.read() else {
            return Ok(());
        };
        if clients.is_empty() {
            return Ok(());
        }
        let mut stats = wasi_http_client::ClientStatsSnapshot::default();
        for client in clients.iter() {
            let s = client.stats();
            for (outcome, n) in s.requests {
                match stats.requests.iter_mut().find(|(o, _)| *o == outcome) {
                    Some((_, total)) => *total += n,
                    None => stats.requests.push((outcome, n)),
                }
            }
            stats.connections_opened += s.connections_opened;
            stats.connections_reused += s.connections_reused;
            stats.connections_open += s.connections_open;
            stats.connections_idle += s.connections_idle;
        }
        drop(clients);
        let requests = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "outbound_requests",
            "Outgoing requests, by outcome (response or error-code)",
            None,
            requests.metric_type(),
        )?;
        for (outcome, n) in &stats.requests {
            let labels = [("outcome", *outcome)];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        for (name, help, n) in [
            (
                "outbound_connections_opened",
                "Outgoing connections opened",
                stats.connections_opened,
            ),
            (
                "outbound_connections_reused",
                "Outgoing requests sent on a pooled connection",
                stats.connections_reused,
            ),
        ] {
            let counter = ConstCounter::new(n);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        for (name, help, n) in [
            (
                "outbound_connections_open",
                "Outgoing connections open (in use or idle)",
                stats.connections_open,
            ),
            (
                "outbound_connections_idle",
                "Outgoing connections idle in the pool",
                stats.connections_idle,
            ),
        ] {
            let gauge = ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// Connections the metrics listener keeps open at once; more are closed at
/// once, so scrapers and probes can never take the file descriptors the main
/// listener needs.
pub const METRICS_MAX_CONNECTIONS: usize = 32;

/// Serves `GET /metrics` (this registry, text exposition), `GET /healthz`
/// (liveness: 200 while the process runs) and `GET /readyz` (readiness: 200
/// while the server takes traffic, 503 before it does and from the start of its
/// drain, see [`Metrics::set_ready`]) on
/// `listener` until `shutdown` resolves. The listener gets the main server's
/// protections, with smaller limits: at most [`METRICS_MAX_CONNECTIONS`]
/// connections, the default header-read (10 s), idle (60 s) and response write
/// timeouts, no request bodies, no access log.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let config = crate::ServerConfig {
        max_connections: METRICS_MAX_CONNECTIONS,
        max_concurrent_requests: 8,
        max_queued_requests: METRICS_MAX_CONNECTIONS,
        queue_timeout: Duration::from_secs(5),
        max_request_body_bytes: Some(0),
        max_streams_per_connection: 4,
        shutdown_timeout: Duration::from_secs(1),
        access_log: false,
        // The listener's own counters are not exported: they would count scrapes.
        metrics: Metrics::new(None),
        ..Default::default()
    };
    let admission = crate::Admission::new(&config);
    let shared = Arc::new(crate::server::Shared::new(
        config,
        admission,
        Exposition(metrics),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    tokio::join!(
        crate::server::serve_listener(shared, listener, stop_rx),
        stop
    );
}

/// The metrics listener's handler.
struct Exposition(Metrics);

impl wasi_http_core::Handler for Exposition {
    async fn handle<B>(
        &self,
        request: http::Request<B>,
        _cx: wasi_http_core::RequestContext,
    ) -> http::Response<wasi_http_core::HostBody>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasi_http_core::ErrorCode>,
    {
        let (status, content_type, body) = match (request.method(), request.uri().path()) {
            (&http::Method::GET, "/metrics") => (
                http::StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.0.encode(),
            ),
            (&http::Method::GET, "/healthz") => {
                (http::StatusCode::OK, "text/plain", "ok\n".to_owned())
            }
            (&http::Method::GET, "/readyz") if self.0.is_ready() => {
                (http::StatusCode::OK, "text/plain", "ready\n".to_owned())
            }
            (&http::Method::GET, "/readyz") => (
                http::StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready\n".to_owned(),
            ),
            _ => (
                http::StatusCode::NOT_FOUND,
                "text/plain",
                "not found\n".to_owned(),
            ),
        };
        let mut response = http::Response::new(wasi_http_core::body::full(body));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        response
    }
}

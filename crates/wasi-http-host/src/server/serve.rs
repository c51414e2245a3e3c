//! Serving a [`ProxyService`] to the network: listeners (one per worker thread, each
//! with its own single-threaded runtime, the kernel spreading connections by
//! `SO_REUSEPORT`), TLS, protocol limits, admission control, access log, metrics and
//! graceful shutdown.
//!
//! Why one runtime per core: a request's connection task, guest task and response
//! stay on one thread, with no cross-thread wake-ups; measured, this nearly doubles
//! the throughput of a fresh-instance-per-request server on two cores.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::{error_response, next_request_id, ProxyService, RequestContext};
use crate::body::HostBody;
use crate::error_code::{ErrorCode, ErrorCodeError};
use crate::metrics::Metrics;

/// Limits and protocol settings of a [`Server`]. Every limit has a production
/// default; see each field.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Worker threads, each with its own runtime and listener. Default: 0, one per
    /// available core.
    pub workers: usize,
    /// Serve HTTPS with this rustls configuration (offer `h2` and `http/1.1` by
    /// ALPN). Default: none, plain HTTP/1.1 and h2c by prior knowledge.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Most open client connections; further ones are closed at once. Default: 10000.
    pub max_connections: usize,
    /// Most requests with a running guest. Default: 1000 (at most the engine's
    /// instance slots).
    pub max_concurrent_requests: usize,
    /// Most requests waiting for a slot; past it, `503` with `retry-after`.
    /// Default: 1000.
    pub max_queued_requests: usize,
    /// Longest wait for a slot before `503`. Default: 10 s.
    pub queue_timeout: Duration,
    /// Longest time from the first byte of a request head (or, on a new connection,
    /// from accept, including the TLS handshake) to its last; past it the connection
    /// is closed (slowloris). Default: 10 s.
    pub header_read_timeout: Duration,
    /// An open connection with no request in progress and no traffic for this long
    /// is closed gracefully. Default: 60 s.
    pub idle_timeout: Duration,
    /// Largest request header section; past it `431`. Default: 64 KiB.
    pub max_header_bytes: usize,
    /// Largest request body, counted while it streams; past it the guest's body
    /// stream fails and the client gets `413`. Default: 100 MiB.
    pub max_request_body_bytes: Option<u64>,
    /// Longest wait between two pieces of a request body; past it the guest's body
    /// stream fails and the client gets `408`. Default: 30 s.
    pub request_body_timeout: Duration,
    /// On shutdown, how long in-flight requests may take to finish before their
    /// connections are closed. Default: 30 s.
    pub shutdown_timeout: Duration,
    /// Log one line per request (target `wasi_http::access`). Default: on.
    pub access_log: bool,
    /// Where the server records its metrics; share it with a metrics endpoint.
    pub metrics: Metrics,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            workers: 0,
            tls: None,
            max_connections: 10_000,
            max_concurrent_requests: 1000,
            max_queued_requests: 1000,
            queue_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 64 << 10,
            max_request_body_bytes: Some(100 << 20),
            request_body_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            access_log: true,
            metrics: Metrics::default(),
        }
    }
}

/// Why a server could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding or configuring a listening socket failed.
    Bind(SocketAddr, std::io::Error),
    /// A worker thread or its runtime could not start.
    Worker(std::io::Error),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            ServerError::Worker(e) => write!(f, "cannot start a worker thread: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

/// A bound, not yet running server.
pub struct Server {
    listeners: Vec<std::net::TcpListener>,
    addr: SocketAddr,
    config: ServerConfig,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds one listener per worker on `addr` (port 0 picks one port for all).
    pub fn bind(addr: SocketAddr, config: ServerConfig) -> Result<Server, ServerError> {
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        // Another process's listener on this port would otherwise be joined into one
        // SO_REUSEPORT group (same user) and silently share the traffic: check that
        // the port is free with a plain socket first.
        if addr.port() != 0 {
            drop(probe_listener(addr).map_err(|e| ServerError::Bind(addr, e))?);
        }
        let mut listeners = Vec::with_capacity(workers);
        let mut bound = addr;
        for _ in 0..workers {
            let listener = reuseport_listener(bound).map_err(|e| ServerError::Bind(bound, e))?;
            bound = listener
                .local_addr()
                .map_err(|e| ServerError::Bind(bound, e))?;
            listeners.push(listener);
        }
        Ok(Server {
            listeners,
            addr: bound,
            config,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `service` until `shutdown` resolves; then stops accepting, lets
    /// in-flight requests finish for up to `shutdown_timeout`, and returns.
    pub async fn run(
        self,
        service: ProxyService,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(self.config, service));
        let mut done = Vec::new();
        for (i, listener) in self.listeners.into_iter().enumerate() {
            let shared = shared.clone();
            let stop = stop_rx.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name(format!("wasi-http-worker-{i}"))
                .spawn(move || {
                    super::batched_log::start_batching();
                    let result = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        // Log lines of this worker go out in one write when it goes idle...
                        .on_thread_park(super::batched_log::flush_thread)
                        .build()
                        .and_then(|rt| {
                            rt.block_on(async move {
                                // ...or at least this often when it never does.
                                tokio::spawn(async {
                                    let mut tick =
                                        tokio::time::interval(super::batched_log::MAX_DELAY);
                                    loop {
                                        tick.tick().await;
                                        super::batched_log::flush_thread();
                                    }
                                });
                                listener.set_nonblocking(true)?;
                                let listener = TcpListener::from_std(listener)?;
                                serve_listener(shared, listener, stop).await;
                                Ok(())
                            })
                        });
                    super::batched_log::stop_batching();
                    let _ = tx.send(result);
                })
                .map_err(ServerError::Worker)?;
            done.push(rx);
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        for rx in done {
            if let Ok(Err(e)) = rx.await {
                return Err(ServerError::Worker(e));
            }
        }
        Ok(())
    }
}

/// A listener without SO_REUSEPORT: binding it fails if anything listens on `addr`.
fn probe_listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tcp_socket(addr)?;
    socket.bind(addr)?;
    socket.listen(1)
}

/// A TCP socket of `addr`'s family with SO_REUSEADDR.
fn tcp_socket(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = tcp_socket(addr)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

/// State shared by all workers.
pub(crate) struct Shared {
    config: ServerConfig,
    service: ProxyService,
    tls: Option<tokio_rustls::TlsAcceptor>,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    connections: AtomicUsize,
    http: auto::Builder<TokioExecutor>,
}

impl Shared {
    pub(crate) fn new(config: ServerConfig, service: ProxyService) -> Self {
        let mut http = auto::Builder::new(TokioExecutor::new());
        // hyper's read buffer also carries request bodies, so it stays at least
        // hyper's default size (bigger reads, fewer guest calls); the header limit
        // itself is checked exactly per request below.
        http.http1()
            .timer(TokioTimer::new())
            .max_buf_size(config.max_header_bytes.max(400 * 1024) + 1024)
            .header_read_timeout(config.header_read_timeout);
        http.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(250);
        Shared {
            tls: config.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            slots: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
            queued: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            http,
            service,
            config,
        }
    }
}

/// Accepts on `listener` until `stop` turns true, then drains.
pub(crate) async fn serve_listener(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(guard) = ConnGuard::new(&shared) else {
            shared.config.metrics.connection_rejected();
            tracing::debug!(%peer, "connection limit reached; closing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            let _guard = guard;
            serve_connection(shared, stream, peer, stop).await;
        });
    }
    drop(listener);
    tracker.close();
    let timeout = shared.config.shutdown_timeout;
    if tokio::time::timeout(timeout, tracker.wait()).await.is_err() {
        tracing::warn!(
            ?timeout,
            "shutdown timeout reached; closing connections with requests still in flight"
        );
    }
}

/// One open connection, counted against `max_connections`.
struct ConnGuard(Arc<Shared>);

impl ConnGuard {
    fn new(shared: &Arc<Shared>) -> Option<ConnGuard> {
        let max = shared.config.max_connections;
        shared
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        shared.config.metrics.connections().inc();
        Some(ConnGuard(shared.clone()))
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.config.metrics.connections().dec();
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    match &shared.tls {
        Some(acceptor) => {
            let handshake = acceptor.accept(stream);
            let tls = match tokio::time::timeout(shared.config.header_read_timeout, handshake).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let io = Tracked::new(tls, activity.clone());
            drive(shared, io, peer, http::uri::Scheme::HTTPS, stop, activity).await;
        }
        None => {
            let io = Tracked::new(stream, activity.clone());
            drive(shared, io, peer, http::uri::Scheme::HTTP, stop, activity).await;
        }
    }
}

async fn drive<I>(
    shared: Arc<Shared>,
    io: Tracked<I>,
    peer: SocketAddr,
    scheme: http::uri::Scheme,
    mut stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let shared = shared.clone();
        let activity = activity.clone();
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let shared = shared.clone();
            let scheme = scheme.clone();
            let busy = Busy::new(&activity);
            async move { Ok::<_, std::convert::Infallible>(respond(&shared, req, scheme, busy).await) }
        })
    };
    let conn = shared.http.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let idle = shared.config.idle_timeout;
    let mut stopping = false;
    loop {
        let check = activity.idle_deadline(idle);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                // HTTP/2 gets GOAWAY; HTTP/1.1 closes after the response in progress.
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(check), if !stopping => {
                if activity.idle_for() >= idle {
                    tracing::debug!(%peer, "closing idle connection");
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Last traffic on a connection and how many of its requests are in progress.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has been idle (zero while a request is in progress).
    fn idle_for(&self) -> Duration {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    fn idle_deadline(&self, idle: Duration) -> tokio::time::Instant {
        let left = idle.saturating_sub(self.idle_for());
        tokio::time::Instant::now() + left.max(Duration::from_millis(10))
    }
}

/// A request in progress on a connection, until its response body is done.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An IO stream that records when it last moved bytes.
struct Tracked<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I> Tracked<I> {
    fn new(io: I, activity: Arc<Activity>) -> Self {
        activity.touch();
        Tracked { io, activity }
    }

    /// Records traffic if a write moved bytes.
    fn wrote(&self, poll: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = &poll {
            if *n > 0 {
                self.activity.touch();
            }
        }
        poll
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Admission, limits, the guest, then the access log and metrics.
async fn respond(
    shared: &Arc<Shared>,
    req: http::Request<hyper::body::Incoming>,
    scheme: http::uri::Scheme,
    busy: Busy,
) -> http::Response<HostBody> {
    let started = Instant::now();
    let config = &shared.config;
    let id = next_request_id();
    let line = AccessLine {
        id: id.clone(),
        method: req.method().clone(),
        // Shares the request's bytes: no copy.
        path: req.uri().path_and_query().cloned(),
        version: req.version(),
    };
    let response = admit_and_handle(shared, req, scheme, id).await;
    let status = response.status();
    config.metrics.answered(status, started.elapsed());
    response.map(|body| {
        crate::body::boxed(Logged {
            declared: body.size_hint().exact(),
            body,
            bytes: 0,
            line: config.access_log.then_some(line),
            status,
            started,
            _busy: busy,
        })
    })
}

async fn admit_and_handle(
    shared: &Arc<Shared>,
    req: http::Request<hyper::body::Incoming>,
    scheme: http::uri::Scheme,
    id: Arc<str>,
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
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(max), Some(len)) = (config.max_request_body_bytes, declared) {
        if len > max {
            metrics.rejected("body_too_large");
            return close_after(error_response(http::StatusCode::PAYLOAD_TOO_LARGE));
        }
    }

    // A free slot, or a place in the bounded queue.
    let permit = match shared.slots.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) => {
            let waiting = shared.queued.fetch_add(1, Ordering::AcqRel);
            let _leave = Leave(&shared.queued, metrics.queued());
            metrics.queued().inc();
            if waiting >= config.max_queued_requests {
                metrics.rejected("queue_full");
                return unavailable();
            }
            match tokio::time::timeout(config.queue_timeout, shared.slots.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => permit,
                _ => {
                    metrics.rejected("queue_timeout");
                    return unavailable();
                }
            }
        }
    };

    let verdict = Arc::new(BodyVerdict::default());
    let req = req.map(|body| LimitedBody {
        body,
        read: 0,
        max: config.max_request_body_bytes,
        timeout: config.request_body_timeout,
        sleep: None,
        verdict: verdict.clone(),
    });
    let context = RequestContext {
        id,
        metrics: Some(metrics.clone()),
        permit: Some(permit),
    };
    let response = shared.service.handle_in(req, scheme, context).await;
    // The guest saw its body stream fail; whatever it answered, the client's
    // mistake decides the status.
    match verdict.get() {
        Some(status) => close_after(error_response(status)),
        None => response,
    }
}

/// Leaves the wait queue (count and gauge) when dropped.
struct Leave<'a>(
    &'a AtomicUsize,
    &'a prometheus_client::metrics::gauge::Gauge,
);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        self.1.dec();
    }
}

fn unavailable() -> http::Response<HostBody> {
    let mut response = error_response(http::StatusCode::SERVICE_UNAVAILABLE);
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
}

/// The rest of the request body was not read: the connection cannot be reused.
fn close_after(mut response: http::Response<HostBody>) -> http::Response<HostBody> {
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
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

/// A request body with a size limit and a between-frames timeout.
struct LimitedBody {
    body: hyper::body::Incoming,
    read: u64,
    max: Option<u64>,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    verdict: Arc<BodyVerdict>,
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = ErrorCodeError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCodeError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.verdict.set(http::StatusCode::REQUEST_TIMEOUT);
                    return Poll::Ready(Some(Err(ErrorCodeError(
                        ErrorCode::ConnectionReadTimeout,
                    ))));
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep = None;
                if let Some(data) = frame.data_ref() {
                    this.read += data.len() as u64;
                    if this.max.is_some_and(|max| this.read > max) {
                        this.verdict.set(http::StatusCode::PAYLOAD_TOO_LARGE);
                        return Poll::Ready(Some(Err(ErrorCodeError(
                            ErrorCode::HttpRequestBodySize(Some(this.read)),
                        ))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

struct AccessLine {
    id: Arc<str>,
    method: http::Method,
    path: Option<http::uri::PathAndQuery>,
    version: http::Version,
}

/// The response body, counted; the access line is written when it ends or drops.
struct Logged {
    body: HostBody,
    /// The body's declared length (`content-length`), if any.
    declared: Option<u64>,
    bytes: u64,
    line: Option<AccessLine>,
    status: http::StatusCode,
    started: Instant,
    _busy: Busy,
}

impl Body for Logged {
    type Data = Bytes;
    type Error = ErrorCodeError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCodeError>>> {
        let poll = Pin::new(&mut self.body).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.log("complete"),
            Poll::Ready(Some(Err(_))) => self.log("body error"),
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Logged {
    fn log(&mut self, outcome: &'static str) {
        if let Some(line) = self.line.take() {
            tracing::info!(
                target: "wasi_http::access",
                request_id = %line.id,
                method = %line.method,
                path = %line.path.as_ref().map_or("/", |p| p.as_str()),
                version = ?line.version,
                status = self.status.as_u16(),
                bytes = self.bytes,
                duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
                outcome,
            );
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // hyper stops polling a body once its content-length is written (or it
        // says it has ended), so a body dropped then was delivered whole; it never
        // polls the body of a response that has none (HEAD, 204, 304).
        let bodiless = self.status == http::StatusCode::NO_CONTENT
            || self.status == http::StatusCode::NOT_MODIFIED
            || self
                .line
                .as_ref()
                .is_some_and(|line| line.method == http::Method::HEAD);
        if bodiless || self.body.is_end_stream() || self.declared == Some(self.bytes) {
            self.log("complete");
        } else {
            self.log("client gone before the end");
        }
    }
}

//! Serving a [`Handler`] to the network: listeners (one per worker thread, each
//! with its own single-threaded runtime, the kernel spreading connections by
//! `SO_REUSEPORT`), TLS, protocol limits, connection limits, idle connections and
//! graceful shutdown. What happens to each request is in `respond`.
//!
//! Why one runtime per core: a request's connection task, guest task and response
//! stay on one thread, with no cross-thread wake-ups; measured, this nearly doubles
//! the throughput of a fresh-instance-per-request server on two cores.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wasi_http_core::Handler;

use crate::admission::Admission;
use crate::conn::{Activity, Busy, Overdue, Tracked};
use crate::metrics::Metrics;
use crate::respond::respond;
use crate::watchdog::{Watchdog, WatchdogExecutor};

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
    /// Longest time from the first byte of a request head (HTTP/1.1) or header
    /// block (HTTP/2), or on a new connection from accept (including the TLS
    /// handshake) to its first request or HTTP/2 preface, to its last byte; past
    /// it the connection is closed (slowloris). Default: 10 s.
    pub header_read_timeout: Duration,
    /// An open connection with no request in progress and none started or ended
    /// for this long is closed gracefully; bytes that start no request (HTTP/2
    /// pings, a trickled head) do not keep it open. Default: 60 s.
    pub idle_timeout: Duration,
    /// Longest a response may wait for the client to take its next bytes: an
    /// HTTP/1.1 client that stops reading, or an HTTP/2 client that keeps a
    /// stream's flow-control window (or the connection's socket) shut. Past it the
    /// response is aborted (HTTP/1.1: the connection closes; HTTP/2: the stream is
    /// reset, or the connection closed when its socket is stuck) and its guest
    /// stopped, so a client that never reads cannot hold a guest slot. A guest
    /// that is slow to write is not timed by this (see the request timeout). The
    /// abort comes between one and two timeouts after the stall begins. `None`:
    /// no limit. Default: 60 s.
    pub response_write_timeout: Option<Duration>,
    /// Most requests one HTTP/2 connection may have open at once (its
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`), so one connection cannot take every
    /// guest slot. Default: 100.
    pub max_streams_per_connection: u32,
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
    /// On shutdown, how long to go on serving (and accepting) with readiness
    /// cleared (`/readyz` answers 503) before the drain, so load balancers stop
    /// sending traffic before connections are refused. Default: 0.
    pub shutdown_delay: Duration,
    /// Log one line per request (target `wasi_http::access`). Default: on.
    pub access_log: bool,
    /// Where the server records its metrics; share it with a metrics endpoint.
    pub metrics: Metrics,
    /// Where request spans go (a server span per request, continuing the
    /// client's `traceparent`; the handler's spans and outgoing requests below
    /// it). Default: none, and no tracing cost.
    pub tracer: Option<Arc<dyn wasi_http_core::Tracer>>,
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
            response_write_timeout: Some(Duration::from_secs(60)),
            max_streams_per_connection: 100,
            max_header_bytes: 64 << 10,
            max_request_body_bytes: Some(100 << 20),
            request_body_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            shutdown_delay: Duration::ZERO,
            access_log: true,
            metrics: Metrics::default(),
            tracer: None,
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
    admission: Admission,
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
        let workers = worker_count(&config);
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
            admission: Admission::new(&config),
            config,
        })
    }

    /// Serves on `listener`, a listening socket made elsewhere (inherited from a
    /// supervisor, say): every worker accepts from a duplicate of it.
    pub fn from_listener(
        listener: std::net::TcpListener,
        config: ServerConfig,
    ) -> Result<Server, ServerError> {
        let addr = listener
            .local_addr()
            .map_err(|e| ServerError::Bind(SocketAddr::from(([0, 0, 0, 0], 0)), e))?;
        let workers = worker_count(&config);
        let mut listeners = Vec::with_capacity(workers);
        for _ in 1..workers {
            listeners.push(
                listener
                    .try_clone()
                    .map_err(|e| ServerError::Bind(addr, e))?,
            );
        }
        listeners.push(listener);
        Ok(Server {
            listeners,
            addr,
            admission: Admission::new(&config),
            config,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its slots and wait queue: for requests its handler makes to itself
    /// in-process, which must count against the same limits.
    pub fn admission(&self) -> Admission {
        self.admission.clone()
    }

    /// Serves `handler` until `shutdown` resolves; then clears readiness, serves
    /// on for `shutdown_delay`, stops accepting, lets in-flight requests finish
    /// for up to `shutdown_timeout`, and returns. Readiness is set once the
    /// workers are up.
    pub async fn run<H: Handler>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(self.config, self.admission, handler));
        let mut done = Vec::new();
        for (i, listener) in self.listeners.into_iter().enumerate() {
            let shared = shared.clone();
            let stop = stop_rx.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name(format!("wasi-http-worker-{i}"))
                .spawn(move || {
                    crate::batched_log::start_batching();
                    let result = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        // Log lines of this worker go out in one write when it goes idle...
                        .on_thread_park(crate::batched_log::flush_thread)
                        .build()
                        .and_then(|rt| {
                            rt.block_on(async move {
                                // ...or at least this often when it never does.
                                tokio::spawn(async {
                                    let mut tick =
                                        tokio::time::interval(crate::batched_log::MAX_DELAY);
                                    loop {
                                        tick.tick().await;
                                        crate::batched_log::flush_thread();
                                    }
                                });
                                listener.set_nonblocking(true)?;
                                let listener = TcpListener::from_std(listener)?;
                                serve_listener(shared, listener, stop).await;
                                Ok(())
                            })
                        });
                    crate::batched_log::stop_batching();
                    let _ = tx.send(result);
                })
                .map_err(ServerError::Worker)?;
            done.push(rx);
        }
        shared.config.metrics.set_ready(true);
        shutdown.await;
        shared.config.metrics.set_ready(false);
        let delay = shared.config.shutdown_delay;
        if !delay.is_zero() {
            tracing::info!(?delay, "not ready: serving on before the drain");
            tokio::time::sleep(delay).await;
        }
        let _ = stop_tx.send(true);
        for rx in done {
            if let Ok(Err(e)) = rx.await {
                return Err(ServerError::Worker(e));
            }
        }
        Ok(())
    }
}

/// `config.workers`, or one per available core.
fn worker_count(config: &ServerConfig) -> usize {
    match config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
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
pub(crate) struct Shared<H> {
    pub(crate) config: ServerConfig,
    pub(crate) handler: H,
    tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) admission: Admission,
    connections: AtomicUsize,
    http: auto::Builder<WatchdogExecutor>,
}

impl<H: Handler> Shared<H> {
    pub(crate) fn new(config: ServerConfig, admission: Admission, handler: H) -> Self {
        // HTTP/2 stream tasks run under the response write timeout's watchdog.
        let mut http = auto::Builder::new(WatchdogExecutor {
            timeout: config.response_write_timeout,
            metrics: config.metrics.clone(),
        });
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
            .max_concurrent_streams(config.max_streams_per_connection.max(1));
        Shared {
            tls: config.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            admission,
            connections: AtomicUsize::new(0),
            http,
            handler,
            config,
        }
    }
}

/// Accepts on `listener` until `stop` turns true, then drains.
pub(crate) async fn serve_listener<H: Handler>(
    shared: Arc<Shared<H>>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let tracker = tokio_util::task::TaskTracker::new();
    let mut failures = AcceptFailures::default();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: back off (the
                    // connection waits in the backlog), keep serving.
                    failures.failed(&e, listener.local_addr().ok());
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
        let activity = Arc::new(Activity::new());
        let progress = activity.progress.clone();
        let connection = serve_connection(shared.clone(), stream, peer, stop.clone(), activity);
        // An HTTP/1.1 connection's responses run in its task: its watchdog closes
        // it when a response stalls (HTTP/2 streams have their own).
        match shared.config.response_write_timeout {
            Some(timeout) => {
                let metrics = shared.config.metrics.clone();
                let watched = Watchdog::new(connection, progress, timeout, metrics);
                tracker.spawn(async move {
                    let _guard = guard;
                    let _ = watched.await;
                })
            }
            None => tracker.spawn(async move {
                let _guard = guard;
                connection.await;
            }),
        };
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

/// Resolves once `stop` turns true. The watch's borrow is dropped inside, so the
/// futures that wait on it stay `Send` (the metrics listener runs on a
/// multi-threaded runtime).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Failed accepts, logged at most once per 10 s (a server out of file
/// descriptors fails every accept until a connection closes).
#[derive(Default)]
struct AcceptFailures {
    since_log: u64,
    logged: Option<std::time::Instant>,
}

impl AcceptFailures {
    fn failed(&mut self, error: &std::io::Error, addr: Option<SocketAddr>) {
        self.since_log += 1;
        if self
            .logged
            .is_some_and(|at| at.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        let fds = if error.raw_os_error() == Some(24) || error.raw_os_error() == Some(23) {
            " (out of file descriptors: raise the limit with `ulimit -n`, or lower \
             --max-connections)"
        } else {
            ""
        };
        tracing::warn!(
            ?addr,
            %error,
            failures = self.since_log,
            "accepting connections failed{fds}; retrying every 50 ms"
        );
        self.since_log = 0;
        self.logged = Some(std::time::Instant::now());
    }
}

/// One open connection, counted against `max_connections`.
struct ConnGuard<H: Handler>(Arc<Shared<H>>);

impl<H: Handler> ConnGuard<H> {
    fn new(shared: &Arc<Shared<H>>) -> Option<ConnGuard<H>> {
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

impl<H: Handler> Drop for ConnGuard<H> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.config.metrics.connections().dec();
    }
}

async fn serve_connection<H: Handler>(
    shared: Arc<Shared<H>>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
) {
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

async fn drive<H: Handler, I>(
    shared: Arc<Shared<H>>,
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
    let header = shared.config.header_read_timeout;
    let write = shared.config.response_write_timeout;
    let mut stopping = false;
    loop {
        let check = activity.next_check((!stopping).then_some(idle), header, write);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = stopped(&mut stop), if !stopping => {
                // HTTP/2 gets GOAWAY; HTTP/1.1 closes after the response in progress.
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(check) => {
                if let Some(overdue) = activity.overdue(header, write) {
                    // Closed at once: a graceful close would wait for this client.
                    let kind = match overdue {
                        Overdue::HeaderRead => "header_read",
                        Overdue::Write => "response_write",
                    };
                    tracing::debug!(%peer, timeout = kind, "closing the connection: timed out");
                    shared.config.metrics.timed_out(kind);
                    return;
                }
                if !stopping && activity.idle_for() >= idle {
                    tracing::debug!(%peer, "closing idle connection");
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

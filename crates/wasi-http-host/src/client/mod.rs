//! The outgoing side: `outgoing-handler.handle`, `future-incoming-response`, and the
//! default HTTP client (hyper HTTP/1.1 over TCP or rustls TLS).
//!
//! The client sits behind [`WasiHttpHooks::send_request`](crate::WasiHttpHooks), so
//! an embedder (or a later pooled client) replaces it without touching the types.

mod dns;
mod policy;
mod pool;
mod tls;

pub use self::dns::Resolver;
pub use self::policy::{DestinationRule, OutboundPolicy, RuleError, INTERNAL_NETWORKS};
pub use self::tls::{server_tls_config, ClientAuth, TlsError, TlsOptions, TrustRoots};

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::Pollable;
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;

use self::dns::Lookup;
use self::pool::{Acquired, ConnPermit, Pool, PoolKey, PooledBody, Sender};
use crate::body::HostBody;
use crate::error_code::{self, ErrorCode, ErrorCodeError, HttpError};
use crate::metrics::ClientStats;
use crate::request::{HostOutgoingRequest, HostRequestOptions};
use crate::response::HostIncomingResponse;
use crate::WasiHttpCtxView;

/// A request on its way out, as handed to [`WasiHttpHooks::send_request`](crate::WasiHttpHooks).
#[derive(Debug)]
#[non_exhaustive]
pub struct OutgoingRequest {
    /// The request, with an absolute URI (scheme and authority always present).
    pub request: http::Request<HostBody>,
    /// The guest's connect timeout, if it set one.
    pub connect_timeout: Option<Duration>,
    /// The guest's first-byte timeout, if it set one.
    pub first_byte_timeout: Option<Duration>,
    /// The guest's between-bytes timeout, if it set one.
    pub between_bytes_timeout: Option<Duration>,
}

impl OutgoingRequest {
    /// A request with no guest timeouts.
    pub fn new(request: http::Request<HostBody>) -> Self {
        OutgoingRequest {
            request,
            connect_timeout: None,
            first_byte_timeout: None,
            between_bytes_timeout: None,
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

/// The future of an outgoing request's response.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<IncomingResponse, ErrorCode>> + Send>>;

/// Settings of the default client. Timeouts here apply when the guest sets none.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Name resolution (one query, including retries to further nameservers).
    /// Running out is `DNS-timeout`. Default: 5 s.
    pub dns_timeout: Duration,
    /// TCP connect, and also the longest a request waits in a queue for a connection
    /// (see `max_connections_per_host`). The guest's `connect-timeout` replaces it.
    /// Running out is `connection-timeout`. Default: 10 s.
    pub connect_timeout: Duration,
    /// TLS handshake (and the HTTP/2 preface) on a new connection. Running out is
    /// `connection-timeout`. Default: 10 s.
    pub tls_handshake_timeout: Duration,
    /// From the request being sent to the response head arriving; the guest's
    /// `first-byte-timeout` replaces it. Running out is `HTTP-response-timeout`.
    /// Default: 60 s.
    pub first_byte_timeout: Duration,
    /// Between two frames of the response body; the guest's `between-bytes-timeout`
    /// replaces it. Running out is `connection-read-timeout`. Default: 60 s.
    pub between_bytes_timeout: Duration,
    /// The longest timeout a guest may ask for in its `request-options`; longer ones
    /// are cut to this, so a guest cannot hold host resources indefinitely.
    /// Default: 10 min.
    pub max_guest_timeout: Duration,
    /// How host names are resolved. Default: the operating system's resolver.
    pub resolver: Resolver,
    /// TLS settings for `https`; `None` means rustls with the webpki roots. Offer
    /// `h2` by ALPN to use HTTP/2 with servers that support it.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// How long an idle keep-alive connection is kept for reuse; a background task
    /// closes expired ones. Default: 90 s.
    pub pool_idle_timeout: Duration,
    /// Most idle HTTP/1.1 connections kept per destination. Default: 256.
    pub pool_max_idle_per_host: usize,
    /// Most open connections per destination; further requests queue for one until
    /// their connect timeout, then fail with `connection-limit-reached`. Default: 256.
    pub max_connections_per_host: usize,
    /// Most outgoing requests in flight (until their response body ends) across the
    /// client; further requests queue as above. Default: 4096.
    pub max_concurrent_requests: usize,
    /// Which destinations requests may reach. Default: any.
    pub policy: OutboundPolicy,
    /// Plain-`http` destinations spoken to in HTTP/2 with prior knowledge (h2c), for
    /// gRPC-style backends. Default: none.
    pub h2c_destinations: Vec<DestinationRule>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            dns_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            between_bytes_timeout: Duration::from_secs(60),
            max_guest_timeout: Duration::from_secs(600),
            resolver: Resolver::System,
            tls: None,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
            max_connections_per_host: 256,
            max_concurrent_requests: 4096,
            policy: OutboundPolicy::default(),
            h2c_destinations: Vec::new(),
        }
    }
}

/// The default outgoing HTTP client. Cloning shares it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    config: ClientConfig,
    tls: Option<tokio_rustls::TlsConnector>,
    /// `None` when the resolver settings were unusable (logged at construction).
    lookup: Option<Lookup>,
    reaper: crate::reaper::Once,
    stats: ClientStats,
    pool: Arc<Pool>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new(ClientConfig::default())
    }
}

/// rustls with the webpki roots, offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn default_tls_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    TlsOptions::default().build()
}

impl Client {
    /// A client with the given settings.
    pub fn new(config: ClientConfig) -> Self {
        let tls = match config
            .tls
            .clone()
            .map(Ok)
            .unwrap_or_else(default_tls_config)
        {
            Ok(tls) => Some(tokio_rustls::TlsConnector::from(tls)),
            Err(e) => {
                // Plain HTTP still works; `https` requests fail with configuration-error.
                tracing::error!(error = %e, "TLS client configuration failed");
                None
            }
        };
        let lookup = match Lookup::new(&config.resolver, config.dns_timeout) {
            Ok(lookup) => Some(lookup),
            Err(e) => {
                // IP literals still work; names fail with configuration-error.
                tracing::error!(error = %e, "DNS resolver configuration failed");
                None
            }
        };
        let pool = Arc::new(Pool::new(
            config.pool_idle_timeout,
            config.pool_max_idle_per_host,
            config.max_connections_per_host,
        ));
        let in_flight = Arc::new(tokio::sync::Semaphore::new(
            config.max_concurrent_requests.max(1),
        ));
        Client {
            inner: Arc::new(ClientInner {
                config,
                tls,
                lookup,
                reaper: crate::reaper::Once::new(),
                stats: ClientStats::default(),
                pool,
                in_flight,
            }),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Sends a request; the future resolves to the response head.
    pub fn send(&self, request: OutgoingRequest) -> ResponseFuture {
        let inner = self.inner.clone();
        Box::pin(async move {
            let result = inner.send(request).await;
            let outcome = match &result {
                Ok(_) => "response",
                Err(code) => error_code::name(code),
            };
            inner
                .stats
                .requests
                .get_or_create(&[("outcome", outcome)])
                .inc();
            result
        })
    }

    pub(crate) fn stats(&self) -> &ClientStats {
        &self.inner.stats
    }
}

impl ClientInner {
    async fn send(&self, req: OutgoingRequest) -> Result<IncomingResponse, ErrorCode> {
        let OutgoingRequest {
            request,
            connect_timeout,
            first_byte_timeout,
            between_bytes_timeout,
        } = req;
        let config = &self.config;
        let guest =
            |t: Option<Duration>, default| t.map_or(default, |t| t.min(config.max_guest_timeout));
        let connect_timeout = guest(connect_timeout, config.connect_timeout);
        let first_byte_timeout = guest(first_byte_timeout, config.first_byte_timeout);
        let between_bytes_timeout = guest(between_bytes_timeout, config.between_bytes_timeout);
        // Idle connections to destinations never asked for again are closed by a
        // task of their own; started here because this runs on the runtime.
        self.reaper
            .start(&self.pool, self.pool.idle_timeout(), Pool::reap);

        let uri = request.uri().clone();
        let authority = uri
            .authority()
            .ok_or(ErrorCode::HttpRequestUriInvalid)?
            .clone();
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(ErrorCode::HttpProtocolError),
        };
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let host = authority.host();

        if !self.config.policy.allows_destination(tls, host, port) {
            tracing::warn!(
                destination = %uri,
                "outbound request denied: destination not in the allow-list \
                 (ClientConfig.policy.allow; `wasi-http serve --allow-outbound`)"
            );
            return Err(ErrorCode::HttpRequestDenied);
        }
        let key = PoolKey {
            tls,
            host: host.to_ascii_lowercase(),
            port,
        };
        let started = std::time::Instant::now();
        let queue_deadline = tokio::time::Instant::now() + connect_timeout;
        let in_flight = tokio::time::timeout_at(queue_deadline, self.in_flight.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                tracing::warn!(destination = %uri, "outbound request refused: client concurrency limit reached");
                ErrorCode::ConnectionLimitReached
            })?;
        let (sender, reused) = self
            .sender(&key, host, connect_timeout, queue_deadline)
            .await?;
        if reused {
            self.stats.connections_reused.inc();
        }
        // A pooled connection can be closed by the peer just as we reuse it. A request
        // that never left, or an idempotent one without a body, is safe to send again.
        let replay = reused.then(|| Replay::of(&request)).flatten();
        let exchange = |sender, request| {
            tokio::time::timeout(first_byte_timeout, self.exchange(sender, &key, request))
        };
        let retry = match exchange(sender, request).await {
            Err(_) => return Err(ErrorCode::HttpResponseTimeout),
            Ok(Ok(response)) => Err(response),
            Ok(Err(ExchangeError::NotSent(_, request))) if reused => Ok(*request),
            Ok(Err(ExchangeError::Failed(code)))
                if matches!(
                    code,
                    ErrorCode::ConnectionTerminated | ErrorCode::HttpResponseIncomplete
                ) =>
            {
                match replay {
                    Some(replay) => Ok(replay.request()),
                    None => return Err(code),
                }
            }
            Ok(Err(e)) => return Err(e.into_code()),
        };
        let response = match retry {
            Err(response) => response,
            Ok(request) => {
                tracing::debug!(destination = %authority, "pooled connection was stale; retrying on a new one");
                let deadline = tokio::time::Instant::now() + connect_timeout;
                let (sender, _) = self.sender(&key, host, connect_timeout, deadline).await?;
                exchange(sender, request)
                    .await
                    .map_err(|_| ErrorCode::HttpResponseTimeout)?
                    .map_err(ExchangeError::into_code)?
            }
        };
        // The request counts as in flight until its response body is done or dropped;
        // then one log event sums it up.
        let (parts, body) = response.into_parts();
        let body = Tracked {
            body,
            _permit: in_flight,
            destination: uri,
            status: parts.status.as_u16(),
            version: parts.version,
            reused,
            started,
            bytes: 0,
            outcome: "dropped before the end",
        }
        .boxed_unsync();
        Ok(IncomingResponse {
            response: http::Response::from_parts(parts, body),
            between_bytes_timeout: Some(between_bytes_timeout),
        })
    }

    /// A pooled connection, or a new one if the destination has room (queueing until
    /// `deadline` if it has none). The flag says whether it was pooled.
    async fn sender(
        &self,
        key: &PoolKey,
        host: &str,
        connect_timeout: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<(Sender, bool), ErrorCode> {
        let limit_reached = || {
            tracing::warn!(
                host = %key.host,
                port = key.port,
                "outbound request refused: connection limit per destination reached"
            );
            ErrorCode::ConnectionLimitReached
        };
        let h2c = !key.tls && self.is_h2c(host, key.port);
        let _connecting = match self.pool.h2_gate(key, h2c) {
            Some(gate) => Some(
                tokio::time::timeout_at(deadline, gate.lock_owned())
                    .await
                    .map_err(|_| limit_reached())?,
            ),
            None => None,
        };
        match self.pool.acquire(key, deadline).await {
            Some(Acquired::Pooled(sender)) => Ok((sender, true)),
            Some(Acquired::New(permit)) => {
                let sender = self.connect(key, host, connect_timeout, permit).await?;
                Ok((sender, false))
            }
            None => Err(limit_reached()),
        }
    }

    fn is_h2c(&self, host: &str, port: u16) -> bool {
        self.config
            .h2c_destinations
            .iter()
            .any(|rule| rule.matches(false, host, port))
    }

    /// A new connection: DNS, TCP (within `limit`), TLS and HTTP handshake, each
    /// phase under its own timeout.
    async fn connect(
        &self,
        key: &PoolKey,
        host: &str,
        limit: Duration,
        permit: ConnPermit,
    ) -> Result<Sender, ErrorCode> {
        let config = &self.config;
        let resolved = tokio::time::timeout(config.dns_timeout, self.resolve(host, key.port))
            .await
            .map_err(|_| ErrorCode::DnsTimeout)??;
        let addrs = self.permitted(host, resolved)?;
        self.stats.connections_opened.inc();
        let tcp = tokio::time::timeout(limit, connect_any(&addrs))
            .await
            .map_err(|_| ErrorCode::ConnectionTimeout)??;
        let _ = tcp.set_nodelay(true);
        let handshake = async {
            if !key.tls {
                if self.is_h2c(host, key.port) {
                    let sender = handshake_h2(tcp, permit).await?;
                    self.pool.put_h2(key, sender.clone());
                    return Ok(Sender::H2(sender));
                }
                return handshake_h1(tcp, permit).await;
            }
            let name = server_name(host)?;
            let connector = self.tls.as_ref().ok_or(ErrorCode::ConfigurationError)?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| error_code::from_io_error(&e))?;
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                let sender = handshake_h2(stream, permit).await?;
                self.pool.put_h2(key, sender.clone());
                Ok(Sender::H2(sender))
            } else {
                handshake_h1(stream, permit).await
            }
        };
        tokio::time::timeout(config.tls_handshake_timeout, handshake)
            .await
            .map_err(|_| {
                tracing::debug!(%host, port = key.port, "TLS or HTTP handshake timed out");
                ErrorCode::ConnectionTimeout
            })?
    }

    /// Resolves a host. Names under `.invalid` never resolve (RFC 6761 §6.4), so they
    /// fail at once without asking a resolver; IP literals skip resolution.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ErrorCode> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let lower = host.to_ascii_lowercase();
        if lower == "invalid" || lower.ends_with(".invalid") || lower.ends_with(".invalid.") {
            return Err(dns::dns_error("NXDOMAIN"));
        }
        let lookup = self.lookup.as_ref().ok_or(ErrorCode::ConfigurationError)?;
        lookup.resolve(host, port).await
    }

    /// The resolved addresses the policy lets us connect to; none is an error.
    fn permitted(&self, host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, ErrorCode> {
        let mut blocked = None;
        let permitted: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|addr| match self.config.policy.blocked_network(addr.ip()) {
                Some(net) => {
                    blocked = Some((addr.ip(), net));
                    false
                }
                None => true,
            })
            .collect();
        match (permitted.is_empty(), blocked) {
            (true, Some((ip, net))) => {
                tracing::warn!(
                    %host, %ip, network = %net,
                    "outbound request blocked: destination IP is in a blocked network \
                     (allow it with ClientConfig.policy.allow_networks; \
                     `wasi-http serve --allow-network {net}`)"
                );
                Err(ErrorCode::DestinationIpProhibited)
            }
            _ => Ok(permitted),
        }
    }

    /// Sends `request` (absolute URI) on `sender` and waits for the response head.
    async fn exchange(
        &self,
        sender: Sender,
        key: &PoolKey,
        mut request: http::Request<HostBody>,
    ) -> Result<http::Response<HostBody>, ExchangeError> {
        let (mut parts, body) = match sender {
            Sender::H1(mut sender) => {
                // Origin-form target; the authority travels in `Host`.
                let uri = request.uri().clone();
                let path = uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .filter(|p| !p.is_empty())
                    .unwrap_or("/");
                let invalid = || ExchangeError::Failed(ErrorCode::HttpRequestUriInvalid);
                *request.uri_mut() = path.parse().map_err(|_| invalid())?;
                let authority = uri.authority().ok_or_else(invalid)?;
                let host =
                    http::HeaderValue::from_str(authority.as_str()).map_err(|_| invalid())?;
                request.headers_mut().insert(http::header::HOST, host);
                let response = sender.try_send_request(request).await.map_err(|mut e| {
                    let code = on_connection(error_code::from_hyper_response_error(e.error()), key);
                    match e.take_message() {
                        Some(request) => ExchangeError::NotSent(code, Box::new(request)),
                        None => ExchangeError::Failed(code),
                    }
                })?;
                let (parts, body) = response.into_parts();
                let body = PooledBody::new(body, self.pool.clone(), key.clone(), sender);
                (parts, body.boxed_unsync())
            }
            Sender::H2(mut sender) => {
                // HTTP/2 carries the authority in `:authority`, from the absolute URI.
                request.headers_mut().remove(http::header::HOST);
                let response = sender.send_request(request).await.map_err(|e| {
                    ExchangeError::Failed(on_connection(
                        error_code::from_hyper_response_error(&e),
                        key,
                    ))
                })?;
                let (parts, body) = response.into_parts();
                let body =
                    body.map_err(|e| ErrorCodeError(error_code::from_hyper_response_error(&e)));
                (parts, body.boxed_unsync())
            }
        };
        strip_connection_headers(&mut parts.headers);
        dedupe_content_length(&mut parts.headers).map_err(ExchangeError::Failed)?;
        Ok(http::Response::from_parts(parts, body))
    }
}

/// On a TLS connection, undecodable data is the TLS layer's doing (HTTP/2 keeps only
/// the text of rustls's error, e.g. an alert sent after a TLS 1.3 handshake).
fn on_connection(code: ErrorCode, key: &PoolKey) -> ErrorCode {
    match code {
        ErrorCode::InternalError(_) if key.tls => ErrorCode::TlsProtocolError,
        code => code,
    }
}

/// A response body that holds the in-flight permit until it ends or is dropped, and
/// logs the exchange (destination, status, bytes, duration, connection reuse) then.
struct Tracked {
    body: HostBody,
    _permit: tokio::sync::OwnedSemaphorePermit,
    destination: http::Uri,
    status: u16,
    version: http::Version,
    reused: bool,
    started: std::time::Instant,
    bytes: u64,
    outcome: &'static str,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = ErrorCodeError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, ErrorCodeError>>> {
        let poll = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        match &poll {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                self.bytes += n;
            }
            std::task::Poll::Ready(Some(Err(_))) => self.outcome = "body error",
            std::task::Poll::Ready(None) => self.outcome = "complete",
            std::task::Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        tracing::debug!(
            destination = %self.destination,
            status = self.status,
            version = ?self.version,
            reused = self.reused,
            bytes = self.bytes,
            duration_ms = self.started.elapsed().as_millis() as u64,
            outcome = self.outcome,
            "outgoing request finished"
        );
    }
}

/// What is needed to send a bodiless idempotent request again.
struct Replay {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
}

impl Replay {
    fn of(request: &http::Request<HostBody>) -> Option<Replay> {
        use http_body::Body as _;
        let idempotent = matches!(
            *request.method(),
            http::Method::GET
                | http::Method::HEAD
                | http::Method::PUT
                | http::Method::DELETE
                | http::Method::OPTIONS
                | http::Method::TRACE
        );
        let bodiless = request.body().size_hint().exact() == Some(0);
        (idempotent && bodiless).then(|| Replay {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        })
    }

    fn request(self) -> http::Request<HostBody> {
        let mut request = http::Request::new(crate::body::empty());
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        request
    }
}

/// Why an exchange failed, keeping the request when it was never sent.
enum ExchangeError {
    Failed(ErrorCode),
    NotSent(ErrorCode, Box<http::Request<HostBody>>),
}

impl ExchangeError {
    fn into_code(self) -> ErrorCode {
        match self {
            ExchangeError::Failed(code) | ExchangeError::NotSent(code, _) => code,
        }
    }
}

async fn handshake_h1<S>(io: S, permit: ConnPermit) -> Result<Sender, ErrorCode>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| error_code::from_hyper_response_error(&e))?;
    // The connection task ends when the pool (or the last response body) drops the
    // sender, or when the peer closes.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "outgoing HTTP/1.1 connection ended with an error");
        }
        drop(permit);
    });
    Ok(Sender::H1(sender))
}

async fn handshake_h2<S>(
    io: S,
    permit: ConnPermit,
) -> Result<hyper::client::conn::http2::SendRequest<HostBody>, ErrorCode>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| error_code::from_hyper_response_error(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "outgoing HTTP/2 connection ended with an error");
        }
        drop(permit);
    });
    Ok(sender)
}

async fn connect_any(addrs: &[SocketAddr]) -> Result<TcpStream, ErrorCode> {
    let mut last = ErrorCode::DestinationUnavailable;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = error_code::from_io_error(&e),
        }
    }
    Err(last)
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, ErrorCode> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(bare.to_owned())
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)
}

/// Headers about the connection, which the host manages, are not the guest's business.
fn strip_connection_headers(headers: &mut http::HeaderMap) {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

/// Identical repeated `content-length` values are one value (RFC 9110 §8.6); differing
/// ones are a protocol error (hyper already refuses those while parsing).
fn dedupe_content_length(headers: &mut http::HeaderMap) -> Result<(), ErrorCode> {
    if headers.get_all(http::header::CONTENT_LENGTH).iter().count() > 1 {
        match crate::body::declared_length(headers) {
            Ok(Some(n)) => {
                headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(n));
            }
            _ => return Err(ErrorCode::HttpProtocolError),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// outgoing-handler.handle and future-incoming-response

/// The host side of a `future-incoming-response` resource.
pub struct HostFutureIncomingResponse {
    state: FutureState,
}

enum FutureState {
    Pending(AbortOnDropJoinHandle<Result<IncomingResponse, ErrorCode>>),
    Ready(Result<IncomingResponse, ErrorCode>),
    Consumed,
}

#[wasmtime_wasi::async_trait]
impl Pollable for HostFutureIncomingResponse {
    async fn ready(&mut self) {
        if let FutureState::Pending(handle) = &mut self.state {
            let result = handle.await;
            self.state = FutureState::Ready(result);
        }
    }
}

impl HostFutureIncomingResponse {
    /// `None` while pending, `Some(Err(()))` once consumed.
    pub(crate) fn take(&mut self) -> Option<Result<Result<IncomingResponse, ErrorCode>, ()>> {
        if let FutureState::Pending(handle) = &mut self.state {
            let result = handle.now_or_never()?;
            self.state = FutureState::Ready(result);
        }
        match std::mem::replace(&mut self.state, FutureState::Consumed) {
            FutureState::Ready(result) => Some(Ok(result)),
            FutureState::Consumed => Some(Err(())),
            FutureState::Pending(_) => None,
        }
    }
}

/// `outgoing-handler.handle`: validates the request, applies policy, starts sending.
pub(crate) fn handle(
    view: &mut WasiHttpCtxView<'_>,
    request: Resource<HostOutgoingRequest>,
    options: Option<Resource<HostRequestOptions>>,
) -> Result<Resource<HostFutureIncomingResponse>, HttpError> {
    let req = view.table.delete(request)?;
    let options = match options {
        Some(options) => view.table.delete(options)?,
        None => HostRequestOptions::default(),
    };
    let hooks = view.ctx.hooks.clone();

    let method =
        crate::request::to_http_method(&req.method).ok_or(ErrorCode::HttpRequestMethodInvalid)?;
    // The WIT lets the host pick a scheme when the guest sets none: HTTPS is the safe one.
    let scheme = match &req.scheme {
        Some(s) => crate::request::to_http_scheme(s).ok_or(ErrorCode::HttpProtocolError)?,
        None => http::uri::Scheme::HTTPS,
    };
    if !hooks.is_supported_scheme(&scheme) {
        return Err(ErrorCode::HttpProtocolError.into());
    }
    let authority = req
        .authority
        .as_deref()
        .ok_or(ErrorCode::HttpRequestUriInvalid)?;
    // An absent path is the empty path, which HTTP sends as `/` (RFC 9110 §4.2.3).
    let path = req.path_with_query.as_deref().unwrap_or("/");
    let path = if path.is_empty() || path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    if crate::body::declared_length(req.headers.map()).is_err() {
        return Err(ErrorCode::HttpProtocolError.into());
    }
    let body = match req.body.into_body() {
        Some(body) => crate::body::channel_body(body),
        None => crate::body::empty(),
    };
    let mut http_req = http::Request::new(body);
    *http_req.method_mut() = method;
    *http_req.uri_mut() = uri;
    *http_req.headers_mut() = req.headers.into_map();

    let outgoing = OutgoingRequest {
        request: http_req,
        connect_timeout: options.connect_timeout,
        first_byte_timeout: options.first_byte_timeout,
        between_bytes_timeout: options.between_bytes_timeout,
    };
    let future = hooks.send_request(outgoing)?;
    // Spawned so the request makes progress (and its body is consumed) while the
    // guest writes the body, whether or not it polls the future.
    let handle = wasmtime_wasi::runtime::spawn(future);
    let resource = view.table.push(HostFutureIncomingResponse {
        state: FutureState::Pending(handle),
    })?;
    Ok(resource)
}

/// Turns a received response into an `incoming-response` for the guest.
pub(crate) fn into_guest_response(
    ctx: &crate::WasiHttpCtx,
    response: IncomingResponse,
) -> Result<HostIncomingResponse, ErrorCode> {
    let (parts, body) = response.response.into_parts();
    let headers = crate::fields::HostFields::from_received(parts.headers, &ctx.limits)
        .map_err(|_| ErrorCode::HttpResponseHeaderSectionSize(None))?;
    let reader = crate::body::BodyReader::new(
        body,
        response.between_bytes_timeout,
        &ctx.limits,
        crate::body::Direction::Response,
    );
    Ok(HostIncomingResponse {
        status: parts.status.as_u16(),
        headers,
        body: Some(crate::body::HostIncomingBody::new(reader)),
    })
}

//! The client: DNS, TCP, rustls, HTTP/1.1 or HTTP/2 by ALPN, each phase under its own
//! timeout; connections pooled per destination; the outbound policy applied before
//! any connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wasi_http_core::body::{BodyEnd, BodyWatch, Watched};
use wasi_http_core::{
    from_hyper_response_error, ErrorCode, HostBody, IncomingResponse, OutgoingRequest,
    RequestTrace, ResponseFuture, Span, SpanKind, Timeouts, WasiHttpHooks,
};

use crate::dns::Lookup;
use crate::framing::{needs_explicit_chunking, settle_framing, Replay};
use crate::policy::{DestinationRule, OutboundPolicy};
use crate::pool::{pooled_body, Acquired, ConnPermit, Pool, PoolKey, Sender};
use crate::stats::ClientStats;
use crate::tls::{from_io_error, TlsOptions};
use crate::Resolver;

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
    reaper: wasi_http_core::reaper::Once,
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
pub fn default_tls_config() -> Result<Arc<rustls::ClientConfig>, crate::TlsError> {
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
                reaper: wasi_http_core::reaper::Once::new(),
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

    /// Sends a request; the future resolves to the response head. A request
    /// that carries a trace gets a client span (ended with the response head)
    /// and a `traceparent` naming it, unless the guest set its own.
    pub fn send(&self, mut request: OutgoingRequest) -> ResponseFuture {
        let inner = self.inner.clone();
        let span = request
            .trace
            .take()
            .map(|trace| client_span(&trace, &mut request));
        Box::pin(async move {
            let mut span = span;
            let result = inner.send(request, span.as_mut()).await;
            inner.stats.request_done(result.as_ref().err());
            if let Some(span) = span.as_mut().filter(|s| s.is_recording()) {
                match &result {
                    Ok(response) => {
                        let status = response.response.status();
                        span.set_attribute(
                            "http.response.status_code",
                            i64::from(status.as_u16()).into(),
                        );
                        if status.as_u16() >= 400 {
                            span.set_error(status.as_str().to_owned().into());
                        }
                    }
                    Err(code) => {
                        span.set_attribute("error.type", code.name().into());
                        span.set_error(code.to_string().into());
                    }
                }
            }
            result
        })
    }

    /// The client's counters so far (for metrics, read at scrape time).
    pub fn stats(&self) -> crate::ClientStatsSnapshot {
        let mut snapshot = self.inner.stats.snapshot();
        (snapshot.connections_open, snapshot.connections_idle) = self.inner.pool.counts();
        snapshot
    }
}

/// An outgoing request's client span (OpenTelemetry's HTTP client conventions),
/// and its context written into the request as `traceparent`.
fn client_span(trace: &RequestTrace, request: &mut OutgoingRequest) -> Box<dyn Span> {
    let req = &mut request.request;
    let method = wasi_http_core::trace::method_name(req.method());
    let name = if method == "_OTHER" { "HTTP" } else { method };
    let (mut span, child) = trace.child(name, SpanKind::Client);
    child.context.inject(req.headers_mut());
    if span.is_recording() {
        span.set_attribute("http.request.method", method.into());
        if let Some(host) = req.uri().host() {
            span.set_attribute("server.address", host.to_owned().into());
        }
        let tls = req.uri().scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = req.uri().port_u16().unwrap_or(if tls { 443 } else { 80 });
        span.set_attribute("server.port", i64::from(port).into());
        span.set_attribute("url.full", req.uri().to_string().into());
    }
    span
}

/// The client is the default policy: it sends every request itself.
impl WasiHttpHooks for Client {
    fn send_request(&self, request: OutgoingRequest) -> Result<ResponseFuture, ErrorCode> {
        Ok(self.send(request))
    }
}

impl ClientInner {
    async fn send(
        &self,
        req: OutgoingRequest,
        span: Option<&mut Box<dyn Span>>,
    ) -> Result<IncomingResponse, ErrorCode> {
        let OutgoingRequest {
            request, options, ..
        } = req;
        let config = &self.config;
        let defaults = Timeouts::new(
            config.connect_timeout,
            config.first_byte_timeout,
            config.between_bytes_timeout,
        );
        let timeouts = options.resolve(defaults, config.max_guest_timeout);
        let connect_timeout = timeouts.connect;
        let first_byte_timeout = timeouts.first_byte;
        let between_bytes_timeout = timeouts.between_bytes;
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
                 (ClientConfig.policy.allow; `wasi-http --allow-outbound`)"
            );
            return Err(ErrorCode::HttpRequestDenied);
        }
        let request = settle_framing(request, connect_timeout).await?;
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
            self.stats.connection_reused();
        }
        if let Some(span) = span.filter(|s| s.is_recording()) {
            span.set_attribute("wasi_http.connection.reused", reused.into());
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
        let body = Watched::new(
            body,
            Tracked {
                _permit: in_flight,
                destination: uri,
                status: parts.status.as_u16(),
                version: parts.version,
                reused,
                started,
                bytes: 0,
            },
        )
        .boxed_unsync();
        let mut response = IncomingResponse::new(http::Response::from_parts(parts, body));
        response.between_bytes_timeout = Some(between_bytes_timeout);
        Ok(response)
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
        self.stats.connection_opened();
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
                .map_err(|e| from_io_error(&e))?;
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
            return Err(ErrorCode::dns("NXDOMAIN"));
        }
        let lookup = self.lookup.as_ref().ok_or(ErrorCode::ConfigurationError)?;
        lookup.resolve(host, port).await
    }

    /// The resolved addresses the policy lets us connect to; none is an error.
    fn permitted(&self, host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, ErrorCode> {
        self.config.policy.permitted(addrs).map_err(|(ip, net)| {
            tracing::warn!(
                %host, %ip, network = %net,
                "outbound request blocked: destination IP is in a blocked network \
                 (allow it with ClientConfig.policy.allow_networks; \
                 `wasi-http --allow-network {net}`)"
            );
            ErrorCode::DestinationIpProhibited
        })
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
                if needs_explicit_chunking(&request) {
                    // hyper would send it without its body (see `settle_framing`).
                    request.headers_mut().insert(
                        http::header::TRANSFER_ENCODING,
                        http::HeaderValue::from_static("chunked"),
                    );
                }
                let response = sender.try_send_request(request).await.map_err(|mut e| {
                    let code = on_connection(from_hyper_response_error(e.error()), key);
                    match e.take_message() {
                        Some(request) => ExchangeError::NotSent(code, Box::new(request)),
                        None => ExchangeError::Failed(code),
                    }
                })?;
                let (parts, body) = response.into_parts();
                let body = pooled_body(body, self.pool.clone(), key.clone(), sender);
                (parts, body.boxed_unsync())
            }
            Sender::H2(mut sender) => {
                // HTTP/2 carries the authority in `:authority`, from the absolute URI.
                request.headers_mut().remove(http::header::HOST);
                let response = sender.send_request(request).await.map_err(|e| {
                    ExchangeError::Failed(on_connection(from_hyper_response_error(&e), key))
                })?;
                let (parts, body) = response.into_parts();
                let body = body.map_err(|e| from_hyper_response_error(&e));
                (parts, body.boxed_unsync())
            }
        };
        wasi_http_core::headers::strip_connection_headers(&mut parts.headers);
        // Identical repeated values are one (RFC 9110 §8.6); differing ones hyper
        // already refuses while parsing.
        wasi_http_core::headers::merge_content_length(&mut parts.headers)
            .map_err(|_| ExchangeError::Failed(ErrorCode::HttpProtocolError))?;
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

/// Watches a response body: holds the in-flight permit until it ends or is
/// dropped, and logs the exchange (destination, status, bytes, duration,
/// connection reuse) then.
struct Tracked {
    _permit: tokio::sync::OwnedSemaphorePermit,
    destination: http::Uri,
    status: u16,
    version: http::Version,
    reused: bool,
    started: std::time::Instant,
    bytes: u64,
}

impl BodyWatch for Tracked {
    fn data(&mut self, len: usize) -> Result<(), ErrorCode> {
        self.bytes += len as u64;
        Ok(())
    }

    fn end(&mut self, end: BodyEnd<'_>) {
        let outcome = match end {
            BodyEnd::Complete => "complete",
            BodyEnd::Failed(_) => "body error",
            BodyEnd::Dropped { .. } => "dropped before the end",
        };
        tracing::debug!(
            destination = %self.destination,
            status = self.status,
            version = ?self.version,
            reused = self.reused,
            bytes = self.bytes,
            duration_ms = self.started.elapsed().as_millis() as u64,
            outcome,
            "outgoing request finished"
        );
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
        .map_err(|e| from_hyper_response_error(&e))?;
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
            .map_err(|e| from_hyper_response_error(&e))?;
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
            Err(e) => last = from_io_error(&e),
        }
    }
    Err(last)
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, ErrorCode> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(bare.to_owned())
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)
}

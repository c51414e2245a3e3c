//! Helpers shared by the integration tests of the workspace's crates. Loopback only.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod dns;
mod h2raw;
mod otlp;
mod process;
mod raw;
mod tls;
pub use dns::*;
pub use h2raw::*;
pub use otlp::*;
pub use process::*;
pub use raw::*;
pub use tls::*;

/// A body type handlers can return.
pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

type HandlerFuture = Pin<Box<dyn Future<Output = Response<TestBody>> + Send>>;
type Handler = Arc<dyn Fn(Request<Incoming>) -> HandlerFuture + Send + Sync>;

/// An in-process origin server (HTTP/1.1 and HTTP/2, plain or TLS) on 127.0.0.1.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    tls: bool,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    /// Starts an origin answering every request with `handler`.
    pub async fn start<F, Fut>(tls: Option<Arc<rustls::ServerConfig>>, handler: F) -> Origin
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let open = Arc::new(AtomicUsize::new(0));
        let open_count = open.clone();
        let is_tls = tls.is_some();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                let acceptor = acceptor.clone();
                let open = OpenGuard::new(open_count.clone());
                tokio::spawn(async move {
                    let _open = open;
                    let svc = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, std::convert::Infallible>(handler(req).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        Origin {
            addr,
            accepted,
            open,
            tls: is_tls,
            task,
        }
    }

    /// Starts an origin that answers `200` with the request's method, path and body
    /// echoed (`x-origin-method`, `x-origin-path`, request headers as `x-origin-h-*`,
    /// request trailers as `x-origin-trailer-*`).
    pub async fn echo(tls: Option<Arc<rustls::ServerConfig>>) -> Origin {
        Origin::start(tls, |req: Request<Incoming>| async move {
            let mut builder = Response::builder()
                .status(StatusCode::OK)
                .header("x-origin-method", req.method().as_str())
                .header(
                    "x-origin-path",
                    req.uri().path_and_query().map_or("", |p| p.as_str()),
                )
                .header("x-origin-version", format!("{:?}", req.version()));
            for (name, value) in req.headers() {
                builder = builder.header(format!("x-origin-h-{name}"), value);
            }
            let body = req.into_body().collect().await;
            match body {
                Ok(collected) => {
                    for (name, value) in collected.trailers().into_iter().flatten() {
                        builder = builder.header(format!("x-origin-trailer-{name}"), value);
                    }
                    builder.body(full(collected.to_bytes())).expect("response")
                }
                Err(_) => Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .body(full("body error"))
                    .expect("response"),
            }
        })
        .await
    }

    /// How many connections it has accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// How many of its connections are open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// A URL on this origin.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts a connection as open for as long as it lives.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        OpenGuard(count)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A fully received response.
#[derive(Debug)]
pub struct Collected {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Trailers, if any were sent.
    pub trailers: Option<HeaderMap>,
}

impl Collected {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Every value of a header, as text.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Collects a response body with its trailers.
pub async fn collect<B>(response: Response<B>) -> Result<Collected, B::Error>
where
    B: hyper::body::Body<Data = Bytes>,
{
    let (parts, body) = response.into_parts();
    let collected = body.collect().await?;
    let trailers = collected.trailers().cloned();
    Ok(Collected {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    })
}

/// Sends one request over a new HTTP/1.1 (or, with `h2`, HTTP/2 prior-knowledge)
/// connection to `addr` and collects the response. Over HTTP/1.1 a request
/// without `Host` gets its URI's authority there, as every real client sends it.
pub async fn send<B>(
    addr: SocketAddr,
    mut request: Request<B>,
    h2: bool,
) -> Result<Collected, hyper::Error>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !h2 && !request.headers().contains_key(http::header::HOST) {
        if let Some(host) = request
            .uri()
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
        {
            request.headers_mut().insert(http::header::HOST, host);
        }
    }
    let stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(stream);
    if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        let response = sender.send_request(request).await?;
        collect(response).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let response = sender.send_request(request).await?;
        collect(response).await
    }
}

/// A `GET` to `uri` with optional extra headers (and `Host`, the URI's authority,
/// unless given), over HTTP/1.1.
pub fn get(uri: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::get(uri);
    let given = |n: &str| headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(n));
    if let Some(authority) = uri
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().cloned())
    {
        if !given("host") {
            builder = builder.header(http::header::HOST, authority.as_str());
        }
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(Bytes::new())).expect("request")
}

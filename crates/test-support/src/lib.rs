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

/// TLS material made for one test run: a CA and a leaf for `localhost` and 127.0.0.1.
pub struct TestTls {
    /// The CA certificate clients must trust.
    pub ca: rustls::pki_types::CertificateDer<'static>,
    /// The CA certificate in PEM form.
    pub ca_pem: String,
    /// A server configuration offering h2 and http/1.1.
    pub server: Arc<rustls::ServerConfig>,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    leaf: rustls::pki_types::CertificateDer<'static>,
    leaf_key: Vec<u8>,
    leaf_pem: (String, String),
}

fn server_config(
    verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    leaf: rustls::pki_types::CertificateDer<'static>,
    key: &[u8],
) -> Arc<rustls::ServerConfig> {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.to_vec().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(vec![leaf], key)
        .expect("server cert");
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(server)
}

impl TestTls {
    /// Makes a fresh CA and server certificate.
    pub fn new() -> TestTls {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wasi-http-host test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .expect("leaf cert");
        let leaf_pem = (leaf.pem(), leaf_key.serialize_pem());
        let leaf_key = leaf_key.serialize_der();
        let leaf = leaf.der().clone();
        TestTls {
            ca: ca_cert.der().clone(),
            ca_pem: ca_cert.pem(),
            server: server_config(None, leaf.clone(), &leaf_key),
            ca_cert,
            ca_key,
            leaf,
            leaf_key,
            leaf_pem,
        }
    }

    /// The server certificate for `localhost`/127.0.0.1: (certificate PEM, key PEM).
    pub fn server_cert_pem(&self) -> (String, String) {
        self.leaf_pem.clone()
    }

    /// A root store trusting only the test CA.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("add CA");
        roots
    }

    /// A server configuration that requires a client certificate issued by the CA.
    pub fn server_requiring_client_cert(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.roots()),
            provider,
        )
        .build()
        .expect("client verifier");
        server_config(Some(verifier), self.leaf.clone(), &self.leaf_key)
    }

    /// A client certificate issued by the CA: (certificate PEM, key PEM).
    pub fn client_cert_pem(&self) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("client key");
        let params =
            rcgen::CertificateParams::new(vec!["client.test".to_string()]).expect("client params");
        let cert = params
            .signed_by(&key, &self.ca_cert, &self.ca_key)
            .expect("client cert");
        (cert.pem(), key.serialize_pem())
    }
}

impl Default for TestTls {
    fn default() -> Self {
        TestTls::new()
    }
}

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

/// How a [`DnsServer`] answers every query.
#[derive(Clone, Copy, Debug)]
pub enum DnsAnswer {
    /// `A` queries get this address; other types an empty `NOERROR`.
    A(std::net::Ipv4Addr),
    /// This response code (e.g. 2 = SERVFAIL, 3 = NXDOMAIN) and no records.
    Rcode(u8),
    /// No answer at all.
    Silent,
}

/// A DNS server on 127.0.0.1 (UDP) with one fixed way of answering.
pub struct DnsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Starts a server answering every query with `answer`.
    pub async fn start(answer: DnsAnswer) -> DnsServer {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind dns");
        let addr = socket.local_addr().expect("dns addr");
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                if let Some(reply) = dns_reply(&buf[..n], answer) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        DnsServer { addr, task }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reply to one query (RFC 1035 §4.1): the header with QR set, the question echoed,
/// and for an `A` question one answer pointing back at it.
fn dns_reply(query: &[u8], answer: DnsAnswer) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    let qtype = u16::from_be_bytes([*query.get(end + 1)?, *query.get(end + 2)?]);
    let question = query.get(12..end + 5)?;
    let (rcode, record) = match answer {
        DnsAnswer::Silent => return None,
        DnsAnswer::Rcode(rcode) => (rcode, None),
        DnsAnswer::A(ip) => (0, (qtype == 1).then_some(ip)),
    };
    let mut reply = Vec::with_capacity(64);
    reply.extend_from_slice(&query[0..2]); // id
    reply.push(0x80 | (query[2] & 0x01) | 0x04); // QR, RD echoed, AA
    reply.push(0x80 | (rcode & 0x0f)); // RA, rcode
    reply.extend_from_slice(&[0, 1, 0, u8::from(record.is_some()), 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if let Some(ip) = record {
        // Name by pointer to the question, type A, class IN, TTL 60, 4 bytes.
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&ip.octets());
    }
    Some(reply)
}

/// What a [`RawServer`] does with each connection after reading the request head.
#[derive(Clone, Debug)]
pub struct RawScript {
    /// Pieces to write, each after sleeping its delay.
    pub steps: Vec<(Duration, Vec<u8>)>,
    /// Keep the connection open (idle) after the steps instead of closing it.
    pub hold_open: bool,
}

/// A server that writes exact bytes, for responses hyper would refuse to send.
pub struct RawServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RawServer {
    /// Starts a raw server running `script` on every connection.
    pub async fn start(script: RawScript) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind raw");
        let addr = listener.local_addr().expect("raw addr");
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let script = script.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    for (delay, bytes) in script.steps {
                        tokio::time::sleep(delay).await;
                        if stream.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    if script.hold_open {
                        tokio::time::sleep(Duration::from_secs(600)).await;
                    }
                });
            }
        });
        RawServer { addr, task }
    }

    /// A raw server that writes `bytes` at once and closes.
    pub async fn respond(bytes: &[u8]) -> RawServer {
        RawServer::start(RawScript {
            steps: vec![(Duration::ZERO, bytes.to_vec())],
            hold_open: false,
        })
        .await
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
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
/// connection to `addr` and collects the response.
pub async fn send<B>(
    addr: SocketAddr,
    request: Request<B>,
    h2: bool,
) -> Result<Collected, hyper::Error>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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

/// A `GET` to `uri` with optional extra headers, over HTTP/1.1.
pub fn get(uri: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(Bytes::new())).expect("request")
}

/// A `wasi-http serve` child process; killed on drop.
pub struct ServeProcess {
    child: Child,
    /// The address it printed.
    pub addr: SocketAddr,
    /// The metrics address it printed, if it serves metrics.
    pub metrics_addr: Option<SocketAddr>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Spawns `bin serve ARGS --addr 127.0.0.1:0` and waits for its listening line.
    pub fn spawn(bin: &str, args: &[&str]) -> ServeProcess {
        ServeProcess::spawn_logging(bin, args, "info")
    }

    /// Like [`spawn`](Self::spawn) with `RUST_LOG` set to `filter`.
    pub fn spawn_logging(bin: &str, args: &[&str], filter: &str) -> ServeProcess {
        ServeProcess::spawn_full(bin, args, filter, &[])
    }

    /// Like [`spawn`](Self::spawn) with these environment variables set.
    pub fn spawn_with_env(bin: &str, args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        ServeProcess::spawn_full(bin, args, "info", env)
    }

    fn spawn_full(bin: &str, args: &[&str], filter: &str, env: &[(&str, &str)]) -> ServeProcess {
        let mut child = Command::new(bin)
            .arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .env("RUST_LOG", filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wasi-http");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut metrics = None;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("Metrics on http://") {
                    metrics = rest.trim_end_matches("/metrics").parse::<SocketAddr>().ok();
                }
                let serving = line
                    .strip_prefix("Serving HTTP on http://")
                    .or_else(|| line.strip_prefix("Serving HTTP on https://"));
                if let Some(rest) = serving {
                    if let (Some(sender), Ok(addr)) = (
                        tx.as_ref(),
                        rest.trim_end_matches('/').parse::<SocketAddr>(),
                    ) {
                        let _ = sender.send((addr, metrics));
                        tx = None;
                    }
                }
                sink.lock().expect("stderr lines").push(line);
            }
        });
        let (addr, metrics_addr) = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "wasi-http serve did not start; stderr:\n{}",
                    lines.lock().expect("stderr lines").join("\n")
                );
            }
        };
        ServeProcess {
            child,
            addr,
            metrics_addr,
            stderr: lines,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lines").join("\n")
    }

    /// Sends SIGINT (graceful shutdown) and waits for the exit status.
    pub fn interrupt(self) -> std::process::ExitStatus {
        self.signal("INT")
    }

    /// Sends the signal `name` (e.g. `TERM`) and waits for the exit status.
    pub fn signal(mut self, name: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
        self.child.wait().expect("wait")
    }

    /// `GET path` over a new HTTP/1.1 connection; panics if no response comes.
    pub async fn get(&self, path: &str) -> Collected {
        send(
            self.addr,
            get(&format!("http://{}{path}", self.addr), &[]),
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Waits up to 5 s for a stderr line containing `needle` (server workers write
    /// their log lines in batches, up to 100 ms after the event); returns whether
    /// one came.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to 5 s until `n` stderr lines contain `needle` (lines from different
    /// workers may come out of order); returns those lines.
    pub fn wait_for_log_lines(&self, needle: &str, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<String> = self
                .stderr()
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_owned)
                .collect();
            if lines.len() >= n || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `/metrics` until `series` satisfies `done` or `within` passes; returns
    /// the last value seen.
    pub async fn wait_for_metric(
        &self,
        series: &str,
        done: impl Fn(f64) -> bool,
        within: Duration,
    ) -> Option<f64> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let value = self.metric(series).await;
            if value.is_some_and(&done) || std::time::Instant::now() > deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit on its own.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }

    /// Resident memory now, in KiB (Linux; 0 elsewhere).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Fetches `/metrics` and returns the value of the sample line starting with
    /// `series` (e.g. `wasi_http_requests_in_flight`).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let addr = self.metrics_addr?;
        let r = send(addr, get(&format!("http://{addr}/metrics"), &[]), false)
            .await
            .ok()?;
        r.text()
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port free right now (for a second listener).
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// Runs `bin serve ARGS` expecting it to fail at startup; returns its stderr.
pub fn serve_failure(bin: &str, args: &[&str]) -> String {
    let output = Command::new(bin)
        .arg("serve")
        .args(args)
        .args(["--addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run wasi-http");
    assert!(!output.status.success(), "expected a startup failure");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

//! The incoming side: turning an `http::Request` into an `incoming-request`, awaiting
//! the guest's `response-outparam`, and a ready-made [`ProxyService`] that serves a
//! `wasi:http/proxy` component over hyper with a fresh instance per request.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;
use tokio::sync::oneshot;
use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::ProxyPre;
use crate::body::{BodyReader, Direction, HostBody, HostIncomingBody};
use crate::error_code::{ErrorCode, ErrorCodeError};
use crate::fields::HostFields;
use crate::request::HostIncomingRequest;
use crate::response::{GuestResponse, HostResponseOutparam};
use crate::{Limits, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Why an `http::Request` could not become an `incoming-request`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IncomingRequestError {
    /// The header section exceeds the [`Limits`]; answer 431.
    HeadersTooLarge,
    /// The resource table is full.
    Table(String),
}

impl std::fmt::Display for IncomingRequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IncomingRequestError::HeadersTooLarge => {
                f.write_str("request header section too large")
            }
            IncomingRequestError::Table(e) => write!(f, "resource table: {e}"),
        }
    }
}

impl std::error::Error for IncomingRequestError {}

impl WasiHttpCtxView<'_> {
    /// Makes an `incoming-request` resource from a request received by a server.
    ///
    /// The authority comes from the URI (HTTP/2, absolute-form) or else the `Host`
    /// header (HTTP/1.1). `scheme` is how the request arrived (`http` or `https`).
    pub fn new_incoming_request<B>(
        &mut self,
        scheme: http::uri::Scheme,
        request: http::Request<B>,
    ) -> Result<Resource<HostIncomingRequest>, IncomingRequestError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCodeError>,
    {
        let (parts, body) = request.into_parts();
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let path_with_query = parts.uri.path_and_query().map(|p| p.as_str().to_owned());
        let headers = HostFields::from_received(parts.headers, &self.ctx.limits)
            .map_err(|_| IncomingRequestError::HeadersTooLarge)?;
        let reader = BodyReader::new(
            crate::body::boxed(body),
            None,
            &self.ctx.limits,
            Direction::Request,
        );
        let request = HostIncomingRequest {
            method: parts.method,
            scheme: Some(scheme),
            authority,
            path_with_query,
            headers,
            body: Some(HostIncomingBody::new(reader)),
        };
        self.table
            .push(request)
            .map_err(|e| IncomingRequestError::Table(e.to_string()))
    }

    /// Makes a `response-outparam` and the receiver that resolves when the guest sets it.
    pub fn new_response_outparam(
        &mut self,
    ) -> wasmtime::Result<(Resource<HostResponseOutparam>, ResponseReceiver)> {
        let (param, rx) = HostResponseOutparam::new();
        Ok((self.table.push(param)?, ResponseReceiver(rx)))
    }
}

impl From<hyper::Error> for ErrorCodeError {
    fn from(e: hyper::Error) -> Self {
        ErrorCodeError(crate::error_code::from_hyper_request_error(&e))
    }
}

impl From<std::convert::Infallible> for ErrorCodeError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// Why the guest produced no response.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum GuestResponseError {
    /// The guest called `response-outparam.set` with an error code.
    ErrorCode(ErrorCode),
    /// The guest returned (or trapped) without setting the response.
    NotSet,
}

impl std::fmt::Display for GuestResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestResponseError::ErrorCode(code) => {
                write!(
                    f,
                    "guest responded with error {}",
                    ErrorCodeError(code.clone())
                )
            }
            GuestResponseError::NotSet => f.write_str("guest did not set a response"),
        }
    }
}

impl std::error::Error for GuestResponseError {}

/// Resolves to the guest's response once it calls `response-outparam.set`.
#[derive(Debug)]
pub struct ResponseReceiver(oneshot::Receiver<GuestResponse>);

impl Future for ResponseReceiver {
    type Output = Result<http::Response<HostBody>, GuestResponseError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(GuestResponseError::ErrorCode(code)),
            Err(_) => Err(GuestResponseError::NotSet),
        })
    }
}

// ---------------------------------------------------------------------------------
// A ready-made store type and service

/// Store data for running a proxy component: WASI (nothing granted), HTTP, limits.
pub struct ProxyState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
    deadline: Option<Instant>,
}

impl ProxyState {
    /// State with the given WASI and HTTP contexts and no memory limit.
    pub fn new(wasi: WasiCtx, http: WasiHttpCtx) -> Self {
        ProxyState {
            wasi,
            http,
            table: ResourceTable::new(),
            limits: StoreLimits::default(),
            deadline: None,
        }
    }
}

impl WasiView for ProxyState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ProxyState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
        }
    }
}

/// Settings of a [`ProxyService`].
#[derive(Clone)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// `wasi:http` limits for each request's store.
    pub limits: Limits,
    /// Policy hooks (outgoing requests, forbidden headers, schemes).
    pub hooks: Arc<dyn WasiHttpHooks>,
    /// Most linear memory one instance may grow to. `None`: no cap beyond wasm's.
    pub max_memory_bytes: Option<usize>,
    /// Longest a guest may run for one request; past it the guest is stopped and the
    /// client gets 504 (or a reset once the response has started). Needs an engine
    /// made with epoch interruption ([`EngineConfig`]).
    pub request_timeout: Option<Duration>,
    /// Let guests print to the host's stdout and stderr.
    pub inherit_stdio: bool,
    /// Most resources (fields, bodies, streams, pollables, ...) one instance may
    /// hold at once; past it the guest traps. Bounds the host memory a guest can pin
    /// through handles (wasmtime's own default is a million). Default: 4096.
    pub max_resources: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            limits: Limits::default(),
            hooks: Arc::new(crate::DefaultHooks::default()),
            max_memory_bytes: None,
            request_timeout: None,
            inherit_stdio: true,
            max_resources: 4096,
        }
    }
}

/// Settings for [`new_engine`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Use the pooling instance allocator (falls back to on-demand if the machine
    /// cannot reserve the address space).
    pub pooling: bool,
    /// Most concurrent instances with pooling.
    pub max_instances: u32,
    /// Largest linear memory with pooling (and the reservation per memory).
    pub max_memory_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            pooling: true,
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
        }
    }
}

/// How often the epoch ticks: the resolution of guest deadlines and the longest a
/// guest runs before yielding its thread to other requests.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Makes an engine for serving: async, epoch interruption (ticked by a background
/// thread every [`EPOCH_TICK`]), pooling allocator when the machine allows it.
/// Returns the engine and whether pooling is in use.
pub fn new_engine(config: &EngineConfig) -> wasmtime::Result<(Engine, bool)> {
    let mut base = wasmtime::Config::new();
    base.epoch_interruption(true);
    let engine = if config.pooling {
        let mut pooled = base.clone();
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances.saturating_mul(4))
            .total_memories(config.max_instances.saturating_mul(2))
            .total_tables(config.max_instances.saturating_mul(4))
            .max_memory_size(config.max_memory_bytes);
        pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&pooled) {
            Ok(engine) => Some(engine),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                None
            }
        }
    } else {
        None
    };
    let pooling = engine.is_some();
    let engine = match engine {
        Some(engine) => engine,
        None => Engine::new(&base)?,
    };
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasi-http-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok((engine, pooling))
}

/// Why a component cannot be served.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceError {
    /// The component imports something the host does not provide (named).
    Link(wasmtime::Error),
    /// The component does not export `wasi:http/incoming-handler`.
    NotAProxy(wasmtime::Error),
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Link(e) => write!(f, "component cannot be linked: {e:#}"),
            ServiceError::NotAProxy(e) => write!(
                f,
                "component is not a wasi:http/proxy component \
                 (it must export wasi:http/incoming-handler@0.2.x): {e:#}"
            ),
        }
    }
}

impl std::error::Error for ServiceError {}

/// Serves a `wasi:http/proxy` component: each request gets a fresh instance.
#[derive(Clone)]
pub struct ProxyService {
    inner: Arc<ServiceInner>,
}

struct ServiceInner {
    engine: Engine,
    pre: ProxyPre<ProxyState>,
    config: ServiceConfig,
}

impl ProxyService {
    /// Links (proxy imports plus the rest of WASI p2, nothing granted) and
    /// pre-instantiates `component`.
    pub fn new(
        engine: &Engine,
        component: &Component,
        config: ServiceConfig,
    ) -> Result<Self, ServiceError> {
        let mut linker = Linker::new(engine);
        crate::add_to_linker_async_with_wasi(&mut linker).map_err(ServiceError::Link)?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(ServiceError::Link)?;
        let pre = ProxyPre::new(pre).map_err(ServiceError::NotAProxy)?;
        Ok(ProxyService {
            inner: Arc::new(ServiceInner {
                engine: engine.clone(),
                pre,
                config,
            }),
        })
    }

    fn new_store(&self) -> Store<ProxyState> {
        let config = &self.inner.config;
        let mut wasi = WasiCtx::builder();
        if config.inherit_stdio {
            wasi.inherit_stdout().inherit_stderr();
        }
        let http = WasiHttpCtx::new(config.limits.clone(), config.hooks.clone());
        let mut state = ProxyState::new(wasi.build(), http);
        state.table.set_max_capacity(config.max_resources);
        if let Some(max) = config.max_memory_bytes {
            state.limits = StoreLimitsBuilder::new().memory_size(max).build();
        }
        state.deadline = config.request_timeout.map(|t| Instant::now() + t);
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limits);
        // Yield every tick so a busy guest cannot hold a runtime thread; trap once
        // the request's deadline has passed.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| match ctx.data().deadline {
            Some(deadline) if Instant::now() >= deadline => Err(wasmtime::Trap::Interrupt.into()),
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        store
    }

    /// Handles one request with a fresh instance. Never fails: host and guest
    /// failures become error responses (logged), as documented in ARCHITECTURE.md.
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
        scheme: http::uri::Scheme,
    ) -> http::Response<HostBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCodeError>,
    {
        let mut store = self.new_store();
        let timeout = self.inner.config.request_timeout;
        let (req, out, receiver) = {
            let mut view = store.data_mut().http();
            let req = match view.new_incoming_request(scheme, request) {
                Ok(req) => req,
                Err(IncomingRequestError::HeadersTooLarge) => {
                    return error_response(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot create incoming-request");
                    return error_response(http::StatusCode::SERVICE_UNAVAILABLE);
                }
            };
            match view.new_response_outparam() {
                Ok((out, rx)) => (req, out, rx),
                Err(e) => {
                    tracing::error!(error = %e, "cannot create response-outparam");
                    return error_response(http::StatusCode::SERVICE_UNAVAILABLE);
                }
            }
        };
        let pre = self.inner.pre.clone();
        let (trap_tx, trap_rx) = oneshot::channel::<wasmtime::Error>();
        tokio::spawn(async move {
            let result = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            }
            .await;
            if let Err(e) = result {
                // Logged here, not by the waiter: a trap after the response started
                // (the body is then aborted) has nobody waiting for it.
                if is_interrupt(&e) && timeout.is_some() {
                    tracing::warn!("guest exceeded the request timeout and was stopped");
                } else {
                    tracing::error!(error = ?e, "guest trapped");
                }
                let _ = trap_tx.send(e);
            }
        });
        match receiver.await {
            Ok(response) => response,
            // Answered at once: the guest may still be running after `set`.
            Err(GuestResponseError::ErrorCode(code)) => {
                tracing::warn!(error = %ErrorCodeError(code.clone()), "guest responded with an error code");
                error_response(crate::error_code::status_for(&code))
            }
            Err(GuestResponseError::NotSet) => {
                // The outparam is gone, almost always because the guest's call ended;
                // its error (if any) says which status fits.
                match tokio::time::timeout(Duration::from_secs(1), trap_rx).await {
                    Ok(Ok(trap)) if is_interrupt(&trap) && timeout.is_some() => {
                        error_response(http::StatusCode::GATEWAY_TIMEOUT)
                    }
                    Ok(Ok(_)) => error_response(http::StatusCode::INTERNAL_SERVER_ERROR),
                    _ => {
                        tracing::error!("guest returned without setting a response");
                        error_response(http::StatusCode::INTERNAL_SERVER_ERROR)
                    }
                }
            }
        }
    }

    /// Serves HTTP/1.1 and HTTP/2 (cleartext, by prior knowledge) on `listener` until
    /// `shutdown` resolves, then waits for in-flight connections to finish.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::server::conn::auto;

        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        tokio::pin!(shutdown);
        loop {
            let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and similar: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service = self.clone();
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let service = service.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            service.handle(req, http::uri::Scheme::HTTP).await,
                        )
                    }
                });
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
        Ok(())
    }
}

fn is_interrupt(err: &wasmtime::Error) -> bool {
    matches!(
        err.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    )
}

/// A short plain-text error response; the detail stays in the log.
fn error_response(status: http::StatusCode) -> http::Response<HostBody> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let body = http_body_util::Full::new(Bytes::from(text));
    let mut response = http::Response::new(crate::body::boxed(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

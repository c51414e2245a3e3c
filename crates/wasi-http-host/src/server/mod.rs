//! The incoming side: turning an `http::Request` into an `incoming-request`, awaiting
//! the guest's `response-outparam`, and a ready-made [`ProxyService`] that serves a
//! `wasi:http/proxy` component over hyper with a fresh instance per request.

use std::future::Future;
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
use crate::metrics::Metrics;
use crate::request::HostIncomingRequest;
use crate::response::{GuestResponse, HostResponseOutparam};
use crate::{Limits, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

mod batched_log;
mod guest_output;
mod serve;

pub use self::batched_log::{BatchedLog, BatchedLogWriter};
pub use self::guest_output::GuestOutput;
use self::guest_output::{Budget, LogSink};
pub use self::serve::{Server, ServerConfig, ServerError};

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
    output: Option<Arc<Budget>>,
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
            output: None,
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
    /// Where guests' stdout and stderr go. Default: log lines tagged with the request
    /// id, 64 KiB per request.
    pub guest_output: GuestOutput,
    /// Most resources (fields, bodies, streams, pollables, ...) one instance may
    /// hold at once; past it the guest traps. Bounds the host memory a guest can pin
    /// through handles (wasmtime's own default is a million). Default: 4096.
    pub max_resources: usize,
    /// Fuel (roughly, wasm instructions) each request's guest may burn; past it the
    /// guest traps and the client gets 500. Needs an engine made with
    /// [`EngineConfig::fuel`]. Default: none (unlimited).
    pub fuel: Option<u64>,
    /// Reuse instances for later requests instead of a fresh one per request. Faster,
    /// but a guest then sees memory left by earlier requests: opt in only for guests
    /// written for it. Default: none (a fresh instance per request).
    pub instance_reuse: Option<InstanceReuse>,
}

/// When a reused instance is retired. An instance serves one request at a time; it
/// is discarded after `max_requests`, after any trap or error, and when idle for
/// `idle_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceReuse {
    /// Requests one instance serves before it is discarded.
    pub max_requests: u32,
    /// An instance unused for this long is discarded. Default: 60 s.
    pub idle_timeout: Duration,
}

impl InstanceReuse {
    /// Reuse each instance for up to `max_requests` requests.
    pub fn new(max_requests: u32) -> Self {
        InstanceReuse {
            max_requests,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            limits: Limits::default(),
            hooks: Arc::new(crate::DefaultHooks::default()),
            max_memory_bytes: None,
            request_timeout: None,
            guest_output: GuestOutput::default(),
            max_resources: 4096,
            fuel: None,
            instance_reuse: None,
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
    /// With pooling, bytes of each linear memory (and table) left mapped when an
    /// instance ends and reset in place for the next one, instead of being unmapped.
    /// Unmapping costs a TLB shootdown on every core running the process, which
    /// dominates a fresh-instance-per-request server; pages kept cost RSS. Where the
    /// kernel has `PAGEMAP_SCAN` (Linux 6.7+) only pages the instance touched are
    /// reset. Default: 4 MiB.
    pub keep_resident_bytes: usize,
    /// Count wasm instructions ("fuel") so [`ServiceConfig::fuel`] can cap each
    /// request's guest. Costs some speed. Default: off.
    pub fuel: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            pooling: true,
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
            keep_resident_bytes: 4 << 20,
            fuel: false,
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
    base.consume_fuel(config.fuel);
    let engine = if config.pooling {
        let mut pooled = base.clone();
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances.saturating_mul(4))
            .total_memories(config.max_instances.saturating_mul(2))
            .total_tables(config.max_instances.saturating_mul(4))
            .max_memory_size(config.max_memory_bytes)
            .linear_memory_keep_resident(config.keep_resident_bytes)
            .table_keep_resident(config.keep_resident_bytes.min(1 << 20))
            .pagemap_scan(wasmtime::Enabled::Auto);
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
            ServiceError::Link(e) => {
                let text = format!("{e:#}");
                write!(f, "component cannot be linked: {text}")?;
                // Say what is on offer, so the operator knows no flag will help
                // and what the guest must be rebuilt against instead.
                if text.contains("@0.3") {
                    f.write_str(
                        "; WASI 0.3 (p3) interfaces are not provided: build the guest \
                         for WASI 0.2 (wasi:http@0.2.x)",
                    )
                } else {
                    f.write_str(
                        "; provided are wasi:http@0.2.0-0.2.12 (types, outgoing-handler) \
                         and WASI 0.2 cli, io, clocks, random, filesystem and sockets \
                         (linked with nothing granted); no flag adds other interfaces",
                    )
                }
            }
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
    /// Instances waiting for their next request (with `instance_reuse`), oldest first.
    idle: std::sync::Mutex<Vec<Instance>>,
    /// Set once a reused instance failed where a fresh one had succeeded: the guest
    /// is not safe to reuse, so every request gets a fresh instance from then on.
    reuse_unsafe: std::sync::atomic::AtomicBool,
    reaper: crate::reaper::Once,
}

/// A store with (once instantiated) its component instance.
struct Instance {
    store: Store<ProxyState>,
    proxy: Option<crate::bindings::Proxy>,
    served: u32,
    idle_since: Instant,
    /// Whether this instance's latest response was not a server error; written by
    /// the request future once the response is known.
    last_ok: Arc<std::sync::atomic::AtomicBool>,
}

impl ServiceInner {
    /// A reused instance answered 5xx (or nothing) right after a request it answered
    /// below 500: stop reusing instances of this guest.
    fn reuse_failed(&self, request_id: &str) {
        if !self
            .reuse_unsafe
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                %request_id,
                "a reused instance failed where a fresh one succeeded: this guest is not \
                 safe to reuse; serving every request with a fresh instance from now on"
            );
            if let Ok(mut idle) = self.idle.lock() {
                idle.clear();
            }
        }
    }

    /// An idle instance to reuse (the most recently used one).
    fn take_idle(&self) -> Option<Instance> {
        if self.config.instance_reuse.is_none()
            || self.reuse_unsafe.load(std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        self.idle.lock().ok()?.pop()
    }

    /// Drops the instances idle for longer than `idle_timeout` (run by the reaper,
    /// so they go even when no request comes).
    fn expire_idle(&self) {
        let Some(reuse) = self.config.instance_reuse else {
            return;
        };
        let now = Instant::now();
        let stale: Vec<Instance> = match self.idle.lock() {
            Ok(mut idle) => {
                // Oldest first: the list is in order of return.
                let expired = idle
                    .iter()
                    .take_while(|i| now.duration_since(i.idle_since) >= reuse.idle_timeout)
                    .count();
                idle.drain(..expired).collect()
            }
            Err(_) => return,
        };
        // Stores are dropped outside the lock.
        drop(stale);
    }

    /// Keeps an instance that served a request cleanly, unless it is used up.
    fn put_idle(&self, mut instance: Instance) {
        let Some(reuse) = self.config.instance_reuse else {
            return;
        };
        if self.reuse_unsafe.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        instance.served += 1;
        if instance.served >= reuse.max_requests {
            return;
        }
        instance.idle_since = Instant::now();
        if let Ok(mut idle) = self.idle.lock() {
            // Bounded by the peak number of concurrent requests.
            idle.push(instance);
        }
    }
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
                idle: std::sync::Mutex::new(Vec::new()),
                reuse_unsafe: std::sync::atomic::AtomicBool::new(false),
                reaper: crate::reaper::Once::new(),
            }),
        })
    }

    fn new_store(&self, request_id: &Arc<str>) -> Store<ProxyState> {
        let config = &self.inner.config;
        let mut wasi = WasiCtx::builder();
        let mut budget = None;
        match config.guest_output {
            GuestOutput::Discard => {}
            GuestOutput::Inherit => {
                wasi.inherit_stdout().inherit_stderr();
            }
            GuestOutput::Log { max_bytes } => {
                budget = Some(Budget::new(request_id.clone(), max_bytes));
            }
        }
        if let Some(budget) = &budget {
            let (stdout, stderr) = LogSink::pair(budget);
            wasi.stdout(stdout).stderr(stderr);
        }
        let http = WasiHttpCtx::new(config.limits.clone(), config.hooks.clone());
        let mut state = ProxyState::new(wasi.build(), http);
        state.output = budget;
        state.table.set_max_capacity(config.max_resources);
        if let Some(max) = config.max_memory_bytes {
            state.limits = StoreLimitsBuilder::new().memory_size(max).build();
        }
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limits);
        // Yield every tick so a busy guest cannot hold a runtime thread; trap once
        // the request's deadline has passed.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| match ctx.data().deadline {
            Some(deadline) if Instant::now() >= deadline => Err(wasmtime::Trap::Interrupt.into()),
            // tokio's yield lets the runtime poll for I/O before resuming the guest,
            // so connections sharing its worker are not kept waiting behind it.
            _ => Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            )),
        });
        store
    }

    /// Readies an instance's store for one request: its deadline, fuel and log tag.
    fn prepare(&self, store: &mut Store<ProxyState>, request_id: &Arc<str>) {
        let config = &self.inner.config;
        let state = store.data_mut();
        state.deadline = config.request_timeout.map(|t| Instant::now() + t);
        if let Some(budget) = &state.output {
            budget.reset(request_id.clone());
        }
        if self.inner.engine.get_consume_fuel() {
            // Fails only if the engine does not count fuel, checked just above.
            let _ = store.set_fuel(config.fuel.unwrap_or(u64::MAX));
        }
        store.set_epoch_deadline(1);
    }

    /// Handles one request with a fresh instance. Never fails: host and guest
    /// failures become error responses (logged), as documented in ARCHITECTURE.md.
    /// Dropping the future, or the response body before its end, stops the guest.
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
        scheme: http::uri::Scheme,
    ) -> http::Response<HostBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCodeError>,
    {
        let context = RequestContext {
            id: next_request_id(),
            metrics: None,
            permit: None,
        };
        self.handle_in(request, scheme, context).await
    }

    pub(crate) async fn handle_in<B>(
        &self,
        request: http::Request<B>,
        scheme: http::uri::Scheme,
        context: RequestContext,
    ) -> http::Response<HostBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCodeError>,
    {
        if let Some(reuse) = self.inner.config.instance_reuse {
            self.inner
                .reaper
                .start(&self.inner, reuse.idle_timeout, ServiceInner::expire_idle);
        }
        let mut instance = self.inner.take_idle().unwrap_or_else(|| Instance {
            store: self.new_store(&context.id),
            proxy: None,
            served: 0,
            idle_since: Instant::now(),
            last_ok: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        });
        self.prepare(&mut instance.store, &context.id);
        let timeout = self.inner.config.request_timeout;
        let (req, out, receiver) = {
            let mut view = instance.store.data_mut().http();
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
        let inner = self.inner.clone();
        // Reused after a request it answered well: a server error now is the
        // instance's reuse failing, not the guest's ordinary behaviour.
        let reused_after_success =
            instance.served > 0 && instance.last_ok.load(std::sync::atomic::Ordering::Relaxed);
        let last_ok = instance.last_ok.clone();
        let out_rep = out.rep();
        let (trap_tx, trap_rx) = oneshot::channel::<wasmtime::Error>();
        let RequestContext {
            id,
            metrics,
            permit,
        } = context;
        let id_for_log = id.clone();
        let task = tokio::spawn(async move {
            // Held until the guest is done (or stopped): the slot and the gauge.
            let _permit = permit;
            let _in_flight = metrics.as_ref().map(|m| InFlight::new(m.in_flight()));
            let result = async {
                if instance.proxy.is_none() {
                    let started = Instant::now();
                    // Boxed: instantiation's future is large and needed once per instance;
                    // inline, it would more than double every request's task (1.5 KiB
                    // against 0.6), which is allocated and moved on each spawn.
                    let proxy = Box::pin(inner.pre.instantiate_async(&mut instance.store)).await?;
                    if let Some(metrics) = &metrics {
                        metrics.instantiated(started.elapsed());
                    }
                    instance.proxy = Some(proxy);
                }
                let Instance { store, proxy, .. } = &mut instance;
                let proxy = proxy
                    .as_ref()
                    .ok_or_else(|| wasmtime::Error::msg("instance missing after instantiation"))?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(store, req, out)
                    .await
            }
            .await;
            match result {
                // Only an instance that ended its request cleanly is kept: a guest
                // that returned still holding its response-outparam would keep that
                // request waiting forever, so its instance (and the outparam) goes.
                Ok(()) => {
                    let unanswered = Resource::<HostResponseOutparam>::new_borrow(out_rep);
                    if instance.store.data().table.get(&unanswered).is_err() {
                        inner.put_idle(instance);
                    }
                }
                Err(e) => {
                    // Logged here, not by the waiter: a trap after the response started
                    // (the body is then aborted) has nobody waiting for it.
                    let deadline = is_interrupt(&e) && timeout.is_some();
                    if deadline {
                        tracing::warn!(request_id = %id, "guest exceeded the request timeout and was stopped");
                    } else {
                        tracing::error!(request_id = %id, error = ?e, "guest trapped");
                    }
                    if let Some(metrics) = &metrics {
                        metrics.trapped(deadline);
                    }
                    let _ = trap_tx.send(e);
                }
            }
        });
        // Stops the guest if this future is dropped (the client went away) before
        // the response; afterwards the response body carries it.
        let guard = GuestTask(Some(task.abort_handle()));
        let response = self.response(receiver, trap_rx, guard, timeout).await;
        let server_error = response.status().is_server_error();
        last_ok.store(!server_error, std::sync::atomic::Ordering::Relaxed);
        if reused_after_success && server_error {
            self.inner.reuse_failed(&id_for_log);
        }
        response
    }

    /// The guest's response, or the error response its failure calls for.
    async fn response(
        &self,
        receiver: ResponseReceiver,
        trap_rx: oneshot::Receiver<wasmtime::Error>,
        guard: GuestTask,
        timeout: Option<Duration>,
    ) -> http::Response<HostBody> {
        match receiver.await {
            Ok(response) => response.map(|body| {
                crate::body::boxed(GuardedBody {
                    body,
                    guard: Some(guard),
                })
            }),
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

    /// Serves HTTP/1.1 and HTTP/2 (cleartext, by prior knowledge) on `listener`, on
    /// the current runtime, with [`ServerConfig`]'s defaults, until `shutdown`
    /// resolves; then waits for in-flight requests (up to the shutdown timeout).
    /// [`Server`] runs one listener per core and takes a configuration.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let shared = Arc::new(serve::Shared::new(ServerConfig::default(), self.clone()));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let serving = serve::serve_listener(shared, listener, stop_rx);
        tokio::pin!(serving);
        tokio::select! {
            () = &mut serving => return Ok(()),
            () = shutdown => {}
        }
        let _ = stop_tx.send(true);
        serving.await;
        Ok(())
    }
}

/// What the serving loop hands a request besides the request itself.
pub(crate) struct RequestContext {
    pub(crate) id: Arc<str>,
    pub(crate) metrics: Option<Metrics>,
    /// The request's slot under the concurrency limit, kept until the guest is done.
    pub(crate) permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// A request id unique within this process: a per-process random prefix (so ids
/// from restarts differ) and a counter.
pub(crate) fn next_request_id() -> Arc<str> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        // Falls back to the clock if the OS has no randomness to give.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            bytes = nanos.to_le_bytes();
        }
        u32::from_le_bytes(bytes)
    });
    // Written by hand, not `format!`: this runs for every request.
    let mut text = [0u8; 8 + 1 + 20];
    for (i, byte) in text[..8].iter_mut().enumerate() {
        *byte = b"0123456789abcdef"[(prefix >> (28 - 4 * i) & 0xf) as usize];
    }
    text[8] = b'-';
    let mut number = itoa::Buffer::new();
    let number = number.format(NEXT.fetch_add(1, Ordering::Relaxed));
    let len = 9 + number.len();
    text[9..len].copy_from_slice(number.as_bytes());
    // Hex digits, a dash and decimal digits: always UTF-8.
    std::str::from_utf8(&text[..len]).map_or_else(|_| Arc::from(""), Arc::from)
}

/// Counts a running guest in the in-flight gauge for as long as it lives.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Aborts the guest's task when dropped, unless the response completed.
struct GuestTask(Option<tokio::task::AbortHandle>);

impl Drop for GuestTask {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// The guest's response body: if it is dropped before its end (the client went
/// away), the guest is stopped; once it has ended the guest may finish on its own.
struct GuardedBody {
    body: HostBody,
    guard: Option<GuestTask>,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = ErrorCodeError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, ErrorCodeError>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            if let Some(mut guard) = self.guard.take() {
                guard.0 = None;
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
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

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_a_process_prefix_and_a_counter() {
        let a = super::next_request_id();
        let b = super::next_request_id();
        let (prefix_a, n_a) = a.split_once('-').unwrap();
        let (prefix_b, n_b) = b.split_once('-').unwrap();
        assert_eq!(prefix_a.len(), 8);
        assert!(prefix_a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(prefix_a, prefix_b);
        assert!(n_b.parse::<u64>().unwrap() > n_a.parse::<u64>().unwrap());
    }
}

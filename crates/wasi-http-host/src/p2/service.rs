//! [`ProxyService`]: serves a `wasi:http/proxy` (0.2) component, a fresh instance
//! per request or, opted in, reused instances serving one request at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;
use tokio::sync::oneshot;
use wasi_http_core::body::Watched;
use wasi_http_core::{error_response, ErrorCode, Handler, HostBody, InFlight, RequestContext};
use wasmtime::component::{Component, Linker, Resource};
use wasmtime::{Engine, Store};

use super::bindings::{Proxy, ProxyPre};
use super::{GuestResponseError, HostResponseOutparam, IncomingRequestError, ResponseReceiver};
use crate::ctx::Answer;
use crate::service::is_interrupt;
use crate::service::replay::Replayable;
use crate::{GuestState, ServiceConfig, ServiceError, WasiHttpView};

/// Serves a `wasi:http/proxy` component: each request gets a fresh instance, or
/// (with [`ServiceConfig::instance_reuse`]) an idle one.
#[derive(Clone)]
pub struct ProxyService {
    inner: Arc<ServiceInner>,
}

struct ServiceInner {
    engine: Engine,
    pre: ProxyPre<GuestState>,
    config: ServiceConfig,
    /// Instances waiting for their next request (with `instance_reuse`), oldest first.
    idle: Mutex<Vec<Instance>>,
    /// Set once a reused instance failed where a fresh one had succeeded: the guest
    /// is not safe to reuse, so every request gets a fresh instance from then on.
    reuse_unsafe: AtomicBool,
    /// Set once a reused instance answered (below 500) after an earlier success:
    /// instances of this guest can be reused. Until then one is on trial at a time.
    reuse_proven: AtomicBool,
    /// Whether a reused instance is on trial now (see [`Trial`]).
    on_trial: AtomicBool,
    reaper: wasi_http_core::reaper::Once,
}

/// A store with (once instantiated) its component instance.
struct Instance {
    store: Store<GuestState>,
    proxy: Option<Proxy>,
    served: u32,
    idle_since: Instant,
    /// Whether this instance's latest request was answered below 500.
    last_ok: bool,
}

impl Instance {
    /// A new store, to be instantiated by its first request.
    fn fresh(inner: &ServiceInner, request_id: &Arc<str>) -> Self {
        Instance {
            store: crate::service::new_store(&inner.engine, &inner.config, request_id),
            proxy: None,
            served: 0,
            idle_since: Instant::now(),
            last_ok: false,
        }
    }
}

impl ServiceInner {
    /// A reused instance answered 5xx (or nothing) right after a request it answered
    /// below 500: stop reusing instances of this guest.
    fn reuse_failed(&self, request_id: &str) {
        if !self.reuse_unsafe.swap(true, Ordering::Relaxed) {
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

    /// Whether instances may be reused but none has proven it yet: requests then
    /// may meet the instance on trial.
    fn reuse_unproven(&self) -> bool {
        self.config.instance_reuse.is_some()
            && !self.reuse_proven.load(Ordering::Acquire)
            && !self.reuse_unsafe.load(Ordering::Relaxed)
    }

    /// An idle instance to reuse (the most recently used one). Until reuse is
    /// proven, only one reused instance at a time serves (on trial): the other
    /// requests get fresh ones, so a guest that breaks when reused fails once.
    fn take_idle(self: &Arc<Self>) -> Option<(Instance, Option<Trial>)> {
        if self.config.instance_reuse.is_none() || self.reuse_unsafe.load(Ordering::Relaxed) {
            return None;
        }
        if self.reuse_proven.load(Ordering::Acquire) {
            return self.idle.lock().ok()?.pop().map(|i| (i, None));
        }
        if self.on_trial.swap(true, Ordering::AcqRel) {
            return None;
        }
        // Made before the pop, so that the flag is cleared on every way out.
        let trial = Trial {
            inner: self.clone(),
            passed: false,
        };
        let instance = self.idle.lock().ok()?.pop()?;
        Some((instance, Some(trial)))
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
        if self.reuse_unsafe.load(Ordering::Relaxed) {
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
    /// Links (proxy imports plus the rest of WASI 0.2, nothing granted) and
    /// pre-instantiates `component`.
    pub fn new(
        engine: &Engine,
        component: &Component,
        config: ServiceConfig,
    ) -> Result<Self, ServiceError> {
        let mut linker = Linker::new(engine);
        super::add_to_linker_async_with_wasi(&mut linker).map_err(ServiceError::Link)?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(ServiceError::Link)?;
        let pre = ProxyPre::new(pre).map_err(|e| {
            ServiceError::NotAService(e.context(
                "component is not a wasi:http/proxy component \
                 (it must export wasi:http/incoming-handler@0.2.x)",
            ))
        })?;
        Ok(ProxyService {
            inner: Arc::new(ServiceInner {
                engine: engine.clone(),
                pre,
                config,
                idle: Mutex::new(Vec::new()),
                reuse_unsafe: AtomicBool::new(false),
                reuse_proven: AtomicBool::new(false),
                on_trial: AtomicBool::new(false),
                reaper: wasi_http_core::reaper::Once::new(),
            }),
        })
    }

    /// Instantiates the component once in a store of its own, with this
    /// service's limits, and drops it: whether requests will find it
    /// instantiable (a server's readiness; what a start function does runs).
    pub async fn check_instantiation(&self) -> Result<(), ServiceError> {
        let inner = &self.inner;
        let mut store = crate::service::check_store(&inner.engine, &inner.config);
        Box::pin(inner.pre.instantiate_async(&mut store))
            .await
            .map(drop)
            .map_err(ServiceError::Instantiate)
    }

    /// Handles one request. Never fails: host and guest failures become error
    /// responses (logged), as documented in ARCHITECTURE.md. Dropping the future,
    /// or the response body before its end, stops the guest.
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
        cx: RequestContext,
    ) -> http::Response<HostBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>,
    {
        let config = &self.inner.config;
        if let Some(reuse) = config.instance_reuse {
            self.inner
                .reaper
                .start(&self.inner, reuse.idle_timeout, ServiceInner::expire_idle);
        }
        let timeout = config.request_timeout;
        let inner = self.inner.clone();
        // Until an instance has served a second request, the request may meet the
        // reused instance on trial: its body is recorded so that it can be replayed.
        let incoming = if inner.reuse_unproven() {
            let (kept, request) = Replayable::record(request.map(wasi_http_core::body::boxed));
            Incoming::Recorded(request, Box::new(kept))
        } else {
            Incoming::Plain(request)
        };
        let (mut ended_tx, ended_rx) = oneshot::channel::<Ended>();
        let (setup_tx, setup_rx) =
            oneshot::channel::<Result<ResponseReceiver, http::Response<HostBody>>>();
        let RequestContext {
            id,
            scheme,
            events,
            slot,
            trace,
            call_depth,
            ..
        } = cx;
        let id_for_log = id.clone();
        let task = tokio::spawn(async move {
            // Held until the guest is done (or stopped): the slot and the gauge.
            let _slot = slot;
            let _in_flight = InFlight::new(events.clone());
            // The instance is taken when the task first runs, not when the request
            // arrives: requests arriving together would each take one (a new one
            // when none is idle) before any of them ran, though the instances
            // freed by the first would serve the rest. For a Python guest that is
            // ~15 MiB of memory per request arriving at once.
            let config = &inner.config;
            let (mut instance, trial) = match inner.take_idle() {
                Some((instance, trial)) => (instance, trial),
                None => (Instance::fresh(&inner, &id), None),
            };
            prepare(&mut instance.store, &inner.engine, config, &id);
            // Reused after a request it answered well: a failure now is the
            // instance's reuse failing, not the guest's ordinary behaviour.
            let reused_after_success = instance.served > 0 && instance.last_ok;
            let (created, mut replay) = match incoming {
                Incoming::Plain(request) => (create(&mut instance, scheme.clone(), request), None),
                Incoming::Recorded(request, kept) => {
                    let replayable = trial.is_some() && reused_after_success;
                    let created = create(&mut instance, scheme.clone(), request);
                    (created, replayable.then_some(kept))
                }
            };
            let (req, out, receiver) = match created {
                Ok(created) => created,
                Err(status) => {
                    let _ = setup_tx.send(Err(error_response(status)));
                    return;
                }
            };
            if setup_tx.send(Ok(receiver)).is_err() {
                return;
            }
            let started = instance.store.data().http.started;
            instance.store.data_mut().http.call_depth = call_depth;
            let mut out_rep = out.rep();
            let mut result = run(&inner, &mut instance, req, out, &events, trace.as_ref()).await;
            let deadline = |result: &wasmtime::Result<()>| matches!(result, Err(e) if is_interrupt(e) && timeout.is_some());
            let answer = instance.store.data().http.answer;
            instance.last_ok = answer == Answer::Fine;
            if reused_after_success && answer != Answer::Fine {
                inner.reuse_failed(&id);
            }
            if let Some(mut trial) = trial {
                trial.passed = answer == Answer::Fine;
            }
            // The trial dropped its request without an effect outside the instance:
            // serve it again on a fresh one.
            let quiet = instance.store.data().http.started == started;
            if let Some(kept) = replay
                .take()
                .filter(|_| answer == Answer::None && quiet && !deadline(&result))
            {
                if let Some(request) = kept.replay() {
                    tracing::warn!(
                        request_id = %id,
                        "the reused instance on trial returned no response and sent no \
                         request: serving the request again on a fresh instance"
                    );
                    // Dropping the instance drops its outparam: the waiter sees no
                    // response and waits for the retry.
                    instance = Instance::fresh(&inner, &id);
                    prepare(&mut instance.store, &inner.engine, config, &id);
                    let Ok((req, out, receiver)) = create(&mut instance, scheme, request) else {
                        return;
                    };
                    let (tx, rx) = oneshot::channel::<Ended>();
                    if std::mem::replace(&mut ended_tx, tx)
                        .send(Ended::Retry(receiver, rx))
                        .is_err()
                    {
                        return;
                    }
                    out_rep = out.rep();
                    result = run(&inner, &mut instance, req, out, &events, trace.as_ref()).await;
                    instance.last_ok = instance.store.data().http.answer == Answer::Fine;
                }
            }
            let at_deadline = deadline(&result);
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
                    if at_deadline {
                        tracing::warn!(request_id = %id, "guest exceeded the request timeout and was stopped");
                    } else {
                        tracing::error!(request_id = %id, error = ?e, "guest trapped");
                    }
                    if let Some(events) = &events {
                        events.trapped(at_deadline);
                    }
                    let _ = ended_tx.send(Ended::Trapped(e));
                }
            }
        });
        // Stops the guest if this future is dropped (the client went away) before
        // the response; afterwards the response body carries it.
        let guard = GuestTask(Some(task.abort_handle()));
        let receiver = match setup_rx.await {
            Ok(Ok(receiver)) => receiver,
            Ok(Err(response)) => return response,
            Err(_) => {
                tracing::error!(request_id = %id_for_log, "guest task ended before taking its request");
                return error_response(http::StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        response(receiver, ended_rx, guard, timeout).await
    }
}

impl Handler for ProxyService {
    fn handle<B>(
        &self,
        request: http::Request<B>,
        cx: RequestContext,
    ) -> impl std::future::Future<Output = http::Response<HostBody>> + Send
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>,
    {
        ProxyService::handle(self, request, cx)
    }
}

/// The request as the service received it, or (while reuse is unproven) with its
/// body recorded for a replay.
enum Incoming<B> {
    Plain(http::Request<B>),
    // Boxed: it would double the size of every request's task.
    Recorded(http::Request<HostBody>, Box<Replayable>),
}

/// How a guest's task ended when its waiter has no response: it trapped, or the
/// request is being served again (its new response receiver, and how that ends).
enum Ended {
    Trapped(wasmtime::Error),
    Retry(ResponseReceiver, oneshot::Receiver<Ended>),
}

/// The one reused instance on trial while reuse is unproven for a guest; it
/// passes (proving reuse) or fails when dropped.
struct Trial {
    inner: Arc<ServiceInner>,
    passed: bool,
}

impl Drop for Trial {
    fn drop(&mut self) {
        if self.passed {
            self.inner.reuse_proven.store(true, Ordering::Release);
        }
        self.inner.on_trial.store(false, Ordering::Release);
    }
}

/// The guest's request and response-outparam in `instance`'s table, and the
/// receiver of its response; or the status a failure to make them calls for.
fn create<B>(
    instance: &mut Instance,
    scheme: http::uri::Scheme,
    request: http::Request<B>,
) -> Result<
    (
        Resource<super::HostIncomingRequest>,
        Resource<HostResponseOutparam>,
        ResponseReceiver,
    ),
    http::StatusCode,
>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<ErrorCode>,
{
    let mut view = instance.store.data_mut().http();
    let status = match view.new_incoming_request(scheme, request) {
        Ok(req) => match view.new_response_outparam() {
            Ok((out, rx)) => return Ok((req, out, rx)),
            Err(e) => {
                tracing::error!(error = %e, "cannot create response-outparam");
                http::StatusCode::SERVICE_UNAVAILABLE
            }
        },
        Err(IncomingRequestError::HeadersTooLarge) => {
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot create incoming-request");
            http::StatusCode::SERVICE_UNAVAILABLE
        }
    };
    Err(status)
}

/// Runs the guest's handler for one request, instantiating first if needed.
async fn run(
    inner: &ServiceInner,
    instance: &mut Instance,
    req: Resource<super::HostIncomingRequest>,
    out: Resource<HostResponseOutparam>,
    events: &Option<Arc<dyn wasi_http_core::ServiceEvents>>,
    trace: Option<&wasi_http_core::RequestTrace>,
) -> wasmtime::Result<()> {
    if instance.proxy.is_none() {
        let started = Instant::now();
        let _span = trace.map(|t| t.child("instantiate", wasi_http_core::SpanKind::Internal).0);
        // Boxed: instantiation's future is large and needed once per instance;
        // inline, it would more than double every request's task (1.5 KiB
        // against 0.6), which is allocated and moved on each spawn.
        let proxy = Box::pin(inner.pre.instantiate_async(&mut instance.store)).await?;
        if let Some(events) = events {
            events.instantiated(started.elapsed());
        }
        instance.proxy = Some(proxy);
    }
    let Instance { store, proxy, .. } = instance;
    let proxy = proxy
        .as_ref()
        .ok_or_else(|| wasmtime::Error::msg("instance missing after instantiation"))?;
    // The guest's handling: its outgoing requests are children of this span.
    let span = trace.map(|t| {
        let (span, handling) = t.child("handle", wasi_http_core::SpanKind::Internal);
        store.data_mut().http.trace = Some(handling);
        span
    });
    // Boxed: with the component model's async ABI compiled in (for 0.3),
    // Wasmtime's call future carries its concurrent path too, and inline
    // it doubles the task that every request spawns (moved on each spawn).
    let result = Box::pin(
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut *store, req, out),
    )
    .await;
    if let Some(mut span) = span {
        if let Err(e) = &result {
            span.set_error(format!("{e:#}").into());
        }
        store.data_mut().http.trace = None;
    }
    result
}

/// The guest's response (on a fresh instance if its request was served again),
/// or the error response its failure calls for.
async fn response(
    mut receiver: ResponseReceiver,
    mut ended: oneshot::Receiver<Ended>,
    guard: GuestTask,
    timeout: Option<Duration>,
) -> http::Response<HostBody> {
    loop {
        let response = match receiver.await {
            Ok(response) => response
                .map(|body| http_body_util::BodyExt::boxed_unsync(Watched::new(body, guard))),
            // Answered at once: the guest may still be running after `set`.
            Err(GuestResponseError::ErrorCode(code)) => {
                tracing::warn!(error = %code, "guest responded with an error code");
                error_response(code.status())
            }
            Err(GuestResponseError::NotSet) => {
                // The outparam is gone, almost always because the guest's call
                // ended; how it ended says which status fits.
                match tokio::time::timeout(Duration::from_secs(1), ended).await {
                    Ok(Ok(Ended::Retry(next, next_ended))) => {
                        (receiver, ended) = (next, next_ended);
                        continue;
                    }
                    Ok(Ok(Ended::Trapped(trap))) if is_interrupt(&trap) && timeout.is_some() => {
                        error_response(http::StatusCode::GATEWAY_TIMEOUT)
                    }
                    Ok(Ok(Ended::Trapped(_))) => {
                        error_response(http::StatusCode::INTERNAL_SERVER_ERROR)
                    }
                    _ => {
                        tracing::error!("guest returned without setting a response");
                        error_response(http::StatusCode::INTERNAL_SERVER_ERROR)
                    }
                }
            }
        };
        return response;
    }
}

/// Readies an instance's store for one request: its deadline, fuel and log tag.
fn prepare(
    store: &mut Store<GuestState>,
    engine: &Engine,
    config: &ServiceConfig,
    request_id: &Arc<str>,
) {
    let state = store.data_mut();
    state.http.answer = Answer::None;
    state.deadline = config.request_timeout.map(|t| Instant::now() + t);
    if let Some(budget) = &state.output {
        budget.reset(request_id.clone());
    }
    if engine.get_consume_fuel() {
        // Fails only if the engine does not count fuel, checked just above.
        let _ = store.set_fuel(config.fuel.unwrap_or(u64::MAX));
    }
    store.set_epoch_deadline(1);
}

/// Aborts a guest's task when dropped, unless disarmed (its response completed).
struct GuestTask(Option<tokio::task::AbortHandle>);

impl Drop for GuestTask {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Watches a guest's response body: dropped before its end (the client went
/// away), the guest is stopped; once it has ended the guest may finish on its own.
impl wasi_http_core::body::BodyWatch for GuestTask {
    fn end(&mut self, end: wasi_http_core::body::BodyEnd<'_>) {
        if let wasi_http_core::body::BodyEnd::Complete = end {
            self.0 = None;
        }
    }
}

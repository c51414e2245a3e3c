//! [`Service`]: serves a `wasi:http/service` (0.3) component. One instance serves
//! many requests at once, as the 0.3 world intends: each worker thread keeps its
//! own instances, each driven by one task that runs the store's event loop and
//! starts a `handler.handle` call for every request it is given.
//!
//! What is per request and what cannot be: Wasmtime 48 cannot cancel one task of
//! an instance (only dropping the whole store stops it), so
//! - a request's deadline answers its client (504, or a reset once the response
//!   has started) and cuts its body streams, and its instance takes no new
//!   requests; a guest that keeps computing is stopped when no request on its
//!   instance has time left (the instance traps), and work an instance does after
//!   its responses is stopped at the latest deadline of its requests;
//! - a client that goes away closes that request's streams (the guest's reads and
//!   writes fail); the guest's task runs until it returns;
//! - a trap fails every request in flight on that instance (500, or a reset once a
//!   response has started) and retires it; other instances are untouched;
//! - fuel is the instance's: each request adds its budget, and running out traps
//!   the instance;
//! - guest output is tagged with the request id while an instance serves one
//!   request, and with the instance's id (`instance-N`) while it serves several.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Context;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant as Deadline;
use wasi_http_core::body::{BodyWatch, Watched};
use wasi_http_core::{
    error_response, ErrorCode, Handler, HostBody, InFlight, RequestContext, ServiceEvents,
};
use wasmtime::component::{Accessor, Component, Linker};
use wasmtime::{AsContextMut, Engine};

use super::bindings::exports::wasi::http::handler::Guest;
use super::bindings::ServicePre;
use super::HostRequest;
use crate::service::is_interrupt;
use crate::{GuestState, InstanceReuse, ServiceConfig, ServiceError, WasiHttpView};

/// Serves a `wasi:http/service` component, reusing each instance for up to
/// [`InstanceReuse::max_requests`] requests, [`InstanceReuse::max_concurrent`] at
/// a time (by default 128 and 16, as `wasmtime serve`).
#[derive(Clone)]
pub struct Service {
    inner: Arc<ServiceInner>,
}

struct ServiceInner {
    engine: Engine,
    pre: ServicePre<GuestState>,
    config: ServiceConfig,
    reuse: InstanceReuse,
    /// Instances that may take requests, each on the thread whose runtime drives it.
    instances: Mutex<Vec<Arc<Slot>>>,
    next_instance: AtomicU64,
}

/// The shared side of one instance: how to reach its task and how busy it is.
struct Slot {
    id: u64,
    thread: std::thread::ThreadId,
    jobs: mpsc::UnboundedSender<Job>,
    /// Requests given to it and not yet done (response ended, failed or dropped).
    active: AtomicU32,
    /// Requests given to it, ever.
    dispatched: AtomicU32,
    /// Takes no more requests (used up, or a request of it ran out of time).
    retired: AtomicBool,
    /// The instance trapped: bodies it was writing are failed, not ended.
    trapped: Arc<AtomicBool>,
    /// Woken when a request is done, so an idle instance can be retired.
    done: Notify,
    /// Whether its guest is computing (and so cannot start another request now).
    compute: Arc<crate::service::Compute>,
}

impl Slot {
    fn accepts(&self, reuse: &InstanceReuse) -> bool {
        !self.retired.load(Ordering::Acquire)
            && self.active.load(Ordering::Acquire) < reuse.max_concurrent
            && self.dispatched.load(Ordering::Acquire) < reuse.max_requests
            // A guest busy computing for one request would hold up the next one.
            && !self.compute.is_busy()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One request, handed to its instance's task.
struct Job {
    request: http::Request<HostBody>,
    scheme: http::uri::Scheme,
    id: Arc<str>,
    deadline: Option<Deadline>,
    events: Option<Arc<dyn ServiceEvents>>,
    reply: oneshot::Sender<Reply>,
    /// Released when the request is done: the instance's count, the server's slot
    /// and the in-flight gauge.
    done: JobDone,
}

/// What an instance answers a request with.
enum Reply {
    Response(http::Response<HostBody>),
    /// The guest returned an `error-code` instead of a response.
    Code(ErrorCode),
    /// The host answered for it (headers over the limits, a full table).
    Host(http::StatusCode),
    /// Its call trapped (`deadline`: it was stopped for computing past every
    /// deadline of its instance).
    Trapped {
        deadline: bool,
    },
}

/// Counts a request as its instance's until the request is done.
struct JobDone {
    slot: Arc<Slot>,
    _server_slot: Option<tokio::sync::OwnedSemaphorePermit>,
    _in_flight: InFlight,
}

impl Drop for JobDone {
    fn drop(&mut self) {
        self.slot.active.fetch_sub(1, Ordering::AcqRel);
        self.slot.done.notify_one();
    }
}

impl Service {
    /// Links (the 0.3 service world's imports plus WASI 0.2, nothing granted) and
    /// pre-instantiates `component`. The engine must have the component model's
    /// async ABI ([`crate::EngineConfig::component_model_async`]).
    pub fn new(
        engine: &Engine,
        component: &Component,
        config: ServiceConfig,
    ) -> Result<Self, ServiceError> {
        let mut linker = Linker::new(engine);
        super::add_to_linker_with_p2(&mut linker).map_err(|e| {
            if format!("{e:#}").contains("concurrency_support") {
                ServiceError::Engine(
                    "a WASI 0.3 component needs an engine with the component model's async \
                     ABI (EngineConfig::component_model_async)",
                )
            } else {
                ServiceError::Link(e)
            }
        })?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(ServiceError::Link)?;
        let pre = ServicePre::new(pre).map_err(|e| {
            ServiceError::NotAService(e.context(
                "component is not a wasi:http/service component \
                 (it must export wasi:http/handler@0.3.x)",
            ))
        })?;
        let reuse = config
            .instance_reuse
            .unwrap_or_else(|| InstanceReuse::new(128));
        Ok(Service {
            inner: Arc::new(ServiceInner {
                engine: engine.clone(),
                pre,
                config,
                reuse: InstanceReuse {
                    max_requests: reuse.max_requests.max(1),
                    max_concurrent: reuse.max_concurrent.max(1),
                    ..reuse
                },
                instances: Mutex::new(Vec::new()),
                next_instance: AtomicU64::new(1),
            }),
        })
    }

    /// Handles one request. Never fails: host and guest failures become error
    /// responses (logged). Dropping the future, or the response body before its
    /// end, closes the request's streams.
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
        cx: RequestContext,
    ) -> http::Response<HostBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>,
    {
        let deadline = self
            .inner
            .config
            .request_timeout
            .map(|t| Deadline::now() + t);
        let request = request.map(|body| {
            let body = wasi_http_core::body::boxed(body);
            match deadline {
                // The guest's reads fail at the deadline, whatever the client sends.
                Some(at) => Watched::new(body, TimeLimit::new(at)).boxed_unsync(),
                None => body,
            }
        });
        let RequestContext {
            id,
            scheme,
            events,
            slot,
            ..
        } = cx;
        let in_flight = InFlight::new(events.clone());
        let (reply, response) = oneshot::channel();
        let instance = self.inner.dispatch(|instance| Job {
            request,
            scheme,
            id: id.clone(),
            deadline,
            events: events.clone(),
            reply,
            done: JobDone {
                slot: instance,
                _server_slot: slot,
                _in_flight: in_flight,
            },
        });
        let response = match deadline {
            Some(at) => match tokio::time::timeout_at(at, response).await {
                Ok(response) => response,
                Err(_) => {
                    // An instance that let a request run out of time gets no more.
                    instance.retired.store(true, Ordering::Release);
                    tracing::warn!(request_id = %id, instance = instance.id, "guest exceeded the request timeout");
                    if let Some(events) = &events {
                        events.trapped(true);
                    }
                    return error_response(http::StatusCode::GATEWAY_TIMEOUT);
                }
            },
            None => response.await,
        };
        match response {
            Ok(Reply::Response(response)) => response,
            Ok(Reply::Code(code)) => {
                tracing::warn!(request_id = %id, error = %code, "guest responded with an error code");
                error_response(code.status())
            }
            Ok(Reply::Host(status)) => error_response(status),
            Ok(Reply::Trapped { deadline: false }) => {
                error_response(http::StatusCode::INTERNAL_SERVER_ERROR)
            }
            Ok(Reply::Trapped { deadline: true }) => {
                tracing::warn!(request_id = %id, instance = instance.id, "guest exceeded the request timeout and was stopped");
                if let Some(events) = &events {
                    events.trapped(true);
                }
                error_response(http::StatusCode::GATEWAY_TIMEOUT)
            }
            // Dropped with its instance after its own deadline had passed (the
            // epoch may beat the timer above by a tick): still its timeout.
            Err(_) if deadline.is_some_and(|at| Deadline::now() >= at) => {
                tracing::warn!(request_id = %id, instance = instance.id, "guest exceeded the request timeout");
                if let Some(events) = &events {
                    events.trapped(true);
                }
                error_response(http::StatusCode::GATEWAY_TIMEOUT)
            }
            // The instance trapped or could not start (its task logged why).
            Err(_) => error_response(http::StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// Instances alive now (for tests and metrics).
    pub fn instances(&self) -> usize {
        lock(&self.inner.instances).len()
    }
}

impl Handler for Service {
    fn handle<B>(
        &self,
        request: http::Request<B>,
        cx: RequestContext,
    ) -> impl std::future::Future<Output = http::Response<HostBody>> + Send
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<ErrorCode>,
    {
        Service::handle(self, request, cx)
    }
}

impl ServiceInner {
    /// Gives the job `make` builds to an instance of this thread with room, or to a
    /// new one; returns the instance.
    fn dispatch(self: &Arc<Self>, make: impl FnOnce(Arc<Slot>) -> Job) -> Arc<Slot> {
        let thread = std::thread::current().id();
        let mut instances = lock(&self.instances);
        let found = instances
            .iter()
            .rev()
            .find(|slot| slot.thread == thread && slot.accepts(&self.reuse))
            .cloned();
        let (slot, started) = match found {
            Some(slot) => (slot, None),
            None => {
                let (jobs, rx) = mpsc::unbounded_channel();
                let slot = Arc::new(Slot {
                    id: self.next_instance.fetch_add(1, Ordering::Relaxed),
                    thread,
                    jobs,
                    active: AtomicU32::new(0),
                    dispatched: AtomicU32::new(0),
                    retired: AtomicBool::new(false),
                    trapped: Arc::new(AtomicBool::new(false)),
                    done: Notify::new(),
                    compute: crate::service::Compute::new(),
                });
                instances.push(slot.clone());
                (slot, Some(rx))
            }
        };
        slot.active.fetch_add(1, Ordering::AcqRel);
        if slot.dispatched.fetch_add(1, Ordering::AcqRel) + 1 >= self.reuse.max_requests {
            slot.retired.store(true, Ordering::Release);
        }
        // Sent under the lock: an instance leaves the list (under it too) only once
        // nothing is on its way to it.
        if let Err(mpsc::error::SendError(job)) = slot.jobs.send(make(slot.clone())) {
            // Cannot happen while it is listed; the job's reply, dropped, is a 500.
            drop(job);
        }
        drop(instances);
        if let Some(rx) = started {
            tokio::spawn(run_instance(self.clone(), slot.clone(), rx));
        }
        slot
    }

    /// Takes `slot` out of the list if it has nothing to do; whether it did.
    fn leave_if_idle(&self, slot: &Arc<Slot>) -> bool {
        let mut instances = lock(&self.instances);
        if slot.active.load(Ordering::Acquire) > 0 {
            return false;
        }
        slot.retired.store(true, Ordering::Release);
        instances.retain(|s| !Arc::ptr_eq(s, slot));
        true
    }

    fn leave(&self, slot: &Arc<Slot>) {
        slot.retired.store(true, Ordering::Release);
        lock(&self.instances).retain(|s| !Arc::ptr_eq(s, slot));
    }
}

/// The task that owns one instance: instantiates it, then runs its event loop,
/// starting a call for every job, until the instance is retired and idle, idle
/// for too long, or trapped.
async fn run_instance(
    inner: Arc<ServiceInner>,
    slot: Arc<Slot>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let Some(first) = jobs.recv().await else {
        inner.leave(&slot);
        return;
    };
    let events = first.events.clone();
    let tag: Arc<str> = Arc::from(format!("instance-{}", slot.id));
    let mut store = crate::service::new_store(&inner.engine, &inner.config, &tag);
    store.data_mut().compute = Some(slot.compute.clone());
    let started = Instant::now();
    // Boxed: instantiation's future is large and needed once per instance.
    let instance = match Box::pin(inner.pre.instantiate_async(&mut store)).await {
        Ok(instance) => instance,
        Err(e) => {
            tracing::error!(instance = slot.id, error = ?e, "cannot instantiate the component");
            inner.leave(&slot);
            // The jobs' replies go unanswered: each is a 500.
            return;
        }
    };
    if let Some(events) = &events {
        events.instantiated(started.elapsed());
    }
    let guest = instance.wasi_http_handler().clone();
    let outcome = store
        .run_concurrent(async |accessor| {
            serve(accessor, &inner, &slot, &tag, &guest, &mut jobs, first).await
        })
        .await
        .and_then(|served| served);
    if let Err(e) = outcome {
        // Bodies this instance was writing fail rather than end when the store goes.
        slot.trapped.store(true, Ordering::Release);
        if is_interrupt(&e) {
            // Each request past its deadline was counted (and answered) as such.
            tracing::warn!(
                instance = slot.id,
                "guest kept running past every request's deadline and was stopped"
            );
        } else {
            tracing::error!(instance = slot.id, error = ?e, "guest trapped; its requests in flight fail");
            if let Some(events) = &events {
                events.trapped(false);
            }
        }
    }
    inner.leave(&slot);
    // Jobs still queued (sent before it left the list) go unanswered: 500.
    jobs.close();
    drop(store);
}

/// The event loop's work: a call per job, until the instance is done.
async fn serve(
    accessor: &Accessor<GuestState>,
    inner: &ServiceInner,
    slot: &Arc<Slot>,
    tag: &Arc<str>,
    guest: &Guest,
    jobs: &mut mpsc::UnboundedReceiver<Job>,
    first: Job,
) -> wasmtime::Result<()> {
    let mut calls = FuturesUnordered::new();
    calls.push(call(accessor, inner, slot, tag, guest, first));
    // Declared after `calls`, so dropped before them: when the loop ends (a trap
    // included), the instance takes no more requests before the unanswered ones
    // learn of its end (a client answered 500 must not be sent back to it).
    let _retire = Retire(slot);
    let idle_timeout = inner.reuse.idle_timeout;
    // Since when the instance has had nothing to do.
    let mut idle_since: Option<Deadline> = None;
    loop {
        let idle = calls.is_empty() && slot.active.load(Ordering::Acquire) == 0;
        if !idle {
            idle_since = None;
        } else if idle_since.is_none() {
            idle_since = Some(Deadline::now());
        }
        if idle && slot.retired.load(Ordering::Acquire) {
            // Used up: done once its background work is, or its deadline passed.
            let latest = latest_deadline(accessor);
            let quiet = std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx));
            tokio::select! {
                () = quiet => {}
                () = sleep_until(latest) => {}
                Some(job) = jobs.recv() => {
                    calls.push(call(accessor, inner, slot, tag, guest, job));
                    continue;
                }
            }
            if inner.leave_if_idle(slot) {
                return Ok(());
            }
            continue;
        }
        // Idle: retired after the idle timeout; work left running in the background
        // is stopped once the latest deadline of its requests has passed.
        let wait = match idle_since {
            Some(since) => {
                let idle_until = since + idle_timeout;
                match latest_deadline(accessor) {
                    Some(latest) if latest > Deadline::now() => Some(latest.min(idle_until)),
                    Some(_) if !quiet_now(accessor) => {
                        if inner.leave_if_idle(slot) {
                            return Ok(());
                        }
                        Some(idle_until)
                    }
                    _ => Some(idle_until),
                }
            }
            None => None,
        };
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => calls.push(call(accessor, inner, slot, tag, guest, job)),
                None => return Ok(()),
            },
            Some(result) = calls.next(), if !calls.is_empty() => result?,
            () = slot.done.notified() => {}
            () = sleep_until(wait), if wait.is_some() => {
                let expired = idle_since.is_some_and(|since| Deadline::now() >= since + idle_timeout);
                if expired && inner.leave_if_idle(slot) {
                    return Ok(());
                }
            }
        }
    }
}

/// Whether the instance has no task running (none waiting either).
fn quiet_now(accessor: &Accessor<GuestState>) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    accessor.poll_no_interesting_tasks(&mut cx).is_ready()
}

/// Retires an instance when dropped.
struct Retire<'a>(&'a Slot);

impl Drop for Retire<'_> {
    fn drop(&mut self) {
        self.0.retired.store(true, Ordering::Release);
    }
}

async fn sleep_until(at: Option<Deadline>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The latest deadline of the requests the instance was given, if they have one.
fn latest_deadline(accessor: &Accessor<GuestState>) -> Option<Deadline> {
    accessor.with(|mut access| access.data_mut().deadline.map(Deadline::from_std))
}

/// One request's call into the guest. A trap ends the instance (the error is
/// returned); anything else is the request's own outcome.
async fn call(
    accessor: &Accessor<GuestState>,
    inner: &ServiceInner,
    slot: &Arc<Slot>,
    tag: &Arc<str>,
    guest: &Guest,
    job: Job,
) -> wasmtime::Result<()> {
    let Job {
        request,
        scheme,
        id,
        deadline,
        reply,
        done,
        ..
    } = job;
    let config = &inner.config;
    let request = accessor.with(|mut access| {
        let consume_fuel = inner.engine.get_consume_fuel();
        let mut store = access.as_context_mut();
        if consume_fuel {
            // The instance's fuel: each request adds its budget.
            let budget = config.fuel.unwrap_or(u64::MAX);
            let fuel = store.get_fuel().unwrap_or(0).saturating_add(budget);
            let _ = store.set_fuel(fuel);
        }
        let state = store.data_mut();
        // The epoch stops a guest that computes once no request has time left.
        if let Some(at) = deadline.map(Deadline::into_std) {
            state.deadline = Some(state.deadline.map_or(at, |d| d.max(at)));
        }
        if let Some(budget) = &state.output {
            let alone = slot.active.load(Ordering::Acquire) <= 1;
            budget.reset(if alone { id.clone() } else { tag.clone() });
        }
        let (parts, body) = request.into_parts();
        let view = state.http();
        let request = match HostRequest::received(parts, scheme, body, &view.ctx.limits) {
            Ok(request) => request,
            Err(_) => return Err(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        };
        view.table.push(request).map_err(|e| {
            tracing::error!(request_id = %id, error = %e, "cannot create the request");
            http::StatusCode::SERVICE_UNAVAILABLE
        })
    });
    let request = match request {
        Ok(request) => request,
        Err(status) => {
            let _ = reply.send(Reply::Host(status));
            return Ok(());
        }
    };
    let outcome = match guest.call_handle(accessor, request).await {
        Ok(outcome) => outcome,
        Err(e) => {
            // A trap ends the instance: retired before this request's client learns
            // of it, so its next request goes elsewhere.
            slot.retired.store(true, Ordering::Release);
            let _ = reply.send(Reply::Trapped {
                deadline: is_interrupt(&e),
            });
            return Err(e);
        }
    };
    match outcome {
        Ok(response) => {
            let response = accessor.with(|mut access| access.get().table.delete(response))?;
            if response.status.is_informational() {
                tracing::error!(request_id = %id, status = response.status.as_u16(), "guest answered with a 1xx status, which cannot be a final response");
                let _ = reply.send(Reply::Host(http::StatusCode::INTERNAL_SERVER_ERROR));
                return Ok(());
            }
            let guard = ResponseGuard {
                limit: deadline.map(TimeLimit::new),
                trapped: slot.trapped.clone(),
                _done: done,
            };
            let response = response
                .into_http()
                .map(|body| Watched::new(body, guard).boxed_unsync());
            // A client gone meanwhile drops it: the guest's writes then fail.
            let _ = reply.send(Reply::Response(response));
        }
        Err(code) => {
            let _ = reply.send(Reply::Code(code.into()));
        }
    }
    Ok(())
}

/// A deadline on a body: past it, the body fails (a reset for a response being
/// sent; a failed read for a guest reading a request).
struct TimeLimit {
    at: Deadline,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimeLimit {
    fn new(at: Deadline) -> Self {
        TimeLimit { at, sleep: None }
    }

    fn check(&mut self, cx: Option<&mut Context<'_>>) -> Result<(), ErrorCode> {
        if Deadline::now() >= self.at {
            return Err(ErrorCode::ConnectionTimeout);
        }
        if let Some(cx) = cx {
            let at = self.at;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if std::future::Future::poll(sleep.as_mut(), cx).is_ready() {
                return Err(ErrorCode::ConnectionTimeout);
            }
        }
        Ok(())
    }
}

impl BodyWatch for TimeLimit {
    fn data(&mut self, _len: usize) -> Result<(), ErrorCode> {
        self.check(None)
    }

    fn pending(&mut self, cx: &mut Context<'_>) -> Result<(), ErrorCode> {
        self.check(Some(cx))
    }
}

/// Watches a guest's response body: the request's deadline, the instance's trap,
/// and the request counted as its instance's until the body is done.
struct ResponseGuard {
    limit: Option<TimeLimit>,
    trapped: Arc<AtomicBool>,
    _done: JobDone,
}

impl BodyWatch for ResponseGuard {
    fn data(&mut self, _len: usize) -> Result<(), ErrorCode> {
        match &mut self.limit {
            Some(limit) => limit.check(None),
            None => Ok(()),
        }
    }

    fn pending(&mut self, cx: &mut Context<'_>) -> Result<(), ErrorCode> {
        match &mut self.limit {
            Some(limit) => limit.check(Some(cx)),
            None => Ok(()),
        }
    }

    fn complete(&mut self) -> Result<(), ErrorCode> {
        // The body's writer ended it as the store went down with a trap: it may be
        // short, so it fails instead.
        if self.trapped.load(Ordering::Acquire) {
            return Err(ErrorCode::internal(
                "the guest trapped while writing this body",
            ));
        }
        Ok(())
    }
}

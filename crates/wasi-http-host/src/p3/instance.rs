//! The task behind one 0.3 instance: instantiating it, running its store's event
//! loop with a `handler.handle` call per request, retiring it (used up, idle,
//! trapped or past every deadline), and the watchers on the bodies it serves.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio::time::Instant as Deadline;
use wasi_http_core::body::{BodyWatch, Watched};
use wasi_http_core::ErrorCode;
use wasmtime::component::Accessor;
use wasmtime::AsContextMut;

use super::bindings::exports::wasi::http::handler::Guest;
use super::service::{Job, JobDone, Reply, ServiceInner, Slot};
use super::HostRequest;
use crate::service::is_interrupt;
use crate::{GuestState, WasiHttpView};

/// The task that owns one instance: instantiates it, then runs its event loop,
/// starting a call for every job, until the instance is retired and idle, idle
/// for too long, or trapped.
pub(super) async fn run_instance(
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
    let span = first
        .trace
        .as_ref()
        .map(|t| t.child("instantiate", wasi_http_core::SpanKind::Internal).0);
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
    drop(span);
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
        trace,
        call_depth,
        reply,
        done,
        ..
    } = job;
    // The guest's handling; its outgoing requests are children of it (of the
    // latest request's, when the instance serves several at once).
    let (mut span, handling) = match trace.as_ref() {
        Some(t) => {
            let (span, handling) = t.child("handle", wasi_http_core::SpanKind::Internal);
            (Some(span), Some(handling))
        }
        None => (None, None),
    };
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
        if handling.is_some() {
            state.http.trace = handling;
        }
        state.http.call_depth = call_depth;
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
            if let Some(span) = &mut span {
                span.set_error(format!("{e:#}").into());
            }
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
pub(super) struct TimeLimit {
    at: Deadline,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimeLimit {
    pub(super) fn new(at: Deadline) -> Self {
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

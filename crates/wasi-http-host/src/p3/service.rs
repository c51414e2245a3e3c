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

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant as Deadline;
use wasi_http_core::body::Watched;
use wasi_http_core::{
    error_response, ErrorCode, Handler, HostBody, InFlight, RequestContext, ServiceEvents,
};
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use super::bindings::ServicePre;
use crate::{GuestState, InstanceReuse, ServiceConfig, ServiceError};

/// Serves a `wasi:http/service` component, reusing each instance for up to
/// [`InstanceReuse::max_requests`] requests, [`InstanceReuse::max_concurrent`] at
/// a time (by default 128 and 16, as `wasmtime serve`).
#[derive(Clone)]
pub struct Service {
    inner: Arc<ServiceInner>,
}

pub(super) struct ServiceInner {
    pub(super) engine: Engine,
    pub(super) pre: ServicePre<GuestState>,
    pub(super) config: ServiceConfig,
    pub(super) reuse: InstanceReuse,
    /// Instances that may take requests, each on the thread whose runtime drives it.
    pub(super) instances: Mutex<Vec<Arc<Slot>>>,
    pub(super) next_instance: AtomicU64,
}

/// The shared side of one instance: how to reach its task and how busy it is.
pub(super) struct Slot {
    pub(super) id: u64,
    pub(super) thread: std::thread::ThreadId,
    pub(super) jobs: mpsc::UnboundedSender<Job>,
    /// Requests given to it and not yet done (response ended, failed or dropped).
    pub(super) active: AtomicU32,
    /// Requests given to it, ever.
    pub(super) dispatched: AtomicU32,
    /// Takes no more requests (used up, or a request of it ran out of time).
    pub(super) retired: AtomicBool,
    /// The instance trapped: bodies it was writing are failed, not ended.
    pub(super) trapped: Arc<AtomicBool>,
    /// Woken when a request is done, so an idle instance can be retired.
    pub(super) done: Notify,
    /// Whether its guest is computing (and so cannot start another request now).
    pub(super) compute: Arc<crate::service::Compute>,
}

impl Slot {
    pub(super) fn accepts(&self, reuse: &InstanceReuse) -> bool {
        !self.retired.load(Ordering::Acquire)
            && self.active.load(Ordering::Acquire) < reuse.max_concurrent
            && self.dispatched.load(Ordering::Acquire) < reuse.max_requests
            // A guest busy computing for one request would hold up the next one.
            && !self.compute.is_busy()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One request, handed to its instance's task.
pub(super) struct Job {
    pub(super) request: http::Request<HostBody>,
    pub(super) scheme: http::uri::Scheme,
    pub(super) id: Arc<str>,
    pub(super) deadline: Option<Deadline>,
    pub(super) events: Option<Arc<dyn ServiceEvents>>,
    /// The request's tracing (its server span's context), if recorded.
    pub(super) trace: Option<wasi_http_core::RequestTrace>,
    /// The request's call depth (see `RequestContext::call_depth`).
    pub(super) call_depth: u32,
    pub(super) reply: oneshot::Sender<Reply>,
    /// Released when the request is done: the instance's count, the server's slot
    /// and the in-flight gauge.
    pub(super) done: JobDone,
}

/// What an instance answers a request with.
pub(super) enum Reply {
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
pub(super) struct JobDone {
    pub(super) slot: Arc<Slot>,
    pub(super) _server_slot: Option<tokio::sync::OwnedSemaphorePermit>,
    pub(super) _in_flight: InFlight,
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
                Some(at) => Watched::new(body, super::instance::TimeLimit::new(at)).boxed_unsync(),
                None => body,
            }
        });
        let RequestContext {
            id,
            scheme,
            events,
            slot,
            trace,
            call_depth,
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
            trace,
            call_depth,
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
            tokio::spawn(super::instance::run_instance(
                self.clone(),
                slot.clone(),
                rx,
            ));
        }
        slot
    }

    /// Takes `slot` out of the list if it has nothing to do; whether it did.
    pub(super) fn leave_if_idle(&self, slot: &Arc<Slot>) -> bool {
        let mut instances = lock(&self.instances);
        if slot.active.load(Ordering::Acquire) > 0 {
            return false;
        }
        slot.retired.store(true, Ordering::Release);
        instances.retain(|s| !Arc::ptr_eq(s, slot));
        true
    }

    pub(super) fn leave(&self, slot: &Arc<Slot>) {
        slot.retired.store(true, Ordering::Release);
        lock(&self.instances).retain(|s| !Arc::ptr_eq(s, slot));
    }
}

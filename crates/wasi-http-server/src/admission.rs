//! Admission: the server's request slots and its bounded wait queue. Every
//! request from the network takes a slot here before its handler runs; a
//! handler that calls itself in-process (an app's internal calls) takes one for
//! each call too, so such calls can never run more guests than the limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Metrics, ServerConfig};

/// A server's slots and wait queue (cheap to clone: all clones share them).
/// Get it from [`Server::admission`](crate::Server::admission).
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

struct Inner {
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    max_queued: usize,
    queue_timeout: Duration,
    metrics: Metrics,
}

/// Why a request got no slot: it is answered `503` and counted in
/// `requests_rejected_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejected {
    /// No slot was free and the queue was full.
    QueueFull,
    /// No slot came free within the queue timeout.
    QueueTimeout,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rejected::QueueFull => {
                "no request slot free and the wait queue full (--max-queued-requests)"
            }
            Rejected::QueueTimeout => {
                "no request slot came free within the queue timeout (--queue-timeout)"
            }
        })
    }
}

impl std::error::Error for Rejected {}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("free", &self.inner.slots.available_permits())
            .field("queued", &self.inner.queued.load(Ordering::Relaxed))
            .finish()
    }
}

impl Admission {
    pub(crate) fn new(config: &ServerConfig) -> Self {
        Admission {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
                queued: AtomicUsize::new(0),
                max_queued: config.max_queued_requests,
                queue_timeout: config.queue_timeout,
                metrics: config.metrics.clone(),
            }),
        }
    }

    /// A free slot, or one that comes free while the request waits in the
    /// bounded queue. The request keeps its slot for as long as it holds the
    /// permit (put it in [`RequestContext::slot`]).
    ///
    /// [`RequestContext::slot`]: wasi_http_core::RequestContext::slot
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Rejected> {
        let inner = &*self.inner;
        if let Ok(permit) = inner.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = inner.queued.fetch_add(1, Ordering::AcqRel);
        let _leave = Leave(inner);
        inner.metrics.queued().inc();
        if waiting >= inner.max_queued {
            inner.metrics.rejected("queue_full");
            return Err(Rejected::QueueFull);
        }
        match tokio::time::timeout(inner.queue_timeout, inner.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                inner.metrics.rejected("queue_timeout");
                Err(Rejected::QueueTimeout)
            }
        }
    }
}

/// Leaves the wait queue (count and gauge) when dropped.
struct Leave<'a>(&'a Inner);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.queued().dec();
    }
}

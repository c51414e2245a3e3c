//! The response write timeout: a response whose body has a frame ready that the
//! client does not take (HTTP/1.1: it stops reading; HTTP/2: it keeps the
//! stream's flow-control window at zero) for `response_write_timeout` is aborted,
//! and with it the guest that writes it. A slow guest is not a stalled client:
//! the clock runs only while hyper holds a frame it cannot send.
//!
//! hyper polls a response body only when it can send, so a stalled response is
//! never polled and cannot notice its own stall. The task that drives it can: a
//! [`Watchdog`] wraps each HTTP/1.1 connection task and each HTTP/2 stream task
//! (spawned by [`WatchdogExecutor`]), and the response body reports into its
//! [`Progress`]: the connection's (kept by its `Activity`) on HTTP/1.1, where
//! responses follow one another, or the stream's, found through a task-local. When the watchdog fires it
//! drops what it wraps: the HTTP/1.1 connection closes, the HTTP/2 stream is
//! reset (`CANCEL`), and the response body, dropped, stops its guest.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::futures::TaskLocalFuture;
use tokio::time::Sleep;

use crate::metrics::Metrics;

tokio::task_local! {
    static PROGRESS: Arc<Progress>;
}

/// How the responses of one task (an HTTP/1.1 connection, an HTTP/2 stream) go.
#[derive(Default)]
pub(crate) struct Progress {
    /// Data frames the response bodies have handed to hyper.
    frames: AtomicU64,
    /// Whether hyper holds the latest frame and has not asked for the next one.
    waiting: AtomicBool,
}

impl Progress {
    /// The progress of the HTTP/2 stream task this runs in, if it is watched.
    pub(crate) fn current() -> Option<Arc<Progress>> {
        PROGRESS.try_with(Arc::clone).ok()
    }

    /// A data frame went to hyper.
    pub(crate) fn sent(&self) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.waiting.store(true, Ordering::Relaxed);
    }

    /// hyper asked for the next frame (and the body has none yet), or the body ended.
    pub(crate) fn asked(&self) {
        self.waiting.store(false, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// Runs a future and drops it (returning `None`) once a response whose
    /// progress it watches has been stalled for the timeout.
    pub(crate) struct Watchdog<F: Future> {
        #[pin]
        inner: F,
        progress: Arc<Progress>,
        timeout: Duration,
        // Armed only while a frame waits, so idle connections have no timer.
        sleep: Option<Pin<Box<Sleep>>>,
        // `frames` when the timer was armed.
        seen: u64,
        metrics: Metrics,
    }
}

impl<F: Future> Watchdog<F> {
    /// Watches `progress`, which the future's responses report into (an
    /// HTTP/1.1 connection's, through its `Activity`).
    pub(crate) fn new(
        future: F,
        progress: Arc<Progress>,
        timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        Watchdog {
            inner: future,
            progress,
            timeout,
            sleep: None,
            seen: 0,
            metrics,
        }
    }
}

/// Runs `future` (an HTTP/2 stream task) with a [`Progress`] of its own, found
/// by the response inside through the task-local.
fn scoped<F: Future>(
    future: F,
    timeout: Duration,
    metrics: Metrics,
) -> Watchdog<TaskLocalFuture<Arc<Progress>, F>> {
    let progress = Arc::new(Progress::default());
    Watchdog::new(
        PROGRESS.scope(progress.clone(), future),
        progress,
        timeout,
        metrics,
    )
}

impl<F: Future> Future for Watchdog<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(Some(out));
        }
        loop {
            let waiting = this.progress.waiting.load(Ordering::Relaxed);
            let frames = this.progress.frames.load(Ordering::Relaxed);
            let Some(sleep) = this.sleep.as_mut() else {
                if waiting {
                    *this.seen = frames;
                    *this.sleep = Some(Box::pin(tokio::time::sleep(*this.timeout)));
                    continue;
                }
                return Poll::Pending;
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if waiting && frames == *this.seen {
                // The frame held when the timer was armed is still held: no
                // progress for the whole timeout.
                tracing::debug!(timeout = ?this.timeout, "response write timeout: aborting the response");
                this.metrics.timed_out("response_write");
                return Poll::Ready(None);
            }
            if !waiting {
                *this.sleep = None;
                return Poll::Pending;
            }
            // Progress, then a new stall: time it from now.
            *this.seen = frames;
            sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + *this.timeout);
        }
    }
}

/// Spawns hyper's HTTP/2 stream tasks, each under a [`Watchdog`] when a response
/// write timeout is set.
#[derive(Clone)]
pub(crate) struct WatchdogExecutor {
    pub(crate) timeout: Option<Duration>,
    pub(crate) metrics: Metrics,
}

impl<F> hyper::rt::Executor<F> for WatchdogExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        match self.timeout {
            Some(timeout) => {
                let watched = scoped(future, timeout, self.metrics.clone());
                tokio::spawn(async move {
                    let _ = watched.await;
                });
            }
            None => {
                tokio::spawn(future);
            }
        }
    }
}

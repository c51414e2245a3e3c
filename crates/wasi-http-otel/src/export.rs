//! Finished spans into a bounded queue, and a thread that sends them in batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::mpsc;

/// What happened to the spans so far (counters for metrics).
#[derive(Debug, Default)]
pub struct TraceStats {
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans dropped because the queue was full (a collector down or slower
    /// than the traffic) or an export failed.
    pub dropped: AtomicU64,
    /// Exports that failed (the collector unreachable, or it refused).
    pub failed_exports: AtomicU64,
    /// Whether spans are being lost now (the last export failed, or the queue
    /// was full since): the tracer then records only a few spans, to find out
    /// when the collector is back, and requests pay for no more than that.
    pub(crate) backing_off: std::sync::atomic::AtomicBool,
}

/// A message to the export thread.
enum Msg {
    Span(Box<SpanData>),
    /// Send what is queued now; answer when done.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The processor spans end into: `try_send`, never a wait.
#[derive(Debug)]
pub(crate) struct QueueProcessor {
    queue: mpsc::Sender<Msg>,
    stats: Arc<TraceStats>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How the export thread batches.
pub(crate) struct Batching {
    pub(crate) queue: usize,
    pub(crate) batch: usize,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

impl QueueProcessor {
    /// Starts the export thread (with a runtime of its own) sending to `exporter`.
    pub(crate) fn start<E: SpanExporter + 'static>(
        exporter: E,
        batching: Batching,
        stats: Arc<TraceStats>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(batching.queue.max(1));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("wasi-http-otlp".into())
            .spawn(move || runtime.block_on(export_loop(exporter, rx, batching, thread_stats)))?;
        Ok(QueueProcessor {
            queue: tx,
            stats,
            thread: Mutex::new(Some(thread)),
        })
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.queue.try_send(Msg::Span(Box::new(span))).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            self.stats.backing_off.store(true, Ordering::Relaxed);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush(Duration::from_secs(10))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let flushed = self.flush(timeout);
        if let Ok(mut thread) = self.thread.lock() {
            // It ends once the processor (the queue's sender) is gone.
            drop(thread.take());
        }
        flushed
    }
}

impl QueueProcessor {
    /// Sends what is queued, waiting at most `timeout` (a dead collector must
    /// not hold up an exit). Called from outside any runtime.
    fn flush(&self, timeout: Duration) -> OTelSdkResult {
        let (tx, rx) = std::sync::mpsc::channel();
        self.queue
            .try_send(Msg::Flush(tx))
            .map_err(|_| OTelSdkError::InternalFailure("span queue full or closed".into()))?;
        rx.recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

async fn export_loop<E: SpanExporter>(
    exporter: E,
    mut rx: mpsc::Receiver<Msg>,
    batching: Batching,
    stats: Arc<TraceStats>,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(batching.batch);
    let mut failing_since: Option<Instant> = None;
    loop {
        let mut flush = None;
        // The first span of a batch, then what arrives within the interval.
        match rx.recv().await {
            Some(Msg::Span(span)) => batch.push(*span),
            Some(Msg::Flush(done)) => flush = Some(done),
            None => return,
        }
        let until = tokio::time::Instant::now() + batching.interval;
        while flush.is_none() && batch.len() < batching.batch {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(Msg::Span(span))) => batch.push(*span),
                Ok(Some(Msg::Flush(done))) => flush = Some(done),
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            let sent = tokio::time::timeout(
                batching.timeout,
                exporter.export(std::mem::take(&mut batch)),
            )
            .await;
            match sent {
                Ok(Ok(())) => {
                    stats.exported.fetch_add(n, Ordering::Relaxed);
                    stats.backing_off.store(false, Ordering::Relaxed);
                    if failing_since.take().is_some() {
                        tracing::info!("trace export works again");
                    }
                }
                failed => {
                    stats.failed_exports.fetch_add(1, Ordering::Relaxed);
                    stats.backing_off.store(true, Ordering::Relaxed);
                    stats.dropped.fetch_add(n, Ordering::Relaxed);
                    // Said once per failing stretch, not once per batch.
                    if failing_since.is_none() {
                        let why = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => format!("no answer within {:?}", batching.timeout),
                        };
                        tracing::warn!(error = %why, "trace export failed; spans are dropped (counted) until it works again");
                        failing_since = Some(Instant::now());
                    }
                }
            }
        }
        if let Some(done) = flush {
            let _ = done.send(());
        }
    }
}

//! A guest's stdout and stderr as log lines tagged with its request id, bounded so a
//! chatty guest cannot exhaust host memory or flood the log.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Where a guest's stdout and stderr go.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuestOutput {
    /// Dropped.
    Discard,
    /// Straight to the host process's stdout and stderr (unbounded, untagged).
    Inherit,
    /// One `tracing` event per line (target `wasi_http::guest`, field `request_id`),
    /// at most `max_bytes` per request; the rest is dropped with one warning.
    Log {
        /// Output budget per request, stdout and stderr together.
        max_bytes: usize,
    },
}

impl Default for GuestOutput {
    fn default() -> Self {
        GuestOutput::Log {
            max_bytes: 64 << 10,
        }
    }
}

/// The longest line kept whole; longer ones are split.
const MAX_LINE: usize = 4096;

/// Stdout or stderr of an instance's guest.
#[derive(Clone)]
pub(crate) struct LogSink {
    stream: &'static str,
    budget: Arc<Budget>,
}

/// The request an instance is serving and what is left of its output budget; reset
/// for each request when an instance is reused.
pub(crate) struct Budget {
    request_id: std::sync::Mutex<Arc<str>>,
    max: usize,
    remaining: AtomicUsize,
    warned: AtomicBool,
}

impl Budget {
    pub(crate) fn new(request_id: Arc<str>, max: usize) -> Arc<Budget> {
        Arc::new(Budget {
            request_id: std::sync::Mutex::new(request_id),
            max,
            remaining: AtomicUsize::new(max),
            warned: AtomicBool::new(false),
        })
    }

    /// A new request on the same instance: its id and a full budget.
    pub(crate) fn reset(&self, request_id: Arc<str>) {
        if let Ok(mut id) = self.request_id.lock() {
            *id = request_id;
        }
        self.remaining.store(self.max, Ordering::Relaxed);
        self.warned.store(false, Ordering::Relaxed);
    }

    fn request_id(&self) -> Arc<str> {
        self.request_id
            .lock()
            .map_or_else(|_| Arc::from("?"), |id| id.clone())
    }
}

impl LogSink {
    /// Stdout and stderr sinks sharing one budget.
    pub(crate) fn pair(budget: &Arc<Budget>) -> (LogSink, LogSink) {
        let sink = |stream| LogSink {
            stream,
            budget: budget.clone(),
        };
        (sink("stdout"), sink("stderr"))
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\n', '\r']);
        tracing::info!(
            target: "wasi_http::guest",
            request_id = %self.budget.request_id(),
            stream = self.stream,
            "{line}"
        );
    }

    /// Takes up to `want` bytes of the budget.
    fn take(&self, want: usize) -> usize {
        let mut granted = 0;
        let _ = self
            .budget
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                granted = want.min(left);
                Some(left - granted)
            });
        if granted < want && !self.budget.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "wasi_http::guest",
                request_id = %self.budget.request_id(),
                "guest output over its budget; the rest of this request's output is dropped"
            );
        }
        granted
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            sink: self.clone(),
            line: Vec::new(),
        })
    }
}

struct LineWriter {
    sink: LogSink,
    line: Vec<u8>,
}

impl LineWriter {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&bytes[..=pos]);
            self.flush_line();
            bytes = &bytes[pos + 1..];
        }
        self.line.extend_from_slice(bytes);
        while self.line.len() >= MAX_LINE {
            let rest = self.line.split_off(MAX_LINE);
            self.flush_line();
            self.line = rest;
        }
    }

    fn flush_line(&mut self) {
        if !self.line.is_empty() {
            self.sink.emit(&self.line);
            self.line.clear();
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Everything is accepted; what is over the budget is dropped, so a guest
        // never blocks (or fails) on its own logging.
        let granted = self.sink.take(buf.len());
        self.push(&buf[..granted]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flush_line();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush_line();
    }
}

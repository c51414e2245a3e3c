//! Log lines written in batches by [`Server`](crate::Server) workers.
//!
//! An access line per request written with its own `write` (or handed to a logging
//! thread, which then wakes up per line) cost about a fifth of the CPU of serving a
//! small response. A worker instead appends its lines to a buffer of its own and
//! writes the buffer in one call when it is about to wait for I/O, every
//! [`MAX_DELAY`], or once it holds [`MAX_BUFFERED`] bytes. Nothing is dropped: a slow
//! destination makes the writing worker wait. Any other thread writes each line at
//! once.

use std::cell::RefCell;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A worker writes its buffer once it holds this much.
const MAX_BUFFERED: usize = 64 * 1024;
/// Longest a line waits in a busy worker's buffer.
pub(crate) const MAX_DELAY: Duration = Duration::from_millis(100);

type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

#[derive(Default)]
struct ThreadBuffer {
    /// Only `Server` workers batch (they flush when they park).
    batching: bool,
    buf: Vec<u8>,
    /// Where `buf` goes.
    sink: Option<Sink>,
}

thread_local! {
    static BUFFER: RefCell<ThreadBuffer> = RefCell::new(ThreadBuffer::default());
}

/// A destination for log lines (stderr, a file) that [`Server`](crate::Server)
/// workers write in batches; other threads write through. Give
/// `tracing_subscriber` `move || log.writer()` as its writer.
#[derive(Clone)]
pub struct BatchedLog {
    sink: Sink,
}

impl std::fmt::Debug for BatchedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedLog").finish_non_exhaustive()
    }
}

impl BatchedLog {
    /// Log lines go to `sink`.
    pub fn new(sink: impl Write + Send + 'static) -> Self {
        BatchedLog {
            sink: Arc::new(Mutex::new(Box::new(sink))),
        }
    }

    /// A writer for one log record.
    pub fn writer(&self) -> BatchedLogWriter {
        BatchedLogWriter {
            sink: self.sink.clone(),
        }
    }
}

/// Writes one log record; see [`BatchedLog`].
pub struct BatchedLogWriter {
    sink: Sink,
}

impl std::fmt::Debug for BatchedLogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedLogWriter").finish_non_exhaustive()
    }
}

impl Write for BatchedLogWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let buffered = BUFFER
            .try_with(|cell| {
                // A record logged while flushing (re-entry) is written through.
                let Ok(mut tb) = cell.try_borrow_mut() else {
                    return false;
                };
                if !tb.batching {
                    return false;
                }
                if tb
                    .sink
                    .as_ref()
                    .is_some_and(|s| !Arc::ptr_eq(s, &self.sink))
                {
                    tb.flush();
                }
                if tb.sink.is_none() {
                    tb.sink = Some(self.sink.clone());
                }
                tb.buf.extend_from_slice(data);
                if tb.buf.len() >= MAX_BUFFERED {
                    tb.flush();
                }
                true
            })
            .unwrap_or(false);
        if !buffered {
            write_to(&self.sink, data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ThreadBuffer {
    fn flush(&mut self) {
        if let Some(sink) = &self.sink {
            if !self.buf.is_empty() {
                write_to(sink, &self.buf);
            }
        }
        self.buf.clear();
        self.sink = None;
    }
}

/// Writes `data` whole. A failed write has nowhere to be reported: it is dropped.
fn write_to(sink: &Sink, data: &[u8]) {
    let mut sink = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let _ = sink.write_all(data);
    let _ = sink.flush();
}

/// Makes the current thread (a server worker) batch its log lines. It must call
/// [`flush_thread`] when it parks and before it ends.
pub(crate) fn start_batching() {
    let _ = BUFFER.try_with(|cell| {
        if let Ok(mut tb) = cell.try_borrow_mut() {
            tb.batching = true;
        }
    });
}

/// Writes the current thread's buffered lines.
pub(crate) fn flush_thread() {
    let _ = BUFFER.try_with(|cell| {
        if let Ok(mut tb) = cell.try_borrow_mut() {
            tb.flush();
        }
    });
}

/// Stops batching on the current thread, writing what is buffered.
pub(crate) fn stop_batching() {
    let _ = BUFFER.try_with(|cell| {
        if let Ok(mut tb) = cell.try_borrow_mut() {
            tb.flush();
            tb.batching = false;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Capture {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(data.to_vec());
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn workers_batch_and_other_threads_write_through() {
        let capture = Capture::default();
        let log = BatchedLog::new(capture.clone());
        log.writer().write_all(b"direct\n").unwrap();
        assert_eq!(capture.0.lock().unwrap().len(), 1);

        let worker = std::thread::spawn({
            let log = log.clone();
            let capture = capture.clone();
            move || {
                start_batching();
                log.writer().write_all(b"one\n").unwrap();
                log.writer().write_all(b"two\n").unwrap();
                assert_eq!(capture.0.lock().unwrap().len(), 1, "buffered");
                flush_thread();
                let big = vec![b'x'; MAX_BUFFERED];
                log.writer().write_all(&big).unwrap();
                assert_eq!(capture.0.lock().unwrap().len(), 3, "written when full");
                log.writer().write_all(b"last\n").unwrap();
                stop_batching();
            }
        });
        worker.join().unwrap();
        let writes = capture.0.lock().unwrap().clone();
        assert_eq!(writes[1], b"one\ntwo\n", "one write for the batch");
        assert_eq!(writes[3], b"last\n", "written when the worker stops");
    }
}

//! The queue between a guest writing a body and hyper sending it: bounded in bytes
//! (and in writes), so a guest cannot make the host buffer more than
//! `body_write_chunk * body_buffer_chunks` bytes, whichever way it splits its writes.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use http_body::{Body, Frame, SizeHint};

use super::Direction;
use crate::error::ErrorCode;
use crate::limits::Limits;

enum Msg {
    Data(Bytes),
    // Boxed, as they come once per body: a message is then as small as its bytes.
    End(Option<Box<HeaderMap>>),
    Error(Box<ErrorCode>),
}

/// Most writes a body holds at once (besides the byte budget), so that tiny writes
/// cannot pile up per-message overhead.
const MAX_QUEUED_WRITES: usize = 64;

/// What a body's writer and hyper share: the queue and who waits on it.
///
/// One small lock instead of a tokio channel plus a semaphore: those cost three
/// allocations per body (a 3 KiB block and two cache-line-aligned ones, which
/// bypass the allocator's fast path) and were a tenth of a reused instance's
/// per-request host time. Writer and reader run on the same worker almost always,
/// so the lock is uncontended.
struct Pipe {
    queue: VecDeque<Msg>,
    /// Bytes and data messages queued: the budget's use.
    bytes: usize,
    writes: usize,
    /// The writer is gone (finished, failed or dropped): no more messages.
    writer_gone: bool,
    /// hyper dropped the body: writes fail.
    body_gone: bool,
    /// hyper waiting for a frame; the writer waiting for room.
    reader: Option<Waker>,
    writer: Option<Waker>,
}

type SharedPipe = Arc<Mutex<Pipe>>;

fn lock(m: &Mutex<Pipe>) -> MutexGuard<'_, Pipe> {
    // A panic while holding the lock cannot leave these plain fields inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a write to a body failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The body was finished or failed, or its reader (the peer) went away.
    Closed,
    /// The body failed with this code (e.g. it broke its `content-length`); the
    /// message is aborted.
    Failed(ErrorCode),
    /// More bytes than [`BodyWriter::check_write`] permitted: a guest bug.
    OverPermit,
}

/// The receiving half of an outgoing body: what hyper sends.
pub struct ChannelBody {
    pipe: SharedPipe,
    remaining: Option<u64>,
    done: bool,
}

impl Drop for ChannelBody {
    fn drop(&mut self) {
        let (queue, writer) = {
            let mut pipe = lock(&self.pipe);
            pipe.body_gone = true;
            (std::mem::take(&mut pipe.queue), pipe.writer.take())
        };
        drop(queue);
        // Nobody will take more bytes: wake a writer waiting for room.
        if let Some(writer) = writer {
            writer.wake();
        }
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let (msg, writer) = {
            let mut pipe = lock(&self.pipe);
            match pipe.queue.pop_front() {
                Some(msg) => {
                    if let Msg::Data(data) = &msg {
                        pipe.bytes -= data.len();
                        pipe.writes -= 1;
                    }
                    (Some(msg), pipe.writer.take())
                }
                None if pipe.writer_gone => (None, None),
                None => {
                    pipe.reader = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        };
        // Room was made: the writer may go on.
        if let Some(writer) = writer {
            writer.wake();
        }
        match msg {
            Some(Msg::Data(data)) => {
                if let Some(rem) = self.remaining.as_mut() {
                    *rem = rem.saturating_sub(data.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Msg::End(trailers)) => {
                self.done = true;
                Poll::Ready(trailers.map(|t| Ok(Frame::trailers(*t))))
            }
            Some(Msg::Error(code)) => {
                self.done = true;
                Poll::Ready(Some(Err(*code)))
            }
            None => {
                // Dropped without `finish`: the WIT says the body is then incomplete,
                // so the message is aborted rather than sent truncated.
                self.done = true;
                Poll::Ready(Some(Err(ErrorCode::internal(
                    "body dropped before it was finished",
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// The sending half of an outgoing body: what the guest writes into.
pub struct BodyWriter {
    pipe: SharedPipe,
    /// Bytes that may be queued at once (`body_write_chunk * body_buffer_chunks`):
    /// the budget counts bytes, not writes, so a guest writing small chunks keeps as
    /// much in flight as one writing large ones.
    max_bytes: usize,
    written: u64,
    expected: Option<u64>,
    chunk: usize,
    direction: Direction,
    failed: bool,
    finished: bool,
    /// Names the message's `trailer` header declares (HTTP/1.1 sends only those).
    declared_trailers: Vec<HeaderName>,
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        let reader = {
            let mut pipe = lock(&self.pipe);
            pipe.writer_gone = true;
            pipe.reader.take()
        };
        // hyper sees the end (or, without `finish`, the abort).
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// A connected writer and body for a message with `headers`: their
/// `content-length` (an invalid one is refused when the message is sent) is
/// enforced, their `trailer` declaration remembered.
pub fn channel(
    limits: &Limits,
    headers: &HeaderMap,
    direction: Direction,
) -> (BodyWriter, ChannelBody) {
    let expected = crate::headers::content_length(headers).unwrap_or(None);
    let (mut writer, body) = channel_of(limits, expected, direction);
    if headers.contains_key(http::header::TRAILER) {
        writer.declared_trailers = crate::headers::declared_trailers(headers);
    }
    (writer, body)
}

/// A connected writer and body expecting `expected` bytes, if given.
pub fn channel_of(
    limits: &Limits,
    expected: Option<u64>,
    direction: Direction,
) -> (BodyWriter, ChannelBody) {
    let pipe = Arc::new(Mutex::new(Pipe {
        queue: VecDeque::new(),
        bytes: 0,
        writes: 0,
        writer_gone: false,
        body_gone: false,
        reader: None,
        writer: None,
    }));
    (
        BodyWriter {
            pipe: pipe.clone(),
            max_bytes: limits
                .body_write_chunk
                .saturating_mul(limits.body_buffer_chunks),
            written: 0,
            expected,
            chunk: limits.body_write_chunk,
            direction,
            failed: false,
            finished: false,
            declared_trailers: Vec::new(),
        },
        ChannelBody {
            pipe,
            remaining: expected,
            done: false,
        },
    )
}

impl BodyWriter {
    /// Fails the body with `code`: hyper aborts the message instead of ending it.
    pub fn fail(&mut self, code: ErrorCode) {
        self.failed = true;
        self.send_last(Msg::Error(Box::new(code)));
    }

    /// Whether the body failed.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Whether no more bytes can be written (finished, failed or the reader gone).
    pub fn is_closed(&self) -> bool {
        self.failed || self.finished || lock(&self.pipe).body_gone
    }

    /// Queues `bytes` (at most what [`check_write`](Self::check_write) permits).
    pub fn write(&mut self, bytes: Bytes) -> Result<(), WriteError> {
        if self.failed || self.finished {
            return Err(WriteError::Closed);
        }
        let mut pipe = lock(&self.pipe);
        if pipe.body_gone {
            return Err(WriteError::Closed);
        }
        if bytes.len() > self.permitted(&pipe) {
            return Err(WriteError::OverPermit);
        }
        let total = self.written + bytes.len() as u64;
        if let Some(expected) = self.expected {
            if total > expected {
                drop(pipe);
                let code = self.direction.size_error(total);
                self.fail(code.clone());
                return Err(WriteError::Failed(code));
            }
        }
        if bytes.is_empty() {
            return Ok(());
        }
        pipe.bytes += bytes.len();
        pipe.writes += 1;
        pipe.queue.push_back(Msg::Data(bytes));
        let reader = pipe.reader.take();
        drop(pipe);
        self.written = total;
        if let Some(reader) = reader {
            reader.wake();
        }
        Ok(())
    }

    /// How many bytes the next write may carry (0: wait for
    /// [`poll_ready`](Self::poll_ready)).
    pub fn check_write(&self) -> Result<usize, WriteError> {
        if self.failed || self.finished {
            return Err(WriteError::Closed);
        }
        let pipe = lock(&self.pipe);
        if pipe.body_gone {
            return Err(WriteError::Closed);
        }
        Ok(self.permitted(&pipe))
    }

    /// What `check-write` allows now: up to one chunk, within the byte budget, if
    /// fewer than the most writes are queued.
    fn permitted(&self, pipe: &Pipe) -> usize {
        if pipe.writes < MAX_QUEUED_WRITES {
            self.chunk.min(self.max_bytes.saturating_sub(pipe.bytes))
        } else {
            0
        }
    }

    /// Ready once a write is permitted, or the body is closed (writes then fail).
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.failed || self.finished {
            return Poll::Ready(());
        }
        let mut pipe = lock(&self.pipe);
        if pipe.body_gone || self.permitted(&pipe) > 0 {
            Poll::Ready(())
        } else {
            pipe.writer = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// Until a write is permitted, or the body is closed.
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Queues the final message (the end or an error): it needs no room, as the
    /// writer sends nothing after it. If the body is gone nobody reads it.
    fn send_last(&self, msg: Msg) -> bool {
        let reader = {
            let mut pipe = lock(&self.pipe);
            if pipe.body_gone {
                return false;
            }
            pipe.queue.push_back(msg);
            pipe.reader.take()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
        true
    }

    /// Ends the body with optional trailers, checking the declared length.
    pub fn finish(mut self, trailers: Option<HeaderMap>) -> Result<(), ErrorCode> {
        if self.failed {
            return Err(ErrorCode::internal("body already failed"));
        }
        if let Some(expected) = self.expected {
            if self.written != expected {
                let code = self.direction.size_error(self.written);
                self.fail(code.clone());
                return Err(code);
            }
        }
        self.finished = true;
        if let Some(trailers) = &trailers {
            let undeclared: Vec<&str> = trailers
                .keys()
                .filter(|name| !self.declared_trailers.contains(name))
                .map(|name| name.as_str())
                .collect();
            if !undeclared.is_empty() {
                // hyper (rightly, RFC 9110 §6.6.2) sends over HTTP/1.1 only the trailer
                // fields the head announced; say so instead of losing them quietly.
                tracing::warn!(
                    ?undeclared,
                    "trailer fields not announced in a `trailer` header are not sent over HTTP/1.1"
                );
            }
        }
        if self.send_last(Msg::End(trailers.map(Box::new))) {
            Ok(())
        } else {
            // The receiver is gone: the peer no longer reads this body.
            Err(ErrorCode::ConnectionTerminated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(
        body: &mut ChannelBody,
    ) -> impl std::future::Future<Output = Option<Result<Frame<Bytes>, ErrorCode>>> + '_ {
        std::future::poll_fn(move |cx| Pin::new(&mut *body).poll_frame(cx))
    }

    /// The buffer budget counts bytes: small writes fill it as far as large ones,
    /// and hyper taking a frame gives its bytes back.
    #[tokio::test]
    async fn outgoing_budget_counts_bytes_not_writes() {
        let limits = Limits::default();
        let budget = limits.body_write_chunk * limits.body_buffer_chunks;
        let (mut writer, mut body) = channel_of(&limits, None, Direction::Response);
        let small = Bytes::from(vec![7u8; 64 * 1024]);
        let mut queued = 0;
        while writer.check_write().expect("open") > 0 {
            let n = writer.check_write().expect("open").min(small.len());
            writer.write(small.slice(..n)).expect("write within permit");
            queued += n;
        }
        assert_eq!(queued, budget, "64 KiB writes fill the whole byte budget");
        assert_eq!(
            writer.write(Bytes::from_static(b"x")),
            Err(WriteError::OverPermit)
        );
        let data = frame(&mut body)
            .await
            .expect("a frame")
            .expect("data")
            .into_data()
            .expect("data");
        assert_eq!(data.len(), small.len());
        assert_eq!(writer.check_write().expect("open"), small.len());
        writer.ready().await;

        // Tiny writes are bounded by the message count instead.
        let (mut writer, _body) = channel_of(&limits, None, Direction::Response);
        let mut writes = 0;
        while writer.check_write().expect("open") > 0 {
            writer.write(Bytes::from_static(b"x")).expect("write");
            writes += 1;
        }
        assert_eq!(writes, MAX_QUEUED_WRITES);
    }

    /// A writer waiting for room wakes when hyper takes a frame, and the end and a
    /// drop without `finish` reach hyper.
    #[tokio::test]
    async fn a_writer_waiting_for_room_wakes_when_a_frame_is_taken() {
        let limits = Limits::default();
        let (mut writer, mut body) = channel_of(&limits, None, Direction::Response);
        let chunk = Bytes::from(vec![1u8; limits.body_write_chunk]);
        while writer.check_write().expect("open") > 0 {
            writer.write(chunk.clone()).expect("write");
        }
        let waiting = tokio::spawn(async move {
            writer.ready().await;
            let room = writer.check_write().expect("open");
            writer.finish(None).expect("finish");
            room
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "waits while the body is full");
        let first = frame(&mut body).await.expect("frame").expect("data");
        assert_eq!(first.into_data().expect("data").len(), chunk.len());
        let room = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the writer wakes")
            .expect("task");
        assert_eq!(room, chunk.len());
        let mut frames = 1;
        while let Some(f) = frame(&mut body).await {
            f.expect("data, then the end");
            frames += 1;
        }
        assert_eq!(frames, limits.body_buffer_chunks);

        let (writer, mut body) = channel_of(&limits, None, Direction::Response);
        drop(writer);
        let aborted = frame(&mut body).await;
        assert!(matches!(aborted, Some(Err(_))), "dropped without finish");
    }

    /// A writer waiting for budget wakes when hyper drops the body (the peer went
    /// away), instead of waiting for ever.
    #[tokio::test]
    async fn a_dropped_body_wakes_a_writer_waiting_for_budget() {
        let limits = Limits::default();
        let (mut writer, body) = channel_of(&limits, None, Direction::Request);
        let chunk = Bytes::from(vec![1u8; limits.body_write_chunk]);
        while writer.check_write().expect("open") > 0 {
            writer.write(chunk.clone()).expect("write");
        }
        let waiting = tokio::spawn(async move {
            writer.ready().await;
            writer.check_write().is_err()
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "waits while the body is full");
        drop(body);
        let closed = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the writer wakes")
            .expect("task");
        assert!(closed, "check-write reports the stream closed");
    }

    #[tokio::test]
    async fn content_length_is_enforced_both_ways() {
        let limits = Limits::default();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, "3".parse().unwrap());
        let (mut writer, _body) = channel(&limits, &headers, Direction::Response);
        assert!(matches!(
            writer.write(Bytes::from_static(b"1234")),
            Err(WriteError::Failed(ErrorCode::HttpResponseBodySize(Some(4))))
        ));
        let (mut writer, _body) = channel(&limits, &headers, Direction::Request);
        writer.write(Bytes::from_static(b"12")).unwrap();
        assert_eq!(
            writer.finish(None),
            Err(ErrorCode::HttpRequestBodySize(Some(2)))
        );
    }
}

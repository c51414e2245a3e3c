//! `incoming-body` and `outgoing-body`: streaming message bodies with backpressure.
//!
//! Incoming bodies are read lazily: a frame is pulled from the network only when the
//! guest waits for data, so the host holds at most one frame per body. Outgoing bodies
//! go through a bounded queue; `check-write` reports room only while the queue has
//! space, so a guest cannot make the host buffer more than the configured limit.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

use crate::error_code::{ErrorCode, ErrorCodeError};
use crate::limits::Limits;

/// The body type the host hands to hyper and receives from it: a boxed stream of
/// bytes whose errors carry an `error-code`.
pub type HostBody = http_body_util::combinators::UnsyncBoxBody<Bytes, ErrorCodeError>;

/// Boxes any body whose errors can be turned into an `error-code`.
pub fn boxed<B>(body: B) -> HostBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<ErrorCodeError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// An empty body.
pub fn empty() -> HostBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Which side of an exchange a body belongs to; it picks the error codes for limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// A value lent to a child resource (a stream) that comes back when the child drops.
pub(crate) enum Held<T> {
    Here(T),
    Lent(Arc<Mutex<Option<T>>>),
}

/// The borrowed side of [`Held`]: returns the value home on drop.
pub(crate) struct Loan<T> {
    value: Option<T>,
    home: Arc<Mutex<Option<T>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these plain slots inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> Held<T> {
    /// Lends the value out, if it is here.
    pub(crate) fn lend(&mut self) -> Option<Loan<T>> {
        let home = Arc::new(Mutex::new(None));
        match std::mem::replace(self, Held::Lent(home.clone())) {
            Held::Here(value) => Some(Loan {
                value: Some(value),
                home,
            }),
            lent @ Held::Lent(_) => {
                *self = lent;
                None
            }
        }
    }

    /// Takes the value, whether it is here or was returned by a dropped loan.
    pub(crate) fn take(self) -> Option<T> {
        match self {
            Held::Here(value) => Some(value),
            Held::Lent(home) => lock(&home).take(),
        }
    }
}

impl<T> Loan<T> {
    fn get(&mut self) -> Option<&mut T> {
        self.value.as_mut()
    }
}

impl<T> Drop for Loan<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            *lock(&self.home) = Some(value);
        }
    }
}

// ---------------------------------------------------------------------------------
// Incoming bodies

enum ReadState {
    Open,
    Ended(Option<HeaderMap>),
    Failed(ErrorCode),
}

/// Pulls frames from a body on demand.
pub(crate) struct BodyReader {
    body: HostBody,
    buf: Bytes,
    state: ReadState,
    between_bytes: Option<Duration>,
    read_chunk: usize,
    limits: Limits,
    direction: Direction,
}

impl BodyReader {
    pub(crate) fn new(
        body: HostBody,
        between_bytes: Option<Duration>,
        limits: &Limits,
        direction: Direction,
    ) -> Self {
        BodyReader {
            body,
            buf: Bytes::new(),
            state: ReadState::Open,
            between_bytes,
            read_chunk: limits.body_read_chunk,
            limits: limits.clone(),
            direction,
        }
    }

    /// Waits until data is buffered or the body has ended or failed.
    async fn fill(&mut self) {
        while self.buf.is_empty() && matches!(self.state, ReadState::Open) {
            let frame = match self.between_bytes {
                Some(limit) => match tokio::time::timeout(limit, self.body.frame()).await {
                    Ok(frame) => frame,
                    Err(_) => {
                        self.state = ReadState::Failed(ErrorCode::ConnectionReadTimeout);
                        return;
                    }
                },
                None => self.body.frame().await,
            };
            match frame {
                None => self.state = ReadState::Ended(None),
                Some(Err(ErrorCodeError(code))) => self.state = ReadState::Failed(code),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buf = data,
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.state = ReadState::Ended(Some(trailers));
                        }
                    }
                },
            }
        }
    }

    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if !self.buf.is_empty() {
            let n = size.min(self.buf.len()).min(self.read_chunk);
            return Ok(self.buf.split_to(n));
        }
        match &self.state {
            ReadState::Open => Ok(Bytes::new()),
            ReadState::Ended(_) => Err(StreamError::Closed),
            ReadState::Failed(code) => Err(StreamError::LastOperationFailed(wasmtime::Error::new(
                ErrorCodeError(code.clone()),
            ))),
        }
    }

    /// The outcome once the body has ended: trailers (checked against limits) or error.
    fn outcome(&mut self) -> Option<Result<Option<crate::fields::HostFields>, ErrorCode>> {
        match std::mem::replace(&mut self.state, ReadState::Open) {
            ReadState::Open => None,
            ReadState::Failed(code) => {
                self.state = ReadState::Failed(code.clone());
                Some(Err(code))
            }
            ReadState::Ended(trailers) => {
                self.state = ReadState::Ended(None);
                Some(match trailers {
                    None => Ok(None),
                    Some(map) => crate::fields::HostFields::from_received(map, &self.limits)
                        .map(Some)
                        .map_err(|_| match self.direction {
                            Direction::Request => ErrorCode::HttpRequestTrailerSectionSize(None),
                            Direction::Response => ErrorCode::HttpResponseTrailerSectionSize(None),
                        }),
                })
            }
        }
    }

    /// Skips the rest of the data and waits for the end of the body.
    pub(crate) async fn drain(&mut self) {
        loop {
            self.buf = Bytes::new();
            self.fill().await;
            if self.buf.is_empty() {
                return;
            }
        }
    }

    /// Like [`outcome`](Self::outcome) but only if no more waiting is needed.
    pub(crate) fn finished_outcome(
        &mut self,
    ) -> Option<Result<Option<crate::fields::HostFields>, ErrorCode>> {
        if !self.buf.is_empty() {
            return None;
        }
        self.outcome()
    }
}

/// The host side of an `incoming-body` resource.
pub struct HostIncomingBody {
    reader: Held<BodyReader>,
    stream_taken: bool,
}

impl HostIncomingBody {
    pub(crate) fn new(reader: BodyReader) -> Self {
        HostIncomingBody {
            reader: Held::Here(reader),
            stream_taken: false,
        }
    }

    /// The guest's `stream`: once only; the stream borrows the reader.
    pub(crate) fn take_stream(&mut self) -> Option<IncomingBodyStream> {
        if self.stream_taken {
            return None;
        }
        self.stream_taken = true;
        self.reader.lend().map(|loan| IncomingBodyStream { loan })
    }

    /// The reader back, after the stream (if any) was dropped.
    pub(crate) fn into_reader(self) -> Option<BodyReader> {
        self.reader.take()
    }
}

/// The `input-stream` of an incoming body.
pub(crate) struct IncomingBodyStream {
    loan: Loan<BodyReader>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for IncomingBodyStream {
    async fn ready(&mut self) {
        if let Some(reader) = self.loan.get() {
            reader.fill().await;
        }
    }
}

impl InputStream for IncomingBodyStream {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        match self.loan.get() {
            Some(reader) => reader.read(size),
            None => Err(StreamError::Closed),
        }
    }
}

// ---------------------------------------------------------------------------------
// Outgoing bodies

enum Msg {
    Data(Bytes),
    // Boxed, as they come once per body: a message is then as small as its bytes.
    End(Option<Box<HeaderMap>>),
    Error(Box<ErrorCode>),
}

/// Most writes an outgoing body holds at once (besides the byte budget), so that
/// tiny writes cannot pile up per-message overhead.
const MAX_QUEUED_WRITES: usize = 64;

/// What a body's writer and hyper share: the queue and who waits on it.
///
/// One small lock instead of a tokio channel plus a semaphore: those cost three
/// allocations per body (a 3 KiB block and two cache-line-aligned ones, which
/// bypass the allocator's fast path) and were a tenth of a reused instance's
/// per-request host time. Writer and reader run on the same worker almost always,
/// so the lock is uncontended.
struct Pipe {
    queue: std::collections::VecDeque<Msg>,
    /// Bytes and data messages queued: the budget's use.
    bytes: usize,
    writes: usize,
    /// The writer is gone (finished, failed or dropped): no more messages.
    writer_gone: bool,
    /// hyper dropped the body: writes fail.
    body_gone: bool,
    /// hyper waiting for a frame; the writer waiting for room.
    reader: Option<std::task::Waker>,
    writer: Option<std::task::Waker>,
}

type SharedPipe = Arc<Mutex<Pipe>>;

/// The receiving half of an outgoing body: what hyper sends.
pub(crate) struct ChannelBody {
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
    type Error = ErrorCodeError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCodeError>>> {
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
                Poll::Ready(Some(Err(ErrorCodeError(*code))))
            }
            None => {
                // Dropped without `finish`: the WIT says the body is then incomplete,
                // so the message is aborted rather than sent truncated.
                self.done = true;
                Poll::Ready(Some(Err(ErrorCodeError(ErrorCode::InternalError(Some(
                    "outgoing-body dropped without finish".into(),
                ))))))
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
pub(crate) struct BodyWriter {
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
    declared_trailers: Vec<http::HeaderName>,
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

/// Makes a connected writer and body. `expected` is the declared `content-length`.
pub(crate) fn channel(
    limits: &Limits,
    expected: Option<u64>,
    direction: Direction,
) -> (BodyWriter, ChannelBody) {
    let pipe = Arc::new(Mutex::new(Pipe {
        queue: std::collections::VecDeque::new(),
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
    fn size_error(&self, total: u64) -> ErrorCode {
        match self.direction {
            Direction::Request => ErrorCode::HttpRequestBodySize(Some(total)),
            Direction::Response => ErrorCode::HttpResponseBodySize(Some(total)),
        }
    }

    fn fail(&mut self, code: ErrorCode) -> StreamError {
        self.failed = true;
        self.send_last(Msg::Error(Box::new(code.clone())));
        StreamError::LastOperationFailed(wasmtime::Error::new(ErrorCodeError(code)))
    }

    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if self.failed || self.finished {
            return Err(StreamError::Closed);
        }
        let mut pipe = lock(&self.pipe);
        if pipe.body_gone {
            return Err(StreamError::Closed);
        }
        if bytes.len() > self.permitted(&pipe) {
            return Err(StreamError::trap(
                "write of more bytes than check-write permitted",
            ));
        }
        let total = self.written + bytes.len() as u64;
        if let Some(expected) = self.expected {
            if total > expected {
                drop(pipe);
                return Err(self.fail(self.size_error(total)));
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

    fn check_write(&mut self) -> StreamResult<usize> {
        if self.failed || self.finished {
            return Err(StreamError::Closed);
        }
        let pipe = lock(&self.pipe);
        if pipe.body_gone {
            return Err(StreamError::Closed);
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

    /// Until a write is permitted, or the body is gone (check-write then says
    /// closed).
    async fn ready(&mut self) {
        if self.failed || self.finished {
            return;
        }
        std::future::poll_fn(|cx| {
            let mut pipe = lock(&self.pipe);
            if pipe.body_gone || self.permitted(&pipe) > 0 {
                Poll::Ready(())
            } else {
                pipe.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
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
    pub(crate) fn finish(mut self, trailers: Option<HeaderMap>) -> Result<(), ErrorCode> {
        if self.failed {
            return Err(ErrorCode::InternalError(Some(
                "outgoing-body already failed".into(),
            )));
        }
        if let Some(expected) = self.expected {
            if self.written != expected {
                let code = self.size_error(self.written);
                self.failed = true;
                self.send_last(Msg::Error(Box::new(code.clone())));
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

/// The body of an outgoing message before it is sent: `body()` may be called once,
/// and the `content-length` declared in the headers at that moment is enforced.
#[derive(Default)]
pub(crate) struct OutgoingBodySlot {
    body: Option<ChannelBody>,
    taken: bool,
}

impl OutgoingBodySlot {
    /// The guest's `body()`: a writer, once only.
    pub(crate) fn take_writer(
        &mut self,
        headers: &HeaderMap,
        limits: &Limits,
        direction: Direction,
    ) -> Option<BodyWriter> {
        if self.taken {
            return None;
        }
        self.taken = true;
        // An unparsable content-length is refused when the message is sent.
        let expected = declared_length(headers).unwrap_or(None);
        let (mut writer, body) = channel(limits, expected, direction);
        writer.declared_trailers = headers
            .get_all(http::header::TRAILER)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| http::HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        self.body = Some(body);
        Some(writer)
    }

    /// The body to send, if the guest asked for one.
    pub(crate) fn into_body(self) -> Option<ChannelBody> {
        self.body
    }
}

/// The host side of an `outgoing-body` resource.
pub struct HostOutgoingBody {
    writer: Held<BodyWriter>,
    stream_taken: bool,
}

impl HostOutgoingBody {
    pub(crate) fn new(writer: BodyWriter) -> Self {
        HostOutgoingBody {
            writer: Held::Here(writer),
            stream_taken: false,
        }
    }

    pub(crate) fn take_stream(&mut self) -> Option<OutgoingBodyStream> {
        if self.stream_taken {
            return None;
        }
        self.stream_taken = true;
        self.writer.lend().map(|loan| OutgoingBodyStream { loan })
    }

    pub(crate) fn into_writer(self) -> Option<BodyWriter> {
        self.writer.take()
    }
}

/// The `output-stream` of an outgoing body.
pub(crate) struct OutgoingBodyStream {
    loan: Loan<BodyWriter>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutgoingBodyStream {
    async fn ready(&mut self) {
        if let Some(writer) = self.loan.get() {
            writer.ready().await;
        }
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for OutgoingBodyStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        match self.loan.get() {
            Some(w) => w.write(bytes),
            None => Err(StreamError::Closed),
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Written data is already handed to the sender; there is nothing to flush.
        match self.loan.get() {
            Some(w) if !w.failed => Ok(()),
            _ => Err(StreamError::Closed),
        }
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        match self.loan.get() {
            Some(w) => w.check_write(),
            None => Err(StreamError::Closed),
        }
    }
}

/// Parses a declared `content-length`: all values must agree.
pub(crate) fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut found = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        let n: u64 = value
            .to_str()
            .map_err(|_| ())?
            .trim()
            .parse()
            .map_err(|_| ())?;
        if found.is_some_and(|f| f != n) {
            return Err(());
        }
        found = Some(n);
    }
    Ok(found)
}

/// Boxes a channel body for hyper.
pub(crate) fn channel_body(body: ChannelBody) -> HostBody {
    body.boxed_unsync()
}

/// `incoming-body.finish`: the rest of the body is read for its trailers.
pub(crate) fn finish_incoming(
    body: HostIncomingBody,
) -> wasmtime::Result<crate::trailers::HostFutureTrailers> {
    match body.into_reader() {
        Some(reader) => Ok(crate::trailers::HostFutureTrailers::new(reader)),
        None => Err(wasmtime::format_err!(
            "incoming-body finished while its stream is still alive"
        )),
    }
}

/// `outgoing-body.finish`: ends the body, checking the declared length.
pub(crate) fn finish_outgoing(
    body: HostOutgoingBody,
    trailers: Option<crate::fields::HostFields>,
) -> Result<(), crate::error_code::HttpError> {
    let writer = body.into_writer().ok_or_else(|| {
        crate::error_code::HttpError::trap(wasmtime::format_err!(
            "outgoing-body finished while its stream is still alive"
        ))
    })?;
    writer
        .finish(trailers.map(crate::fields::HostFields::into_map))
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffer budget counts bytes: small writes fill it as far as large ones,
    /// and hyper taking a frame gives its bytes back.
    #[tokio::test]
    async fn outgoing_budget_counts_bytes_not_writes() {
        let limits = Limits::default();
        let budget = limits.body_write_chunk * limits.body_buffer_chunks;
        let (mut writer, mut body) = channel(&limits, None, Direction::Response);
        let small = Bytes::from(vec![7u8; 64 * 1024]);
        let mut queued = 0;
        while writer.check_write().expect("open") > 0 {
            let n = writer.check_write().expect("open").min(small.len());
            writer.write(small.slice(..n)).expect("write within permit");
            queued += n;
        }
        assert_eq!(queued, budget, "64 KiB writes fill the whole byte budget");
        assert!(
            writer.write(Bytes::from_static(b"x")).is_err(),
            "over the permit"
        );
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let data = frame
            .expect("a frame")
            .expect("data")
            .into_data()
            .expect("data");
        assert_eq!(data.len(), small.len());
        assert_eq!(writer.check_write().expect("open"), small.len());
        writer.ready().await;

        // Tiny writes are bounded by the message count instead.
        let (mut writer, _body) = channel(&limits, None, Direction::Response);
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
        let (mut writer, mut body) = channel(&limits, None, Direction::Response);
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
        let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
            .await
            .expect("frame")
            .expect("data");
        assert_eq!(first.into_data().expect("data").len(), chunk.len());
        let room = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the writer wakes")
            .expect("task");
        assert_eq!(room, chunk.len());
        let mut frames = 1;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            frame.expect("data, then the end");
            frames += 1;
        }
        assert_eq!(frames, limits.body_buffer_chunks);

        let (writer, mut body) = channel(&limits, None, Direction::Response);
        drop(writer);
        let aborted = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(matches!(aborted, Some(Err(_))), "dropped without finish");
    }

    /// A writer waiting for budget wakes when hyper drops the body (the peer went
    /// away), instead of waiting for ever.
    #[tokio::test]
    async fn a_dropped_body_wakes_a_writer_waiting_for_budget() {
        let limits = Limits::default();
        let (mut writer, body) = channel(&limits, None, Direction::Request);
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
}

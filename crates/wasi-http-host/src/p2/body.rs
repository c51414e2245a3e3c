//! 0.2's body resources: `incoming-body` and `outgoing-body`, whose `wasi:io`
//! streams are children that borrow the body's reader or writer, and
//! `future-trailers`. The reading, queueing and limits are `wasi-http-core`'s.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::HeaderMap;
use wasi_http_core::body::{BodyReader, BodyWriter, ChannelBody, ReadEnd, ReadOutcome, WriteError};
use wasi_http_core::{Direction, ErrorCode, Fields, Limits};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// A value lent to a child resource (a stream) that comes back when the child drops.
enum Held<T> {
    Here(T),
    Lent(Arc<Mutex<Option<T>>>),
}

/// The borrowed side of [`Held`]: returns the value home on drop.
struct Loan<T> {
    value: Option<T>,
    home: Arc<Mutex<Option<T>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these plain slots inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> Held<T> {
    /// Lends the value out, if it is here.
    fn lend(&mut self) -> Option<Loan<T>> {
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
    fn take(self) -> Option<T> {
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

/// A stream error carrying an `error-code` (`http-error-code` recovers it).
fn failed(code: ErrorCode) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(code))
}

// ---------------------------------------------------------------------------------
// incoming-body

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

    /// `finish`: the rest of the body is read for its trailers. A trap while the
    /// stream (a child) is still alive.
    pub(crate) fn finish(self) -> wasmtime::Result<HostFutureTrailers> {
        match self.reader.take() {
            Some(reader) => Ok(HostFutureTrailers::new(reader)),
            None => Err(wasmtime::format_err!(
                "incoming-body finished while its stream is still alive"
            )),
        }
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
            Some(reader) => reader.read(size).map_err(|end| match end {
                ReadEnd::Closed => StreamError::Closed,
                ReadEnd::Failed(code) => failed(code),
            }),
            None => Err(StreamError::Closed),
        }
    }
}

// ---------------------------------------------------------------------------------
// future-trailers

/// The host side of a `future-trailers` resource.
pub struct HostFutureTrailers {
    state: TrailersState,
}

enum TrailersState {
    /// The rest of the body must be read (and discarded) to reach the trailers.
    Waiting(Box<BodyReader>),
    Ready(ReadOutcome),
    Consumed,
}

impl HostFutureTrailers {
    fn new(reader: BodyReader) -> Self {
        HostFutureTrailers {
            state: TrailersState::Waiting(Box::new(reader)),
        }
    }

    /// The guest's `get`: `None` while not ready, `Some(Err(()))` once consumed.
    pub(crate) fn get(&mut self) -> Option<Result<ReadOutcome, ()>> {
        if let TrailersState::Waiting(reader) = &mut self.state {
            let outcome = reader.finished_outcome()?;
            self.state = TrailersState::Ready(outcome);
        }
        match std::mem::replace(&mut self.state, TrailersState::Consumed) {
            TrailersState::Ready(outcome) => Some(Ok(outcome)),
            TrailersState::Consumed => Some(Err(())),
            TrailersState::Waiting(_) => None,
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for HostFutureTrailers {
    async fn ready(&mut self) {
        if let TrailersState::Waiting(reader) = &mut self.state {
            reader.drain().await;
        }
    }
}

// ---------------------------------------------------------------------------------
// outgoing-body

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
        let (writer, body) = wasi_http_core::body::channel(limits, headers, direction);
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

    /// `finish`: ends the body, checking the declared length. A trap while the
    /// stream (a child) is still alive.
    pub(crate) fn finish(self, trailers: Option<Fields>) -> Result<(), crate::HttpError> {
        let writer = self.writer.take().ok_or_else(|| {
            crate::HttpError::trap(wasmtime::format_err!(
                "outgoing-body finished while its stream is still alive"
            ))
        })?;
        writer
            .finish(trailers.map(Fields::into_map))
            .map_err(Into::into)
    }
}

/// The `output-stream` of an outgoing body.
pub(crate) struct OutgoingBodyStream {
    loan: Loan<BodyWriter>,
}

fn stream_error(e: WriteError) -> StreamError {
    match e {
        WriteError::Closed => StreamError::Closed,
        WriteError::Failed(code) => failed(code),
        WriteError::OverPermit => {
            StreamError::trap("write of more bytes than check-write permitted")
        }
        _ => StreamError::Closed,
    }
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
            Some(w) => w.write(bytes).map_err(stream_error),
            None => Err(StreamError::Closed),
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Written data is already handed to the sender; there is nothing to flush.
        match self.loan.get() {
            Some(w) if !w.is_failed() => Ok(()),
            _ => Err(StreamError::Closed),
        }
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        match self.loan.get() {
            Some(w) => w.check_write().map_err(stream_error),
            None => Err(StreamError::Closed),
        }
    }
}

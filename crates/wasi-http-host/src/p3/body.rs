//! 0.3's bodies: a guest's `stream<u8>` and trailers `future` piped into the
//! version-independent body queue (guest to host), and a received body offered to
//! the guest as a `stream<u8>` with a trailers `future` (host to guest), both with
//! the queue's and reader's limits and backpressure.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use tokio::sync::oneshot;
use wasi_http_core::body::{BodyEnd, BodyReader, BodyWatch, BodyWriter, ReadOutcome, WriteError};
use wasi_http_core::{Direction, ErrorCode, Fields, HostBody, Limits};
use wasmtime::component::{
    Destination, FutureConsumer, FutureProducer, FutureReader, Resource, Source, StreamConsumer,
    StreamProducer, StreamReader, StreamResult,
};
use wasmtime::{AsContextMut, StoreContextMut};

use super::bindings::http::types::ErrorCode as GuestCode;
use crate::WasiHttpCtxView;

/// A store data type's way to its HTTP view (what `Access::getter` returns).
pub(crate) type Getter<T> = for<'a> fn(&'a mut T) -> WasiHttpCtxView<'a>;

/// What a guest's trailers future carries.
pub(crate) type GuestTrailers = Result<Option<Resource<Fields>>, GuestCode>;

fn lock(m: &Mutex<Outgoing>) -> MutexGuard<'_, Outgoing> {
    // A panic while holding the lock cannot leave these plain fields inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------
// Guest to host

/// A body a guest is writing: its data stream and its trailers future both feed
/// one writer, which is finished once both are done (or failed by either).
struct Outgoing {
    writer: Option<BodyWriter>,
    data_done: bool,
    trailers: Option<Result<Option<HeaderMap>, ErrorCode>>,
}

impl Outgoing {
    /// Finishes (or fails) the body once the data and the trailers are both known;
    /// a trailers error fails it at once, as the WIT says.
    fn settle(&mut self) {
        let ready = match &self.trailers {
            Some(Err(_)) => true,
            Some(Ok(_)) => self.data_done,
            None => false,
        };
        if !ready {
            return;
        }
        let (Some(mut writer), Some(trailers)) = (self.writer.take(), self.trailers.take()) else {
            return;
        };
        match trailers {
            Ok(trailers) => {
                if let Err(code) = writer.finish(trailers) {
                    tracing::debug!(error = %code, "guest body ended short of its content-length, or nobody reads it");
                }
            }
            Err(code) => writer.fail(code),
        }
    }
}

/// Pipes a guest's body (`contents` and `trailers`) into a new body queue sized by
/// `limits`, enforcing the `content-length` in `headers`; returns hyper's end. No
/// `contents` is a zero-length body (the WIT's words), sent as one (no chunked
/// framing), unless the headers declare a length it would then break.
pub(crate) fn pipe_guest_body<T: 'static>(
    mut store: impl AsContextMut<Data = T>,
    getter: Getter<T>,
    contents: Option<StreamReader<u8>>,
    trailers: FutureReader<GuestTrailers>,
    headers: &HeaderMap,
    limits: &Limits,
    direction: Direction,
) -> wasmtime::Result<HostBody> {
    let declared = wasi_http_core::headers::content_length(headers);
    let Some(contents) = contents else {
        if matches!(declared, Ok(None) | Ok(Some(0))) {
            // Nothing to send; the trailers future is still taken (and dropped: a
            // body without contents has no chunked framing to carry them).
            trailers.pipe(
                &mut store,
                TrailersSink {
                    shared: Some(Arc::new(Mutex::new(Outgoing {
                        writer: None,
                        data_done: true,
                        trailers: None,
                    }))),
                    getter,
                },
            )?;
            return Ok(wasi_http_core::body::empty());
        }
        // A declared length and no contents: the body fails at its end.
        return pipe_parts(
            &mut store, getter, None, trailers, headers, limits, direction,
        );
    };
    pipe_parts(
        &mut store,
        getter,
        Some(contents),
        trailers,
        headers,
        limits,
        direction,
    )
}

fn pipe_parts<T: 'static>(
    mut store: impl AsContextMut<Data = T>,
    getter: Getter<T>,
    contents: Option<StreamReader<u8>>,
    trailers: FutureReader<GuestTrailers>,
    headers: &HeaderMap,
    limits: &Limits,
    direction: Direction,
) -> wasmtime::Result<HostBody> {
    let (writer, body) = wasi_http_core::body::channel(limits, headers, direction);
    let shared = Arc::new(Mutex::new(Outgoing {
        writer: Some(writer),
        data_done: contents.is_none(),
        trailers: None,
    }));
    if let Some(contents) = contents {
        contents.pipe(&mut store, DataSink(shared.clone()))?;
    }
    trailers.pipe(
        &mut store,
        TrailersSink {
            shared: Some(shared),
            getter,
        },
    )?;
    Ok(http_body_util::BodyExt::boxed_unsync(body))
}

/// Takes the guest's bytes as fast as the queue has room.
struct DataSink(Arc<Mutex<Outgoing>>);

impl<D> StreamConsumer<D> for DataSink {
    type Item = u8;

    fn poll_consume(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<D>,
        source: Source<'_, u8>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let mut outgoing = lock(&self.0);
        let Some(writer) = outgoing.writer.as_mut() else {
            return Poll::Ready(Ok(StreamResult::Dropped));
        };
        let room = match writer.check_write() {
            Ok(0) => match writer.poll_ready(cx) {
                Poll::Ready(()) => writer.check_write(),
                Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
                Poll::Pending => return Poll::Pending,
            },
            room => room,
        };
        let room = match room {
            Ok(room) if room > 0 => room,
            // Finished, failed or nobody reads it (the peer went away): the guest's
            // writes end; the transmission future says why.
            _ => {
                outgoing.data_done = true;
                return Poll::Ready(Ok(StreamResult::Dropped));
            }
        };
        let mut source = source.as_direct(store);
        let available = source.remaining();
        if available.is_empty() {
            // A zero-length write asks whether a write would go through: it would.
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let n = room.min(available.len());
        let data = Bytes::copy_from_slice(&available[..n]);
        source.mark_read(n);
        match writer.write(data) {
            Ok(()) => Poll::Ready(Ok(StreamResult::Completed)),
            Err(WriteError::Failed(code)) => {
                tracing::debug!(error = %code, "guest body broke its content-length");
                outgoing.data_done = true;
                Poll::Ready(Ok(StreamResult::Dropped))
            }
            Err(_) => {
                outgoing.data_done = true;
                Poll::Ready(Ok(StreamResult::Dropped))
            }
        }
    }
}

impl Drop for DataSink {
    fn drop(&mut self) {
        // The guest closed its end: the data is complete.
        let mut outgoing = lock(&self.0);
        outgoing.data_done = true;
        outgoing.settle();
    }
}

/// Receives the guest's trailers (or its error) and ends the body with them.
struct TrailersSink<T: 'static> {
    shared: Option<Arc<Mutex<Outgoing>>>,
    getter: Getter<T>,
}

impl<T: 'static> FutureConsumer<T> for TrailersSink<T> {
    type Item = GuestTrailers;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        mut store: StoreContextMut<T>,
        mut source: Source<'_, GuestTrailers>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<()>> {
        let mut value = None;
        source.read(&mut store, &mut value)?;
        let Some(value) = value else {
            return Poll::Ready(Ok(()));
        };
        let trailers = match value {
            Ok(None) => Ok(None),
            Ok(Some(fields)) => {
                let view = (self.getter)(store.data_mut());
                let fields = view.table.delete(fields)?;
                Ok(Some(permitted_trailers(fields.into_map())))
            }
            Err(code) => Err(ErrorCode::from(code)),
        };
        if let Some(shared) = self.shared.take() {
            let mut outgoing = lock(&shared);
            outgoing.trailers = Some(trailers);
            outgoing.settle();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: 'static> Drop for TrailersSink<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            // The WIT says the future must resolve once the stream is closed; a
            // body whose end is unknown is never sent as if complete.
            let mut outgoing = lock(&shared);
            outgoing.trailers = Some(Err(ErrorCode::internal(
                "the body's trailers future was dropped without a value",
            )));
            outgoing.settle();
        }
    }
}

/// Trailers without the fields that must not be trailers (framing, routing,
/// controls, authentication: RFC 9110 §6.5.1); the rest, as given.
fn permitted_trailers(mut trailers: HeaderMap) -> HeaderMap {
    for name in wasi_http_core::headers::FORBIDDEN_TRAILERS {
        if trailers.remove(*name).is_some() {
            tracing::debug!(
                field = name,
                "a guest's trailer field that must not be a trailer was dropped"
            );
        }
    }
    trailers
}

/// Resolves a message's transmission future once hyper has taken the body to its
/// end (`ok`), or failed or dropped it (the error).
pub(crate) struct Transmission(Option<oneshot::Sender<Result<(), ErrorCode>>>);

impl Transmission {
    /// A watcher and the future's value.
    pub(crate) fn new() -> (Self, oneshot::Receiver<Result<(), ErrorCode>>) {
        let (tx, rx) = oneshot::channel();
        (Transmission(Some(tx)), rx)
    }
}

impl BodyWatch for Transmission {
    fn end(&mut self, end: BodyEnd<'_>) {
        let result = match end {
            BodyEnd::Complete | BodyEnd::Dropped { inner_ended: true } => Ok(()),
            BodyEnd::Failed(code) => Err(code.clone()),
            BodyEnd::Dropped { inner_ended: false } => Err(ErrorCode::ConnectionTerminated),
        };
        if let Some(tx) = self.0.take() {
            let _ = tx.send(result);
        }
    }
}

/// The guest's side of a transmission future.
pub(crate) fn transmission_future<T: 'static>(
    store: impl AsContextMut<Data = T>,
    rx: oneshot::Receiver<Result<(), ErrorCode>>,
) -> wasmtime::Result<FutureReader<Result<(), GuestCode>>> {
    FutureReader::new(store, async move {
        let result = rx.await.unwrap_or_else(|_| {
            Err(ErrorCode::internal(
                "the message was dropped before it was sent",
            ))
        });
        Ok::<_, wasmtime::Error>(result.map_err(GuestCode::from))
    })
}

// ---------------------------------------------------------------------------------
// Host to guest

/// Offers `body` to the guest: a stream of its bytes and a future of its trailers
/// (resolved only once the stream has ended). The guest's `res` future, its word
/// on how handling the body went, is logged.
pub(crate) fn offer_body<T: 'static>(
    mut store: impl AsContextMut<Data = T>,
    getter: Getter<T>,
    body: HostBody,
    between_bytes: Option<Duration>,
    limits: &Limits,
    direction: Direction,
    res: FutureReader<Result<(), GuestCode>>,
) -> wasmtime::Result<(StreamReader<u8>, FutureReader<GuestTrailers>)> {
    let reader = BodyReader::new(body, between_bytes, limits, direction);
    let (tx, rx) = oneshot::channel();
    let stream = StreamReader::new(
        &mut store,
        BodySource {
            reader: Some(reader),
            outcome: Some(tx),
        },
    )?;
    let trailers = FutureReader::new(&mut store, TrailersSource { rx, getter })?;
    res.pipe(&mut store, GuestVerdict)?;
    Ok((stream, trailers))
}

/// A received body, read frame by frame as the guest reads.
struct BodySource {
    reader: Option<BodyReader>,
    outcome: Option<oneshot::Sender<ReadOutcome>>,
}

impl BodySource {
    fn ended(&mut self, outcome: ReadOutcome) -> Poll<wasmtime::Result<StreamResult>> {
        if let Some(tx) = self.outcome.take() {
            let _ = tx.send(outcome);
        }
        self.reader = None;
        Poll::Ready(Ok(StreamResult::Dropped))
    }
}

impl<D> StreamProducer<D> for BodySource {
    type Item = u8;
    type Buffer = Bytes;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        mut dst: Destination<'a, u8, Bytes>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let Some(reader) = self.reader.as_mut() else {
            return Poll::Ready(Ok(StreamResult::Dropped));
        };
        if reader.poll_fill(cx).is_pending() {
            return if finish {
                Poll::Ready(Ok(StreamResult::Cancelled))
            } else {
                Poll::Pending
            };
        }
        let wanted = dst.remaining(&mut store);
        if !reader.buffered().is_empty() {
            match wanted {
                // A zero-length read asks whether data is ready: it is.
                Some(0) => {}
                // A guest reads: straight into its buffer.
                Some(_) => {
                    let mut direct = dst.as_direct(store, 0);
                    let room = direct.remaining();
                    let n = room.len().min(reader.buffered().len());
                    room[..n].copy_from_slice(&reader.buffered()[..n]);
                    direct.mark_written(n);
                    reader.consume(n);
                }
                // The host reads (the guest forwarded this stream): the frame, whole.
                None => dst.set_buffer(reader.take_buffered()),
            }
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        match reader.finished_outcome() {
            Some(outcome) => self.ended(outcome),
            // Filled but neither data nor an end: cannot happen; ask again.
            None => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

impl Drop for BodySource {
    fn drop(&mut self) {
        let (Some(mut reader), Some(tx)) = (self.reader.take(), self.outcome.take()) else {
            return;
        };
        // The guest stopped reading before the end: the trailers still come, once
        // the rest has been read (and dropped) in the background, as in 0.2.
        if let Some(outcome) = reader.finished_outcome() {
            let _ = tx.send(outcome);
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    reader.drain().await;
                    if let Some(outcome) = reader.finished_outcome() {
                        let _ = tx.send(outcome);
                    }
                });
            }
            Err(_) => {
                let _ = tx.send(Err(ErrorCode::internal(
                    "the body stream was dropped before its end",
                )));
            }
        }
    }
}

/// The trailers of a received body, once its stream has ended.
struct TrailersSource<T: 'static> {
    rx: oneshot::Receiver<ReadOutcome>,
    getter: Getter<T>,
}

impl<T: 'static> FutureProducer<T> for TrailersSource<T> {
    type Item = GuestTrailers;

    fn poll_produce(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<T>,
        finish: bool,
    ) -> Poll<wasmtime::Result<Option<GuestTrailers>>> {
        let outcome = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(outcome)) => outcome,
            Poll::Ready(Err(_)) => Err(ErrorCode::internal("the body's reader went away")),
            Poll::Pending if finish => return Poll::Ready(Ok(None)),
            Poll::Pending => return Poll::Pending,
        };
        let value = match outcome {
            Ok(None) => Ok(None),
            Ok(Some(fields)) => {
                let view = (self.getter)(store.data_mut());
                Ok(Some(view.table.push(fields)?))
            }
            Err(code) => Err(code.into()),
        };
        Poll::Ready(Ok(Some(value)))
    }
}

/// What the guest says about how handling a body went; only logged.
struct GuestVerdict;

impl<D> FutureConsumer<D> for GuestVerdict {
    type Item = Result<(), GuestCode>;

    fn poll_consume(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        mut store: StoreContextMut<D>,
        mut source: Source<'_, Self::Item>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<()>> {
        let mut value = None;
        source.read(&mut store, &mut value)?;
        if let Some(Err(code)) = value {
            tracing::debug!(error = %ErrorCode::from(code), "the guest reports an error handling a body");
        }
        Poll::Ready(Ok(()))
    }
}

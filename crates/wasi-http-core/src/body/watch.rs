//! One body wrapper for everything that watches a body go by: counting bytes for an
//! access line, enforcing a size or stall limit, returning a connection to a pool
//! at the end, stopping a guest when its response is dropped unfinished.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::error::ErrorCode;

/// How a watched body ended; reported once.
#[derive(Debug)]
pub enum BodyEnd<'a> {
    /// Read to its end.
    Complete,
    /// It failed with this code (from the inner body or from the watcher).
    Failed(&'a ErrorCode),
    /// Dropped before its end. `inner_ended`: the inner body said it had ended
    /// (`is_end_stream`) although nobody polled that end.
    Dropped {
        /// Whether the inner body reported its end.
        inner_ended: bool,
    },
}

/// What a [`Watched`] body reports to. Every method has a do-nothing default.
pub trait BodyWatch: Send + 'static {
    /// A data frame of `len` bytes is about to pass; an error fails the body
    /// with that code instead.
    fn data(&mut self, len: usize) -> Result<(), ErrorCode> {
        let _ = len;
        Ok(())
    }

    /// The inner body has nothing yet; an error fails the body (a stall limit).
    /// A watcher that returns `Ok` and wants to be asked again must arrange a
    /// wake-up through `cx`.
    fn pending(&mut self, cx: &mut Context<'_>) -> Result<(), ErrorCode> {
        let _ = cx;
        Ok(())
    }

    /// The inner body ended; an error fails the body with that code instead
    /// (the source of the body is known to have failed, though it ended cleanly).
    fn complete(&mut self) -> Result<(), ErrorCode> {
        Ok(())
    }

    /// The body ended, failed or was dropped.
    fn end(&mut self, end: BodyEnd<'_>) {
        let _ = end;
    }
}

/// A body passed through unchanged, reported to a [`BodyWatch`].
pub struct Watched<B: Body, W: BodyWatch> {
    body: B,
    watch: W,
    ended: bool,
}

impl<B: Body, W: BodyWatch> Watched<B, W> {
    /// Watches `body` with `watch`.
    pub fn new(body: B, watch: W) -> Self {
        Watched {
            body,
            watch,
            ended: false,
        }
    }

    /// The watcher.
    pub fn watch(&self) -> &W {
        &self.watch
    }

    fn end(&mut self, end: BodyEnd<'_>) {
        if !self.ended {
            self.ended = true;
            self.watch.end(end);
        }
    }
}

impl<B, W> Body for Watched<B, W>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<ErrorCode>,
    W: BodyWatch + Unpin,
{
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => match this.watch.pending(cx) {
                Ok(()) => Poll::Pending,
                Err(code) => {
                    this.end(BodyEnd::Failed(&code));
                    Poll::Ready(Some(Err(code)))
                }
            },
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(code) = this.watch.data(data.len()) {
                        this.end(BodyEnd::Failed(&code));
                        return Poll::Ready(Some(Err(code)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let code = e.into();
                this.end(BodyEnd::Failed(&code));
                Poll::Ready(Some(Err(code)))
            }
            Poll::Ready(None) => match this.watch.complete() {
                Ok(()) => {
                    this.end(BodyEnd::Complete);
                    Poll::Ready(None)
                }
                Err(code) => {
                    this.end(BodyEnd::Failed(&code));
                    Poll::Ready(Some(Err(code)))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B: Body, W: BodyWatch> Drop for Watched<B, W> {
    fn drop(&mut self) {
        if !self.ended {
            self.ended = true;
            let inner_ended = self.body.is_end_stream();
            self.watch.end(BodyEnd::Dropped { inner_ended });
        }
    }
}
